//! The observing half of planning, against registries made of plain values: which requests
//! a plan makes (HEADs that registries do not count, GETs that they do, listings), and what
//! it makes of the answers. The decisions themselves are table-tested in `decide`; the
//! integration tests count the same requests against real registries.

use std::collections::{HashMap, HashSet};
use std::future::{ready, Future};
use std::sync::Mutex;

use bytes::Bytes;
use serde_json::{json, Value};

use super::*;
use crate::error::{Location, Operation};
use crate::manifest::Manifest;
use crate::registry::ReadRegistry;

const SOURCE: &str = "src.example/team/app";
const DEST: &str = "dst.example/team/app";

/// Registries as maps, recording every request as `"<VERB> <repository>[:<reference>]"`.
#[derive(Default)]
struct Registries {
    /// `host/repository` → reference (tag or digest) → manifest.
    repos: HashMap<String, HashMap<String, Manifest>>,
    /// Repositories whose manifest HEADs fail.
    failing: HashSet<String>,
    /// Hosts that count manifest GETs.
    metered: HashSet<String>,
    /// ECR repositories' tag listings, with digests.
    ecr: HashMap<String, Vec<TagInfo>>,
    asked: Mutex<Vec<String>>,
}

impl Registries {
    fn push(&mut self, repo: &str, tag: Option<&str>, manifest: &Manifest) {
        let refs = self.repos.entry(repo.to_string()).or_default();
        refs.insert(manifest.digest.to_string(), manifest.clone());
        if let Some(tag) = tag {
            refs.insert(tag.to_string(), manifest.clone());
        }
    }

    fn ask(&self, what: String) {
        self.asked.lock().unwrap().push(what);
    }

    fn asked(&self) -> Vec<String> {
        let mut asked = self.asked.lock().unwrap().clone();
        asked.sort();
        asked
    }

    fn count(&self, prefix: &str) -> usize {
        self.asked()
            .iter()
            .filter(|a| a.starts_with(prefix))
            .count()
    }

    fn at(image: &ImageRef) -> Location {
        Location {
            registry: image.registry().to_string(),
            repository: image.repository().to_string(),
        }
    }

    fn lookup(&self, image: &ImageRef, reference: &str) -> Option<Manifest> {
        self.repos
            .get(&image.repo_only().to_string())?
            .get(reference)
            .cloned()
    }
}

impl ReadRegistry for Registries {
    fn list_tags(&self, image: &ImageRef) -> impl Future<Output = Result<Vec<String>>> + Send {
        let repo = image.repo_only().to_string();
        self.ask(format!("LIST {repo}"));
        ready(match self.repos.get(&repo) {
            Some(refs) => {
                let mut tags: Vec<String> = refs
                    .keys()
                    .filter(|r| !r.starts_with("sha256:"))
                    .cloned()
                    .collect();
                tags.sort();
                Ok(tags)
            }
            None => Err(Error::RepositoryNotFound {
                at: Self::at(image),
                op: Operation::ListTags,
            }),
        })
    }

    fn head_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Option<ManifestHead>>> + Send {
        let repo = image.repo_only().to_string();
        self.ask(format!("HEAD {repo}:{reference}"));
        ready(match self.failing.contains(&repo) {
            true => Err(Error::Transient {
                at: Self::at(image),
                op: Operation::ReadManifest,
                detail: "connection reset".into(),
            }),
            false => Ok(self.lookup(image, reference).map(|m| ManifestHead {
                digest: m.digest,
                media_type: Some(m.media_type),
            })),
        })
    }

    fn get_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> impl Future<Output = Result<Manifest>> + Send {
        self.ask(format!("GET {}:{reference}", image.repo_only()));
        ready(
            self.lookup(image, reference)
                .ok_or_else(|| Error::ManifestNotFound {
                    at: Self::at(image),
                    reference: reference.to_string(),
                }),
        )
    }

    fn referrers(
        &self,
        image: &ImageRef,
        subject: &Digest,
        _artifact_type: Option<&str>,
    ) -> impl Future<Output = Result<Option<Vec<Value>>>> + Send {
        self.ask(format!("REFERRERS {}:{subject}", image.repo_only()));
        // Registries here have no referrers API, as docker-registry has none.
        ready(Ok(None))
    }

    fn meters_pulls(&self, registry: &str) -> bool {
        self.metered.contains(registry)
    }
}

