//! The serverless pipeline end to end, through the real handler code: planner → SQS (moto)
//! → copier, with credentials from Secrets Manager (moto), ECR's API (moto) and real
//! docker-registry processes as the registries.

use ferry::message::{Message, Reason, RepositoryTask};
use ferry::registry::Endpoints;
use ferry_testbed::fixtures::{platform, Pushed, Style, OCI_INDEX};
use ferry_testbed::moto::{MotoServer, ACCOUNT, REGION};
use ferry_testbed::pipeline::LocalPipeline;
use ferry_testbed::{sqs, Auth, DockerRegistry};
use serde_json::json;

/// Mirror every repository of `src` (per-architecture tags left out) under `mirror/` in
/// `dst`, with `dst`'s credentials from the named secret.
fn mirror_registry(src: &DockerRegistry, dst: &DockerRegistry, secret: Option<&str>) -> String {
    let credentials = secret
        .map(|id| format!("credentials:\n  \"{}\": {{secret: {id}}}\n", dst.host()))
        .unwrap_or_default();
    format!(
        r#"version: 1
{credentials}sources:
  - name: local
    registry: {{host: "{src}"}}
    filters:
      tags: {{exclude: [".*-(amd64|arm64)"]}}
    destinations:
      - target: "{dst}/mirror/{{repo}}:{{tag}}"
"#,
        src = src.host(),
        dst = dst.host()
    )
}

async fn seed_source(src: &DockerRegistry) -> Vec<(String, String, Pushed)> {
    let s = src.seeder();
    let mut images = Vec::new();
    for (i, (repo, tag)) in [("team/api", "1.0"), ("team/api", "1.1"), ("web", "2.0")]
        .into_iter()
        .enumerate()
    {
        let p = s
            .push_image(repo, tag, Style::Docker, &[2000, 3000], i as u64 + 1)
            .await;
        images.push((repo.to_string(), tag.to_string(), p));
    }
    let amd = s
        .push_image("web", "2.1-amd64", Style::Oci, &[1000], 10)
        .await;
    let arm = s
        .push_image("web", "2.1-arm64", Style::Oci, &[1000], 11)
        .await;
    let index = s
        .push_index(
            "web",
            "2.1",
            OCI_INDEX,
            &[
                amd.descriptor(Some(platform("linux", "amd64"))),
                arm.descriptor(Some(platform("linux", "arm64"))),
            ],
        )
        .await;
    images.push(("web".into(), "2.1".into(), index));
    images
}

