//! The README's first command: ferry's whole serverless flow on one machine, no AWS account.
//!
//! A platform team leaves Amazon ECR for GitLab's registry. Here ECR's API is `moto_server`
//! and its registry data plane a local `docker-registry`; "GitLab" is another
//! `docker-registry` with a password that lives in (moto's) Secrets Manager. The planner and
//! copier run as the real Lambda handler code, triggered through real SQS queues; then an
//! ECR push event syncs one new image; then the `ferry` CLI verifies the mirror before ECR
//! would be switched off. Every process started here stops when the demo ends.

use std::process::{Command, ExitCode};

use ferry::registry::Endpoints;
use ferry_testbed::fixtures::{platform, Pushed, Seeder, Style, OCI_INDEX};
use ferry_testbed::moto::{MotoServer, ACCOUNT, REGION};
use ferry_testbed::pipeline::{Drained, LocalPipeline};
use ferry_testbed::{Auth, DockerRegistry};
use serde_json::{json, Value};

const GITLAB_USER: &str = "ferry-mirror";
const GITLAB_PASSWORD: &str = "demo-gitlab-token";

/// The ECR side: moto's API plus the docker-registry that plays its data plane.
struct Ecr {
    api: aws_sdk_ecr::Client,
    registry: DockerRegistry,
}

impl Ecr {
    fn seeder(&self) -> Seeder {
        self.registry.seeder()
    }

    /// Record a pushed image in ECR's API, as a `docker push` to ECR would.
    async fn register(&self, repo: &str, tag: &str, pushed: &Pushed) {
        self.api
            .put_image()
            .repository_name(repo)
            .image_tag(tag)
            .image_manifest(String::from_utf8(pushed.raw.clone()).expect("manifest is UTF-8"))
            .image_manifest_media_type(&pushed.media_type)
            .image_digest(&pushed.digest)
            .send()
            .await
            .unwrap_or_else(|e| panic!("ecr PutImage {repo}:{tag}: {e:?}"));
    }

    async fn push(&self, repo: &str, tag: &str, layers: &[usize], seed: u64) -> Pushed {
        let pushed = self
            .seeder()
            .push_image(repo, tag, Style::Docker, layers, seed)
            .await;
        self.register(repo, tag, &pushed).await;
        pushed
    }

    /// A multi-arch image the way `docker manifest` builds one: per-architecture images
    /// pushed by digest, an index over them under the tag.
    async fn push_multi_arch(&self, repo: &str, tag: &str, seed: u64) -> Pushed {
        let s = self.seeder();
        let mut entries = Vec::new();
        for (i, arch) in ["amd64", "arm64"].iter().enumerate() {
            let child = s
                .push_image(
                    repo,
                    &format!("{tag}-{arch}"),
                    Style::Oci,
                    &[3 << 20, 1 << 20],
                    seed + i as u64,
                )
                .await;
            entries.push(child.descriptor(Some(platform("linux", arch))));
        }
        let index = s.push_index(repo, tag, OCI_INDEX, &entries).await;
        self.register(repo, tag, &index).await;
        index
    }
}

fn heading(text: &str) {
    println!("\n== {text}");
}

fn drained(what: &str, d: &Drained) {
    println!(
        "   {what}: {} invocation(s), {} record(s), {} asked for a retry",
        d.invocations,
        d.records,
        d.failed.len()
    );
}

fn example_event(name: &str) -> Value {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../events")
        .join(name);
    let text = std::fs::read_to_string(&path).expect("example event");
    serde_json::from_str(&text).expect("example event is JSON")
}

