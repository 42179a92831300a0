//! The deployable artifacts themselves: `cargo lambda build` builds both functions (in the
//! debug profile: the release build deployments use differs only in optimization and takes
//! CI 13 minutes instead of 5), and the built `bootstrap` binaries, served by
//! `cargo lambda watch` (its Lambda runtime API) and driven by `cargo lambda invoke`,
//! mirror a registry into ECR through real SQS queues: planner fan-out → planning tasks →
//! copy jobs → copier.
//!
//! The binaries run with exactly what Lambda gives them: the runtime API address, the
//! function's environment (configuration, queue URLs), and AWS credentials; moto and
//! docker-registry stand in for AWS and the registries.

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use ferry_testbed::cargo::{self, workspace};
use ferry_testbed::fixtures::Style;
use ferry_testbed::moto::{MotoServer, ACCOUNT};
use ferry_testbed::{free_port, sqs, Auth, DockerRegistry};
use serde_json::{json, Value};

const FUNCTIONS: [&str; 2] = ["ferry-planner", "ferry-copier"];

/// Build both functions with cargo-lambda, as a deployment does but unoptimized. A no-op
/// when `scripts/test.sh` already built them; a real build (minutes) when run alone after a
/// change.
fn build_functions() -> Vec<PathBuf> {
    let out = cargo::command()
        .args([
            "lambda",
            "build",
            "--locked",
            "-p",
            "ferry-planner",
            "-p",
            "ferry-copier",
        ])
        .output()
        .expect("run cargo lambda: install it with pip install cargo-lambda ziglang (scripts/setup.sh does)");
    assert!(
        out.status.success(),
        "cargo lambda build failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    FUNCTIONS
        .iter()
        .map(|f| {
            let bootstrap = workspace().join("target/lambda").join(f).join("bootstrap");
            let meta = std::fs::metadata(&bootstrap)
                .unwrap_or_else(|e| panic!("{} not built: {e}", bootstrap.display()));
            assert!(
                meta.len() > 1_000_000,
                "{} is suspiciously small",
                bootstrap.display()
            );
            bootstrap
        })
        .collect()
}

/// A child process killed when the test ends, with its output kept for failures.
struct Process {
    child: Child,
    log: tempfile::NamedTempFile,
}

impl Process {
    fn spawn(command: &mut Command) -> Process {
        let log = tempfile::NamedTempFile::new().expect("log file");
        let child = command
            .stdout(log.reopen().expect("log"))
            .stderr(log.reopen().expect("log"))
            .spawn()
            .unwrap_or_else(|e| panic!("start {command:?}: {e}"));
        Process { child, log }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for_port(port: u16, what: &Process) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listened on {port} within 60s:\n{}", what.log());
}

/// `cargo lambda watch` serving the Lambda runtime API, and the function binaries polling
/// it, as Lambda runs them.
struct LocalLambda {
    port: u16,
    watch: Process,
    functions: Vec<(&'static str, Process)>,
}

impl LocalLambda {
    fn start(binaries: &[PathBuf], env: &[(&str, String)]) -> LocalLambda {
        let port = free_port();
        let watch = Process::spawn(
            cargo::command()
                .args(["lambda", "watch", "--only-lambda-apis", "--ignore-changes"])
                .args([
                    "--invoke-address",
                    "127.0.0.1",
                    "--invoke-port",
                    &port.to_string(),
                ])
                .args(["--timeout", "120"]),
        );
        wait_for_port(port, &watch);
        let functions = FUNCTIONS
            .iter()
            .zip(binaries)
            .map(|(name, binary)| {
                let runtime = format!("http://127.0.0.1:{port}/.rt/{name}");
                let process = Process::spawn(
                    Command::new(binary)
                        .env_clear()
                        .envs(env.iter().map(|(k, v)| (k, v)))
                        .env("AWS_LAMBDA_RUNTIME_API", runtime)
                        .env("AWS_LAMBDA_FUNCTION_NAME", name)
                        .env("AWS_LAMBDA_FUNCTION_VERSION", "1")
                        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
                );
                (*name, process)
            })
            .collect();
        LocalLambda {
            port,
            watch,
            functions,
        }
    }

    fn logs(&self) -> String {
        let mut all = format!("--- cargo lambda watch\n{}", self.watch.log());
        for (name, p) in &self.functions {
            all.push_str(&format!("--- {name}\n{}", p.log()));
        }
        all
    }

    fn log_of(&self, function: &str) -> String {
        let (_, p) = self
            .functions
            .iter()
            .find(|(n, _)| *n == function)
            .expect("function");
        p.log()
    }

    /// `cargo lambda invoke FUNCTION` with `payload`; the function's response.
    fn invoke(&mut self, function: &str, payload: &Value) -> Value {
        for (name, p) in &mut self.functions {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!("{name} exited with {status}:\n{}", p.log());
            }
        }
        let out: Output = cargo::command()
            .args(["lambda", "invoke", function, "--output-format", "json"])
            .args([
                "--invoke-address",
                "127.0.0.1",
                "--invoke-port",
                &self.port.to_string(),
            ])
            .args(["--data-ascii", &payload.to_string()])
            .output()
            .expect("run cargo lambda invoke");
        assert!(
            out.status.success(),
            "invoke {function} failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.logs()
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "{function} answered {:?}: {e}",
                String::from_utf8_lossy(&out.stdout)
            )
        })
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_built_binaries_mirror_a_registry_into_ecr_under_cargo_lambda_watch() {
    let binaries = build_functions();
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let ecr = MotoServer::ecr_registry();
    let s = src.seeder();
    let mut images = Vec::new();
    for (repo, tag, seed) in [
        ("shop/api", "1.0", 1),
        ("shop/api", "1.1", 2),
        ("shop/web", "3", 3),
    ] {
        images.push((
            repo,
            tag,
            s.push_image(repo, tag, Style::Oci, &[1500, 700], seed)
                .await,
        ));
    }

    let sdk = moto.sdk_config().await;
    let queues = aws_sdk_sqs::Client::new(&sdk);
    let copy_url = sqs::create_queue(&queues, "ferry-copy").await;
    let plan_url = sqs::create_queue(&queues, "ferry-plan").await;
    let dlq_url = sqs::create_queue(&queues, "ferry-dead-letter").await;
    let ecr_region = "eu-west-1";
    let config = format!(
        r#"{{"version": 1,
            "insecure_registries": ["{src}"],
            "sources": [{{"name": "shop", "registry": {{"host": "{src}"}},
              "destinations": [{{"target": "{{account}}.dkr.ecr.{ecr_region}.amazonaws.com/mirror/{{repo}}:{{tag}}",
                                 "create_repository": {{"immutable": true}}}}]}}]}}"#,
        src = src.host()
    );

    let mut env = moto.env();
    env.extend([
        ("FERRY_CONFIG", config),
        ("FERRY_ACCOUNT_ID", ACCOUNT.to_string()),
        (
            "FERRY_REGISTRY_ENDPOINTS",
            format!("{}={}", MotoServer::ecr_host(ecr_region), ecr.url()),
        ),
        ("FERRY_COPY_QUEUE_URL", copy_url.clone()),
        ("FERRY_PLAN_QUEUE_URL", plan_url.clone()),
        ("FERRY_DEAD_LETTER_QUEUE_URL", dlq_url),
    ]);
    let mut lambda = LocalLambda::start(&binaries, &env);

    // A manual bulk migration: the planner lists repositories and fans out.
    let summary = lambda.invoke("ferry-planner", &json!({"action": "sync"}));
    assert_eq!(summary["event"], "manual", "{summary}");
    assert_eq!(summary["planning_tasks_sent"], 2, "{summary}");

    // The planning queue triggers the planner again, one batch.
    let tasks = sqs::receive(&queues, &plan_url).await;
    assert_eq!(tasks.records().len(), 2);
    let response = lambda.invoke("ferry-planner", &tasks.event);
    assert!(sqs::settle(&queues, &plan_url, &tasks, &response)
        .await
        .is_empty());

    // The copy queue triggers the copier.
    let jobs = sqs::receive(&queues, &copy_url).await;
    assert_eq!(jobs.records().len(), images.len());
    let response = lambda.invoke("ferry-copier", &jobs.event);
    assert!(
        sqs::settle(&queues, &copy_url, &jobs, &response)
            .await
            .is_empty(),
        "{response}\n{}",
        lambda.log_of("ferry-copier")
    );

    for (repo, tag, pushed) in &images {
        let (raw, _, digest) = ecr
            .seeder()
            .manifest(&format!("mirror/{repo}"), tag)
            .await
            .unwrap_or_else(|| panic!("{repo}:{tag} missing in ECR"));
        assert_eq!(digest, pushed.digest);
        assert_eq!(raw, pushed.raw);
    }
    let ecr_api = aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(&sdk)
            .region(aws_config::Region::new(ecr_region))
            .build(),
    );
    let created = ecr_api.describe_repositories().send().await.unwrap();
    let mut names: Vec<&str> = created
        .repositories()
        .iter()
        .filter_map(|r| r.repository_name())
        .collect();
    names.sort();
    assert_eq!(names, ["mirror/shop/api", "mirror/shop/web"]);

    // Redelivering the same batch is a cheap no-op: everything is already there.
    let again = lambda.invoke("ferry-copier", &jobs.event);
    assert!(sqs::failures(&again).is_empty(), "{again}");

    // The copier logs JSON lines, among them CloudWatch metrics in Embedded Metric Format.
    let copier_log = lambda.log_of("ferry-copier");
    let lines: Vec<Value> = copier_log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let copied: f64 = lines
        .iter()
        .filter(|l| l.get("_aws").is_some())
        .filter_map(|l| l["ImagesCopied"].as_f64())
        .sum();
    let up_to_date: f64 = lines
        .iter()
        .filter(|l| l.get("_aws").is_some())
        .filter_map(|l| l["ImagesUpToDate"].as_f64())
        .sum();
    assert_eq!(copied, images.len() as f64, "{copier_log}");
    assert_eq!(up_to_date, images.len() as f64, "{copier_log}");
}
