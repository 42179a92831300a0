//! Registries (or whatever sits in front of them) answering with things that are not what
//! the distribution API promises: manifests that are not JSON or are far too large, blobs
//! whose bytes do not match their digest or their declared size, HTML error pages. Each is
//! a clear failure that names the problem, and nothing is left half-written: no tag.

use axum::http::Method;
use ferry::report::{ImageReport, Status};
use ferry_testbed::clients::*;
use ferry_testbed::fixtures::{Style, OCI_MANIFEST};
use ferry_testbed::proxy::{on, Action, FaultProxy};
use ferry_testbed::{Auth, DockerRegistry};

/// Copy `app:1` from behind `proxy` (in front of `src`) to `dst` after `setup` adds its
/// rules; the report, after checking no tag was written.
async fn copy_through(
    setup: impl FnOnce(&FaultProxy, &ferry_testbed::fixtures::Pushed),
) -> ImageReport {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[5000], 9)
        .await;
    let proxy = FaultProxy::start(&src.url()).await;
    setup(&proxy, &pushed);
    let report = copy_one(
        client_with_attempts(&[], 2),
        &format!("{}/app:1", proxy.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    assert_eq!(report.status, Status::Failed, "{report:?}");
    assert!(
        dst.seeder().manifest("app", "1").await.is_none(),
        "nothing may be tagged"
    );
    report
}

fn message(report: &ImageReport) -> String {
    report.first_error().expect("an error").message.clone()
}

fn answer(status: u16, content_type: &str, body: impl Into<String>) -> Action {
    Action::Respond {
        status,
        headers: vec![("content-type".into(), content_type.into())],
        body: body.into(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_that_is_not_json_is_refused() {
    let garbage = "this is not a manifest";
    let digest = ferry_testbed::fixtures::sha256(garbage.as_bytes());
    let report = copy_through(|proxy, _| {
        // Consistent about its digest, so only the content is wrong.
        proxy.rule(
            on(Method::HEAD, "/manifests/"),
            Action::Respond {
                status: 200,
                headers: vec![
                    ("content-type".into(), OCI_MANIFEST.into()),
                    ("docker-content-digest".into(), digest),
                ],
                body: String::new(),
            },
            None,
        );
        proxy.rule(
            on(Method::GET, "/manifests/"),
            answer(200, OCI_MANIFEST, garbage),
            None,
        )
    })
    .await;
    assert!(!report.retryable(), "{report:?}");
    assert!(message(&report).contains("JSON"), "{}", message(&report));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_over_the_size_limit_is_refused_without_reading_it_all() {
    let huge = format!(
        "{{\"schemaVersion\":2,\"padding\":\"{}\"}}",
        "x".repeat(ferry::manifest::MAX_MANIFEST_BYTES)
    );
    let report = copy_through(move |proxy, _| {
        proxy.rule(
            on(Method::GET, "/manifests/"),
            answer(200, OCI_MANIFEST, huge),
            None,
        )
    })
    .await;
    let text = message(&report);
    assert!(text.contains("limit") || text.contains("large"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn blob_bytes_that_do_not_match_the_digest_are_refused() {
    let report = copy_through(|proxy, pushed| {
        let layer = pushed.blobs.iter().max_by_key(|b| b.size).unwrap().clone();
        let path = format!("/blobs/{}", layer.digest);
        proxy.rule(
            move |m, p, _| *m == Method::GET && p.ends_with(&path),
            answer(
                200,
                "application/octet-stream",
                "y".repeat(layer.size as usize),
            ),
            None,
        );
    })
    .await;
    assert!(!report.retryable(), "{report:?}");
    assert!(message(&report).contains("sha256:"), "{}", message(&report));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_blob_shorter_than_its_descriptor_says_is_refused() {
    let report = copy_through(|proxy, pushed| {
        let layer = pushed.blobs.iter().max_by_key(|b| b.size).unwrap().clone();
        let path = format!("/blobs/{}", layer.digest);
        proxy.rule(
            move |m, p, _| *m == Method::GET && p.ends_with(&path),
            answer(200, "application/octet-stream", "short"),
            None,
        );
    })
    .await;
    let text = message(&report);
    assert!(
        text.contains("5 bytes where the manifest declares 5000"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn an_html_error_page_is_described_as_one() {
    let report = copy_through(|proxy, _| {
        proxy.rule(
            on(Method::GET, "/manifests/"),
            answer(
                502,
                "text/html",
                "<html><head><title>502 Bad Gateway</title></head><body>nginx</body></html>",
            ),
            None,
        )
    })
    .await;
    assert!(report.retryable(), "a 502 may pass: {report:?}");
    let text = message(&report);
    assert!(text.contains("HTML page") && text.contains("502"), "{text}");
    assert!(
        !text.contains("<html>"),
        "the page itself is not repeated: {text}"
    );
}
