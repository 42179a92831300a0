//! TLS is verified by default, plain HTTP is used only for hosts named insecure, and a
//! private CA is trusted the standard way (`SSL_CERT_FILE`).

use std::process::{Command, Output, Stdio};

use ferry_testbed::fixtures::Style;
use ferry_testbed::{Auth, DockerRegistry};

fn ferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    c.env("HOME", std::env::temp_dir())
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("SSL_CERT_FILE")
        .env_remove("SSL_CERT_DIR")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null());
    c
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run ferry"))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn certificates_are_verified_unless_the_ca_is_trusted_and_http_needs_naming() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start_tls(Auth::None);
    src.seeder()
        .push_image("app", "1", Style::Oci, &[300], 4)
        .await;
    let src_ref = format!("{}/app:1", src.host());
    let dst_ref = format!("{}/app:1", dst.host());

    // The plain-HTTP source must be named; without that ferry speaks TLS to it and fails.
    let mut unnamed = ferry();
    unnamed.args(["copy", &src_ref, &dst_ref]);
    let out = run(unnamed).await;
    assert_eq!(out.status.code(), Some(1));

    // Named, the source is fine, and the destination's certificate is checked: its CA is
    // unknown.
    let mut untrusted = ferry();
    untrusted.args([
        "copy",
        "--insecure-registry",
        &src.host(),
        &src_ref,
        &dst_ref,
    ]);
    let out = run(untrusted).await;
    let stderr = String::from_utf8_lossy(&out.stderr).to_lowercase();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("certificate"), "{stderr}");

    // Trusting the CA the standard way makes the copy work, over TLS.
    let mut trusted = ferry();
    trusted.env("SSL_CERT_FILE", dst.ca_file()).args([
        "copy",
        "--insecure-registry",
        &src.host(),
        &src_ref,
        &dst_ref,
    ]);
    let out = run(trusted).await;
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut verify = ferry();
    verify.env("SSL_CERT_FILE", dst.ca_file()).args([
        "verify",
        "--insecure-registry",
        &src.host(),
        &src_ref,
        &dst_ref,
    ]);
    let out = run(verify).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(stdout.contains("1 ok"), "{stdout}");
}