/// Planners take their observer by value; these registries outlive the planner to be
/// asked what was requested.
impl Observe for &Registries {
    type Registry = Registries;

    fn registry(&self) -> &Registries {
        self
    }

    fn ecr_repositories(
        &self,
        _account: &str,
        _region: &str,
        _prefix: Option<&str>,
    ) -> impl Future<Output = Result<Vec<String>>> + Send {
        self.ask("DESCRIBE repositories".into());
        let mut names: Vec<String> = self.ecr.keys().cloned().collect();
        names.sort();
        ready(Ok(names))
    }

    fn ecr_tags(
        &self,
        _account: &str,
        _region: &str,
        repository: &str,
    ) -> impl Future<Output = Result<Vec<TagInfo>>> + Send {
        self.ask(format!("DESCRIBE images {repository}"));
        ready(Ok(self.ecr.get(repository).cloned().unwrap_or_default()))
    }

    fn catalog(&self, host: &str) -> impl Future<Output = Result<Vec<String>>> + Send {
        self.ask(format!("CATALOG {host}"));
        ready(Ok(Vec::new()))
    }
}

fn manifest(doc: Value) -> Manifest {
    let raw = Bytes::from(serde_json::to_vec(&doc).unwrap());
    let digest = Digest::sha256_of(&raw);
    Manifest::parse(raw, digest, None).unwrap()
}

/// An image manifest told apart from others by `n`.
fn image(n: u8) -> Manifest {
    manifest(json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": Digest::sha256_of(&[n]).to_string(),
            "size": 1
        },
        "layers": []
    }))
}

fn index_of(children: &[&Manifest]) -> Manifest {
    let manifests: Vec<Value> = children
        .iter()
        .map(|c| {
            json!({
                "mediaType": c.media_type.as_str(),
                "digest": c.digest.to_string(),
                "size": c.raw.len(),
                "platform": {"architecture": "amd64", "os": "linux"}
            })
        })
        .collect();
    manifest(json!({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": manifests
    }))
}

