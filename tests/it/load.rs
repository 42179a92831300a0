//! A migration-sized run through the local pipeline: 1,000 images planned by the planner
//! handler, fanned out through moto's SQS and copied by copier handlers running side by
//! side (as concurrent Lambda invocations do), with a few percent of the destination's
//! requests failing the way busy registries fail. Every image must end either in the
//! destination, digest-exact, or in the dead-letter queue with its reason: counted, none
//! lost. The run reports its throughput (a figure, not an assertion).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use ferry_testbed::fixtures::{OCI_CONFIG, OCI_LAYER, OCI_MANIFEST};
use ferry_testbed::moto::MotoServer;
use ferry_testbed::pipeline::LocalPipeline;
use ferry_testbed::proxy::{on, Action, FaultProxy, HttpMethod};
use ferry_testbed::{Auth, DockerRegistry};
use futures::StreamExt;
use serde_json::json;

const REPOSITORIES: usize = 20;
const TAGS: usize = 50;
/// Lambda invocations of the copier running at once.
const COPIERS: usize = 4;
/// The copy queue's maxReceiveCount in this run.
const MAX_RECEIVES: u32 = 3;

fn repository(r: usize) -> String {
    format!("load/r{r:02}")
}

fn tag(t: usize) -> String {
    format!("t{t:03}")
}

/// Seed `REPOSITORIES × TAGS` small images sharing a base layer per repository; returns
/// `(repository, tag) → manifest digest`.
async fn seed(src: &DockerRegistry) -> BTreeMap<(String, String), String> {
    let seeder = Arc::new(src.seeder());
    let mut bases = Vec::new();
    for r in 0..REPOSITORIES {
        let base = ferry_testbed::fixtures::random_bytes(4096, r as u64);
        bases.push(seeder.push_blob(&repository(r), OCI_LAYER, &base).await);
    }
    let bases = Arc::new(bases);
    futures::stream::iter((0..REPOSITORIES).flat_map(|r| (0..TAGS).map(move |t| (r, t))))
        .map(|(r, t)| {
            let seeder = seeder.clone();
            let bases = bases.clone();
            async move {
                let repo = repository(r);
                let config = json!({"architecture": "amd64", "os": "linux",
                    "rootfs": {"type": "layers", "diff_ids": []}, "image": [r, t]});
                let config = seeder
                    .push_blob(&repo, OCI_CONFIG, config.to_string().as_bytes())
                    .await;
                let pushed = seeder
                    .push_manifest_of(&repo, &tag(t), OCI_MANIFEST, &config, &[bases[r].clone()])
                    .await;
                ((repo, tag(t)), pushed.digest)
            }
        })
        .buffer_unordered(16)
        .collect()
        .await
}

