//! Supply-chain artifacts travel with their images: cosign tags, OCI 1.1 referrers found
//! through the API or the referrers tag schema, artifacts of artifacts, and the
//! destination's fallback index merged rather than replaced. Registries are real
//! `docker-registry` 2.8 processes (no referrers API: the fallback path); the API path runs
//! through a proxy that gives the registry behind it the referrers API.

use ferry::aws::AwsClients;
use ferry::config::SyncConfig;
use ferry::copy::{Copier, CopyOptions};
use ferry::message::Reason;
use ferry::plan::{PlanOptions, Planner};
use ferry::referrers::Selection;
use ferry::report::{ImageReport, Status};
use ferry_testbed::fixtures::{platform, Pushed, Seeder, Style, OCI_INDEX};
use ferry_testbed::proxy::{FaultProxy, HttpMethod};
use ferry_testbed::{Auth, DockerRegistry};
use serde_json::Value;

use ferry_testbed::clients::{client_with, request};

const SPDX: &str = "application/spdx+json";
const CYCLONEDX: &str = "application/vnd.cyclonedx+json";

fn copier(selection: &str) -> Copier {
    Copier::new(
        client_with(&[]),
        CopyOptions {
            referrers: selection.parse::<Selection>().unwrap(),
            ..CopyOptions::default()
        },
    )
}

async fn copy(selection: &str, src: &str, dst: &str) -> ImageReport {
    copier(selection).copy_image(&request(src, &[dst])).await
}

/// Copy `app:TAG` from the registry at `src` to the same repository at `dst`.
async fn copy_app(selection: &str, src: &str, tag: &str, dst: &str) -> ImageReport {
    copy(
        selection,
        &format!("{src}/app:{tag}"),
        &format!("{dst}/app"),
    )
    .await
}

/// `app:1.0`, an index of a linux/amd64 and a linux/arm64 image; returns the arm64 image
/// and the index.
async fn push_two_platform_app(s: &Seeder) -> (Pushed, Pushed) {
    let amd = s.push_image("app", "amd", Style::Oci, &[300], 1).await;
    let arm = s.push_image("app", "arm", Style::Oci, &[300], 2).await;
    let index = s
        .push_index(
            "app",
            "1.0",
            OCI_INDEX,
            &[
                amd.descriptor(Some(platform("linux", "amd64"))),
                arm.descriptor(Some(platform("linux", "arm64"))),
            ],
        )
        .await;
    (arm, index)
}

/// A mirror of `src`'s repository app, tags 1.*, to `dst`.
fn app_mirror(src: &str, dst: &str) -> SyncConfig {
    SyncConfig::parse(&format!(
        "version: 1\nsources:\n  - registry: {{host: \"{src}\", repositories: [app]}}\n    filters: {{tags: {{include: ['1\\..*']}}}}\n    destinations: [{{target: \"{dst}/{{repo}}\"}}]\n"
    ))
    .unwrap()
}

/// The plan of `config`'s only source, as the planner Lambda makes it.
async fn plan_app(
    config: &SyncConfig,
    client: &ferry::registry::RegistryClient,
) -> ferry::plan::Plan {
    Planner::new(
        config,
        client,
        &AwsClients::from_environment(),
        PlanOptions::default(),
    )
    .plan_source(&config.sources[0], Reason::Manual)
    .await
    .unwrap()
}

fn tag_of(digest: &str) -> String {
    digest.replace(':', "-")
}

/// The exact bytes `seeder` serves for `repo` at `reference`.
async fn raw(seeder: &Seeder, repo: &str, reference: &str) -> Option<Vec<u8>> {
    seeder
        .manifest(repo, reference)
        .await
        .map(|(raw, _, _)| raw)
}