fn config(extra: &str) -> SyncConfig {
    let text = format!(
        "version: 1\n{extra}sources:\n  - name: s\n    registry: {{host: src.example}}\n    destinations:\n      - target: \"dst.example/{{repo}}\"\n"
    );
    SyncConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn tags(n: usize) -> Vec<String> {
    (0..n).map(|i| format!("v{i}")).collect()
}

/// A source repository holding `tags`, each its own image.
fn source_with(tags: &[String]) -> Registries {
    let mut registries = Registries::default();
    for (i, tag) in tags.iter().enumerate() {
        registries.push(SOURCE, Some(tag), &image(i as u8));
    }
    registries
}

fn options(prefetch: bool) -> PlanOptions {
    PlanOptions {
        prefetch_manifests: prefetch,
        ..PlanOptions::default()
    }
}

async fn plan(config: &SyncConfig, registries: &Registries, options: PlanOptions) -> Plan {
    Planner::observing(config, registries, options)
        .plan_repository(&config.sources[0], "team/app", Reason::Manual)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_migration_lists_the_destination_once_and_asks_no_destination_tag() {
    let registries = source_with(&tags(10));
    let plan = plan(&config(""), &registries, options(false)).await;
    assert_eq!(plan.jobs.len(), 10);
    assert!(plan.jobs.iter().all(|j| j.hints.destinations_absent));
    assert_eq!(registries.count(&format!("LIST {DEST}")), 1);
    assert_eq!(registries.count(&format!("HEAD {DEST}")), 0);
    // The source's digests are pinned by HEADs, which no registry counts as pulls.
    assert_eq!(registries.count(&format!("HEAD {SOURCE}")), 10);
    assert_eq!(registries.count("GET"), 0);
}

#[tokio::test]
async fn a_migration_copied_in_this_process_reads_each_manifest_once_instead_of_a_head() {
    let registries = source_with(&tags(10));
    let plan = plan(&config(""), &registries, options(true)).await;
    assert_eq!(plan.jobs.len(), 10);
    assert!(plan.jobs.iter().all(|j| j.hints.manifest.is_some()));
    assert_eq!(registries.count(&format!("GET {SOURCE}")), 10);
    assert_eq!(registries.count(&format!("HEAD {SOURCE}")), 0);
}

#[tokio::test]
async fn a_resync_of_current_images_sends_nothing_and_reads_no_manifest() {
    let names = tags(10);
    let mut registries = source_with(&names);
    for (i, tag) in names.iter().enumerate() {
        registries.push(DEST, Some(tag), &image(i as u8));
    }
    let plan = plan(&config(""), &registries, options(true)).await;
    assert!(plan.jobs.is_empty(), "{:?}", plan.jobs);
    assert_eq!(plan.up_to_date.len(), 10);
    // One HEAD per tag on each side (asked together, one round trip), no GET even where a
    // copy would follow in this process.
    assert_eq!(registries.count(&format!("HEAD {DEST}")), 10);
    assert_eq!(registries.count(&format!("HEAD {SOURCE}")), 10);
    assert_eq!(registries.count("GET"), 0);
}

#[tokio::test]
async fn a_few_tags_are_asked_one_by_one_rather_than_listing_the_destination() {
    let registries = source_with(&tags(2));
    let plan = plan(&config(""), &registries, options(false)).await;
    assert_eq!(plan.jobs.len(), 2);
    assert_eq!(registries.count(&format!("LIST {DEST}")), 0);
    assert_eq!(registries.count(&format!("HEAD {DEST}")), 2);
    // A HEAD that found nothing tells the copy it need not ask again.
    assert!(plan.jobs.iter().all(|j| j.hints.destinations_absent));
}

#[tokio::test]
async fn a_destination_that_cannot_be_asked_is_left_to_the_copy() {
    let mut registries = source_with(&tags(1));
    registries.failing.insert(DEST.to_string());
    let plan = plan(&config(""), &registries, options(false)).await;
    assert_eq!(plan.jobs.len(), 1);
    assert!(!plan.jobs[0].hints.destinations_absent);
    assert_eq!(
        plan.jobs[0].destinations[0].reference.to_string(),
        format!("{DEST}:v0")
    );
}

#[tokio::test]
async fn a_tag_gone_between_listing_and_reading_is_skipped_not_failed() {
    let registries = source_with(&tags(1));
    let config = config("");
    let planner = Planner::observing(&config, &registries, options(false));
    let source = &planner.config.sources[0];
    let gone = TagInfo::named("vanished");
    let plan = planner
        .plan_tags(
            source,
            "src.example",
            "team/app",
            vec![gone],
            Reason::Manual,
        )
        .await
        .unwrap();
    assert!(plan.jobs.is_empty());
    assert_eq!(plan.skipped.len(), 1, "{:?}", plan.skipped);
    assert!(
        plan.skipped[0].image.ends_with(":vanished"),
        "{:?}",
        plan.skipped
    );
}

#[tokio::test]
async fn digests_from_an_ecr_listing_need_no_source_head() {
    let mut registries = Registries::default();
    let first = image(1);
    registries.ecr.insert(
        "team/app".into(),
        vec![TagInfo {
            name: "v1".into(),
            digest: Some(first.digest.to_string()),
            pushed_at: Some(1),
        }],
    );
    let config = SyncConfig::parse(
        "version: 1\nsources:\n  - name: s\n    ecr: {account: \"123456789012\", region: eu-west-1}\n    destinations:\n      - target: \"dst.example/{repo}\"\n",
    )
    .unwrap();
    let plan = plan(&config, &registries, options(false)).await;
    assert_eq!(plan.jobs.len(), 1);
    assert_eq!(plan.jobs[0].source.digest(), Some(&first.digest));
    assert_eq!(registries.count("HEAD 123456789012"), 0);
    assert_eq!(registries.count("DESCRIBE images team/app"), 1);
}

/// A current image whose signature has not reached the destination.
/// The cosign signature tag of `top`, and the signature it holds.
fn signature_of(top: &Manifest) -> (String, Manifest) {
    let tag =
        crate::referrers::tags::cosign_tag(&top.digest, crate::referrers::CosignSuffix::ALL[0]);
    (tag, image(9))
}

fn signed_at_source_only(top: &Manifest) -> Registries {
    let mut registries = Registries::default();
    registries.push(SOURCE, Some("v1"), top);
    registries.push(DEST, Some("v1"), top);
    let (sig_tag, signature) = signature_of(top);
    registries.push(SOURCE, Some(&sig_tag), &signature);
    registries
}

/// A signed index of `child`, current at the destination with its signature; pulls counted
/// at the source if `metered`.
fn signed_index_current_everywhere(top: &Manifest, child: &Manifest, metered: bool) -> Registries {
    let mut registries = signed_at_source_only(top);
    registries.push(SOURCE, None, child);
    let (sig_tag, signature) = signature_of(top);
    registries.push(DEST, Some(&sig_tag), &signature);
    if metered {
        registries.metered.insert("src.example".into());
    }
    registries
}

#[tokio::test]
async fn a_current_image_whose_signature_lags_gets_a_job_that_checks_artifacts() {
    let top = image(1);
    let registries = signed_at_source_only(&top);
    let plan = plan(&config(""), &registries, options(false)).await;
    assert!(plan.up_to_date.is_empty());
    assert_eq!(plan.jobs.len(), 1, "{:?}", plan.jobs);
    assert!(plan.jobs[0].hints.destinations_current);
}

#[tokio::test]
async fn a_current_signed_index_is_read_to_check_its_platforms_unless_pulls_are_metered() {
    let child = image(2);
    let top = index_of(&[&child]);
    // Where the signature is current too, the platform manifests still need a look.
    let registries = signed_index_current_everywhere(&top, &child, false);
    let unmetered = plan(&config(""), &registries, options(false)).await;
    assert_eq!(unmetered.up_to_date.len(), 1, "{:?}", unmetered.jobs);
    assert_eq!(registries.count(&format!("GET {SOURCE}:{}", top.digest)), 1);

    let metered = signed_index_current_everywhere(&top, &child, true);
    let plan = plan(&config(""), &metered, options(false)).await;
    // The planner leaves the platforms to the copy, which reads the index within the quota.
    assert_eq!(metered.count("GET"), 0);
    assert_eq!(plan.jobs.len(), 1);
    assert!(plan.jobs[0].hints.destinations_current);
}

#[tokio::test]
async fn without_referrers_a_current_image_costs_no_artifact_check() {
    let top = image(1);
    let registries = signed_at_source_only(&top);
    let plan = plan(
        &config("defaults:\n  referrers: none\n"),
        &registries,
        options(false),
    )
    .await;
    assert_eq!(plan.up_to_date.len(), 1);
    assert_eq!(registries.count("REFERRERS"), 0);
    assert_eq!(registries.count("HEAD src.example/team/app:sha256-"), 0);
}

#[tokio::test]
async fn a_mirror_plans_the_removal_of_what_the_source_lost_from_the_same_listing() {
    let names = tags(10);
    let mut registries = source_with(&names);
    for (i, tag) in names
        .iter()
        .chain(&["v10".into(), "v11".into()])
        .enumerate()
    {
        registries.push(DEST, Some(tag), &image(i as u8));
    }
    let plan = plan(
        &config("defaults: {prune: true}\n"),
        &registries,
        options(false),
    )
    .await;
    assert!(plan.jobs.is_empty(), "{:?}", plan.jobs);
    assert_eq!(plan.up_to_date.len(), 10);
    assert_eq!(plan.removals.len(), 1, "one job for the repository");
    let job = &plan.removals[0];
    assert_eq!(job.destination.to_string(), DEST);
    assert_eq!(job.source.to_string(), SOURCE);
    let removed: Vec<&str> = job.tags.iter().map(|t| t.tag.as_str()).collect();
    assert_eq!(removed, ["v10", "v11"]);
    assert!(job
        .tags
        .iter()
        .all(|t| t.why == RemovalReason::GoneFromSource && t.source_tag == t.tag));
    // The listing that finds what to remove also serves the copy's planning.
    assert_eq!(registries.count(&format!("LIST {DEST}")), 1);
}

#[tokio::test]
async fn a_prune_past_its_bound_removes_nothing_and_says_so() {
    let mut registries = source_with(&tags(1));
    for (i, tag) in tags(10).iter().enumerate() {
        registries.push(DEST, Some(tag), &image(i as u8));
    }
    let refused = plan(
        &config("defaults: {prune: true}\n"),
        &registries,
        options(false),
    )
    .await;
    assert!(refused.removals.is_empty(), "{:?}", refused.removals);
    assert_eq!(
        refused.refused_prunes,
        [prune::RefusedPrune {
            destination: DEST.into(),
            removals: 9,
            in_domain: 10,
            prune_max: prune::PruneMax::Percent(50),
        }]
    );
    // A larger bound lets the same prune through.
    let larger = plan(
        &config("defaults: {prune: true, prune_max: 100%}\n"),
        &registries,
        options(false),
    )
    .await;
    assert_eq!(larger.removals[0].tags.len(), 9);
}

#[tokio::test]
async fn without_prune_no_destination_is_listed_for_a_few_tags() {
    let mut registries = source_with(&tags(2));
    registries.push(DEST, Some("gone"), &image(9));
    let plan = plan(&config(""), &registries, options(false)).await;
    assert!(plan.removals.is_empty());
    assert_eq!(registries.count(&format!("LIST {DEST}")), 0);
}

fn at(time: &str) -> PlanOptions {
    PlanOptions {
        now: time.parse().unwrap(),
        ..PlanOptions::default()
    }
}

/// Two destinations of one source, the second expiring at the end of 2027-06-30.
fn two_destinations(second: &str) -> SyncConfig {
    let text = format!(
        "version: 1\nsources:\n  - name: s\n    registry: {{host: src.example}}\n    destinations:\n      - target: \"dst.example/{{repo}}\"\n      - {{target: \"old.example/{{repo}}\", expires: 2027-06-30{second}}}\n"
    );
    SyncConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

#[tokio::test]
async fn an_expired_destination_gets_no_copies_and_if_it_prunes_loses_all_it_mirrored() {
    let names = tags(3);
    let mut registries = source_with(&names);
    // The old destination has the first two tags (and one kept by hand), not the third.
    for (i, tag) in names.iter().take(2).enumerate() {
        registries.push("old.example/team/app", Some(tag), &image(i as u8));
    }
    registries.push("old.example/team/app", Some("hand-kept"), &image(9));

    // On its last day it still gets its copy, and nothing is removed.
    let before = plan(
        &two_destinations(", prune: true, keep: [hand-kept]"),
        &registries,
        at("2027-06-30T12:00:00Z"),
    )
    .await;
    let v2 = before
        .jobs
        .iter()
        .find(|j| j.job.source.tag() == Some("v2"))
        .unwrap();
    assert_eq!(v2.job.destinations.len(), 2);
    assert!(before.removals.is_empty());

    // The day after: only the live destination; nothing removed where prune is off.
    let asked_old = || registries.count("LIST old.example") + registries.count("HEAD old.example");
    let listed = asked_old();
    let after = plan(
        &two_destinations(""),
        &registries,
        at("2027-07-01T00:00:00Z"),
    )
    .await;
    assert_eq!(after.jobs.len(), 3);
    for job in &after.jobs {
        let to: Vec<String> = job
            .job
            .destinations
            .iter()
            .map(|d| d.reference.repo_only().to_string())
            .collect();
        assert_eq!(to, [DEST]);
    }
    assert!(after.removals.is_empty());
    assert_eq!(asked_old(), listed, "an expired destination is not asked");

    // Pruning, it loses every tag in its domain, past the bound (the date asked for it),
    // and the tag kept by a pattern stays.
    let pruned = plan(
        &two_destinations(", prune: true, keep: [hand-kept]"),
        &registries,
        at("2027-07-01T00:00:00Z"),
    )
    .await;
    assert!(pruned.refused_prunes.is_empty());
    assert_eq!(pruned.removals.len(), 1);
    let job = &pruned.removals[0];
    assert_eq!(job.destination.to_string(), "old.example/team/app");
    let removed: Vec<(&str, RemovalReason)> =
        job.tags.iter().map(|t| (t.tag.as_str(), t.why)).collect();
    assert_eq!(
        removed,
        [
            ("v0", RemovalReason::Expired),
            ("v1", RemovalReason::Expired)
        ]
    );
}

#[tokio::test]
async fn an_expired_source_is_not_even_listed_and_its_images_entries_expire_one_by_one() {
    let registries = source_with(&tags(2));
    let text = "version: 1\nsources:\n  - name: s\n    registry: {host: src.example}\n    expires: 2027-01-31T00:00:00Z\n    destinations: [{target: \"dst.example/{repo}\", prune: true}]\n";
    let config = SyncConfig::parse(text).unwrap();
    let planned = plan(&config, &registries, at("2027-02-01T00:00:00Z")).await;
    assert!(planned.jobs.is_empty());
    assert_eq!(registries.count(&format!("LIST {SOURCE}")), 0);
    assert_eq!(registries.count(&format!("HEAD {SOURCE}")), 0);

    let mut registries = source_with(&tags(2));
    registries.push(DEST, Some("v0"), &image(0));
    let text = "version: 1\nsources:\n  - name: s\n    images:\n      - {image: \"src.example/team/app:v0\", expires: 2027-01-31}\n      - src.example/team/app:v1\n    destinations: [{target: \"dst.example/{repo}\", prune: true}]\n";
    let config = SyncConfig::parse(text).unwrap();
    let mut planned = Plan::default();
    Planner::observing(&config, &registries, at("2027-02-10T00:00:00Z"))
        .plan_source_each(&config.sources[0], Reason::Manual, |p| planned.merge(p))
        .await
        .unwrap();
    let copied: Vec<String> = planned
        .jobs
        .iter()
        .map(|j| j.job.source.tag().unwrap().to_string())
        .collect();
    assert_eq!(copied, ["v1"]);
    let removed: Vec<(String, &str, RemovalReason)> = planned
        .removals
        .iter()
        .flat_map(|r| {
            r.tags
                .iter()
                .map(|t| (r.destination.to_string(), t.tag.as_str(), t.why))
        })
        .collect();
    assert_eq!(removed, [(DEST.to_string(), "v0", RemovalReason::Expired)]);
    // Once removed, it is not planned again.
    let gone = source_with(&tags(2));
    let mut again = Plan::default();
    Planner::observing(&config, &gone, at("2027-02-10T00:00:00Z"))
        .plan_source_each(&config.sources[0], Reason::Manual, |p| again.merge(p))
        .await
        .unwrap();
    assert!(again.removals.is_empty(), "{:?}", again.removals);
    assert_eq!(planned.expiry.len(), 1);
    assert!(planned.expiry[0].expired);
    assert_eq!(planned.expiry[0].mapping, "image src.example/team/app:v0");

    // Ten days earlier it is still copied, and warned about.
    let mut early = Plan::default();
    Planner::observing(&config, &registries, at("2027-01-21T00:00:00Z"))
        .plan_source_each(&config.sources[0], Reason::Manual, |p| early.merge(p))
        .await
        .unwrap();
    assert!(early.removals.is_empty());
    assert_eq!(early.expiry[0].days_left, Some(11));
    assert_eq!(
        early.expiry[0].to_string(),
        "image src.example/team/app:v0 of source s expires in 11 days (2027-01-31)"
    );
}

#[tokio::test]
async fn verify_weighs_every_destination_for_extras_and_plans_no_removal() {
    let mut registries = source_with(&tags(2));
    for (i, tag) in tags(4).iter().enumerate() {
        registries.push(DEST, Some(tag), &image(i as u8));
    }
    let options = PlanOptions {
        check_destinations: false,
        extras: true,
        ..PlanOptions::default()
    };
    for extra in ["", "defaults: {prune: true}\n"] {
        let plan = plan(&config(extra), &registries, options.clone()).await;
        assert!(plan.removals.is_empty() && plan.refused_prunes.is_empty());
        let extras: Vec<&str> = plan.extras.iter().map(|e| e.destination.as_str()).collect();
        assert_eq!(
            extras,
            [format!("{DEST}:v2"), format!("{DEST}:v3")],
            "{extra}"
        );
        assert_eq!(plan.extras[0].source, format!("{SOURCE}:v2"));
        // Every destination of every tag is verified: none is left out as current.
        assert_eq!(plan.jobs.len(), 2);
    }
}

#[tokio::test]
async fn an_expired_destination_is_verified_for_extras_against_what_the_source_holds() {
    let names = tags(2);
    let mut registries = source_with(&names);
    for (i, tag) in tags(3).iter().enumerate() {
        registries.push("old.example/team/app", Some(tag), &image(i as u8));
    }
    let options = PlanOptions {
        check_destinations: false,
        extras: true,
        ..at("2027-07-01T00:00:00Z")
    };
    let config = two_destinations(", prune: true");
    let plan = plan(&config, &registries, options).await;
    // Only v2 is gone from the source; v0 and v1 are the expired mapping's, not extras.
    let extras: Vec<&str> = plan.extras.iter().map(|e| e.destination.as_str()).collect();
    assert_eq!(extras, ["old.example/team/app:v2"]);
    assert!(plan.removals.is_empty());
}
