//! The network between ferry and a registry fails the way long migrations see it fail:
//! connections reset in the middle of a download or an upload, responses stall, servers
//! answer 5xx, a registry forgets an upload session. A fault-injecting proxy in front of a
//! real docker-registry does each; every run must end with a digest-exact image, or with a
//! clear retryable failure and no tag pointing at an incomplete image. Work already done
//! is not done again.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::http::Method;
use ferry::auth::CredentialStore;
use ferry::registry::{Endpoints, RegistryClient, RegistryOptions, RetryPolicy};
use ferry::report::{ImageReport, Status};
use ferry_testbed::clients::*;
use ferry_testbed::fixtures::{Pushed, Style};
use ferry_testbed::proxy::{on, Action, FaultProxy, Seen};
use ferry_testbed::{Auth, DockerRegistry};

/// A client for loopback registries: `attempts` tries per request, 10 ms apart at first,
/// and reads that give up after `read_timeout` of silence.
fn client(attempts: u32, read_timeout: Duration) -> Arc<RegistryClient> {
    let options = RegistryOptions {
        endpoints: Endpoints::new().insecure_loopback(true),
        retry: RetryPolicy {
            max_attempts: attempts,
            base_delay: Duration::from_millis(10),
            ..RetryPolicy::default()
        },
        read_timeout,
        ..RegistryOptions::default()
    };
    Arc::new(RegistryClient::new(options, CredentialStore::anonymous()).unwrap())
}

/// An image with a 2 MiB layer (big enough to be cut in the middle) and a small one.
async fn seed(registry: &DockerRegistry) -> Pushed {
    registry
        .seeder()
        .push_image("app", "1", Style::Oci, &[2 << 20, 3000], 11)
        .await
}

fn big_layer(pushed: &Pushed) -> String {
    pushed
        .blobs
        .iter()
        .max_by_key(|b| b.size)
        .unwrap()
        .digest
        .clone()
}

/// The upload of the 2 MiB layer (the only blob over 1 MiB).
fn big_upload(method: &Method, path: &str, headers: &axum::http::HeaderMap) -> bool {
    *method == Method::PUT
        && path.contains("/blobs/uploads/")
        && headers
            .get("content-length")
            .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
            .is_some_and(|n| n > 1 << 20)
}

/// A download of blob `digest`.
fn download_of(
    digest: &str,
) -> impl Fn(&Method, &str, &axum::http::HeaderMap) -> bool + Send + Sync + 'static {
    let path = format!("/blobs/{digest}");
    move |m, p, _| *m == Method::GET && p.ends_with(&path)
}

fn count(seen: &[Seen], method: Method, fragment: &str) -> usize {
    seen.iter()
        .filter(|s| s.method == method && s.path.contains(fragment))
        .count()
}

