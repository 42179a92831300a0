//! The `ferry` binary end to end: arguments, credentials from files, reports, exit codes,
//! and memory that stays flat on a large blob.

use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use ferry_testbed::fixtures::Style;
use ferry_testbed::moto::MotoServer;
use ferry_testbed::{Auth, DockerRegistry};

fn ferry() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // Keep the user's own docker config out of the tests.
    c.env("HOME", std::env::temp_dir())
        .env_remove("DOCKER_CONFIG")
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("RUST_LOG");
    c
}

fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().expect("run ferry")
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_with_credentials_from_a_docker_config_and_prints_a_json_report() {
    let src = DockerRegistry::start(Auth::Basic {
        username: "ci".into(),
        password: "pa:ss".into(),
    });
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1.0", Style::Docker, &[1000, 2000], 1)
        .await;
    let config_dir = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("ci:pa:ss");
    std::fs::write(
        config_dir.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, src.host()),
    )
    .unwrap();

    let out = tokio::task::spawn_blocking({
        let (s, d) = (src.host(), dst.host());
        let dir = config_dir.path().to_owned();
        move || {
            run(ferry().env("DOCKER_CONFIG", dir).args([
                "copy",
                "--insecure-loopback",
                "--json",
                &format!("{s}/app:1.0"),
                &format!("{d}/mirror/app"),
            ]))
        }
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON report on stdout");
    assert_eq!(report["copied"], 1);
    assert_eq!(report["failed"], 0);
    let image = &report["images"][0];
    assert_eq!(image["digest"], pushed.digest.as_str());
    assert_eq!(image["blobs_uploaded"], 3);
    assert_eq!(
        image["destinations"][0]["reference"],
        format!("{}/mirror/app:1.0", dst.host())
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains("pa:ss"));
    let (_, _, digest) = dst.seeder().manifest("mirror/app", "1.0").await.unwrap();
    assert_eq!(digest, pushed.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn exit_codes_distinguish_failures_from_bad_arguments() {
    let src = DockerRegistry::start(Auth::Basic {
        username: "u".into(),
        password: "hunter2-secret".into(),
    });
    let dst = DockerRegistry::start(Auth::None);
    src.seeder()
        .push_image("app", "1", Style::Oci, &[10], 1)
        .await;
    let (s, d) = (src.host(), dst.host());
    let out = tokio::task::spawn_blocking(move || {
        let failed = run(ferry().args([
            "copy",
            "--insecure-loopback",
            "--src-creds",
            "u:wrong-hunter",
            &format!("{s}/app:1"),
            &format!("{d}/app"),
        ]));
        let bad_ref = run(ferry().args(["copy", "Not A Reference", "x/y"]));
        let no_tag = run(ferry().args(["copy", &format!("{s}/app"), &format!("{d}/app")]));
        let no_creds = run(ferry().args([
            "copy",
            "--insecure-loopback",
            &format!("{s}/app:1"),
            &format!("{d}/app"),
        ]));
        (failed, bad_ref, no_tag, no_creds)
    })
    .await
    .unwrap();
    let (failed, bad_ref, no_tag, no_creds) = out;
    // The library's message says what is missing; the CLI adds the flag that gives it.
    assert_eq!(no_creds.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&no_creds.stderr);
    assert!(stderr.contains("needs credentials"), "{stderr}");
    assert!(
        stderr.contains("hint: give the source registry's credentials with --src-creds"),
        "{stderr}"
    );
    assert!(!stderr.contains("--dest-creds"), "{stderr}");
    assert_eq!(failed.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("FAILED") && stderr.contains("denied"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("wrong-hunter"),
        "secret in output: {stderr}"
    );
    assert_eq!(bad_ref.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad_ref.stderr).contains("invalid image reference"));
    assert_eq!(no_tag.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&no_tag.stderr).contains("--all-tags"));
}

#[test]
fn help_teaches_with_examples() {
    let out = run(ferry().args(["copy", "--help"]));
    let text = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--all-tags",
        "--platform",
        "--src-creds",
        "Examples:",
        "Exit status",
    ] {
        assert!(text.contains(needle), "missing {needle} in help");
    }
}

/// Peak RSS of a finished child, from wait4 (std's Child does not expose rusage).
#[allow(clippy::zombie_processes)] // reaped by wait4 below, which also yields its rusage
fn run_measuring_rss(cmd: &mut Command) -> (i32, u64) {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let mut status = 0;
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: waiting on our own child pid with valid pointers.
    let pid = unsafe { libc::wait4(child.id() as i32, &mut status, 0, &mut usage) };
    assert_eq!(pid, child.id() as i32);
    (libc::WEXITSTATUS(status), usage.ru_maxrss as u64 * 1024)
}

#[tokio::test(flavor = "multi_thread")]
async fn copying_a_256_mib_blob_keeps_memory_flat() {
    const SIZE: u64 = 256 * 1024 * 1024;
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let layer = s.push_large_blob("big", SIZE, 77).await;
    let config = s
        .push_blob("big", ferry_testbed::fixtures::OCI_CONFIG, b"{}")
        .await;
    let pushed = s
        .push_manifest_of(
            "big",
            "v1",
            ferry_testbed::fixtures::OCI_MANIFEST,
            &config,
            std::slice::from_ref(&layer),
        )
        .await;

    // The same copy of a small image first: what the process needs whatever it copies
    // (a debug binary, its runtime and TLS), which varies by a few MiB from run to run.
    s.push_image(
        "small",
        "v1",
        ferry_testbed::fixtures::Style::Oci,
        &[4096],
        78,
    )
    .await;
    let (sh, dh) = (src.host(), dst.host());
    let copy = move |repo: &'static str| {
        let (sh, dh) = (sh.clone(), dh.clone());
        tokio::task::spawn_blocking(move || {
            run_measuring_rss(ferry().args([
                "copy",
                "--insecure-loopback",
                &format!("{sh}/{repo}:v1"),
                &format!("{dh}/{repo}"),
            ]))
        })
    };
    let (code, baseline) = copy("small").await.unwrap();
    assert_eq!(code, 0);
    let (code, rss) = copy("big").await.unwrap();
    assert_eq!(code, 0);
    let (_, _, digest) = dst.seeder().manifest("big", "v1").await.unwrap();
    assert_eq!(digest, pushed.digest);
    assert!(dst.seeder().blob_exists("big", &layer.digest).await);
    let mib = |b: u64| b / (1024 * 1024);
    eprintln!(
        "peak RSS copying a 256 MiB blob: {} MiB; a 4 KiB one: {} MiB",
        mib(rss),
        mib(baseline)
    );
    // A transfer's buffers (channels, HTTP and TLS buffers, a blob's hasher) cost about
    // 20 MiB in this debug build, the same for a 64 MiB blob as for this one; buffering
    // the blob would add 256.
    assert!(
        rss < baseline + 32 * 1024 * 1024,
        "peak RSS {} MiB against {} MiB for a small image: it grows with the blob",
        mib(rss),
        mib(baseline)
    );
}