#[tokio::main]
async fn main() -> ExitCode {
    let ferry_bin = std::env::var("FERRY_BIN").unwrap_or_else(|_| "target/release/ferry".into());
    println!("ferry demo: migrating a platform team's Amazon ECR to GitLab's registry, serverless, on this machine");

    heading("starting the stand-ins");
    let moto = MotoServer::start();
    let sdk = moto.sdk_config().await;
    let ecr = Ecr {
        api: aws_sdk_ecr::Client::new(&sdk),
        registry: MotoServer::ecr_registry(),
    };
    let gitlab = DockerRegistry::start(Auth::Basic {
        username: GITLAB_USER.into(),
        password: GITLAB_PASSWORD.into(),
    });
    let ecr_host = MotoServer::ecr_host(REGION);
    println!(
        "   AWS APIs (ECR, SQS, Secrets Manager): moto_server at {}",
        moto.endpoint()
    );
    println!(
        "   ECR registry {ecr_host}: docker-registry at {}",
        ecr.registry.url()
    );
    println!(
        "   \"GitLab\" registry: docker-registry with a password at {}",
        gitlab.url()
    );

    heading("seeding ECR");
    for (repo, immutable) in [
        ("platform/proj", true),
        ("platform/web", false),
        ("platform/tools", false),
    ] {
        let mutability = if immutable {
            aws_sdk_ecr::types::ImageTagMutability::Immutable
        } else {
            aws_sdk_ecr::types::ImageTagMutability::Mutable
        };
        ecr.api
            .create_repository()
            .repository_name(repo)
            .image_tag_mutability(mutability)
            .send()
            .await
            .expect("create ECR repository");
    }
    // One repository per project, images told apart by tag prefix, immutable tags.
    for (i, tag) in ["api-1.4", "api-1.5", "worker-1.4", "worker-1.5"]
        .iter()
        .enumerate()
    {
        ecr.push("platform/proj", tag, &[2 << 20, 512 << 10], 10 + i as u64)
            .await;
    }
    let web = [
        ecr.push_multi_arch("platform/web", "2.0", 20).await,
        ecr.push_multi_arch("platform/web", "2.1", 30).await,
    ];
    // A tool with a long release history: only the newest ten are wanted.
    for patch in 0..24u64 {
        ecr.push(
            "platform/tools",
            &format!("1.0.{patch}"),
            &[256 << 10],
            100 + patch,
        )
        .await;
    }
    println!(
        "   platform/proj:  api-1.4 api-1.5 worker-1.4 worker-1.5 (tag prefixes, immutable tags)"
    );
    println!("   platform/web:   2.0 2.1 (multi-arch: linux/amd64 + linux/arm64)");
    println!("   platform/tools: 1.0.0 … 1.0.23 (24 tags)");

    let secrets = aws_sdk_secretsmanager::Client::new(&sdk);
    secrets
        .create_secret()
        .name("ferry/gitlab")
        .secret_string(json!({"username": GITLAB_USER, "password": GITLAB_PASSWORD}).to_string())
        .send()
        .await
        .expect("create secret");
    println!("   Secrets Manager: ferry/gitlab holds the GitLab deploy token");

    heading("the configuration both functions and the CLI read (ferry.yaml)");
    let gl = gitlab.host();
    let config = format!(
        r#"version: 1
credentials:
  "{gl}": {{secret: ferry/gitlab}}
insecure_registries: ["{gl}"]      # the demo's registries speak plain HTTP on loopback
sources:
  - name: projects                 # proj:api-1.4 -> acme/proj/api:1.4
    ecr: {{repositories: [platform/proj]}}
    destinations:
      - target: "{gl}/acme/{{repo_base}}/{{image}}:{{tag}}"
        split_tag: {{separator: "-", prefixes: [api, worker]}}
  - name: platform
    ecr: {{prefix: platform/}}
    filters:
      repositories: {{exclude: [platform/proj]}}
      tags: {{newest: 10}}          # by ECR push time
    destinations:
      - target: "{gl}/acme/{{repo_base}}:{{tag}}"
"#
    );
    print!("{config}");
    let dir = tempfile::tempdir().expect("temp dir");
    let config_path = dir.path().join("ferry.yaml");
    std::fs::write(&config_path, &config).expect("write config");

    let endpoints = Endpoints::new()
        .route(&ecr_host, &ecr.registry.url())
        .expect("route");
    // The test bed's copier prints no CloudWatch metric lines, which would drown the story;
    // the tests check them.
    let pipeline = LocalPipeline::start(&moto, &config, endpoints, true).await;

    heading("1. bulk migration: the planner is invoked with events/manual-sync.json");
    let summary = pipeline
        .planner
        .handle(example_event("manual-sync.json"))
        .await
        .expect("planner");
    println!(
        "   planner: {} repositories listed, {} planning tasks sent to the planning queue",
        summary["repositories"], summary["planning_tasks_sent"]
    );
    let planning = pipeline.drain_planning().await;
    drained("planner, triggered by the planning queue", &planning);
    let copies = pipeline.drain_copies().await;
    drained("copier, triggered by the copy queue", &copies);
    if !planning.failed.is_empty() || !copies.failed.is_empty() {
        eprintln!("demo failed: some work was not done");
        return ExitCode::FAILURE;
    }
    println!(
        "   GitLab now has: {}",
        gitlab_tags(&gitlab).await.join(" ")
    );

    heading(
        "2. incremental sync: a developer pushes platform/proj:api-1.6; ECR emits a push event",
    );
    let new = ecr
        .push("platform/proj", "api-1.6", &[2 << 20, 640 << 10], 60)
        .await;
    let mut event = example_event("ecr-push.json");
    event["account"] = json!(ACCOUNT);
    event["region"] = json!(REGION);
    event["detail"]["repository-name"] = json!("platform/proj");
    event["detail"]["image-tag"] = json!("api-1.6");
    event["detail"]["image-digest"] = json!(new.digest);
    let summary = pipeline.planner.handle(event).await.expect("planner");
    println!(
        "   planner (EventBridge ECR Image Action): {} copy message(s) sent",
        summary["messages_sent"]
    );
    let copies = pipeline.drain_copies().await;
    drained("copier", &copies);
    if !copies.failed.is_empty() {
        eprintln!("demo failed: the pushed image was not copied");
        return ExitCode::FAILURE;
    }

    heading("3. before switching ECR off: ferry verify --config ferry.yaml");
    println!("$ ferry verify --config ferry.yaml");
    let status = Command::new(&ferry_bin)
        .arg("verify")
        .arg("--config")
        .arg(&config_path)
        .args([
            "--registry-endpoint",
            &format!("{ecr_host}={}", ecr.registry.url()),
        ])
        .envs(moto.env())
        .env("FERRY_ACCOUNT_ID", ACCOUNT)
        .env_remove("RUST_LOG")
        .status()
        .unwrap_or_else(|e| {
            panic!("run {ferry_bin}: {e} (build it: cargo build --release -p ferry-cli)")
        });
    if !status.success() {
        eprintln!("demo failed: ferry verify found differences");
        return ExitCode::FAILURE;
    }

    let (_, _, copied) = gitlab
        .seeder()
        .manifest("acme/web", "2.1")
        .await
        .expect("web:2.1 at GitLab");
    println!("\n   platform/web:2.1 in ECR:    {}", web[1].digest);
    println!("   acme/web:2.1 in GitLab:     {copied}   (same bytes, same digest)");

    heading("what ran where");
    println!("   planner  ferry::handler::planner (the Lambda's code) in this process, reading ECR through moto's API");
    println!("   queues   SQS queues ferry-plan, ferry-copy, ferry-dead-letter in moto_server");
    println!("   copier   ferry::handler::copier in this process, streaming blobs ECR -> GitLab");
    println!(
        "   verify   the ferry CLI ({ferry_bin}), with the GitLab password from Secrets Manager"
    );

    heading("try next");
    println!("   ferry plan --help / ferry sync --help / ferry verify --help");
    println!("   ferry copy --help                 one image, no configuration");
    println!("   events/                           example events for cargo lambda invoke");
    println!("   README.md \"Deploy\"                sam build && sam deploy --guided");
    println!("\nAll demo processes stop now.");
    ExitCode::SUCCESS
}

async fn gitlab_tags(gitlab: &DockerRegistry) -> Vec<String> {
    let s = gitlab.seeder();
    let mut all = Vec::new();
    for repo in [
        "acme/proj/api",
        "acme/proj/worker",
        "acme/web",
        "acme/tools",
    ] {
        let tags = s.tags(repo).await;
        all.push(format!("{repo}:{{{}}}", tags.join(",")));
    }
    all
}