async fn index_entries(seeder: &Seeder, repo: &str, subject: &str) -> Vec<Value> {
    let raw = raw(seeder, repo, &tag_of(subject))
        .await
        .expect("fallback index");
    serde_json::from_slice::<Value>(&raw).unwrap()["manifests"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test]
async fn signature_tags_follow_their_image_past_tag_filters_with_their_own_signatures() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let image = s.push_image("app", "1.0", Style::Oci, &[400], 1).await;
    s.push_image("app", "dev", Style::Oci, &[300], 2).await;
    let sig = s.push_cosign_artifact("app", &image.digest, "sig", 3).await;
    let sbom = s
        .push_cosign_artifact("app", &image.digest, "sbom", 4)
        .await;
    // A signature of the SBOM: followed one level down.
    let sbom_sig = s.push_cosign_artifact("app", &sbom.digest, "sig", 5).await;

    // Tag filters select 1.x and would take the .sbom tag as an image but exclude .sig
    // tags: artifact tags are never images of their own, and all of them follow the image
    // they belong to.
    let config = SyncConfig::parse(&format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    filters: {{tags: {{include: ['1\\..*', 'sha256-.*'], exclude: ['.*\\.sig']}}}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        src.host(),
        dst.host()
    ))
    .unwrap();
    let client = client_with(&[]);
    let aws = AwsClients::from_environment();
    let plan = Planner::new(&config, &client, &aws, PlanOptions::default())
        .plan_source(&config.sources[0], Reason::Manual)
        .await
        .unwrap();
    assert_eq!(plan.jobs.len(), 1, "{plan:?}");
    let report = copier("all")
        .copy_image(&plan.jobs[0].request().unwrap())
        .await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");
    assert_eq!(report.artifacts.len(), 3, "{report:#?}");

    let d = dst.seeder();
    for (tag, pushed) in [
        (format!("{}.sig", tag_of(&image.digest)), &sig),
        (format!("{}.sbom", tag_of(&image.digest)), &sbom),
        (format!("{}.sig", tag_of(&sbom.digest)), &sbom_sig),
    ] {
        assert_eq!(
            raw(&d, "app", &tag).await.as_ref(),
            Some(&pushed.raw),
            "{tag}"
        );
        for blob in &pushed.blobs {
            assert!(d.blob_exists("app", &blob.digest).await, "{tag} {blob:?}");
        }
    }
    assert!(
        raw(&d, "app", "dev").await.is_none(),
        "the filter still holds"
    );

    // Again: everything is there, nothing is pushed.
    let again = copy_app("all", &src.host(), "1.0", &dst.host()).await;
    assert_eq!(again.status, Status::UpToDate, "{again:#?}");
    assert!(again
        .artifacts
        .iter()
        .all(|a| a.destinations.iter().all(|d| d.status == Status::UpToDate)));
}

#[tokio::test]
async fn a_resync_brings_missing_signatures_to_an_image_already_there() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let image = s.push_image("app", "1.0", Style::Oci, &[400], 1).await;
    let sig = s.push_cosign_artifact("app", &image.digest, "sig", 3).await;
    let sbom = s
        .push_cosign_artifact("app", &image.digest, "sbom", 4)
        .await;
    let (from, to) = (
        format!("{}/app:1.0", src.host()),
        format!("{}/app", dst.host()),
    );
    let sig_tag = format!("{}.sig", tag_of(&image.digest));
    let sbom_tag = format!("{}.sbom", tag_of(&image.digest));

    let bare = copy("none", &from, &to).await;
    assert_eq!(bare.status, Status::Copied);
    assert!(bare.artifacts.is_empty());
    let d = dst.seeder();
    assert!(raw(&d, "app", &sig_tag).await.is_none());

    let only_sbom = copy("sbom", &from, &to).await;
    assert_eq!(only_sbom.status, Status::Copied, "{only_sbom:#?}");
    assert!(raw(&d, "app", &sig_tag).await.is_none(), "not asked for");
    assert_eq!(raw(&d, "app", &sbom_tag).await, Some(sbom.raw.clone()));

    let all = copy("all", &from, &to).await;
    assert_eq!(
        all.status,
        Status::Copied,
        "the image was there; its signature was not"
    );
    assert_eq!(all.destinations[0].status, Status::UpToDate);
    assert_eq!(raw(&d, "app", &sig_tag).await, Some(sig.raw));
}