/// Out of Amazon ECR: the token comes from ECR's GetAuthorizationToken (moto), and the ECR
/// host is served by a registry that accepts exactly that token.
#[tokio::test(flavor = "multi_thread")]
async fn copies_out_of_ecr_with_a_token_from_get_authorization_token() {
    let moto = MotoServer::start();
    let ecr = MotoServer::ecr_registry();
    let dst = DockerRegistry::start(Auth::None);
    let pushed = ecr
        .seeder()
        .push_image("team/app", "1.0", Style::Docker, &[1500], 5)
        .await;
    let ecr_host = MotoServer::ecr_host("eu-west-1");
    let copy = |with_aws: bool| {
        let mut cmd = ferry();
        if with_aws {
            cmd.envs(moto.env());
        } else {
            // No AWS credentials anywhere: ferry must say what is missing.
            cmd.env("AWS_ACCESS_KEY_ID", "")
                .env("AWS_SECRET_ACCESS_KEY", "")
                .env("AWS_EC2_METADATA_DISABLED", "true")
                .env("AWS_ENDPOINT_URL", moto.endpoint());
        }
        cmd.args([
            "copy",
            "--insecure-loopback",
            "--registry-endpoint",
            &format!("{ecr_host}={}", ecr.url()),
            &format!("{ecr_host}/team/app:1.0"),
            &format!("{}/gitlab/team/app", dst.host()),
        ]);
        cmd
    };
    let (mut with, mut without) = (copy(true), copy(false));
    let (ok, denied) = tokio::task::spawn_blocking(move || (run(&mut with), run(&mut without)))
        .await
        .unwrap();
    assert!(
        ok.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&ok.stderr)
    );
    let (raw, _, digest) = dst
        .seeder()
        .manifest("gitlab/team/app", "1.0")
        .await
        .unwrap();
    assert_eq!(digest, pushed.digest);
    assert_eq!(raw, pushed.raw);

    assert_eq!(denied.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&denied.stderr);
    assert!(stderr.contains("no AWS credentials found"), "{stderr}");
    assert!(stderr.contains("ecr:GetAuthorizationToken"), "{stderr}");
    assert!(
        stderr.lines().count() < 8,
        "a short error, not an SDK dump: {stderr}"
    );
}