/// Every `n`th request matching `what` (counting only those) gets the fault.
fn every_nth(
    n: usize,
    what: impl Fn(&HttpMethod, &str, &HeaderMap) -> bool + Send + Sync + 'static,
) -> impl Fn(&HttpMethod, &str, &HeaderMap) -> bool + Send + Sync + 'static {
    let seen = AtomicUsize::new(0);
    move |method, path, headers| {
        what(method, path, headers) && seen.fetch_add(1, Ordering::Relaxed) % n == n - 1
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_thousand_images_end_copied_or_dead_lettered_with_a_reason() {
    let moto = MotoServer::start();
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let seeding = Instant::now();
    let images = seed(&src).await;
    assert_eq!(images.len(), REPOSITORIES * TAGS);
    let seeding = seeding.elapsed();

    let proxy = FaultProxy::start(&dst.url()).await;
    let denied =
        Action::registry_error(403, "DENIED", "requested access to the resource is denied");
    let unavailable = Action::registry_error(503, "UNAVAILABLE", "service unavailable");
    // Permanent: three tags this identity may not push. Persistent: two tags whose pushes
    // fail every time, outlasting the request retries and every SQS delivery.
    for t in [
        "r13/manifests/t007",
        "r13/manifests/t008",
        "r13/manifests/t009",
    ] {
        proxy.rule(on(HttpMethod::PUT, t), denied.clone(), None);
    }
    for t in ["r17/manifests/t040", "r17/manifests/t041"] {
        proxy.rule(on(HttpMethod::PUT, t), unavailable.clone(), None);
    }
    // Transient: one upload in 25 answered 503, one manifest push in 30 reset mid-request,
    // one manifest check in 40 answered 502; each passes when tried again.
    proxy.rule(
        every_nth(25, on(HttpMethod::PUT, "/blobs/uploads/")),
        unavailable.clone(),
        None,
    );
    proxy.rule(
        every_nth(30, on(HttpMethod::PUT, "/manifests/")),
        Action::CutRequest(10),
        None,
    );
    proxy.rule(
        every_nth(40, on(HttpMethod::HEAD, "/manifests/")),
        Action::Respond {
            status: 502,
            headers: vec![],
            body: "<html><body>502 Bad Gateway</body></html>".into(),
        },
        None,
    );

    let config = format!(
        r#"
version: 1
defaults: {{request_attempts: 3, image_concurrency: 8}}
sources:
  - registry: {{host: "{src}"}}
    destinations: [{{target: "{dst}/mirror/{{repo}}"}}]
"#,
        src = src.host(),
        dst = proxy.host()
    );
    let mut p = LocalPipeline::on_loopback(&moto, &config, false).await;
    // Records copied eight at once: the configuration's image_concurrency.
    p.copier = p
        .copier_with(|s| s.copy_max_receives = Some(MAX_RECEIVES))
        .await;
    p.redeliver_at_once = true;

    // The copiers start with the planner, as the deployed ones consume the queue while the
    // fan-out is still filling it.
    let started = Instant::now();
    let planning = AtomicBool::new(true);
    let plan = async {
        let summary = p.planner.handle(json!({"action": "sync"})).await;
        planning.store(false, Ordering::Release);
        (summary, started.elapsed())
    };
    let ((summary, planned), runs) = tokio::join!(
        plan,
        futures::future::join_all((0..COPIERS).map(|_| p.drain_copies_while(&planning)))
    );
    let summary = summary.unwrap();
    assert_eq!(summary["messages_sent"], images.len(), "{summary}");
    let elapsed = started.elapsed();

    // Where every image ended.
    let mut copied = BTreeSet::new();
    // One seeder (one HTTP client) for all: building a client reads the system's CA
    // certificates, which a thousand times over cost the test about 18 s.
    let at_dst = dst.seeder();
    for ((repo, tag), digest) in &images {
        if let Some((_, _, got)) = at_dst.manifest(&format!("mirror/{repo}"), tag).await {
            assert_eq!(
                &got, digest,
                "{repo}:{tag} at the destination is another image"
            );
            copied.insert((repo.clone(), tag.clone()));
        }
    }
    let mut dead: BTreeMap<(String, String), (String, String)> = BTreeMap::new();
    loop {
        let batch = p.receive(&p.dlq_url).await;
        if batch.is_empty() {
            break;
        }
        for record in batch.records() {
            let body: serde_json::Value =
                serde_json::from_str(record["body"].as_str().unwrap()).unwrap();
            let source = body["source"].as_str().unwrap();
            let (name, rest) = source
                .strip_prefix(&format!("{}/", src.host()))
                .unwrap()
                .split_once(':')
                .unwrap();
            let tag = rest.split('@').next().unwrap();
            let previous = dead.insert(
                (name.to_string(), tag.to_string()),
                ferry_testbed::sqs::dead_letter(record),
            );
            assert!(previous.is_none(), "{name}:{tag} dead-lettered twice");
        }
        ferry_testbed::sqs::settle(
            &p.sqs,
            &p.dlq_url,
            &batch,
            &json!({"batchItemFailures": []}),
        )
        .await;
    }

    // None lost, none in both places, none left on the queue.
    let all: BTreeSet<_> = images.keys().cloned().collect();
    let dead_keys: BTreeSet<_> = dead.keys().cloned().collect();
    assert!(copied.is_disjoint(&dead_keys));
    let accounted: BTreeSet<_> = copied.union(&dead_keys).cloned().collect();
    let lost: Vec<_> = all.difference(&accounted).collect();
    assert!(lost.is_empty(), "lost: {lost:?}");
    let left = p.receive(&p.copy_url).await;
    assert!(left.is_empty(), "left on the copy queue: {}", left.event);

    // Exactly the images that could not be copied are dead-lettered, each with its reason.
    let by_kind = |kind: &str| -> Vec<String> {
        dead.iter()
            .filter(|(_, (k, _))| k == kind)
            .map(|((r, t), _)| format!("{r}:{t}"))
            .collect()
    };
    assert_eq!(
        by_kind("denied"),
        ["load/r13:t007", "load/r13:t008", "load/r13:t009"],
        "{dead:#?}"
    );
    assert_eq!(
        by_kind("retries_exhausted"),
        ["load/r17:t040", "load/r17:t041"],
        "{dead:#?}"
    );
    assert_eq!(dead.len(), 5, "{dead:#?}");
    for (kind, reason) in dead.values() {
        assert!(reason.contains("mirror/load/r1"), "{kind}: {reason}");
    }
    assert!(dead[&("load/r17".into(), "t040".into())]
        .1
        .contains(&format!("gave up after {MAX_RECEIVES} deliveries")));

    let faults = proxy
        .seen()
        .iter()
        .filter(|s| s.status >= 500 || s.status == 403)
        .count();
    let invocations: usize = runs.iter().map(|r| r.invocations).sum();
    let redelivered: usize = runs.iter().map(|r| r.failed.len()).sum();
    eprintln!(
        "load: {} images ({} copied, {} dead-lettered) in {:.1} s = {:.0} images/s \
         (planning, alongside, {:.1} s; seeding took {:.1} s); {invocations} copier \
         invocations, {redelivered} redeliveries, {faults} injected error responses plus \
         resets. moto's SQS dominates: it recounts the queue on every message sent or received",
        images.len(),
        copied.len(),
        dead.len(),
        elapsed.as_secs_f64(),
        images.len() as f64 / elapsed.as_secs_f64(),
        planned.as_secs_f64(),
        seeding.as_secs_f64(),
    );
}
