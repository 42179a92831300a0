//! Credentials never show: failing runs at the most verbose log level, with passwords from
//! flags, a token service and Secrets Manager, print no password, no `Authorization`
//! value and no bearer token — on stdout, on stderr, or in the JSON report.

use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use ferry_testbed::fixtures::Style;
use ferry_testbed::moto::MotoServer;
use ferry_testbed::token::TokenServer;
use ferry_testbed::{Auth, DockerRegistry};

fn ferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env("HOME", std::env::temp_dir())
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env("RUST_LOG", "trace")
        .stdin(Stdio::null());
    c
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run ferry"))
        .await
        .unwrap()
}

/// The run failed, and none of `secrets` (nor their basic-auth encodings with `user`)
/// appears anywhere in what it printed.
fn assert_failed_without(out: &Output, user: &str, secrets: &[&str]) {
    let text = format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{text}");
    for secret in secrets {
        assert!(!text.contains(secret), "{secret:?} leaked:\n{text}");
        let basic = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}"));
        assert!(!text.contains(&basic), "encoded {secret:?} leaked:\n{text}");
    }
    // JWTs (the token server's bearer tokens) start with a base64url `{"`.
    assert!(!text.contains("eyJ"), "a bearer token leaked:\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_password_is_not_printed() {
    let src = DockerRegistry::start(Auth::Basic {
        username: "ci".into(),
        password: "right-horse-battery".into(),
    });
    let dst = DockerRegistry::start(Auth::None);
    src.seeder()
        .push_image("app", "1", Style::Oci, &[100], 1)
        .await;
    let mut cmd = ferry();
    cmd.env("FERRY_SRC_CREDS", "ci:wrong-staple-93")
        .args(["copy", "--insecure-loopback", "--json"])
        .arg(format!("{}/app:1", src.host()))
        .arg(format!("{}/app", dst.host()));
    assert_failed_without(&run(cmd).await, "ci", &["wrong-staple-93"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn tokens_and_the_password_behind_them_are_not_printed() {
    let tokens = TokenServer::start("robot", "token-pass-5150").await;
    let src = DockerRegistry::start(Auth::Token(tokens.clone()));
    let dst = DockerRegistry::start(Auth::None);
    let mut cmd = ferry();
    // Authenticated fine, then the tag is missing: a failure after tokens were in use.
    cmd.env("FERRY_SRC_CREDS", "robot:token-pass-5150")
        .args(["copy", "--insecure-loopback", "--json"])
        .arg(format!("{}/app:missing", src.host()))
        .arg(format!("{}/app", dst.host()));
    let out = run(cmd).await;
    assert!(
        tokens
            .authenticated_requests
            .load(std::sync::atomic::Ordering::Relaxed)
            > 0,
        "the run must have used a token"
    );
    assert_failed_without(&out, "robot", &["token-pass-5150"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_secrets_manager_value_is_not_printed() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::Basic {
        username: "mirror".into(),
        password: "current-pass".into(),
    });
    src.seeder()
        .push_image("app", "1", Style::Oci, &[100], 2)
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    secrets
        .create_secret()
        .name("ferry/dst")
        .secret_string(r#"{"username":"mirror","password":"stale-pass-from-sm"}"#)
        .send()
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("ferry.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\ncredentials:\n  \"{dst}\": {{secret: ferry/dst}}\nsources:\n  - images: [\"{src}/app:1\"]\n    destinations: [{{target: \"{dst}/{{repo}}\"}}]\n",
            src = src.host(),
            dst = dst.host()
        ),
    )
    .unwrap();
    let mut cmd = ferry();
    cmd.envs(moto.env())
        .args(["sync", "--insecure-loopback", "--json", "--config"])
        .arg(&config);
    let out = run(cmd).await;
    assert_failed_without(&out, "mirror", &["stale-pass-from-sm"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("denied")
            || String::from_utf8_lossy(&out.stderr).contains("denied"),
        "the failure is still explained"
    );
}