/// `credHelpers` runs `docker-credential-<name> get` with the registry on stdin, exactly as
/// docker does; the helper here is a shell script on PATH that checks what it was asked.
#[tokio::test(flavor = "multi_thread")]
async fn credential_helper_supplies_the_password_and_it_never_reaches_the_output() {
    use std::os::unix::fs::PermissionsExt;
    let src = DockerRegistry::start(Auth::Basic {
        username: "helper-user".into(),
        password: "from-the-helper-42".into(),
    });
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "2.0", Style::Oci, &[800], 9)
        .await;
    let dir = tempfile::tempdir().unwrap();
    let helper = dir.path().join("docker-credential-fake");
    std::fs::write(
        &helper,
        format!(
            "#!/bin/sh\n[ \"$1\" = get ] || exit 2\nread host\n[ \"$host\" = \"{}\" ] || {{ echo \"credentials not found in native keychain\"; exit 1; }}\necho '{{\"ServerURL\":\"'$host'\",\"Username\":\"helper-user\",\"Secret\":\"from-the-helper-42\"}}'\n",
            src.host()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        format!(r#"{{"credHelpers":{{"{}":"fake"}}}}"#, src.host()),
    )
    .unwrap();
    let path = format!(
        "{}:{}",
        dir.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = ferry();
    cmd.env("DOCKER_CONFIG", dir.path())
        .env("PATH", path)
        .env("RUST_LOG", "trace")
        .args([
            "copy",
            "--insecure-loopback",
            "--json",
            &format!("{}/app:2.0", src.host()),
            &format!("{}/app", dst.host()),
        ]);
    let out = tokio::task::spawn_blocking(move || run(&mut cmd))
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, _, digest) = dst.seeder().manifest("app", "2.0").await.unwrap();
    assert_eq!(digest, pushed.digest);
    for stream in [&out.stdout, &out.stderr] {
        let text = String::from_utf8_lossy(stream);
        assert!(
            !text.contains("from-the-helper-42"),
            "secret leaked: {text}"
        );
        let basic =
            base64::engine::general_purpose::STANDARD.encode("helper-user:from-the-helper-42");
        assert!(!text.contains(&basic), "encoded secret leaked: {text}");
    }
}

/// The pipeline's dead letters, listed by kind without consuming them, and requeued by
/// kind: exactly those move back to the copy queue.
#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_by_kind_left_in_place_and_requeued_by_kind() {
    use ferry_testbed::pipeline::LocalPipeline;
    use ferry_testbed::sqs;

    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let config = format!(
        "version: 1\nsources:\n  - name: local\n    registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\", prune: true}}]\n",
        src.host(),
        dst.host()
    );
    let p = LocalPipeline::on_loopback(&moto, &config, false).await;
    // What fails for good, for real: two removals no pruning destination maps, and a body
    // that is no ferry message.
    let removal = |destination: &str| {
        serde_json::json!({"version": 1, "kind": "remove",
            "destination": format!("{}/{destination}", dst.host()),
            "source": format!("{}/app", src.host()),
            "tags": [{"tag": "1.0", "source_tag": "1.0", "why": "gone-from-source"}],
            "source_name": "local"})
        .to_string()
    };
    for body in [
        removal("elsewhere/a"),
        removal("elsewhere/b"),
        "{}".to_string(),
    ] {
        sqs::send(&p.sqs, &p.copy_url, &body).await;
    }
    assert!(p.drain_copies().await.failed.is_empty());

    let dead_letters = |args: &[&str]| {
        let mut cmd = ferry();
        cmd.envs(moto.env())
            .args(["dead-letters", "--json", "--queue", &p.dlq_url])
            .args(args);
        run(&mut cmd)
    };
    let listed = || {
        let out = dead_letters(&[]);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let first = listed();
    assert_eq!(first["count"], 3, "{first}");
    let kinds: Vec<(&str, u64)> = first["kinds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| (k["kind"].as_str().unwrap(), k["count"].as_u64().unwrap()))
        .collect();
    assert_eq!(kinds, [("not_a_mirror", 2), ("bad_message", 1)], "{first}");
    let example = first["kinds"][0]["example"].as_str().unwrap();
    assert!(example.contains("no destination that prunes"), "{example}");
    let subjects: Vec<&str> = first["letters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["subject"].as_str().unwrap())
        .collect();
    assert!(
        subjects.iter().any(|s| s.ends_with("/elsewhere/a")),
        "{subjects:?}"
    );
    // Read, not consumed.
    assert_eq!(listed()["count"], 3);

    // Requeue one kind only, and only where it can go.
    let out = dead_letters(&["--requeue", "--kind", "not_a_mirror"]);
    assert!(!out.status.success(), "no --copy-queue given");
    assert!(String::from_utf8_lossy(&out.stderr).contains("--copy-queue"));
    let out = dead_letters(&[
        "--requeue",
        "--kind",
        "not_a_mirror",
        "--copy-queue",
        &p.copy_url,
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["requeued"], 2, "{moved}");
    let left = listed();
    assert_eq!(left["count"], 1, "{left}");
    assert_eq!(left["kinds"][0]["kind"], "bad_message");
    let back = p.receive(&p.copy_url).await;
    let mut bodies: Vec<String> = back
        .records()
        .iter()
        .map(|r| r["body"].as_str().unwrap().to_string())
        .collect();
    bodies.sort();
    assert_eq!(bodies, [removal("elsewhere/a"), removal("elsewhere/b")]);

    // The human listing.
    let mut cmd = ferry();
    cmd.envs(moto.env())
        .args(["dead-letters", "--queue", &p.dlq_url]);
    let out = run(&mut cmd);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("1 dead letters\n  bad_message"), "{text}");
    assert!(text.contains("(not a ferry message)"), "{text}");
}

/// `ferry status` against the pipeline's queues: counts as seeded, then followed (no
/// terminal: plain lines) while the copier drains the copy queue, until it is empty.
#[tokio::test(flavor = "multi_thread")]
async fn status_counts_the_queues_and_follows_the_copy_queue_until_it_is_empty() {
    use ferry_testbed::pipeline::LocalPipeline;
    use ferry_testbed::sqs;
    use std::io::{BufRead, BufReader};

    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    for i in 0..6 {
        src.seeder()
            .push_image("app", &format!("1.{i}"), Style::Oci, &[200], 300 + i)
            .await;
    }
    let config = format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\"}}]\n",
        src.host(),
        dst.host()
    );
    let p = LocalPipeline::on_loopback(&moto, &config, false).await;
    let summary = p
        .planner
        .handle(serde_json::json!({"action": "sync"}))
        .await
        .unwrap();
    assert_eq!(summary["messages_sent"], 6, "{summary}");
    // And one message that will fail for good.
    sqs::send(&p.sqs, &p.copy_url, "{}").await;
    let status = |args: &[&str]| {
        let mut cmd = ferry();
        cmd.envs(moto.env())
            .args(["status", "--copy-queue", &p.copy_url])
            .args(["--plan-queue", &p.plan_url])
            .args(["--dead-letter-queue", &p.dlq_url])
            .args(args);
        cmd
    };

    let out = run(&mut status(&["--once", "--json"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["copy"]["waiting"], 7, "{snapshot}");
    assert_eq!(snapshot["copy"]["in_flight"], 0, "{snapshot}");
    assert_eq!(snapshot["plan"]["waiting"], 0, "{snapshot}");
    assert_eq!(snapshot["dead_letters"], 0, "{snapshot}");

    // Followed while the copier drains the queue.
    let mut child = status(&["--interval", "1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (first, lines) = tokio::task::spawn_blocking(move || {
        let first = lines.next().unwrap().unwrap();
        (first, lines)
    })
    .await
    .unwrap();
    assert!(
        first.starts_with("7 waiting, 0 in flight; 0 repositories to plan; 0 dead letters"),
        "{first}"
    );
    assert!(p.drain_copies().await.records >= 7);
    let rest: Vec<String> =
        tokio::task::spawn_blocking(move || lines.map(Result::unwrap).collect())
            .await
            .unwrap();
    assert!(child.wait().unwrap().success());
    assert!(
        rest.iter().all(|l| !l.contains('\u{1b}')),
        "plain lines: {rest:?}"
    );
    let text = rest.join("\n");
    assert!(
        text.contains("the copy queue is empty: 0 waiting, 0 in flight; 0 repositories to plan; 1 dead letters"),
        "{text}"
    );
    assert!(text.contains("1 bad_message: e.g."), "{text}");
    assert_eq!(dst.seeder().tags("mirror/app").await.len(), 6);
}

/// `--stack`: the queues come from the deployed stack's outputs, read through
/// CloudFormation (moto, with a stack of just the three queues and the template's output
/// names).
#[tokio::test(flavor = "multi_thread")]
async fn status_and_dead_letters_find_the_queues_from_the_stack_outputs() {
    let moto = MotoServer::start();
    let sdk = moto.sdk_config().await;
    let template = r#"{
      "Resources": {
        "CopyQueue": {"Type": "AWS::SQS::Queue"},
        "PlanQueue": {"Type": "AWS::SQS::Queue"},
        "DeadLetterQueue": {"Type": "AWS::SQS::Queue"}
      },
      "Outputs": {
        "CopyQueueUrl": {"Value": {"Ref": "CopyQueue"}},
        "PlanQueueUrl": {"Value": {"Ref": "PlanQueue"}},
        "DeadLetterQueueUrl": {"Value": {"Ref": "DeadLetterQueue"}}
      }
    }"#;
    let cfn = aws_sdk_cloudformation::Client::new(&sdk);
    cfn.create_stack()
        .stack_name("ferry-test")
        .template_body(template)
        .send()
        .await
        .unwrap();
    let outputs = cfn
        .describe_stacks()
        .stack_name("ferry-test")
        .send()
        .await
        .unwrap();
    let url = |key: &str| {
        outputs.stacks()[0]
            .outputs()
            .iter()
            .find(|o| o.output_key() == Some(key))
            .and_then(|o| o.output_value())
            .unwrap()
            .to_string()
    };
    let sqs = aws_sdk_sqs::Client::new(&sdk);
    for _ in 0..3 {
        ferry_testbed::sqs::send(&sqs, &url("CopyQueueUrl"), "{}").await;
    }
    ferry_testbed::sqs::send(&sqs, &url("DeadLetterQueueUrl"), "{}").await;

    let ferry_with = |args: &[&str]| {
        let mut cmd = ferry();
        cmd.envs(moto.env()).args(args);
        run(&mut cmd)
    };
    let out = ferry_with(&["status", "--stack", "ferry-test", "--once", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let snapshot: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(snapshot["copy"]["waiting"], 3, "{snapshot}");
    assert_eq!(snapshot["plan"]["waiting"], 0, "{snapshot}");
    assert_eq!(snapshot["dead_letters"], 1, "{snapshot}");
    assert_eq!(
        snapshot["kinds"][0]["kind"], "moved_by_redrive",
        "{snapshot}"
    );

    // Requeue finds the copy queue in the outputs too; a body that is no ferry message has
    // no queue to go back to and stays.
    let out = ferry_with(&[
        "dead-letters",
        "--stack",
        "ferry-test",
        "--requeue",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let moved: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(moved["requeued"], 0, "{moved}");

    let out = ferry_with(&["status", "--stack", "no-such-stack", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("reading the outputs of stack no-such-stack"),
        "{stderr}"
    );
}