#[tokio::test]
async fn an_sbom_referrer_keeps_its_subject_and_the_fallback_index_its_digest() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let image = s.push_image("app", "1.0", Style::Oci, &[400], 1).await;
    let sbom = s.push_referrer("app", &image, SPDX, 7).await;
    let index = s
        .add_to_fallback_index("app", &image.digest, &[(&sbom, SPDX)])
        .await;

    let report = copy_app("all", &src.host(), "1.0", &dst.host()).await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");

    let d = dst.seeder();
    let copied = raw(&d, "app", &sbom.digest)
        .await
        .expect("referrer by digest");
    assert_eq!(copied, sbom.raw);
    let doc: Value = serde_json::from_slice(&copied).unwrap();
    assert_eq!(doc["subject"]["digest"], image.digest.as_str());
    for blob in &sbom.blobs {
        assert!(d.blob_exists("app", &blob.digest).await);
    }
    // Nothing at the destination to merge with: the source's index, byte for byte.
    assert_eq!(
        raw(&d, "app", &tag_of(&image.digest)).await,
        Some(index.raw)
    );
}

#[tokio::test]
async fn a_referrer_of_one_platform_of_a_multi_arch_index_follows_it() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let (arm, index) = push_two_platform_app(&s).await;
    let provenance = s
        .push_listed_referrer("app", &arm, "application/vnd.in-toto+json", 9)
        .await;
    let sig = s
        .push_cosign_artifact("app", &index.digest, "sig", 10)
        .await;

    let report = copy_app("all", &src.host(), "1.0", &dst.host()).await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");
    let d = dst.seeder();
    assert_eq!(
        raw(&d, "app", &provenance.digest).await,
        Some(provenance.raw.clone())
    );
    let entries = index_entries(&d, "app", &arm.digest).await;
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["digest"], provenance.digest.as_str());
    assert_eq!(
        raw(&d, "app", &format!("{}.sig", tag_of(&index.digest))).await,
        Some(sig.raw)
    );

    // A no-op re-sync of the index still checks its children's referrers.
    let again = copy_app("all", &src.host(), "1.0", &dst.host()).await;
    assert_eq!(again.status, Status::UpToDate, "{again:#?}");
    assert!(again
        .artifacts
        .iter()
        .any(|a| a.subject == arm.digest && a.destinations[0].status == Status::UpToDate));
}

#[tokio::test]
async fn the_destination_fallback_index_is_merged_never_replaced() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let image = s.push_image("app", "1.0", Style::Oci, &[400], 1).await;
    let sbom = s.push_referrer("app", &image, SPDX, 7).await;
    let cdx = s.push_referrer("app", &image, CYCLONEDX, 8).await;
    s.add_to_fallback_index("app", &image.digest, &[(&sbom, SPDX), (&cdx, CYCLONEDX)])
        .await;
    // The destination already has the image, and a referrer someone pushed there only.
    d.push_image("app", "1.0", Style::Oci, &[400], 1).await;
    let local = d
        .push_referrer("app", &image, "application/vnd.example+json", 11)
        .await;
    d.add_to_fallback_index(
        "app",
        &image.digest,
        &[(&local, "application/vnd.example+json")],
    )
    .await;

    // Only SPDX is asked for.
    let report = copy_app(SPDX, &src.host(), "1.0", &dst.host()).await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");
    assert!(raw(&d, "app", &cdx.digest).await.is_none(), "not selected");
    let entries = index_entries(&d, "app", &image.digest).await;
    let digests: Vec<&str> = entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(digests, [local.digest.as_str(), sbom.digest.as_str()]);
    assert_eq!(entries[1]["artifactType"], SPDX);
    assert_eq!(raw(&d, "app", &sbom.digest).await, Some(sbom.raw));
}

