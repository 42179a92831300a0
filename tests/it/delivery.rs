//! What Lambda and SQS do to a copier that the copy engine alone never sees: an invocation
//! killed mid-image by its timeout (its message comes back), two invocations handed the
//! same image at once, and the same message delivered again after it was done. Each must
//! end with the exact image at the destination and nothing done twice that need not be.

use std::time::Duration;

use ferry_testbed::fixtures::{Pushed, Style};
use ferry_testbed::moto::MotoServer;
use ferry_testbed::pipeline::LocalPipeline;
use ferry_testbed::proxy::{Action, FaultProxy, HttpMethod, Seen};
use ferry_testbed::{sqs, Auth, DockerRegistry};
use serde_json::json;

struct Bed {
    moto: MotoServer,
    /// Kept running behind `src_proxy`.
    _src: DockerRegistry,
    dst: DockerRegistry,
    src_proxy: FaultProxy,
    dst_proxy: FaultProxy,
    pushed: Pushed,
    config: String,
}

/// Source and destination registries, each behind a proxy, and an image with a 2 MiB
/// layer and two small blobs.
async fn bed() -> Bed {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[2 << 20, 2000], 5)
        .await;
    let src_proxy = FaultProxy::start(&src.url()).await;
    let dst_proxy = FaultProxy::start(&dst.url()).await;
    let config = format!(
        "version: 1\nsources:\n  - images: [\"{}/app:1\"]\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        src_proxy.host(),
        dst_proxy.host()
    );
    Bed {
        moto,
        _src: src,
        dst,
        src_proxy,
        dst_proxy,
        pushed,
        config,
    }
}

impl Bed {
    async fn pipeline(&self) -> LocalPipeline {
        LocalPipeline::on_loopback(&self.moto, &self.config, false).await
    }

    fn big_layer(&self) -> String {
        let big = self.pushed.blobs.iter().max_by_key(|b| b.size).unwrap();
        big.digest.clone()
    }

    async fn assert_exact(&self) {
        let (raw, _, digest) = self.dst.seeder().manifest("app", "1").await.expect("tag");
        assert_eq!(
            (raw, digest),
            (self.pushed.raw.clone(), self.pushed.digest.clone())
        );
    }

    async fn plan(&self, p: &LocalPipeline) {
        let summary = p.planner.handle(json!({"action": "sync"})).await.unwrap();
        assert_eq!(summary["messages_sent"], 1, "{summary}");
    }
}

/// Blob uploads the destination completed.
fn uploads(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|s| {
            s.method == HttpMethod::PUT && s.path.contains("/blobs/uploads/") && s.status == 201
        })
        .count()
}

fn manifest_puts(seen: &[Seen]) -> usize {
    seen.iter()
        .filter(|s| s.method == HttpMethod::PUT && s.path.contains("/manifests/"))
        .count()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_copier_killed_mid_image_finishes_it_when_the_message_returns() {
    let b = bed().await;
    let p = b.pipeline().await;
    b.plan(&p).await;
    // The big layer's download stalls, as a slow source does near a timeout.
    let path = format!("/blobs/{}", b.big_layer());
    b.src_proxy.rule(
        move |m, p, _| *m == HttpMethod::GET && p.ends_with(&path),
        Action::StallResponse(128 << 10),
        Some(1),
    );

    let batch = p.receive(&p.copy_url).await;
    let killed =
        tokio::time::timeout(Duration::from_secs(2), p.copier.handle(batch.event.clone())).await;
    assert!(killed.is_err(), "the invocation should still be running");
    assert!(
        b.dst.seeder().manifest("app", "1").await.is_none(),
        "a killed copy must leave no tag"
    );
    let small_done = uploads(&b.dst_proxy.seen());
    assert_eq!(
        small_done, 2,
        "config and small layer were uploaded before the kill"
    );

    // Lambda returned nothing, so SQS delivers the message again once it is visible.
    let ids: Vec<String> = batch.ids_and_handles().map(|(id, _)| id.into()).collect();
    sqs::release(&p.sqs, &p.copy_url, &batch, &ids).await;
    let drained = p.drain_copies().await;
    assert_eq!((drained.records, drained.failed.len()), (1, 0));
    b.assert_exact().await;
    let rerun = &b.dst_proxy.seen();
    assert_eq!(
        uploads(rerun) - small_done,
        1,
        "only the big layer travels again"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn two_copiers_given_the_same_image_at_once_both_succeed() {
    let b = bed().await;
    let (one, two) = (b.pipeline().await, b.pipeline().await);
    b.plan(&one).await;
    // The same message, duplicated (SQS standard queues deliver at least once).
    let batch = one.receive(&one.copy_url).await;
    let record = batch.records()[0].clone();
    let event = json!({"Records": [record]});
    // Slow every upload a little so the two copies overlap.
    b.dst_proxy.rule(
        |m, p, _| *m == HttpMethod::POST && p.contains("/blobs/uploads/"),
        Action::Delay(Duration::from_millis(150)),
        None,
    );
    let (a, c) = tokio::join!(
        one.copier.handle(event.clone()),
        two.copier.handle(event.clone())
    );
    for response in [a.unwrap(), c.unwrap()] {
        assert!(sqs::failures(&response).is_empty(), "{response}");
    }
    b.assert_exact().await;

    // Twice in one batch is harmless too.
    let twice = json!({"Records": [event["Records"][0].clone(), event["Records"][0].clone()]});
    let response = one.copier.handle(twice).await.unwrap();
    assert!(sqs::failures(&response).is_empty(), "{response}");
    b.assert_exact().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_message_delivered_again_after_it_was_done_pushes_nothing() {
    let b = bed().await;
    let p = b.pipeline().await;
    b.plan(&p).await;
    let batch = p.receive(&p.copy_url).await;
    let response = p.copier.handle(batch.event.clone()).await.unwrap();
    assert!(sqs::failures(&response).is_empty());
    b.assert_exact().await;
    let before = b.dst_proxy.seen().len();
    let source_reads = b.src_proxy.seen().len();

    // The delete was lost (or the delivery duplicated): the same record arrives again.
    let response = p.copier.handle(batch.event).await.unwrap();
    assert!(sqs::failures(&response).is_empty());
    let again = &b.dst_proxy.seen()[before..];
    assert_eq!((uploads(again), manifest_puts(again)), (0, 0), "{again:#?}");
    // An up-to-date image needs nothing from the source but the tag listing that shows
    // whether signatures or referrers of it have appeared since.
    let asked: Vec<String> = b.src_proxy.seen()[source_reads..]
        .iter()
        .map(|r| format!("{} {}", r.method, r.path))
        .collect();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert!(
        asked[0].starts_with("GET ") && asked[0].contains("/tags/list"),
        "{asked:?}"
    );
    b.assert_exact().await;
}