#[tokio::test(flavor = "multi_thread")]
async fn bulk_sync_through_planner_queue_and_copier_with_secrets_manager_credentials() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::Basic {
        username: "mirror-bot".into(),
        password: "from-secrets-manager".into(),
    });
    let images = seed_source(&src).await;
    // The multi-arch image is signed, and team/api:1.0 has an SBOM (a referrer, listed in
    // its fallback index): both follow their images through the queue.
    let s = src.seeder();
    let (_, _, web) = images.iter().find(|i| i.1 == "2.1").unwrap();
    let web_sig = s.push_cosign_artifact("web", &web.digest, "sig", 50).await;
    let (_, _, api) = images.iter().find(|i| i.1 == "1.0").unwrap();
    let sbom = s
        .push_listed_referrer("team/api", api, "application/spdx+json", 51)
        .await;
    let secrets = aws_sdk_secretsmanager::Client::new(&moto.sdk_config().await);
    secrets
        .create_secret()
        .name("ferry/destination")
        .secret_string(r#"{"username":"mirror-bot","password":"from-secrets-manager"}"#)
        .send()
        .await
        .unwrap();
    let config = mirror_registry(&src, &dst, Some("ferry/destination"));
    let p = LocalPipeline::on_loopback(&moto, &config, false).await;

    // A dry run plans without sending.
    let dry = p
        .planner
        .handle(json!({"action": "sync", "dry_run": true}))
        .await
        .unwrap();
    assert_eq!(dry["messages_sent"], 0);
    assert_eq!(dry["plan"]["jobs"].as_array().unwrap().len(), images.len());
    assert_eq!(dry["repositories"], 2);
    assert!(
        p.receive(&p.copy_url).await.is_empty(),
        "dry run sent messages"
    );

    let summary = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(summary["messages_sent"], images.len(), "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    for (repo, tag, pushed) in &images {
        let (raw, _, digest) = dst
            .seeder()
            .manifest(&format!("mirror/{repo}"), tag)
            .await
            .unwrap_or_else(|| panic!("{repo}:{tag} missing at the destination"));
        assert_eq!(digest, pushed.digest, "{repo}:{tag}");
        assert_eq!(raw, pushed.raw);
    }
    assert!(dst
        .seeder()
        .tags("mirror/web")
        .await
        .iter()
        .all(|t| !t.ends_with("64")));
    let d = dst.seeder();
    let web_sig_tag = format!("{}.sig", web.digest.replace(':', "-"));
    assert_eq!(
        d.manifest("mirror/web", &web_sig_tag).await.map(|m| m.0),
        Some(web_sig.raw)
    );
    assert_eq!(
        d.manifest("mirror/team/api", &sbom.digest)
            .await
            .map(|m| m.0),
        Some(sbom.raw)
    );
    assert!(d
        .manifest("mirror/team/api", &api.digest.replace(':', "-"))
        .await
        .is_some());

    // A signature pushed later for an image already mirrored.
    let (_, _, api11) = images.iter().find(|i| i.1 == "1.1").unwrap();
    let late_sig = src
        .seeder()
        .push_cosign_artifact("team/api", &api11.digest, "sig", 52)
        .await;

    // A scheduled run after one new push sends exactly that image.
    let new = src
        .seeder()
        .push_image("team/api", "1.2", Style::Docker, &[500], 42)
        .await;
    let schedule = json!({"version": "0", "source": "aws.events", "detail-type": "Scheduled Event",
                          "account": ACCOUNT, "region": REGION, "detail": {}});
    let summary = p.planner.handle(schedule).await.unwrap();
    // The new image, and the current one whose signature has not followed yet; the
    // signed images whose artifacts are all there cost no message.
    assert_eq!(summary["messages_sent"], 2, "{summary}");
    assert_eq!(summary["up_to_date"], images.len() - 1);
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(
        d.manifest(
            "mirror/team/api",
            &format!("{}.sig", api11.digest.replace(':', "-"))
        )
        .await
        .map(|m| m.0),
        Some(late_sig.raw)
    );
    let (_, _, digest) = dst
        .seeder()
        .manifest("mirror/team/api", "1.2")
        .await
        .unwrap();
    assert_eq!(digest, new.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_poison_message_goes_to_the_dead_letter_queue_while_its_batch_succeeds() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[700], 3)
        .await;
    let config = format!(
        "version: 1\nsources:\n  - images: [\"{}/app:1\"]\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        src.host(),
        dst.host()
    );
    let p = LocalPipeline::on_loopback(&moto, &config, false).await;
    let good = json!({"version": 1, "kind": "copy",
        "source": format!("{}/app:1@{}", src.host(), pushed.digest),
        "destinations": [{"reference": format!("{}/app:1", dst.host())}]});
    let gone = json!({"version": 1, "kind": "copy",
        "source": format!("{}/app:2", src.host()),
        "destinations": [{"reference": format!("{}/app:2", dst.host())}]});
    for body in [
        "this is not json".to_string(),
        good.to_string(),
        r#"{"version": 9, "kind": "copy"}"#.to_string(),
        gone.to_string(),
    ] {
        sqs::send(&p.sqs, &p.copy_url, &body).await;
    }
    assert!(
        p.drain_copies().await.failed.is_empty(),
        "permanent failures are not retried"
    );
    let (_, _, digest) = dst.seeder().manifest("app", "1").await.unwrap();
    assert_eq!(digest, pushed.digest);

    let kinds = p.receive(&p.dlq_url).await.dead_letters();
    assert_eq!(kinds.len(), 3, "{kinds:?}");
    assert_eq!(kinds[0].0, "bad_message");
    assert_eq!(kinds[1].0, "bad_message");
    assert!(
        kinds.iter().any(|(_, why)| why.contains("version 9")),
        "{kinds:?}"
    );
    assert_eq!(kinds[2].0, "manifest_not_found", "{kinds:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn planning_tasks_that_cannot_succeed_are_dead_lettered_with_their_reason() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let config = format!(
        "version: 1\nsources:\n  - name: hub\n    registry: {{host: \"{}\"}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        src.host(),
        dst.host()
    );
    let p = LocalPipeline::on_loopback(&moto, &config, true).await;
    for body in [
        "not a task".to_string(),
        json!({"version": 1, "kind": "plan-repository", "source_name": "gone", "repository": "app", "reason": "manual"}).to_string(),
    ] {
        sqs::send(&p.sqs, &p.plan_url, &body).await;
    }
    // Neither would succeed on a later delivery: both go to the dead-letter queue now, with
    // the same attributes the copier gives its dead letters, rather than by redrive with none.
    assert!(p.drain_planning().await.failed.is_empty());
    let kinds = p.receive(&p.dlq_url).await.dead_letters();
    assert_eq!(kinds.len(), 2, "{kinds:?}");
    assert!(
        kinds.iter().all(|(kind, _)| kind == "bad_message"),
        "{kinds:?}"
    );
    assert!(
        kinds.iter().any(|(_, why)| why.contains("\"gone\"")),
        "{kinds:?}"
    );
    assert!(p.receive(&p.copy_url).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_push_in_a_china_region_is_copied_from_that_partition_s_registry() {
    // ECR in cn-* regions is served under amazonaws.com.cn; a host built as
    // ….amazonaws.com has no route here (and no DNS name there).
    let moto = MotoServer::start();
    let region = "cn-north-1";
    let ecr = MotoServer::ecr_registry();
    let dst = DockerRegistry::start(Auth::None);
    let pushed = ecr
        .seeder()
        .push_image("team/app", "1.0", Style::Docker, &[600], 4)
        .await;
    let src_host = MotoServer::ecr_host(region);
    assert!(src_host.ends_with(".amazonaws.com.cn"), "{src_host}");
    let config = format!(
        "version: 1\nsources:\n  - ecr: {{region: {region}, repositories: [team/app]}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        dst.host()
    );
    let endpoints = Endpoints::new()
        .route(&src_host, &ecr.url())
        .unwrap()
        .insecure_loopback(true);
    let p = LocalPipeline::start(&moto, &config, endpoints, false).await;
    let event = json!({
        "version": "0", "id": "1", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": ACCOUNT, "time": "2026-11-24T10:00:00Z", "region": region, "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "team/app",
                   "image-digest": pushed.digest, "action-type": "PUSH", "image-tag": "1.0"}
    });
    let summary = p.planner.handle(event).await.unwrap();
    assert_eq!(summary["messages_sent"], 1, "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    let (_, _, digest) = dst.seeder().manifest("team/app", "1.0").await.unwrap();
    assert_eq!(digest, pushed.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ecr_push_event_syncs_exactly_that_image_into_a_created_repository() {
    let moto = MotoServer::start();
    let ecr = MotoServer::ecr_registry();
    let dst_ecr_region = "eu-west-1";
    let dst = MotoServer::ecr_registry();
    let sdk = moto.sdk_config().await;
    let ecr_api = aws_sdk_ecr::Client::new(&sdk);
    ecr_api
        .create_repository()
        .repository_name("team/app")
        .send()
        .await
        .unwrap();
    let s = ecr.seeder();
    let mut pushed = Vec::new();
    for (tag, seed) in [("1.0", 1), ("1.1", 2)] {
        let p = s
            .push_image("team/app", tag, Style::Docker, &[900], seed)
            .await;
        ecr_put(&ecr_api, "team/app", tag, &p).await;
        pushed.push(p);
    }
    let src_host = MotoServer::ecr_host(REGION);
    let dst_host = MotoServer::ecr_host(dst_ecr_region);
    let config = format!(
        r#"
version: 1
sources:
  - ecr: {{repositories: [team/app]}}
    destinations:
      - target: "{{account}}.dkr.ecr.{dst_ecr_region}.amazonaws.com/mirror/{{repo}}"
        create_repository: {{immutable: true, scan_on_push: true}}
"#
    );
    let endpoints = Endpoints::new()
        .route(&src_host, &ecr.url())
        .unwrap()
        .route(&dst_host, &dst.url())
        .unwrap();
    let p = LocalPipeline::start(&moto, &config, endpoints, false).await;

    let event = json!({
        "version": "0", "id": "1", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": ACCOUNT, "time": "2026-11-24T10:00:00Z", "region": REGION, "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "team/app",
                   "image-digest": pushed[1].digest, "action-type": "PUSH", "image-tag": "1.1"}
    });
    let summary = p.planner.handle(event).await.unwrap();
    assert_eq!(summary["messages_sent"], 1, "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(dst.seeder().tags("mirror/team/app").await, ["1.1"]);
    let (_, _, digest) = dst
        .seeder()
        .manifest("mirror/team/app", "1.1")
        .await
        .unwrap();
    assert_eq!(digest, pushed[1].digest);

    let created = aws_sdk_ecr::Client::from_conf(
        aws_sdk_ecr::config::Builder::from(&sdk)
            .region(aws_config::Region::new(dst_ecr_region))
            .build(),
    )
    .describe_repositories()
    .repository_names("mirror/team/app")
    .send()
    .await
    .unwrap();
    let repo = &created.repositories()[0];
    assert_eq!(
        repo.image_tag_mutability(),
        Some(&aws_sdk_ecr::types::ImageTagMutability::Immutable)
    );
    assert_eq!(
        repo.image_scanning_configuration()
            .map(|c| c.scan_on_push()),
        Some(true)
    );

    // A push to a repository no source covers is ignored, by name.
    let other = json!({
        "version": "0", "id": "2", "detail-type": "ECR Image Action", "source": "aws.ecr",
        "account": ACCOUNT, "time": "2026-11-24T10:00:00Z", "region": REGION, "resources": [],
        "detail": {"result": "SUCCESS", "repository-name": "elsewhere",
                   "image-digest": pushed[0].digest, "action-type": "PUSH", "image-tag": "9"}
    });
    let summary = p.planner.handle(other).await.unwrap();
    assert_eq!(summary["messages_sent"], 0);
    assert!(summary["ignored"]
        .as_str()
        .unwrap()
        .contains("no source covers"));

    // A bulk sync then copies the other tag only.
    let summary = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(summary["messages_sent"], 1, "{summary}");
    assert_eq!(summary["up_to_date"], 1);
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(dst.seeder().tags("mirror/team/app").await, ["1.0", "1.1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_sync_fans_out_one_planning_task_per_repository() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let images = seed_source(&src).await;
    let config = mirror_registry(&src, &dst, None);
    let p = LocalPipeline::on_loopback(&moto, &config, true).await;

    // The invocation only lists repositories; nothing is copied from it directly.
    let summary = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(summary["planning_tasks_sent"], 2, "{summary}");
    assert_eq!(summary["messages_sent"], 0, "{summary}");
    assert!(p.receive(&p.copy_url).await.is_empty());

    // A task for a source the configuration no longer has fails alone, and goes to the
    // dead-letter queue with its reason at once; the real tasks beside it succeed.
    let stale = Message::PlanRepository(RepositoryTask {
        source_name: "removed".into(),
        repository: "team/api".into(),
        reason: Reason::Manual,
        dry_run: false,
        repair: false,
    })
    .encode();
    sqs::send(&p.sqs, &p.plan_url, &stale).await;
    let failed = p.drain_planning().await.failed;
    assert!(failed.is_empty(), "nothing is retried: {failed:?}");
    let dead = p.receive(&p.dlq_url).await.dead_letters();
    assert_eq!(dead.len(), 1, "only the stale task: {dead:?}");
    assert_eq!(dead[0].0, "bad_message", "{dead:?}");

    assert!(p.drain_copies().await.failed.is_empty());
    for (repo, tag, pushed) in &images {
        let (_, _, digest) = dst
            .seeder()
            .manifest(&format!("mirror/{repo}"), tag)
            .await
            .unwrap_or_else(|| panic!("{repo}:{tag} missing at the destination"));
        assert_eq!(digest, pushed.digest, "{repo}:{tag}");
    }
    assert_eq!(dst.seeder().tags("mirror/web").await, ["2.0", "2.1"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn destinations_with_different_platform_filters_get_their_own_copy_jobs() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let amd = s.push_image("web", "amd", Style::Oci, &[800], 21).await;
    let arm = s.push_image("web", "arm", Style::Oci, &[900], 22).await;
    let index = s
        .push_index(
            "web",
            "2.1",
            OCI_INDEX,
            &[
                amd.descriptor(Some(platform("linux", "amd64"))),
                arm.descriptor(Some(platform("linux", "arm64"))),
            ],
        )
        .await;
    let config = format!(
        r#"
version: 1
sources:
  - images: ["{src}/web:2.1"]
    destinations:
      - target: "{dst}/all/{{repo}}"
      - target: "{dst}/arm/{{repo}}"
        platforms: [linux/arm64]
"#,
        src = src.host(),
        dst = dst.host()
    );
    let p = LocalPipeline::on_loopback(&moto, &config, false).await;
    let summary = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(
        summary["messages_sent"], 2,
        "one job per platform group: {summary}"
    );
    assert!(p.drain_copies().await.failed.is_empty());

    let (_, _, all) = dst.seeder().manifest("all/web", "2.1").await.unwrap();
    assert_eq!(
        all, index.digest,
        "the unfiltered destination gets the index"
    );
    let (raw, _, only_arm) = dst.seeder().manifest("arm/web", "2.1").await.unwrap();
    assert_eq!(
        (raw, only_arm),
        (arm.raw.clone(), arm.digest.clone()),
        "the filtered destination gets the arm64 manifest itself"
    );
    assert!(
        !dst.seeder()
            .blob_exists("arm/web", &amd.blobs[1].digest)
            .await
    );

    // Next sync: the unfiltered copy is recognized as current from the source digest;
    // the filtered one has a digest of its own, so its job goes out and the copier finds
    // it already done.
    let summary = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(summary["messages_sent"], 1, "{summary}");
    let batch = p.receive(&p.copy_url).await;
    let job = Message::decode(batch.records()[0]["body"].as_str().unwrap()).unwrap();
    let Message::Copy(job) = job else {
        panic!("{job:?}")
    };
    assert_eq!(job.platforms, ["linux/arm64".parse().unwrap()]);
    let response = p.copier.handle(batch.event.clone()).await.unwrap();
    assert!(sqs::settle(&p.sqs, &p.copy_url, &batch, &response)
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn images_waiting_for_a_pull_quota_are_parked_not_dead_lettered() {
    use ferry_testbed::production::Production;
    use ferry_testbed::proxy::FaultProxy;
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let mut images = Vec::new();
    for i in 0..5 {
        let tag = format!("1.{i}");
        let p = src
            .seeder()
            .push_image("app", &tag, Style::Oci, &[500], 90 + i as u64)
            .await;
        images.push((tag, p));
    }
    let hub = FaultProxy::start(&src.url()).await;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(3);
    hub.production(Production::default().pull_quota(2, WINDOW));
    let config = format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        hub.host(),
        dst.host()
    );
    let mut p = LocalPipeline::on_loopback(&moto, &config, false).await;
    // Every delivery is the last allowed one: a job that waited by being redelivered would
    // be dead-lettered on it.
    p.copier = p.copier_with(|s| s.copy_max_receives = Some(1)).await;
    let gets = |proxy: &FaultProxy| {
        proxy
            .seen()
            .iter()
            .filter(|s| s.method == axum::http::Method::GET && s.path.contains("/manifests/"))
            .count()
    };

    let planned = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(planned["messages_sent"], 5, "{planned}");
    assert_eq!(gets(&hub), 0, "the planner spends none of the quota");

    // Each window copies what its quota allows; the rest wait, parked, for the next. How
    // many land in each drain depends on where the drains fall against the windows (a slow
    // machine's drain may span a reset), so the test asserts what always holds: some held back
    // at first, everything copied in the end, nothing dead-lettered.
    let mut copied = Vec::new();
    for window in 0..6 {
        let drained = p.drain_copies().await;
        assert!(drained.failed.is_empty(), "window {window}: {drained:?}");
        let mut now = Vec::new();
        for (tag, pushed) in &images {
            if let Some((raw, _, _)) = dst.seeder().manifest("app", tag).await {
                assert_eq!(raw, pushed.raw, "{tag}");
                now.push(tag.clone());
            }
        }
        copied.push(now.len());
        assert!(
            p.receive(&p.dlq_url).await.is_empty(),
            "window {window}: dead letters"
        );
        if now.len() == images.len() {
            break;
        }
        tokio::time::sleep(WINDOW + std::time::Duration::from_millis(500)).await;
    }
    assert_eq!(
        copied.last(),
        Some(&images.len()),
        "copied after each drain: {copied:?}"
    );
    assert!(
        copied[0] < images.len(),
        "the quota held none back: {copied:?}"
    );
    assert!(hub.refused().quota <= 3, "{:?}", hub.refused());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_job_parked_for_longer_than_one_delay_waits_again_without_asking_a_registry() {
    let moto = MotoServer::start();
    let config = "version: 1\nsources:\n  - images: [\"127.0.0.1:9/app:1\"]\n    destinations: [{target: \"127.0.0.1:9/app\"}]\n";
    let p = LocalPipeline::on_loopback(&moto, config, false).await;
    let until = std::time::SystemTime::now() + std::time::Duration::from_secs(2 * 3600);
    let epoch = until
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .to_string();
    // Port 9 (discard) has no registry: any request to it would fail the job.
    let job = json!({"version": 1, "kind": "copy",
        "source": "127.0.0.1:9/app:1", "destinations": [{"reference": "127.0.0.1:9/app:1"}]});
    p.sqs
        .send_message()
        .queue_url(&p.copy_url)
        .message_body(job.to_string())
        .message_attributes(
            ferry::batch::PARKED_UNTIL,
            aws_sdk_sqs::types::MessageAttributeValue::builder()
                .data_type("Number")
                .string_value(&epoch)
                .build()
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let drained = p.drain_copies().await;
    assert_eq!(drained.records, 1);
    assert!(drained.failed.is_empty(), "{drained:?}");
    assert!(p.receive(&p.dlq_url).await.is_empty());
    // Sent again, delayed as long as SQS allows, keeping its time.
    let attributes = p
        .sqs
        .get_queue_attributes()
        .queue_url(&p.copy_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        .send()
        .await
        .unwrap();
    let delayed = attributes
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesDelayed)
        })
        .cloned();
    assert_eq!(delayed.as_deref(), Some("1"));
}

#[tokio::test(flavor = "multi_thread")]
async fn four_copiers_into_a_rate_limited_destination_copy_everything_and_dead_letter_nothing() {
    use ferry_testbed::production::{Op, Production};
    use ferry_testbed::proxy::FaultProxy;
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let mut images = Vec::new();
    for i in 0..24 {
        let (repo, tag) = (format!("r{}", i % 4), format!("1.{i}"));
        let p = src
            .seeder()
            .push_image(&repo, &tag, Style::Oci, &[300], 200 + i as u64)
            .await;
        images.push((repo, tag, p));
    }
    let ecr = FaultProxy::start(&dst.url()).await;
    ecr.production(
        Production::default()
            .rate(Op::ManifestPut, 8.0)
            .rate(Op::UploadStart, 30.0),
    );
    // No limits configured: every copier learns them from the destination's refusals.
    let config = format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [r0, r1, r2, r3]}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        src.host(),
        ecr.host()
    );
    let p = LocalPipeline::on_loopback(&moto, &config, false).await;
    let planned = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(planned["messages_sent"], 24, "{planned}");
    let fleet = p.fleet(4, |s| s.copy_max_receives = Some(5)).await;
    let drained = futures::future::join_all(fleet.iter().map(|c| p.drain_copies_with(c))).await;
    let failed: Vec<_> = drained.iter().flat_map(|d| &d.failed).collect();
    assert!(failed.is_empty(), "records redelivered: {failed:?}");
    // SQS delivers at least once, and four receivers at once may get a message twice (one
    // CI run handled 25 records of 24 jobs): every job handled, a repeat harmless.
    assert!(drained.iter().map(|d| d.records).sum::<usize>() >= 24);
    assert!(p.receive(&p.dlq_url).await.is_empty(), "dead letters");
    for (repo, tag, pushed) in &images {
        let (raw, _, _) = dst
            .seeder()
            .manifest(repo, tag)
            .await
            .unwrap_or_else(|| panic!("{repo}:{tag} lost"));
        assert_eq!(raw, pushed.raw);
    }
    assert!(
        ecr.refused().of(Op::ManifestPut) > 0,
        "the destination did throttle"
    );
}

/// Pruning through the pipeline: the planner sends a removal message after the copies (a
/// dry run sends none), the copier removes what the source lost, keeps a tag pushed again
/// since, and dead-letters a removal no pruning destination of its configuration made.
#[tokio::test(flavor = "multi_thread")]
async fn removal_messages_prune_the_mirror_and_stale_or_foreign_ones_remove_nothing() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let mut pushed = Vec::new();
    for i in 0..4 {
        let p = s
            .push_image("app", &format!("1.{i}"), Style::Oci, &[200], 900 + i)
            .await;
        pushed.push(p);
    }
    let config = format!(
        "version: 1\nsources:\n  - name: local\n    registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\", prune: true}}]\n",
        src.host(),
        dst.host()
    );
    let p = LocalPipeline::on_loopback(&moto, &config, false).await;
    p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(d.tags("mirror/app").await, ["1.0", "1.1", "1.2", "1.3"]);

    s.delete_manifest("app", &pushed[3].digest).await;
    let dry = p
        .planner
        .handle(json!({"action": "sync", "dry_run": true}))
        .await
        .unwrap();
    assert_eq!(dry["plan"]["removals"][0]["tags"][0]["tag"], "1.3", "{dry}");
    assert!(
        p.receive(&p.copy_url).await.is_empty(),
        "a dry run sends nothing"
    );
    let summary = p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert_eq!(summary["removal_messages_sent"], 1, "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(d.tags("mirror/app").await, ["1.0", "1.1", "1.2"]);

    // A stale removal (of 1.2, which the source has, as after a delete and a re-push), one
    // replayed (1.3, already gone), and one for a repository no pruning destination
    // mirrors.
    let removal = |destination: &str, tag: &str| {
        json!({"version": 1, "kind": "remove",
            "destination": format!("{}/{destination}", dst.host()),
            "source": format!("{}/app", src.host()),
            "tags": [{"tag": tag, "source_tag": tag, "why": "gone-from-source"}],
            "source_name": "local"})
        .to_string()
    };
    for body in [
        removal("mirror/app", "1.2"),
        removal("mirror/app", "1.3"),
        removal("elsewhere/app", "1.0"),
    ] {
        sqs::send(&p.sqs, &p.copy_url, &body).await;
    }
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(d.tags("mirror/app").await, ["1.0", "1.1", "1.2"]);
    let dead = p.receive(&p.dlq_url).await.dead_letters();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0].0, "not_a_mirror", "{dead:?}");
    assert!(dead[0].1.contains("elsewhere/app"), "{dead:?}");
}

/// An ECR `Image Action` event for `repository:tag` (or untagged) with `action`.
fn ecr_event(action: &str, repository: &str, tag: Option<&str>, digest: &str) -> serde_json::Value {
    let mut detail = json!({"result": "SUCCESS", "repository-name": repository,
                            "image-digest": digest, "action-type": action});
    if let Some(tag) = tag {
        detail["image-tag"] = json!(tag);
    }
    json!({"version": "0", "id": "d1", "detail-type": "ECR Image Action", "source": "aws.ecr",
           "account": ACCOUNT, "time": "2026-12-02T10:00:00Z", "region": REGION,
           "resources": [], "detail": detail})
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ecr_delete_event_removes_the_tag_from_a_pruning_mirror_and_a_stale_one_nothing() {
    let moto = MotoServer::start();
    let ecr = MotoServer::ecr_registry();
    let dst = DockerRegistry::start(Auth::None);
    let ecr_api = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
    ecr_api
        .create_repository()
        .repository_name("team/app")
        .send()
        .await
        .unwrap();
    let s = ecr.seeder();
    let mut pushed = Vec::new();
    for (tag, seed) in [("1.0", 31), ("1.1", 32), ("1.2", 33)] {
        let p = s
            .push_image("team/app", tag, Style::Oci, &[300], seed)
            .await;
        ecr_put(&ecr_api, "team/app", tag, &p).await;
        pushed.push(p);
    }
    // One destination prunes; the other keeps everything it was given.
    let config = format!(
        "version: 1\nsources:\n  - name: team\n    ecr: {{repositories: [team/app]}}\n    destinations:\n      - {{target: \"{0}/mirror/{{repo}}\", prune: true}}\n      - {{target: \"{0}/archive/{{repo}}\"}}\n",
        dst.host()
    );
    let endpoints = Endpoints::new()
        .insecure_loopback(true)
        .route(&MotoServer::ecr_host(REGION), &ecr.url())
        .unwrap();
    let p = LocalPipeline::start(&moto, &config, endpoints, false).await;
    p.planner.handle(json!({"action": "sync"})).await.unwrap();
    assert!(p.drain_copies().await.failed.is_empty());
    let d = dst.seeder();
    assert_eq!(d.tags("mirror/team/app").await, ["1.0", "1.1", "1.2"]);

    // 1.1 is deleted at the source: its event removes it from the mirror only.
    ecr_api
        .batch_delete_image()
        .repository_name("team/app")
        .image_ids(
            aws_sdk_ecr::types::ImageIdentifier::builder()
                .image_tag("1.1")
                .build(),
        )
        .send()
        .await
        .unwrap();
    s.delete_manifest("team/app", &pushed[1].digest).await;
    let event = ecr_event("DELETE", "team/app", Some("1.1"), &pushed[1].digest);
    let summary = p.planner.handle(event.clone()).await.unwrap();
    assert_eq!(summary["event"], "ecr-delete", "{summary}");
    assert_eq!(summary["removal_messages_sent"], 1, "{summary}");
    assert_eq!(summary["messages_sent"], 0, "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(d.tags("mirror/team/app").await, ["1.0", "1.2"]);
    assert_eq!(d.tags("archive/team/app").await, ["1.0", "1.1", "1.2"]);

    // Delivered again (EventBridge is at least once): already gone, nothing fails.
    p.planner.handle(event).await.unwrap();
    assert!(p.drain_copies().await.failed.is_empty());

    // A delete overtaken by a re-push (1.2 is still at the source): nothing removed.
    let stale = ecr_event("DELETE", "team/app", Some("1.2"), &pushed[2].digest);
    let summary = p.planner.handle(stale).await.unwrap();
    assert_eq!(summary["removal_messages_sent"], 1, "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    assert_eq!(d.tags("mirror/team/app").await, ["1.0", "1.2"]);

    // A delete by digest alone, and one of a repository no source covers: ignored, by name.
    for (event, why) in [
        (
            ecr_event("DELETE", "team/app", None, &pushed[0].digest),
            "names no tag",
        ),
        (
            ecr_event("DELETE", "elsewhere", Some("1.0"), &pushed[0].digest),
            "no destination that prunes",
        ),
    ] {
        let summary = p.planner.handle(event).await.unwrap();
        assert_eq!(summary["removal_messages_sent"], 0, "{summary}");
        assert!(
            summary["ignored"].as_str().unwrap().contains(why),
            "{summary}"
        );
    }
    assert!(p.receive(&p.copy_url).await.is_empty());
    assert!(p.receive(&p.dlq_url).await.dead_letters().is_empty());
    assert_eq!(d.tags("mirror/team/app").await, ["1.0", "1.2"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_deep_check_event_repairs_a_mirror_whose_tags_all_look_current() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let mut pushed = Vec::new();
    for (tag, seed) in [("1.0", 41), ("1.1", 42)] {
        pushed.push(
            s.push_image("app", tag, Style::Oci, &[400, 200], seed)
                .await,
        );
    }
    let config = format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\"}}]\n",
        src.host(),
        dst.host()
    );
    // Through the planning queue, as deployed: the option travels in the task.
    let p = LocalPipeline::on_loopback(&moto, &config, true).await;
    p.planner.handle(json!({"action": "sync"})).await.unwrap();
    p.drain_planning().await;
    assert!(p.drain_copies().await.failed.is_empty());
    let lost = &pushed[1].blobs[1].digest;
    dst.seeder().delete_blob("mirror/app", lost).await;

    // An ordinary sync finds every tag current and sends nothing.
    p.planner.handle(json!({"action": "sync"})).await.unwrap();
    p.drain_planning().await;
    assert!(p.receive(&p.copy_url).await.is_empty());

    // The deep check sends every image, and the copier puts back only what was lost.
    p.planner
        .handle(json!({"action": "sync", "repair": true}))
        .await
        .unwrap();
    p.drain_planning().await;
    let drained = p.drain_copies().await;
    assert_eq!(drained.records, 2, "a job for every image");
    assert!(drained.failed.is_empty());
    assert!(dst.seeder().blob_exists("mirror/app", lost).await);
    assert!(p.receive(&p.dlq_url).await.dead_letters().is_empty());
}

/// Put `p` into moto's ECR `repository` under `tag`, as a push would record it.
async fn ecr_put(ecr_api: &aws_sdk_ecr::Client, repository: &str, tag: &str, p: &Pushed) {
    ecr_api
        .put_image()
        .repository_name(repository)
        .image_tag(tag)
        .image_manifest(String::from_utf8(p.raw.clone()).unwrap())
        .image_digest(&p.digest)
        .send()
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_late_signature_and_an_untagged_sbom_follow_their_image_within_one_event() {
    use ferry_testbed::fixtures::{SeedAuth, Seeder};
    use ferry_testbed::proxy::FaultProxy;
    let moto = MotoServer::start();
    let ecr = MotoServer::ecr_registry();
    // ECR answers the referrers API; the test bed's registry gets it from a proxy.
    let ecr_api_proxy = FaultProxy::start_with_referrers_api(&ecr.url()).await;
    let basic = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("AWS:{ACCOUNT}-auth-token"),
    );
    let s = Seeder::new(
        ecr_api_proxy.url(),
        SeedAuth::Header(format!("Basic {basic}")),
    );
    let dst = DockerRegistry::start(Auth::None);
    let ecr_api = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
    ecr_api
        .create_repository()
        .repository_name("team/app")
        .send()
        .await
        .unwrap();
    let image = s
        .push_image("team/app", "1.0", Style::Oci, &[300], 51)
        .await;
    ecr_put(&ecr_api, "team/app", "1.0", &image).await;
    let config = format!(
        "version: 1\nsources:\n  - ecr: {{repositories: [team/app]}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\"}}]\n",
        dst.host()
    );
    let endpoints = Endpoints::new()
        .insecure_loopback(true)
        .route(&MotoServer::ecr_host(REGION), &ecr_api_proxy.url())
        .unwrap();
    let p = LocalPipeline::start(&moto, &config, endpoints, false).await;
    let pushed = ecr_event("PUSH", "team/app", Some("1.0"), &image.digest);
    p.planner.handle(pushed).await.unwrap();
    assert!(p.drain_copies().await.failed.is_empty());
    let d = dst.seeder();
    assert_eq!(d.tags("mirror/team/app").await, ["1.0"]);

    // `cosign sign` a few seconds later: its push event brings the signature over.
    let sig = s
        .push_cosign_artifact("team/app", &image.digest, "sig", 52)
        .await;
    let sig_tag = format!("{}.sig", image.digest.replace(':', "-"));
    ecr_put(&ecr_api, "team/app", &sig_tag, &sig).await;
    let event = ecr_event("PUSH", "team/app", Some(&sig_tag), &sig.digest);
    let summary = p.planner.handle(event).await.unwrap();
    assert_eq!(summary["messages_sent"], 1, "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    let (_, _, copied) = d.manifest("mirror/team/app", &sig_tag).await.unwrap();
    assert_eq!(copied, sig.digest);

    // An SBOM attached by digest (untagged, with a subject): listed at the destination,
    // which lacks the referrers API, in its fallback index.
    let sbom = s
        .push_referrer("team/app", &image, "application/spdx+json", 53)
        .await;
    let event = ecr_event("PUSH", "team/app", None, &sbom.digest);
    let summary = p.planner.handle(event).await.unwrap();
    assert_eq!(summary["messages_sent"], 1, "{summary}");
    assert!(p.drain_copies().await.failed.is_empty());
    let fallback = image.digest.replace(':', "-");
    let (index, _, _) = d
        .manifest("mirror/team/app", &fallback)
        .await
        .expect("the destination's fallback index");
    assert!(
        String::from_utf8_lossy(&index).contains(&sbom.digest),
        "{}",
        String::from_utf8_lossy(&index)
    );
    assert!(d.manifest("mirror/team/app", &sbom.digest).await.is_some());

    // The same events again: everything is there, nothing is sent.
    let again = ecr_event("PUSH", "team/app", None, &sbom.digest);
    let summary = p.planner.handle(again).await.unwrap();
    assert_eq!(summary["messages_sent"], 0, "{summary}");

    // An untagged platform manifest (pushed before its index, say) plans nothing. (The
    // test bed's registry holds it under a tag to keep its blobs; ECR, as the event says,
    // under none.)
    let platform_manifest = s
        .push_image("team/app", "platform-tmp", Style::Oci, &[100], 54)
        .await;
    let event = ecr_event("PUSH", "team/app", None, &platform_manifest.digest);
    let summary = p.planner.handle(event).await.unwrap();
    assert_eq!(summary["messages_sent"], 0, "{summary}");
    assert!(
        summary["ignored"]
            .as_str()
            .unwrap()
            .contains("without a subject"),
        "{summary}"
    );
    assert!(p.receive(&p.copy_url).await.is_empty());
    assert!(p.receive(&p.dlq_url).await.dead_letters().is_empty());
}