#[tokio::test]
async fn the_referrers_api_is_used_where_registries_have_it() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let plain = DockerRegistry::start(Auth::None);
    let src_api = FaultProxy::start_with_referrers_api(&src.url()).await;
    let dst_api = FaultProxy::start_with_referrers_api(&dst.url()).await;
    // Seeded through the proxy, so its referrers API knows them.
    let s = Seeder::new(src_api.url(), ferry_testbed::fixtures::SeedAuth::None);
    let image = s.push_image("app", "1.0", Style::Oci, &[400], 1).await;
    let sbom = s.push_referrer("app", &image, SPDX, 7).await;
    let cdx = s.push_referrer("app", &image, CYCLONEDX, 8).await;
    let from = format!("{}/app:1.0", src_api.host());

    // API to API: the destination lists the referrer by its subject; no fallback tag.
    let report = copy(SPDX, &from, &format!("{}/app", dst_api.host())).await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");
    let asked: Vec<String> = src_api
        .seen()
        .iter()
        .filter(|r| r.method == HttpMethod::GET && r.path.contains("/referrers/"))
        .map(|r| r.path.clone())
        .collect();
    assert!(
        asked
            .iter()
            .any(|p| p.contains("artifactType=application%2Fspdx%2Bjson")),
        "{asked:?}"
    );
    let listed: Value = reqwest::get(format!(
        "{}/v2/app/referrers/{}",
        dst_api.url(),
        image.digest
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let listed: Vec<&str> = listed["manifests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    assert_eq!(listed, [sbom.digest.as_str()]);
    assert!(!dst
        .seeder()
        .tags("app")
        .await
        .contains(&tag_of(&image.digest)));

    // API to a registry without it: the fallback index is written, with the source's
    // entries (artifact types included).
    let report = copy("all", &from, &format!("{}/app", plain.host())).await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");
    let entries = index_entries(&plain.seeder(), "app", &image.digest).await;
    let mut digests: Vec<&str> = entries
        .iter()
        .map(|e| e["digest"].as_str().unwrap())
        .collect();
    digests.sort();
    let mut expected = [sbom.digest.as_str(), cdx.digest.as_str()];
    expected.sort();
    assert_eq!(digests, expected);
    assert!(entries
        .iter()
        .all(|e| e["artifactType"] == SPDX || e["artifactType"] == CYCLONEDX));
}

#[tokio::test]
async fn planning_keeps_current_images_whose_referrers_may_be_missing() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let src_api = FaultProxy::start_with_referrers_api(&src.url()).await;
    let s = Seeder::new(src_api.url(), ferry_testbed::fixtures::SeedAuth::None);
    let signed = s.push_image("app", "signed", Style::Oci, &[400], 1).await;
    s.push_referrer("app", &signed, SPDX, 7).await;
    s.push_image("app", "plain", Style::Oci, &[300], 2).await;
    for tag in ["signed", "plain"] {
        let report = copy_app("none", &src_api.host(), tag, &dst.host()).await;
        assert_eq!(report.status, Status::Copied);
    }
    let plan_with = |referrers: &str| {
        SyncConfig::parse(&format!(
            "version: 1\ndefaults: {{referrers: {referrers}}}\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
            src_api.host(),
            dst.host()
        ))
        .unwrap()
    };
    let client = client_with(&[]);
    let aws = AwsClients::from_environment();
    for (referrers, jobs) in [("all", 1), ("none", 0)] {
        let config = plan_with(referrers);
        let plan = Planner::new(&config, &client, &aws, PlanOptions::default())
            .plan_source(&config.sources[0], Reason::Manual)
            .await
            .unwrap();
        assert_eq!(plan.jobs.len(), jobs, "{referrers}: {plan:?}");
        assert_eq!(plan.up_to_date.len(), 2 - jobs, "{referrers}: {plan:?}");
        if jobs == 1 {
            assert_eq!(
                plan.jobs[0].source.digest().map(|d| d.to_string()),
                Some(signed.digest.clone())
            );
            // The copy asks the destination only about the referrer, and brings it.
            let report = copier("all")
                .copy_image(&plan.jobs[0].request().unwrap())
                .await;
            assert_eq!(report.status, Status::Copied, "{report:#?}");
            assert_eq!(report.destinations[0].status, Status::UpToDate);
        }
    }
}

#[tokio::test]
async fn artifacts_are_pushed_after_their_image_and_the_fallback_index_after_them() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let dst_proxy = FaultProxy::start(&dst.url()).await;
    let s = src.seeder();
    let image = s.push_image("app", "1.0", Style::Oci, &[400], 1).await;
    let sbom = s.push_listed_referrer("app", &image, SPDX, 7).await;
    s.push_cosign_artifact("app", &image.digest, "sig", 8).await;

    let report = copy_app("all", &src.host(), "1.0", &dst_proxy.host()).await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");
    let puts: Vec<String> = dst_proxy
        .seen()
        .into_iter()
        .filter(|r| r.method == HttpMethod::PUT && r.path.contains("/manifests/"))
        .map(|r| r.path.rsplit('/').next().unwrap().to_string())
        .collect();
    let position = |reference: &str| {
        puts.iter()
            .position(|p| p == reference)
            .unwrap_or_else(|| panic!("{reference} not pushed: {puts:?}"))
    };
    let (tag, referrer, signature, index) = (
        position("1.0"),
        position(&sbom.digest),
        position(&format!("{}.sig", tag_of(&image.digest))),
        position(&tag_of(&image.digest)),
    );
    assert!(tag < referrer && tag < signature, "{puts:?}");
    assert!(referrer < index, "{puts:?}");
}

