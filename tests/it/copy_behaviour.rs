//! How the engine saves work and fails: skips, mounts, one source read for many
//! destinations, and the errors users act on.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use ferry::auth::Credential;
use ferry::copy::{Copier, CopyOptions};
use ferry::report::Status;
use ferry_testbed::clients::*;
use ferry_testbed::fixtures::{Pushed, Style};
use ferry_testbed::proxy::{Action, FaultProxy, HttpMethod, Seen};
use ferry_testbed::token::TokenServer;
use ferry_testbed::{Auth, DockerRegistry};

#[tokio::test(flavor = "multi_thread")]
async fn second_copy_is_up_to_date_and_new_tag_reuses_present_blobs() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    src.seeder()
        .push_image("app", "1", Style::Oci, &[5000, 6000], 1)
        .await;
    let copier = copier();
    let req = request(
        &format!("{}/app:1", src.host()),
        &[&format!("{}/app", dst.host())],
    );
    let first = copier.copy_image(&req).await;
    assert_eq!(
        (first.status, first.stats.blobs_uploaded),
        (Status::Copied, 3)
    );
    assert_eq!(
        first.stats.bytes_uploaded,
        11000 + first_config_size(&src).await
    );

    let again = copier.copy_image(&req).await;
    assert_eq!(again.status, Status::UpToDate);
    assert_eq!(
        (
            again.stats.blobs_uploaded,
            again.stats.bytes_uploaded,
            again.stats.manifests_pushed
        ),
        (0, 0, 0)
    );

    // Same image under another tag, from a fresh run (no ledger): blobs are found by HEAD.
    let fresh = ferry_testbed::clients::copier();
    let other = fresh
        .copy_image(&request(
            &format!("{}/app:1", src.host()),
            &[&format!("{}/app:other", dst.host())],
        ))
        .await;
    assert_eq!(other.status, Status::Copied);
    assert_eq!(
        (other.stats.blobs_uploaded, other.stats.blobs_skipped),
        (0, 3)
    );
}

