//! Planner throughput: the planner function's code enumerating a large ECR registry through
//! moto (`DescribeImages`) and enqueueing one copy message per tag on moto's SQS, as one
//! manual invocation does. The destination is an empty `docker-registry`, so every tag
//! becomes a message.
//!
//! moto is not SQS: every `SendMessageBatch` walks the whole queue (1,000 messages sent ten at
//! a time take moto 11 s, 2,000 take 50 s), so the wall time is moto's more than ferry's and
//! grows with the square of the tags. The CPU time of each side is reported beside it.
//! Draining the queue while the planner fills it, as a copier would, made it slower still
//! (moto's receive and delete walk the queue too).

use std::time::Instant;

use anyhow::{Context, Result};
use ferry_testbed::moto::MotoServer;
use ferry_testbed::pipeline::LocalPipeline;
use ferry_testbed::{Auth, DockerRegistry};
use futures::StreamExt;
use serde::Serialize;
use serde_json::json;

use crate::measure::process_cpu_seconds;

#[derive(Debug, Serialize)]
pub struct PlannerResult {
    pub tags: usize,
    pub repositories: usize,
    /// The planner invocation: enumerate, check the destination, enqueue.
    pub seconds: f64,
    /// Messages on the copy queue afterwards.
    pub messages: usize,
    /// CPU the planner (this process) spent during the invocation.
    pub planner_cpu_seconds: f64,
    /// CPU moto spent answering it.
    pub moto_cpu_seconds: f64,
}

const REPOSITORIES: usize = 10;

pub async fn measure(tags: usize, storage: &std::path::Path) -> Result<PlannerResult> {
    let moto = MotoServer::start();
    let dst = DockerRegistry::start_under(storage, Auth::None);
    let sdk = moto.sdk_config().await;
    let ecr = aws_sdk_ecr::Client::new(&sdk);
    let per_repository = tags.div_ceil(REPOSITORIES);
    let seeding = Instant::now();
    for r in 0..REPOSITORIES {
        ecr.create_repository()
            .repository_name(repository(r))
            .send()
            .await
            .context("creating a moto ECR repository")?;
    }
    // moto keeps image manifests without blobs, which is all planning reads.
    let puts = (0..tags).map(|i| {
        let ecr = ecr.clone();
        async move {
            let manifest = json!({
                "schemaVersion": 2,
                "mediaType": "application/vnd.docker.distribution.manifest.v2+json",
                "config": {"mediaType": "application/vnd.docker.container.image.v1+json",
                           "size": 2, "digest": format!("sha256:{:064x}", i)},
                "layers": []
            });
            ecr.put_image()
                .repository_name(repository(i / per_repository))
                .image_tag(format!("1.{i}"))
                .image_manifest(manifest.to_string())
                .send()
                .await
                .map(|_| ())
        }
    });
    let results: Vec<_> = futures::stream::iter(puts)
        .buffer_unordered(8)
        .collect()
        .await;
    for r in results {
        r.context("putting an image into moto ECR")?;
    }
    eprintln!(
        "planner: {tags} tags in {REPOSITORIES} moto ECR repositories, seeded in {:.1} s",
        seeding.elapsed().as_secs_f64()
    );

    let config = format!(
        "version: 1\nsources:\n  - ecr: {{prefix: \"plan-\"}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        dst.host()
    );
    let pipeline = LocalPipeline::on_loopback(&moto, &config, false).await;
    let cpu_before = (
        process_cpu_seconds(std::process::id()),
        process_cpu_seconds(moto.pid()),
    );
    let started = Instant::now();
    pipeline
        .planner
        .handle(json!({"action": "sync"}))
        .await
        .context("planner invocation")?;
    let seconds = started.elapsed().as_secs_f64();
    let cpu_after = (
        process_cpu_seconds(std::process::id()),
        process_cpu_seconds(moto.pid()),
    );
    let messages = queue_length(&pipeline).await?;
    Ok(PlannerResult {
        tags,
        repositories: REPOSITORIES,
        seconds,
        messages,
        planner_cpu_seconds: cpu_after.0 - cpu_before.0,
        moto_cpu_seconds: cpu_after.1 - cpu_before.1,
    })
}

fn repository(i: usize) -> String {
    format!("plan-{i:02}")
}

async fn queue_length(pipeline: &LocalPipeline) -> Result<usize> {
    let name = aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages;
    let attributes = pipeline
        .sqs
        .get_queue_attributes()
        .queue_url(&pipeline.copy_url)
        .attribute_names(name.clone())
        .send()
        .await?;
    Ok(attributes
        .attributes()
        .and_then(|a| a.get(&name))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}