async fn assert_exact(dst: &DockerRegistry, report: &ImageReport, pushed: &Pushed) {
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let (raw, _, digest) = dst.seeder().manifest("app", "1").await.expect("tag");
    assert_eq!((raw, digest), (pushed.raw.clone(), pushed.digest.clone()));
    for blob in &pushed.blobs {
        assert!(dst.seeder().blob_exists("app", &blob.digest).await);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_in_the_middle_of_a_download_is_retried() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = seed(&src).await;
    let proxy = FaultProxy::start(&src.url()).await;
    let layer = big_layer(&pushed);
    proxy.rule(download_of(&layer), Action::CutResponse(256 << 10), Some(2));
    let report = copy_one(
        client(4, Duration::from_secs(30)),
        &format!("{}/app:1", proxy.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    assert_exact(&dst, &report, &pushed).await;
    assert_eq!(
        count(&proxy.seen(), Method::GET, &layer),
        3,
        "two cut, one whole"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reset_in_the_middle_of_an_upload_is_retried() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = seed(&src).await;
    let proxy = FaultProxy::start(&dst.url()).await;
    proxy.rule(big_upload, Action::CutRequest(256 << 10), Some(1));
    let report = copy_one(
        client(4, Duration::from_secs(30)),
        &format!("{}/app:1", src.host()),
        &format!("{}/app:1", proxy.host()),
    )
    .await;
    assert_exact(&dst, &report, &pushed).await;
    // Config, small layer, big layer, and the big layer again.
    assert_eq!(count(&proxy.seen(), Method::PUT, "/blobs/uploads/"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_download_times_out_and_is_retried() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = seed(&src).await;
    let proxy = FaultProxy::start(&src.url()).await;
    let layer = big_layer(&pushed);
    proxy.rule(
        download_of(&layer),
        Action::StallResponse(64 << 10),
        Some(1),
    );
    let started = Instant::now();
    let report = copy_one(
        client(3, Duration::from_secs(1)),
        &format!("{}/app:1", proxy.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    assert_exact(&dst, &report, &pushed).await;
    assert!(started.elapsed() >= Duration::from_secs(1));
    assert_eq!(count(&proxy.seen(), Method::GET, &layer), 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_never_answers_fails_the_image_within_the_timeouts() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    seed(&src).await;
    let proxy = FaultProxy::start(&src.url()).await;
    proxy.rule(
        |_, _, _| true,
        Action::Delay(Duration::from_secs(3600)),
        None,
    );
    let started = Instant::now();
    let report = copy_one(
        client(2, Duration::from_millis(500)),
        &format!("{}/app:1", proxy.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    assert_eq!(report.status, Status::Failed, "{report:?}");
    assert!(report.retryable(), "a timeout may pass: {report:?}");
    let message = &report.first_error().unwrap().message;
    assert!(
        message.contains(&proxy.host()),
        "names the registry: {message}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert!(dst.seeder().manifest("app", "1").await.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn server_errors_on_either_side_are_retried() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = seed(&src).await;
    let src_proxy = FaultProxy::start(&src.url()).await;
    let dst_proxy = FaultProxy::start(&dst.url()).await;
    let unavailable = |status: u16| Action::registry_error(status, "UNAVAILABLE", "try again");
    src_proxy.rule(on(Method::GET, "/manifests/"), unavailable(503), Some(2));
    dst_proxy.rule(
        on(Method::POST, "/blobs/uploads/"),
        unavailable(502),
        Some(1),
    );
    dst_proxy.rule(on(Method::PUT, "/manifests/"), unavailable(500), Some(1));
    let report = copy_one(
        client(4, Duration::from_secs(30)),
        &format!("{}/app:1", src_proxy.host()),
        &format!("{}/app:1", dst_proxy.host()),
    )
    .await;
    assert_exact(&dst, &report, &pushed).await;
    let statuses = |seen: Vec<Seen>, method: Method, fragment: &str| -> Vec<u16> {
        seen.into_iter()
            .filter(|s| s.method == method && s.path.contains(fragment))
            .map(|s| s.status)
            .collect()
    };
    assert_eq!(
        statuses(src_proxy.seen(), Method::GET, "/manifests/"),
        [503, 503, 200]
    );
    assert_eq!(
        statuses(dst_proxy.seen(), Method::PUT, "/manifests/"),
        [500, 201]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_dropped_upload_session_restarts_the_blob() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = seed(&src).await;
    let proxy = FaultProxy::start(&dst.url()).await;
    proxy.rule(
        on(Method::PUT, "/blobs/uploads/"),
        Action::registry_error(
            404,
            "BLOB_UPLOAD_UNKNOWN",
            "blob upload unknown to registry",
        ),
        Some(1),
    );
    let report = copy_one(
        client(3, Duration::from_secs(30)),
        &format!("{}/app:1", src.host()),
        &format!("{}/app:1", proxy.host()),
    )
    .await;
    assert_exact(&dst, &report, &pushed).await;
    // Three blobs, one of them started twice.
    assert_eq!(count(&proxy.seen(), Method::POST, "/blobs/uploads/"), 4);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_run_leaves_no_tag_and_the_rerun_sends_only_what_is_missing() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = seed(&src).await;
    let proxy = FaultProxy::start(&dst.url()).await;
    let down = Action::Respond {
        status: 503,
        headers: vec![],
        body: "down for maintenance".into(),
    };
    // First run: the big layer's upload never succeeds; the other blobs do.
    proxy.rule(big_upload, down.clone(), Some(2));
    let src_ref = format!("{}/app:1", src.host());
    let dst_ref = format!("{}/app:1", proxy.host());
    let first = copy_one(client(2, Duration::from_secs(30)), &src_ref, &dst_ref).await;
    assert_eq!(first.status, Status::Failed, "{first:?}");
    assert!(first.retryable());
    assert!(
        dst.seeder().manifest("app", "1").await.is_none(),
        "no tag may point at an image whose blobs are missing"
    );
    let layer = big_layer(&pushed);
    assert!(!dst.seeder().blob_exists("app", &layer).await);

    // Second run: only the missing blob travels.
    let before = proxy.seen().len();
    let second = copy_one(client(2, Duration::from_secs(30)), &src_ref, &dst_ref).await;
    assert_exact(&dst, &second, &pushed).await;
    let rerun = &proxy.seen()[before..];
    assert_eq!(
        count(rerun, Method::PUT, "/blobs/uploads/"),
        1,
        "{rerun:#?}"
    );
    assert_eq!(count(rerun, Method::PUT, "/manifests/"), 1);
}