async fn first_config_size(src: &DockerRegistry) -> u64 {
    let (raw, _, _) = src.seeder().manifest("app", "1").await.unwrap();
    let v: serde_json::Value = serde_json::from_slice(&raw).unwrap();
    v["config"]["size"].as_u64().unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn several_destinations_and_shared_layers_read_each_source_blob_once() {
    let src = DockerRegistry::start(Auth::None);
    let dst1 = DockerRegistry::start(Auth::None);
    let dst2 = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    // Two images sharing a base layer (same seed and index → same bytes).
    let a = s
        .push_image("app", "a", Style::Oci, &[20_000, 3_000], 7)
        .await;
    let b = s.push_image("app", "b", Style::Oci, &[20_000], 7).await;
    assert_eq!(a.blobs[1], b.blobs[1], "fixture shares the base layer");
    let unique: u64 = {
        let mut all: Vec<_> = a
            .blobs
            .iter()
            .chain(&b.blobs)
            .map(|b| (b.digest.clone(), b.size))
            .collect();
        all.sort();
        all.dedup();
        all.iter().map(|(_, s)| s).sum()
    };

    let counter = Arc::new(ReadCounter::default());
    let copier =
        Copier::new(client_with(&[]), CopyOptions::default()).with_progress(counter.clone());
    let dests = [
        format!("{}/m/app", dst1.host()),
        format!("{}/m/app", dst2.host()),
        format!("{}/other/app", dst2.host()),
    ];
    let dests: Vec<&str> = dests.iter().map(String::as_str).collect();
    let run = copier
        .copy_all(vec![
            request(&format!("{}/app:a", src.host()), &dests),
            request(&format!("{}/app:b", src.host()), &dests),
        ])
        .await;
    assert!(run.success(), "{run:?}");
    assert_eq!(
        counter.0.load(Ordering::Relaxed),
        unique,
        "each unique blob read from the source exactly once"
    );
    // The second repository of dst2 mounted from the first instead of uploading again.
    let mounted: u64 = run.images.iter().map(|i| i.stats.blobs_mounted).sum();
    assert!(
        mounted >= 3,
        "expected mounts into other/app, got {mounted}: {run:?}"
    );
    for (reg, repo) in [(&dst1, "m/app"), (&dst2, "m/app"), (&dst2, "other/app")] {
        for tag in ["a", "b"] {
            let (_, _, digest) = reg.seeder().manifest(repo, tag).await.expect("tag present");
            assert_eq!(
                digest,
                if tag == "a" {
                    a.digest.clone()
                } else {
                    b.digest.clone()
                }
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn same_registry_copy_mounts_every_blob() {
    let reg = DockerRegistry::start(Auth::None);
    let pushed = reg
        .seeder()
        .push_image("team/app", "1.4", Style::Docker, &[4000, 4000], 9)
        .await;
    let report = copier()
        .copy_image(&request(
            &format!("{}/team/app:1.4", reg.host()),
            &[&format!("{}/archive/app", reg.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_eq!(
        (
            report.stats.blobs_mounted,
            report.stats.blobs_uploaded,
            report.stats.bytes_uploaded
        ),
        (3, 0, 0)
    );
    let (_, _, digest) = reg.seeder().manifest("archive/app", "1.4").await.unwrap();
    assert_eq!(digest, pushed.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_between_basic_auth_and_token_auth_registries() {
    let tokens = TokenServer::start("tokenuser", "tokenpass").await;
    let src = DockerRegistry::start(Auth::Basic {
        username: "alice".into(),
        password: "s3cret".into(),
    });
    let dst = DockerRegistry::start(Auth::Token(tokens.clone()));
    let pushed = src
        .seeder()
        .push_image("app", "v1", Style::Oci, &[2048, 4096], 3)
        .await;
    let client = client_with(&[
        (&src.host(), Credential::basic("alice", "s3cret")),
        (&dst.host(), Credential::basic("tokenuser", "tokenpass")),
    ]);
    let copier = Copier::new(client, CopyOptions::default());
    let report = copier
        .copy_image(&request(
            &format!("{}/app:v1", src.host()),
            &[&format!("{}/mirror/app", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let (_, _, digest) = dst.seeder().manifest("mirror/app", "v1").await.unwrap();
    assert_eq!(digest, pushed.digest);
    let issued = tokens.authenticated_requests.load(Ordering::Relaxed);
    assert!(issued >= 1, "tokens were fetched with credentials");
    // Tokens are cached per scope: a whole image copy needs only a handful, not one per request.
    assert!(issued <= 4, "too many token requests: {issued}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_and_wrong_credentials_are_clear_errors() {
    let tokens = TokenServer::start("u", "right").await;
    let basic = DockerRegistry::start(Auth::Basic {
        username: "alice".into(),
        password: "s3cret".into(),
    });
    let token = DockerRegistry::start(Auth::Token(tokens));
    basic
        .seeder()
        .push_image("app", "v1", Style::Oci, &[10], 1)
        .await;
    let dst = DockerRegistry::start(Auth::None);

    let report = copier()
        .copy_image(&request(
            &format!("{}/app:v1", basic.host()),
            &[&format!("{}/app", dst.host())],
        ))
        .await;
    let err = report.first_error().expect("fails");
    assert_eq!(err.kind, "no_credentials");
    assert!(
        err.message.contains("no basic auth credentials"),
        "{}",
        err.message
    );

    let wrong = Copier::new(
        client_with(&[(&basic.host(), Credential::basic("alice", "wrong-password"))]),
        CopyOptions::default(),
    );
    let report = wrong
        .copy_image(&request(
            &format!("{}/app:v1", basic.host()),
            &[&format!("{}/app", dst.host())],
        ))
        .await;
    let err = report.first_error().expect("fails");
    assert_eq!(err.kind, "denied", "{}", err.message);
    assert!(
        !err.message.contains("wrong-password"),
        "secret leaked: {}",
        err.message
    );

    let wrong_token = Copier::new(
        client_with(&[(&token.host(), Credential::basic("u", "nope-secret"))]),
        CopyOptions::default(),
    );
    let report = wrong_token
        .copy_image(&request(
            &format!("{}/app:v1", token.host()),
            &[&format!("{}/app", dst.host())],
        ))
        .await;
    let err = report.first_error().expect("fails");
    assert!(
        err.message.contains("rejected the credentials"),
        "{}",
        err.message
    );
    assert!(!err.message.contains("nope-secret"));
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_tag_is_not_found_and_leaves_nothing_behind() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    src.seeder()
        .push_image("app", "v1", Style::Oci, &[10], 1)
        .await;
    let report = copier()
        .copy_image(&request(
            &format!("{}/app:nope", src.host()),
            &[&format!("{}/app", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Failed);
    let err = report.first_error().unwrap();
    assert_eq!(err.kind, "manifest_not_found");
    assert!(!err.retryable);
    assert!(dst.seeder().tags("app").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn corrupt_source_blob_fails_the_image_and_pushes_no_tag() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "v1", Style::Oci, &[50_000], 5)
        .await;
    // Flip the stored bytes of the layer on the source's disk (same length).
    let layer = &pushed.blobs[1].digest;
    let hex = layer.trim_start_matches("sha256:");
    let path = src.storage().join(format!(
        "docker/registry/v2/blobs/sha256/{}/{hex}/data",
        &hex[..2]
    ));
    let mut data = std::fs::read(&path).expect("blob on disk");
    data[100] ^= 0xff;
    std::fs::write(&path, data).unwrap();

    let report = copier()
        .copy_image(&request(
            &format!("{}/app:v1", src.host()),
            &[&format!("{}/app", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Failed);
    let err = report.first_error().unwrap();
    assert_eq!(err.kind, "digest_mismatch", "{}", err.message);
    assert!(
        dst.seeder().tags("app").await.is_empty(),
        "no tag may point at an incomplete image"
    );
    assert!(
        !dst.seeder().blob_exists("app", layer).await,
        "the corrupt blob was not committed"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn all_tags_expands_to_every_tag() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    for (i, tag) in ["api-1.4", "worker-1.4", "sha256-abc.sig"]
        .iter()
        .enumerate()
    {
        s.push_image("proj", tag, Style::Oci, &[100 + i], i as u64)
            .await;
    }
    let copier = copier();
    let requests = ferry::copy::all_tags(
        copier.client(),
        &image(&format!("{}/proj", src.host())),
        &[image(&format!("{}/proj", dst.host()))],
    )
    .await
    .unwrap();
    assert_eq!(requests.len(), 3);
    let run = copier.copy_all(requests).await;
    assert_eq!(run.copied, 3, "{run:?}");
    assert_eq!(
        dst.seeder().tags("proj").await,
        vec!["api-1.4", "sha256-abc.sig", "worker-1.4"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_overwrite_a_tag_holding_another_image_is_kept() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    src.seeder()
        .push_image("app", "1", Style::Oci, &[100], 1)
        .await;
    let theirs = dst
        .seeder()
        .push_image("app", "1", Style::Oci, &[100], 2)
        .await;
    let mut req = request(
        &format!("{}/app:1", src.host()),
        &[&format!("{}/app:1", dst.host())],
    );
    req.overwrite = false;
    let report = copier().copy_image(&req).await;
    assert_eq!(report.status, Status::Kept, "{report:?}");
    assert_eq!(report.stats.bytes_uploaded, 0);
    let (_, _, digest) = dst.seeder().manifest("app", "1").await.unwrap();
    assert_eq!(digest, theirs.digest);

    req.overwrite = true;
    let report = copier().copy_image(&req).await;
    assert_eq!(report.status, Status::Copied);
    let (_, _, digest) = dst.seeder().manifest("app", "1").await.unwrap();
    assert_ne!(digest, theirs.digest);
}

// Mount probes: into a repository without tags, a small blob is asked for with one mount
// request (from the repository itself) instead of a HEAD and then an upload session.

/// A source holding `app:1` (a 2 MiB layer, over the 1 MiB probe limit, a 3000-byte one and
/// its config), an empty destination, and a proxy in front of it that logs every request.
async fn probe_bed() -> (DockerRegistry, DockerRegistry, Pushed, FaultProxy) {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[2 << 20, 3000], 21)
        .await;
    let proxy = FaultProxy::start(&dst.url()).await;
    (src, dst, pushed, proxy)
}

fn requests(seen: &[Seen], method: HttpMethod, fragment: &str) -> Vec<String> {
    seen.iter()
        .filter(|s| s.method == method && s.path.contains(fragment))
        .map(|s| s.path.clone())
        .collect()
}

async fn assert_holds(dst: &DockerRegistry, tag: &str, pushed: &Pushed) {
    let (raw, _, digest) = dst.seeder().manifest("app", tag).await.expect("tag");
    assert_eq!((raw, digest), (pushed.raw.clone(), pushed.digest.clone()));
    for blob in &pushed.blobs {
        assert!(dst.seeder().blob_exists("app", &blob.digest).await);
    }
}

/// Copy `app:1` from `src` to `app:<tag>` through `proxy` with a new copier (no ledger).
async fn copy_through(
    src: &DockerRegistry,
    proxy: &FaultProxy,
    tag: &str,
    options: CopyOptions,
) -> ferry::report::ImageReport {
    Copier::new(client_with(&[]), options)
        .copy_image(&request(
            &format!("{}/app:1", src.host()),
            &[&format!("{}/app:{tag}", proxy.host())],
        ))
        .await
}

#[tokio::test(flavor = "multi_thread")]
async fn into_a_repository_without_tags_small_blobs_are_probed_with_a_mount_not_headed() {
    let (src, dst, pushed, proxy) = probe_bed().await;
    let report = copy_through(&src, &proxy, "1", CopyOptions::default()).await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_holds(&dst, "1", &pushed).await;

    let seen = proxy.seen();
    assert_eq!(
        requests(&seen, HttpMethod::HEAD, "/blobs/").len(),
        1,
        "only the 2 MiB layer is HEADed: {seen:#?}"
    );
    let probes = requests(&seen, HttpMethod::POST, "mount=");
    assert_eq!(probes.len(), 2, "config and small layer: {seen:#?}");
    assert!(probes.iter().all(|p| p.contains("from=app")), "{probes:?}");
    let posts = requests(&seen, HttpMethod::POST, "/blobs/uploads/");
    assert_eq!(
        posts.len(),
        3,
        "the probes' sessions carry the small blobs; one more for the large: {posts:?}"
    );
    assert_eq!(requests(&seen, HttpMethod::PUT, "/blobs/uploads/").len(), 3);
    assert_eq!(report.stats.blobs_uploaded, 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn into_a_repository_with_tags_blobs_are_headed_and_present_ones_stay_unsent() {
    let (src, dst, pushed, proxy) = probe_bed().await;
    let first = copy_through(&src, &proxy, "1", CopyOptions::default()).await;
    assert_eq!(first.status, Status::Copied, "{first:?}");

    // Another process (no ledger) copies the same image under a second tag: the repository
    // has a tag now, so nothing is probed (a probe that finds a blob re-links it, a write
    // pullers of the first tag need not see), and every blob is found by HEAD.
    let before = proxy.seen().len();
    let second = copy_through(&src, &proxy, "2", CopyOptions::default()).await;
    assert_eq!(second.status, Status::Copied, "{second:?}");
    assert_holds(&dst, "2", &pushed).await;
    let seen = &proxy.seen()[before..];
    assert_eq!(
        requests(seen, HttpMethod::HEAD, "/blobs/").len(),
        3,
        "{seen:#?}"
    );
    assert!(requests(seen, HttpMethod::POST, "/blobs/uploads/").is_empty());
    assert!(requests(seen, HttpMethod::PUT, "/blobs/uploads/").is_empty());
    assert_eq!(
        (second.stats.blobs_skipped, second.stats.bytes_uploaded),
        (3, 0)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_does_not_mount_gets_small_blobs_again_but_never_a_large_one() {
    let (src, dst, pushed, proxy) = probe_bed().await;
    proxy.rule(
        |m, path, _| *m == HttpMethod::POST && path.contains("mount="),
        Action::IgnoreMounts,
        None,
    );
    // A first run sends every blob, then its manifest is refused: the repository holds the
    // blobs and no tag.
    proxy.rule(
        |m, path, _| *m == HttpMethod::PUT && path.contains("/manifests/"),
        Action::registry_error(400, "MANIFEST_INVALID", "refused once for the test"),
        Some(1),
    );
    let first = copy_through(&src, &proxy, "1", CopyOptions::default()).await;
    assert_eq!(first.status, Status::Failed, "{first:?}");

    // The rerun asks again: the probes open sessions (the registry ignores the mount), so the
    // two small blobs travel again; the large one is HEADed, found, and not sent.
    let before = proxy.seen().len();
    let second = copy_through(&src, &proxy, "1", CopyOptions::default()).await;
    assert_eq!(second.status, Status::Copied, "{second:?}");
    assert_holds(&dst, "1", &pushed).await;
    let seen = &proxy.seen()[before..];
    assert_eq!(
        requests(seen, HttpMethod::HEAD, "/blobs/").len(),
        1,
        "{seen:#?}"
    );
    let resent = requests(seen, HttpMethod::PUT, "/blobs/uploads/");
    assert_eq!(resent.len(), 2, "{seen:#?}");
    assert!(second.stats.bytes_uploaded < 1 << 20, "{:?}", second.stats);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_refuses_a_mount_probe_gets_heads_from_then_on() {
    let (src, dst, pushed, proxy) = probe_bed().await;
    proxy.rule(
        |m, path, _| *m == HttpMethod::POST && path.contains("mount="),
        Action::registry_error(405, "UNSUPPORTED", "mounting is not supported"),
        None,
    );
    // One blob at a time, so the refusal is known before the second small blob.
    let options = CopyOptions {
        blob_concurrency: 1,
        ..CopyOptions::default()
    };
    let report = copy_through(&src, &proxy, "1", options).await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_holds(&dst, "1", &pushed).await;
    let seen = proxy.seen();
    assert_eq!(
        requests(&seen, HttpMethod::POST, "mount=").len(),
        1,
        "{seen:#?}"
    );
    assert_eq!(
        requests(&seen, HttpMethod::HEAD, "/blobs/").len(),
        3,
        "{seen:#?}"
    );
    assert_eq!(requests(&seen, HttpMethod::PUT, "/blobs/uploads/").len(), 3);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_probe_limit_of_zero_heads_every_blob() {
    let (src, dst, pushed, proxy) = probe_bed().await;
    let options = CopyOptions {
        mount_probe_max_bytes: 0,
        ..CopyOptions::default()
    };
    let report = copy_through(&src, &proxy, "1", options).await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_holds(&dst, "1", &pushed).await;
    let seen = proxy.seen();
    assert_eq!(
        requests(&seen, HttpMethod::HEAD, "/blobs/").len(),
        3,
        "{seen:#?}"
    );
    assert!(requests(&seen, HttpMethod::POST, "mount=").is_empty());
    assert!(
        requests(&seen, HttpMethod::GET, "/tags/list").is_empty(),
        "no probe, so no need to know whether the repository has tags"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_batch_does_not_trust_blobs_an_earlier_batch_saw() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[3000, 4000], 23)
        .await;
    // One copier for both batches, as a warm copier Lambda keeps it.
    let copier = copier();
    let first = copier
        .copy_image(&request(
            &format!("{}/app:1", src.host()),
            &[&format!("{}/app:1", dst.host())],
        ))
        .await;
    assert_eq!(first.status, Status::Copied, "{first:?}");
    // Between batches a blob disappears from the destination (a repository deleted and
    // re-created, a garbage collection).
    let layer = &pushed.blobs.iter().find(|b| b.size == 3000).unwrap().digest;
    dst.seeder().delete_blob("app", layer).await;

    copier.begin_batch();
    let second = copier
        .copy_image(&request(
            &format!("{}/app:1", src.host()),
            &[&format!("{}/app:2", dst.host())],
        ))
        .await;
    assert_eq!(second.status, Status::Copied, "{second:?}");
    assert_eq!(second.stats.blobs_uploaded, 1, "{:?}", second.stats);
    assert!(dst.seeder().blob_exists("app", layer).await);
    let (raw, _, _) = dst.seeder().manifest("app", "2").await.expect("tag");
    assert_eq!(raw, pushed.raw);
}

#[tokio::test(flavor = "multi_thread")]
async fn images_copied_side_by_side_list_each_repository_once() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let tags: Vec<String> = (1..=8).map(|t| t.to_string()).collect();
    for (seed, tag) in tags.iter().enumerate() {
        src.seeder()
            .push_image("app", tag, Style::Oci, &[2000, 3000], 40 + seed as u64)
            .await;
    }
    let src_proxy = FaultProxy::start(&src.url()).await;
    let dst_proxy = FaultProxy::start(&dst.url()).await;
    let batch = tags
        .iter()
        .map(|t| {
            request(
                &format!("{}/app:{t}", src_proxy.host()),
                &[&format!("{}/app:{t}", dst_proxy.host())],
            )
        })
        .collect();
    // Every image and every one of its blobs wants to know, at about the same moment,
    // the source's tags (for signatures) and whether the destination holds any tag (for
    // mount probes).
    let options = CopyOptions {
        image_concurrency: 8,
        ..CopyOptions::default()
    };
    let run = Copier::new(client_with(&[]), options).copy_all(batch).await;
    assert!(
        run.images.iter().all(|i| i.status == Status::Copied),
        "{run:?}"
    );
    assert_eq!(dst.seeder().tags("app").await.len(), tags.len());

    let src_seen = src_proxy.seen();
    let dst_seen = dst_proxy.seen();
    assert_eq!(
        requests(&src_seen, HttpMethod::GET, "/tags/list").len(),
        1,
        "source tags listed once: {src_seen:#?}"
    );
    assert_eq!(
        requests(&dst_seen, HttpMethod::GET, "/tags/list").len(),
        1,
        "destination asked once whether it holds tags: {dst_seen:#?}"
    );
    assert_eq!(
        requests(&dst_seen, HttpMethod::POST, "mount=").len(),
        tags.len() * 3,
        "every blob probed (fresh repository): {dst_seen:#?}"
    );
}