#[tokio::test]
async fn a_resync_of_a_current_multi_arch_image_brings_a_platform_referrer() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let (arm, _) = push_two_platform_app(&s).await;
    let config = app_mirror(&src.host(), &dst.host());
    let client = client_with(&[]);
    let plan = || plan_app(&config, &client);
    let first = plan().await;
    assert_eq!(first.jobs.len(), 1);
    assert_eq!(
        copier("all")
            .copy_image(&first.jobs[0].request().unwrap())
            .await
            .status,
        Status::Copied
    );
    assert_eq!(plan().await.up_to_date.len(), 1, "nothing to follow yet");

    // Provenance for one platform, pushed after the mirror was made.
    let provenance = s
        .push_listed_referrer("app", &arm, "application/vnd.in-toto+json", 9)
        .await;
    let again = plan().await;
    assert_eq!(again.jobs.len(), 1, "{again:?}");
    let report = copier("all")
        .copy_image(&again.jobs[0].request().unwrap())
        .await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");
    let d = dst.seeder();
    assert_eq!(
        raw(&d, "app", &provenance.digest).await,
        Some(provenance.raw)
    );
    assert_eq!(index_entries(&d, "app", &arm.digest).await.len(), 1);
    assert_eq!(plan().await.up_to_date.len(), 1, "all there now");
}

#[tokio::test]
async fn planning_a_current_signed_multi_arch_image_reads_no_manifest_where_pulls_are_metered() {
    // Docker Hub counts manifest GETs, not HEADs: the index whose platforms' artifacts a
    // current image's check needs is left for the copy to read, within the quota.
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let (_, index) = push_two_platform_app(&s).await;
    s.push_cosign_artifact("app", &index.digest, "sig", 11)
        .await;
    let hub = FaultProxy::start(&src.url()).await;
    hub.production(
        ferry_testbed::production::Production::default()
            .pull_quota(100, std::time::Duration::from_secs(3600)),
    );
    let config = app_mirror(&hub.host(), &dst.host());
    let client = client_with(&[]);
    let plan = || plan_app(&config, &client);
    let first = plan().await;
    assert_eq!(first.jobs.len(), 1);
    let report = copier("all")
        .copy_image(&first.jobs[0].request().unwrap())
        .await;
    assert_eq!(report.status, Status::Copied, "{report:#?}");

    let before = hub.seen().len();
    let again = plan().await;
    let gets: Vec<String> = hub.seen()[before..]
        .iter()
        .filter(|s| s.method == HttpMethod::GET && s.path.contains("/manifests/"))
        .map(|s| s.path.clone())
        .collect();
    assert!(gets.is_empty(), "manifest GETs while planning: {gets:?}");
    // Left to the copy, which finds everything there.
    assert_eq!(again.jobs.len(), 1, "{again:?}");
    assert!(again.jobs[0].hints.destinations_current);
    let report = copier("all")
        .copy_image(&again.jobs[0].request().unwrap())
        .await;
    assert_eq!(report.status, Status::UpToDate, "{report:#?}");
}
