//! Planning: from the configuration and what the sources hold, the copy jobs to run.
//!
//! A job is one source image (pinned to the digest seen while planning) and every
//! destination it goes to. The planner drops destinations that already hold that digest
//! when asking is cheap (one manifest HEAD, which registries do not count as a pull), so a
//! re-sync of an unchanged registry sends no messages at all. The same code plans for the
//! planner Lambda, `ferry plan` and `ferry sync`.

pub mod decide;
pub mod enumerate;
pub mod observe;
pub mod prune;

#[cfg(test)]
mod flow_tests;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use futures::{stream, StreamExt};
use serde::Serialize;

use crate::aws::AwsClients;
use crate::config::{Source, SourceKind, SyncConfig};
use crate::copy::PlanHints;
use crate::digest::Digest;
use crate::ecr_host::EcrHost;
use crate::error::{Error, Result};
use crate::event::EcrImage;
use crate::filter::TagInfo;
use crate::message::{Reason, RemovalReason, RemoveJob, RepositoryTask, TagRemoval};
use crate::reference::ImageRef;
use crate::registry::{ManifestHead, ReadRegistry, RegistryClient};
pub use decide::PlannedJob;
pub use decide::Skipped;
use decide::{Seen, TagPlan};
pub use observe::{Live, Observe};

#[derive(Debug, Clone)]
pub struct PlanOptions {
    /// Leave out destinations already holding the source digest (asked with a tag listing
    /// or a manifest HEAD).
    pub check_destinations: bool,
    /// Registry requests in flight at once while planning.
    pub concurrency: usize,
    /// Read (GET) the manifest of an image that is going to be copied instead of a HEAD,
    /// and keep it with the job for a copy in this same process (`ferry sync`), which then
    /// need not read it again. Off for plans that are only shown or sent to a queue:
    /// registries such as Docker Hub count a GET as a pull, and a HEAD as none.
    pub prefetch_manifests: bool,
    /// The time expiry dates are read against: when planning started.
    pub now: jiff::Timestamp,
    /// Weigh every destination, pruned or not, and report the tags in its domain that the
    /// source lacks as [`Plan::extras`] instead of planning removals (`ferry verify`).
    pub extras: bool,
    /// A deep check: jobs for every image (with `check_destinations` off) that trust no
    /// destination tag and send whatever lies missing under it ([`crate::message::CopyJob::repair`]).
    pub repair: bool,
}

impl Default for PlanOptions {
    fn default() -> Self {
        PlanOptions {
            check_destinations: true,
            concurrency: 16,
            prefetch_manifests: false,
            now: jiff::Timestamp::now(),
            extras: false,
            repair: false,
        }
    }
}

/// From this many tags of one repository, planning lists each destination repository's tags
/// once instead of asking for every tag with a HEAD: in a migration most tags are missing,
/// and one listing answers for all of them. Fewer tags (an ECR push names one) are asked
/// for one by one, since listing a big destination repository would cost more.
const LIST_DESTINATIONS_FROM: usize = 8;

/// Repositories of one source planned at the same time: enough that at a distance the
/// round trips of one repository's listings and HEADs overlap others' (see the wan run in
/// bench/results), few enough that `concurrency` per repository stays within what one
/// registry is asked at once.
pub const REPOSITORIES_AT_ONCE: usize = 8;

/// Manifests read while planning are kept for the copy up to this many bytes in all, so the
/// plan of a huge registry stays small; beyond it the copy reads them again.
const PREFETCH_BUDGET_BYTES: usize = 32 << 20;

/// What planning found.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Plan {
    pub jobs: Vec<PlannedJob>,
    /// Source images whose every destination already holds them.
    pub up_to_date: Vec<String>,
    /// Images left out, and why (a tag that names no image under a split, a tag gone
    /// between listing and reading).
    pub skipped: Vec<Skipped>,
    pub repositories: usize,
    pub tags: usize,
    /// Tags to remove from destinations that prune, one job per destination repository.
    pub removals: Vec<RemoveJob>,
    /// Prunes their bound refused: nothing is removed from these repositories.
    pub refused_prunes: Vec<prune::RefusedPrune>,
    /// Mappings expired (nothing copied) or expiring soon, once per source planned.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub expiry: Vec<crate::expiry::ExpiryNotice>,
    /// With [`PlanOptions::extras`]: destination tags in a domain whose source tag is gone.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub extras: Vec<prune::Extra>,
}

impl Plan {
    pub fn merge(&mut self, other: Plan) {
        self.jobs.extend(other.jobs);
        self.up_to_date.extend(other.up_to_date);
        self.skipped.extend(other.skipped);
        self.removals.extend(other.removals);
        self.refused_prunes.extend(other.refused_prunes);
        self.expiry.extend(other.expiry);
        self.extras.extend(other.extras);
        self.repositories += other.repositories;
        self.tags += other.tags;
    }
}

/// One source repository's destinations weighed against it.
#[derive(Default)]
struct WeighedRepository {
    removals: Vec<RemoveJob>,
    refused: Vec<prune::RefusedPrune>,
    extras: Vec<prune::Extra>,
    /// The destination repositories listed, for the copy's planning.
    listed: DestinationTags,
}

/// Plans from what `O` observes: the registries and ECR's API ([`Live`]), or plain values
/// in unit tests.
pub struct Planner<'a, O: Observe = Live<'a>> {
    config: &'a SyncConfig,
    observe: O,
    options: PlanOptions,
    /// Bytes of manifests kept with jobs so far (see [`PREFETCH_BUDGET_BYTES`]).
    prefetched: AtomicUsize,
    /// Source tag lists, to tell which current images have signatures or referrers tags.
    facts: Arc<crate::referrers::RegistryFacts>,
    /// Source repositories (by name) and whether their listing holds any artifact tag.
    artifact_repos: std::sync::Mutex<HashMap<String, bool>>,
}

/// A source's registry host and, for ECR, its account and region.
struct SourceRegistry {
    host: String,
    ecr: Option<(String, String)>,
}

impl<'a> Planner<'a, Live<'a>> {
    pub fn new(
        config: &'a SyncConfig,
        registry: &'a RegistryClient,
        aws: &'a AwsClients,
        options: PlanOptions,
    ) -> Self {
        Planner::observing(config, Live { registry, aws }, options)
    }
}

impl<'a, O: Observe> Planner<'a, O> {
    /// A planner that asks `observe` what the registries hold.
    pub fn observing(config: &'a SyncConfig, observe: O, options: PlanOptions) -> Self {
        Planner {
            config,
            observe,
            options,
            prefetched: AtomicUsize::new(0),
            facts: Arc::new(crate::referrers::RegistryFacts::new()),
            artifact_repos: Default::default(),
        }
    }

    /// Share what is known of registries with a copier in the same process: the source
    /// tag lists planning reads serve the copy's search for signatures too.
    pub fn with_facts(mut self, facts: Arc<crate::referrers::RegistryFacts>) -> Self {
        self.facts = facts;
        self
    }

    fn source_registry(&self, source: &Source) -> Result<SourceRegistry> {
        match &source.kind {
            SourceKind::Ecr {
                account, region, ..
            } => {
                let (account, region) = self.config.ecr_account_region(account, region);
                let account = account
                    .map(str::to_string)
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "source {}: ecr.account is not set and ferry's own account is not known (set FERRY_ACCOUNT_ID or defaults.account)",
                            source.name
                        ))
                    })?;
                let region = region.map(str::to_string).ok_or_else(|| {
                    Error::Config(format!(
                        "source {}: ecr.region is not set and AWS_REGION is unknown",
                        source.name
                    ))
                })?;
                Ok(SourceRegistry {
                    host: EcrHost::new(&account, &region).to_string(),
                    ecr: Some((account, region)),
                })
            }
            SourceKind::Registry { host, .. } => Ok(SourceRegistry {
                host: host.clone(),
                ecr: None,
            }),
            SourceKind::Images(_) => Ok(SourceRegistry {
                host: String::new(),
                ecr: None,
            }),
        }
    }

    /// The repositories of a source that pass its filter. Image lists have none: they are
    /// planned whole by [`Planner::plan_source`].
    pub async fn repositories(&self, source: &Source) -> Result<Vec<String>> {
        let registry_of_source = self.source_registry(source)?;
        let names = match (&source.kind, &registry_of_source.ecr) {
            (
                SourceKind::Ecr {
                    repositories: Some(list),
                    ..
                },
                _,
            )
            | (
                SourceKind::Registry {
                    repositories: Some(list),
                    ..
                },
                _,
            ) => list.clone(),
            (SourceKind::Ecr { prefix, .. }, Some((account, region))) => {
                self.observe
                    .ecr_repositories(account, region, prefix.as_deref())
                    .await?
            }
            (SourceKind::Registry { host, .. }, _) => self.observe.catalog(host).await?,
            _ => Vec::new(),
        };
        Ok(names
            .into_iter()
            .filter(|n| source.repositories.matches(n))
            .collect())
    }

    /// One planning task per repository: the fan-out that keeps each planner invocation
    /// far inside Lambda's 15 minutes however large the registry.
    pub async fn repository_tasks(
        &self,
        source: &Source,
        reason: Reason,
        dry_run: bool,
    ) -> Result<Vec<RepositoryTask>> {
        Ok(self
            .repositories(source)
            .await?
            .into_iter()
            .map(|repository| RepositoryTask {
                source_name: source.name.clone(),
                repository,
                reason,
                dry_run,
                repair: self.options.repair,
            })
            .collect())
    }

    /// Plan a whole source in this call.
    pub async fn plan_source(&self, source: &Source, reason: Reason) -> Result<Plan> {
        let mut plan = Plan::default();
        self.plan_source_each(source, reason, |part| plan.merge(part))
            .await?;
        Ok(plan)
    }

    /// Plan a whole source, handing each repository's plan to `each` as soon as it is made
    /// (in the source's order), so that a caller in the same process can copy while the
    /// rest is planned. The first failure ends planning and is returned.
    pub async fn plan_source_each(
        &self,
        source: &Source,
        reason: Reason,
        mut each: impl FnMut(Plan),
    ) -> Result<()> {
        // Said once per source, first; the caller shows or logs them.
        let expiry = crate::expiry::notices(source, self.options.now);
        if !expiry.is_empty() {
            each(Plan {
                expiry,
                ..Plan::default()
            });
        }
        if let SourceKind::Images(images) = &source.kind {
            each(self.plan_images(source, images, reason).await?);
            return Ok(());
        }
        // A few repositories at a time, so that a repository's last tags do not leave the
        // registries idle (each repository has `concurrency` requests in flight at most).
        let repositories = self.repositories(source).await?;
        let mut parts = stream::iter(&repositories)
            .map(|repository| self.plan_repository(source, repository, reason))
            .buffered(REPOSITORIES_AT_ONCE);
        while let Some(part) = parts.next().await {
            each(part?);
        }
        Ok(())
    }

    /// Plan one repository of a source.
    pub async fn plan_repository(
        &self,
        source: &Source,
        repository: &str,
        reason: Reason,
    ) -> Result<Plan> {
        let registry_of_source = self.source_registry(source)?;
        let repo = ImageRef::new(&registry_of_source.host, repository, None, None)?;
        let live = self.live(source);
        // Every mapping expired: the source is not asked (it may be gone too); only what
        // destinations that prune must lose is planned. Extras are weighed against it.
        let tags = match live.destinations.is_empty() && !self.options.extras {
            true => Vec::new(),
            false => match &registry_of_source.ecr {
                Some((account, region)) => {
                    self.observe.ecr_tags(account, region, repository).await?
                }
                None => enumerate::registry_tags(self.registry(), &repo).await?,
            },
        };
        // Checking up-to-date images for signatures reads this same listing.
        self.facts
            .remember_tags(&repo, tags.iter().map(|t| t.name.clone()));
        let held: HashSet<String> = tags.iter().map(|t| t.name.clone()).collect();
        let weighed = self
            .plan_removals(source, &registry_of_source.host, repository, &held, reason)
            .await?;
        let selected = live.tags.select(tags);
        let mut plan = self
            .plan_tags_listed(
                &live,
                &registry_of_source.host,
                repository,
                selected,
                reason,
                weighed.listed,
            )
            .await?;
        plan.repositories = 1;
        plan.removals = weighed.removals;
        plan.refused_prunes = weighed.refused;
        plan.extras = weighed.extras;
        Ok(plan)
    }

    /// `source` with only the destinations that have not expired (itself when none has).
    fn live<'s>(&self, source: &'s Source) -> std::borrow::Cow<'s, Source> {
        let now = self.options.now;
        if !source.destinations.iter().any(|d| source.lapsed(d, now)) {
            return std::borrow::Cow::Borrowed(source);
        }
        std::borrow::Cow::Owned(Source {
            destinations: source
                .destinations
                .iter()
                .filter(|d| !source.lapsed(d, now))
                .cloned()
                .collect(),
            ..source.clone()
        })
    }

    /// Plan the one image an ECR push names, for every source that covers it. A push of
    /// a signature, attestation, SBOM or fallback index tag, or an untagged push of a
    /// manifest with a `subject` (a referrer, as ECR's referrers API takes them), is an
    /// artifact that arrived after its image: see [`Planner::plan_late_artifact`].
    pub async fn plan_push(&self, push: &EcrImage) -> Result<Plan> {
        let Some(pushed) = &push.tag else {
            return self.plan_untagged_push(push).await;
        };
        if let Some(subject) = crate::referrers::tags::subject_of(pushed) {
            return self.plan_late_artifact(push, &subject).await;
        }
        let mut plan = Plan::default();
        for source in &self.config.sources {
            if !self.covers(source, push)? {
                continue;
            }
            let source = self.live(source);
            if source.destinations.is_empty() {
                continue;
            }
            let tag = TagInfo {
                name: pushed.clone(),
                digest: Some(push.digest.clone()),
                pushed_at: None,
            };
            let host = push.host().to_string();
            plan.merge(
                self.plan_tags(&source, &host, &push.repository, vec![tag], Reason::Push)
                    .await?,
            );
        }
        Ok(plan)
    }

    /// An untagged push: a referrer (its manifest names a `subject`) follows its subject;
    /// anything else (a platform manifest of an index, pushed before the index) is nothing
    /// to mirror on its own, and is skipped, saying so.
    async fn plan_untagged_push(&self, push: &EcrImage) -> Result<Plan> {
        let digest: Digest = push.digest.parse().map_err(|_| {
            Error::Config(format!(
                "ECR event: image-digest {:?} is not a digest",
                push.digest
            ))
        })?;
        let pushed = ImageRef::new(
            &push.host().to_string(),
            &push.repository,
            None,
            Some(digest),
        )?;
        let mut covered = false;
        for source in &self.config.sources {
            covered |= self.covers(source, push)?;
        }
        if !covered {
            return Ok(Plan::default());
        }
        // A GET (ECR counts no pulls): only the manifest says whether it has a subject.
        let manifest = self.registry().get_manifest(&pushed, &push.digest).await?;
        match manifest.subject.as_ref() {
            Some(subject) => self.plan_late_artifact(push, &subject.digest).await,
            None => Ok(Plan {
                skipped: vec![Skipped {
                    image: pushed.to_string(),
                    reason: "an untagged manifest without a subject (such as a platform manifest of an index): it is copied with what references it".into(),
                }],
                ..Plan::default()
            }),
        }
    }

    /// An artifact of `subject` pushed after its image (`cosign sign` a few seconds after
    /// the push, an SBOM attached by digest): the tags of the source repository that point
    /// at `subject` are planned as a sync plans them, so that a destination holding the
    /// image gets a job that copies only its missing artifacts (after the image, as
    /// always), and one lacking the image gets both. A subject no tag points at (a platform
    /// manifest of an index) is skipped, saying so: the index's next copy carries it.
    async fn plan_late_artifact(&self, push: &EcrImage, subject: &Digest) -> Result<Plan> {
        let mut plan = Plan::default();
        let host = push.host().to_string();
        let artifact = match &push.tag {
            Some(tag) => format!("{host}/{}:{tag}", push.repository),
            None => format!("{host}/{}@{}", push.repository, push.digest),
        };
        // An artifact's own tag is no image's: the filters apply to its subject's tags.
        let untagged = EcrImage {
            tag: None,
            ..push.clone()
        };
        let mut sources = Vec::new();
        for source in &self.config.sources {
            let live = self.live(source);
            if self.covers(source, &untagged)? && !live.destinations.is_empty() {
                sources.push(live);
            }
        }
        if sources.is_empty() {
            return Ok(plan);
        }
        // One listing (tags with their digests) finds the subject's tags, and serves the
        // check of which of its artifacts lag.
        let tags = self
            .observe
            .ecr_tags(&push.account, &push.region, &push.repository)
            .await?;
        let repo = ImageRef::new(&host, &push.repository, None, None)?;
        self.facts
            .remember_tags(&repo, tags.iter().map(|t| t.name.clone()));
        for source in sources {
            let of_subject: Vec<TagInfo> = tags
                .iter()
                .filter(|t| t.digest.as_deref() == Some(subject.as_str()))
                .filter(|t| {
                    !crate::referrers::tags::is_artifact_tag(&t.name) && source.tags.admits(&t.name)
                })
                .cloned()
                .collect();
            if of_subject.is_empty() {
                plan.skipped.push(Skipped {
                    image: artifact.clone(),
                    reason: format!(
                        "its subject {subject} has no tag here that source {} mirrors; it is copied with the image that references it",
                        source.name
                    ),
                });
                continue;
            }
            plan.merge(
                self.plan_tags(&source, &host, &push.repository, of_subject, Reason::Push)
                    .await?,
            );
        }
        Ok(plan)
    }

    /// The removals an ECR delete event asks of the mirrors: the tag made from the deleted
    /// tag, at each destination that prunes of each source that covers it, if in the
    /// domain. Nothing is listed: the remover asks the source for the tag again, so a delete
    /// that a re-push has overtaken removes nothing. A delete by digest alone names no tag,
    /// and plans nothing (the next scheduled sync prunes what it took); neither does the
    /// delete of a signature, which goes with its image.
    pub fn plan_delete(&self, deleted: &EcrImage) -> Result<Plan> {
        let mut plan = Plan::default();
        let Some(tag) = &deleted.tag else {
            return Ok(plan);
        };
        let host = deleted.host().to_string();
        let source_repository = ImageRef::new(&host, &deleted.repository, None, None)?;
        let vars = self.config.vars(&host, &deleted.repository, "");
        for source in &self.config.sources {
            if !self.covers(source, deleted)? {
                continue;
            }
            for destination in source.destinations.iter().filter(|d| d.prune) {
                let Some(removal) = prune::deleted(&prune::Protected::of(destination), &vars, tag)
                else {
                    continue;
                };
                plan.removals.push(removal.into_job(
                    source_repository.clone(),
                    RemovalReason::GoneFromSource,
                    &source.name,
                    Reason::Delete,
                ));
            }
        }
        Ok(plan)
    }

    /// Whether `source` covers the repository (and tag, if any) an ECR event names.
    fn covers(&self, source: &Source, image: &EcrImage) -> Result<bool> {
        let SourceKind::Ecr {
            repositories,
            prefix,
            ..
        } = &source.kind
        else {
            return Ok(false);
        };
        let registry_of_source = self.source_registry(source)?;
        let Some((account, region)) = &registry_of_source.ecr else {
            return Ok(false);
        };
        Ok(account == &image.account
            && region == &image.region
            && repositories
                .as_ref()
                .is_none_or(|list| list.contains(&image.repository))
            && prefix
                .as_deref()
                .is_none_or(|p| image.repository.starts_with(p))
            && source.repositories.matches(&image.repository)
            && image.tag.as_deref().is_none_or(|t| source.tags.admits(t)))
    }

    /// An `images:` list: each entry copied to the destinations that have not expired;
    /// an expired entry (or destination) copies nothing, and destinations that prune lose
    /// the tag made from it.
    async fn plan_images(
        &self,
        source: &Source,
        images: &[crate::config::ListedImage],
        reason: Reason,
    ) -> Result<Plan> {
        let now = self.options.now;
        let live = self.live(source);
        let mut plan = Plan::default();
        for listed in images {
            let image = &listed.image;
            if !source.repositories.matches(image.repository()) {
                continue;
            }
            let tag = image.tag().unwrap_or_default();
            if !tag.is_empty() && !source.tags.admits(tag) {
                continue;
            }
            let expired = crate::expiry::passed(listed.expires.as_ref(), now);
            plan.removals.extend(
                self.expired_image_removals(source, image, expired, reason)
                    .await?,
            );
            if expired || live.destinations.is_empty() {
                continue;
            }
            let info = TagInfo {
                name: tag.to_string(),
                digest: image.digest().map(|d| d.to_string()),
                pushed_at: None,
            };
            plan.merge(
                self.plan_tags(
                    &live,
                    image.registry(),
                    image.repository(),
                    vec![info],
                    reason,
                )
                .await?,
            );
        }
        Ok(plan)
    }

    /// The removals an expired listed image (or one whose destination expired) asks of the
    /// destinations that prune: the tag made from it, if in the domain and (where planning
    /// checks destinations) still there, so a plan does not list it again once it is gone.
    async fn expired_image_removals(
        &self,
        source: &Source,
        image: &ImageRef,
        entry_expired: bool,
        reason: Reason,
    ) -> Result<Vec<RemoveJob>> {
        let Some(tag) = image.tag() else {
            return Ok(Vec::new());
        };
        let vars = self.config.vars(image.registry(), image.repository(), "");
        let mut removals = Vec::new();
        for destination in &source.destinations {
            if !destination.prune
                || !(entry_expired || source.lapsed(destination, self.options.now))
            {
                continue;
            }
            let Some(removal) = prune::deleted(&prune::Protected::of(destination), &vars, tag)
            else {
                continue;
            };
            let made = removal.destination.tag().unwrap_or_default();
            if self.options.check_destinations
                && self
                    .registry()
                    .head_manifest(&removal.destination, made)
                    .await?
                    .is_none()
            {
                continue;
            }
            removals.push(removal.into_job(
                image.repo_only(),
                RemovalReason::Expired,
                &source.name,
                reason,
            ));
        }
        Ok(removals)
    }

    /// What pruning removes from `source`'s destinations that prune, for one source
    /// repository holding `held` (every tag, whatever the filters select): each destination
    /// repository the repository maps to is listed, weighed and bounded. The listings are
    /// handed back for the copy's planning, which then need not list them again. Nothing is
    /// planned without destination checks (`--no-check`), which list nothing. With
    /// [`PlanOptions::extras`] every destination is weighed and nothing is removed: what
    /// pruning would take is reported as extras.
    async fn plan_removals(
        &self,
        source: &Source,
        host: &str,
        repository: &str,
        held: &HashSet<String>,
        reason: Reason,
    ) -> Result<WeighedRepository> {
        let mut out = WeighedRepository::default();
        let extras = self.options.extras;
        if !self.options.check_destinations && !extras {
            return Ok(out);
        }
        let vars = self.config.vars(host, repository, "");
        let source_repository = ImageRef::new(host, repository, None, None)?;
        let nothing = HashSet::new();
        let listed = &mut out.listed;
        for destination in source.destinations.iter().filter(|d| d.prune || extras) {
            // Expired: everything it mirrored goes, as the configuration asks, without the
            // bound (which guards against a source that lists too little, not a date).
            // Extras are what the source lacks, expired or not.
            let lapsed = source.lapsed(destination, self.options.now) && !extras;
            let (against, why) = match lapsed {
                true => (&nothing, RemovalReason::Expired),
                false => (held, RemovalReason::GoneFromSource),
            };
            let repositories = prune::destination_repositories(
                &destination.target,
                &vars,
                held.iter().map(String::as_str),
            );
            let unlisted: BTreeMap<String, ImageRef> = repositories
                .iter()
                .map(|r| (r.to_string(), r.clone()))
                .filter(|(name, _)| !listed.0.contains_key(name))
                .collect();
            listed.0.extend(self.list_repositories(unlisted).await.0);
            let side = prune::SourceSide {
                vars,
                tags: against,
                filter: &source.tags,
            };
            for at in repositories {
                let name = at.to_string();
                let Some(tags) = listed.0.get(&name) else {
                    tracing::warn!(repository = %name, "not pruned: its tags could not be listed");
                    continue;
                };
                let mut tags: Vec<String> = tags.iter().cloned().collect();
                tags.sort_unstable();
                let weighed = prune::weigh(&side, &prune::Protected::of(destination), &at, &tags);
                if weighed.removals.is_empty() {
                    continue;
                }
                if extras {
                    out.extras
                        .extend(weighed.removals.into_iter().map(|r| prune::Extra {
                            destination: r.destination.to_string(),
                            source: source_repository.with_tag(&r.source_tag).to_string(),
                        }));
                    continue;
                }
                if !lapsed
                    && !destination
                        .prune_max
                        .allows(weighed.removals.len(), weighed.in_domain)
                {
                    let refusal = prune::RefusedPrune {
                        destination: name,
                        removals: weighed.removals.len(),
                        in_domain: weighed.in_domain,
                        prune_max: destination.prune_max,
                    };
                    tracing::error!("{refusal}");
                    out.refused.push(refusal);
                    continue;
                }
                let tags: Vec<TagRemoval> = weighed
                    .removals
                    .into_iter()
                    .map(|r| TagRemoval {
                        tag: r.destination.tag().unwrap_or_default().to_string(),
                        source_tag: r.source_tag,
                        why,
                    })
                    .collect();
                for chunk in tags.chunks(crate::message::REMOVALS_PER_MESSAGE) {
                    out.removals.push(RemoveJob {
                        destination: at.clone(),
                        source: source_repository.clone(),
                        tags: chunk.to_vec(),
                        source_name: Some(source.name.clone()),
                        reason,
                    });
                }
            }
        }
        // Verify plans every destination without checks: its listings are not the copy's.
        if !self.options.check_destinations {
            out.listed = DestinationTags::default();
        }
        Ok(out)
    }

    /// Jobs for the given tags of one repository: pin digests, map destinations, leave out
    /// what is already there.
    async fn plan_tags(
        &self,
        source: &Source,
        host: &str,
        repository: &str,
        tags: Vec<TagInfo>,
        reason: Reason,
    ) -> Result<Plan> {
        self.plan_tags_listed(
            source,
            host,
            repository,
            tags,
            reason,
            DestinationTags::default(),
        )
        .await
    }

    /// [`Planner::plan_tags`], with destination repositories already listed.
    async fn plan_tags_listed(
        &self,
        source: &Source,
        host: &str,
        repository: &str,
        tags: Vec<TagInfo>,
        reason: Reason,
        mut listed: DestinationTags,
    ) -> Result<Plan> {
        let count = tags.len();
        if self.options.check_destinations && count >= LIST_DESTINATIONS_FROM {
            let more = self
                .list_destinations(source, host, repository, &tags, &listed)
                .await;
            listed.0.extend(more.0);
        }
        let listed = &listed;
        let planned: Vec<Result<TagPlan>> = stream::iter(tags)
            .map(|tag| self.plan_tag(source, host, repository, tag, reason, listed))
            .buffered(self.options.concurrency.max(1))
            .collect()
            .await;
        let mut plan = Plan {
            tags: count,
            ..Plan::default()
        };
        for p in planned {
            let mut p = p?;
            if self.options.repair {
                p.jobs.iter_mut().for_each(|j| j.job.repair = true);
            }
            plan.jobs.extend(p.jobs);
            plan.skipped.extend(p.skipped);
            if let Some(u) = p.up_to_date {
                plan.up_to_date.push(u);
            }
        }
        Ok(plan)
    }

    /// The tags of every destination repository `tags` map to, one listing each. A
    /// repository that does not exist yet lists as empty; one whose listing fails is left
    /// out, and its tags are asked for one by one.
    async fn list_destinations(
        &self,
        source: &Source,
        host: &str,
        repository: &str,
        tags: &[TagInfo],
        already: &DestinationTags,
    ) -> DestinationTags {
        let mut repositories: BTreeMap<String, ImageRef> = BTreeMap::new();
        for tag in tags {
            let vars = self.config.vars(host, repository, &tag.name);
            for dest in &source.destinations {
                if let Ok(Some(reference)) = dest.target.render(&vars) {
                    let repo = reference.repo_only();
                    if !already.0.contains_key(&repo.to_string()) {
                        repositories.entry(repo.to_string()).or_insert(repo);
                    }
                }
            }
        }
        self.list_repositories(repositories).await
    }

    /// The tags of each repository, one listing each; a repository that does not exist
    /// lists as empty, and one whose listing fails is left out.
    async fn list_repositories(&self, repositories: BTreeMap<String, ImageRef>) -> DestinationTags {
        let listed: Vec<(String, Option<HashSet<String>>)> = stream::iter(repositories)
            .map(|(name, repo)| async move {
                let tags = match self.registry().list_tags(&repo).await {
                    Ok(tags) => Some(tags.into_iter().collect()),
                    Err(Error::RepositoryNotFound { .. }) => Some(HashSet::new()),
                    Err(e) => {
                        tracing::debug!(repository = %name, error = %e, "destination tags not listed; asking per tag");
                        None
                    }
                };
                (name, tags)
            })
            .buffer_unordered(self.options.concurrency.max(1))
            .collect()
            .await;
        DestinationTags(
            listed
                .into_iter()
                .filter_map(|(name, tags)| Some((name, tags?)))
                .collect(),
        )
    }

    async fn plan_tag(
        &self,
        source: &Source,
        host: &str,
        repository: &str,
        tag: TagInfo,
        reason: Reason,
        listed: &DestinationTags,
    ) -> Result<TagPlan> {
        let by_tag = !tag.name.is_empty();
        let base = ImageRef::new(host, repository, by_tag.then_some(tag.name.as_str()), None)?;
        let (rendered, skipped) = decide::render(self.config, source, &base, &tag.name)?;
        // Split-skipped destinations come first in whatever this tag's plan turns out.
        let with_skipped = |mut plan: TagPlan| {
            plan.skipped.splice(0..0, skipped.iter().cloned());
            plan
        };
        if rendered.is_empty() {
            return Ok(with_skipped(TagPlan::default()));
        }

        // What each destination not known from a listing holds under the tag, asked before
        // the source: an image found at no destination is then read once (below) instead of
        // HEADed now and read by the copy, and the copy trusts its absence instead of asking
        // again. A HEAD that fails leaves the destination unknown, for the copy to ask.
        //
        // Where every destination's listing holds the tag, the image is most likely current
        // and its source HEAD is asked beside the destinations' instead of after them: one
        // round trip per tag of a re-sync instead of two, which is most of a no-op's time
        // at a distance.
        let listed_present = tag.digest.is_none()
            && by_tag
            && rendered
                .iter()
                .all(|r| listed.holds(&r.reference, &tag.name));
        let tag_name = tag.name.as_str();
        let destination_heads = futures::future::join_all(rendered.iter().map(|r| async move {
            if listed.lacks(&r.reference, tag_name) {
                return Seen::Missing;
            }
            if !decide::asks_destination(&self.options, r) {
                return Seen::Unknown;
            }
            let dest_tag = r.reference.tag().unwrap_or(tag_name);
            match self.registry().head_manifest(&r.reference, dest_tag).await {
                Ok(None) => Seen::Missing,
                Ok(Some(head)) => Seen::Holds(head.digest),
                Err(e) => {
                    tracing::debug!(destination = %r.reference, error = %e, "destination tag not asked; the copy will");
                    Seen::Unknown
                }
            }
        }));
        let early_source_head = async {
            match listed_present {
                true => Some(self.registry().head_manifest(&base, &tag.name).await),
                false => None,
            }
        };
        let (seen, early_source_head) = futures::join!(destination_heads, early_source_head);

        // An image that no destination has is going to be copied: read its manifest now
        // if the copy will happen in this process, rather than a HEAD now and a GET later.
        let all_missing = seen.iter().all(|s| *s == Seen::Missing);
        let mut manifest = None;
        // The source tag's HEAD, when one is asked: its media type tells whether a current
        // image's platform manifests need their artifacts checked too.
        let mut source_head = None;
        if tag.digest.is_none() && all_missing && by_tag && self.may_prefetch() {
            match self.registry().get_manifest(&base, &tag.name).await {
                Ok(m) => {
                    self.prefetched.fetch_add(m.raw.len(), Ordering::Relaxed);
                    manifest = Some(Arc::new(m));
                }
                Err(Error::ManifestNotFound { .. }) => {
                    return Ok(with_skipped(TagPlan::disappeared(&base)))
                }
                // The source's pull quota is spent: a HEAD, which it does not count, pins
                // the digest, and the copy reports the image as waiting for the quota.
                Err(Error::QuotaExhausted { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        let digest = match (&tag.digest, &manifest) {
            (Some(d), _) => d.parse().map_err(|_| Error::Protocol {
                at: crate::error::Location {
                    registry: host.to_string(),
                    repository: repository.to_string(),
                },
                op: crate::error::Operation::ListTags,
                detail: format!("listing gave {d:?}, which is not a digest"),
            })?,
            (None, Some(m)) => m.digest.clone(),
            (None, None) => {
                let head = match early_source_head {
                    Some(asked) => asked?,
                    None => self.registry().head_manifest(&base, &tag.name).await?,
                };
                match head {
                    Some(head) => {
                        let digest = head.digest.clone();
                        source_head = Some(head);
                        digest
                    }
                    None => return Ok(with_skipped(TagPlan::disappeared(&base))),
                }
            }
        };
        let pinned = base.with_digest(digest.clone());

        // Current everywhere, but its signatures or referrers tags may not have followed it.
        let lagging = match decide::all_current(&seen, &digest) {
            false => None,
            true => {
                let current: Vec<ImageRef> =
                    rendered.iter().map(|r| r.reference.repo_only()).collect();
                match self
                    .lagging_artifacts(&base, &digest, source_head.as_ref(), &current)
                    .await
                {
                    Ok(lagging) => lagging,
                    // A check that fails leaves the question to the copy, which reports it.
                    Err(e) => {
                        tracing::warn!(image = %pinned, error = %e, "could not compare signatures and referrers; the copy will");
                        Some(PlanHints {
                            destinations_current: true,
                            ..PlanHints::default()
                        })
                    }
                }
            }
        };
        Ok(with_skipped(decide::decide(
            source, reason, &pinned, rendered, seen, manifest, lagging,
        )))
    }

    /// What a job for a `current` image needs to know when the source holds artifacts of
    /// it (or, for an index, of its platform manifests) that a current destination lacks
    /// or holds in another version; `None` when nothing lags. Cosign and referrers tags are
    /// found in the source's tag listing (one per repository) and compared by a HEAD on
    /// each side; referrers listed by a registry's API are looked for by digest. A
    /// repository without artifact tags, on a registry without the API, costs nothing more
    /// per image, and an unchanged signed registry re-syncs without a message. `head` is
    /// the source's HEAD of the image if planning asked one; otherwise it is asked here.
    async fn lagging_artifacts(
        &self,
        image: &ImageRef,
        digest: &Digest,
        head: Option<&ManifestHead>,
        destinations: &[ImageRef],
    ) -> Result<Option<PlanHints>> {
        let selection = &self.config.defaults.referrers;
        if selection.is_none() {
            return Ok(None);
        }
        let repo = image.repo_only();
        let listed = self.facts.tags(self.registry(), &repo).await?;
        let has_api = self.facts.has_api(self.registry(), &repo, digest).await?;
        if !has_api && !self.uses_artifact_tags(&repo, &listed) {
            return Ok(None);
        }
        let mut subjects = vec![digest.clone()];
        let mut manifest = None;
        let asked;
        let head = match head {
            Some(head) => Some(head),
            None => {
                asked = self
                    .registry()
                    .head_manifest(&repo, digest.as_str())
                    .await?;
                asked.as_ref()
            }
        };
        if head.is_some_and(|h| h.is_index()) {
            // Its platform manifests' artifacts are found from the index, a GET: where the
            // registry counts those, the planner asks only HEADs and listings, and the copy
            // (which reads the index once, within the quota) checks them.
            if self.registry().meters_pulls(repo.registry()) && !self.options.prefetch_manifests {
                return Ok(Some(PlanHints {
                    destinations_current: true,
                    ..PlanHints::default()
                }));
            }
            let index = self.registry().get_manifest(&repo, digest.as_str()).await?;
            subjects.extend(index.children.iter().map(|c| c.digest.clone()));
            manifest = Some(Arc::new(index));
        }
        for subject in &subjects {
            if self
                .subject_lags(&repo, subject, &listed, destinations)
                .await?
            {
                return Ok(Some(PlanHints {
                    manifest,
                    destinations_current: true,
                    ..PlanHints::default()
                }));
            }
        }
        Ok(None)
    }

    /// Whether `repo`'s listing holds any cosign or referrers tag (worked out once per
    /// repository: listings can be long).
    fn uses_artifact_tags(&self, repo: &ImageRef, listed: &HashSet<String>) -> bool {
        let mut known = self.artifact_repos.lock().expect("artifact repos poisoned");
        *known.entry(repo.to_string()).or_insert_with(|| {
            listed
                .iter()
                .any(|t| crate::referrers::tags::is_artifact_tag(t))
        })
    }

    /// Whether an artifact of `subject` at the source is missing or different at one of
    /// `destinations`.
    async fn subject_lags(
        &self,
        repo: &ImageRef,
        subject: &Digest,
        listed: &HashSet<String>,
        destinations: &[ImageRef],
    ) -> Result<bool> {
        use crate::referrers::{tags, CosignSuffix};
        let selection = &self.config.defaults.referrers;
        let artifact_tags = std::iter::once(tags::fallback_tag(subject)).chain(
            CosignSuffix::ALL
                .into_iter()
                .filter(|s| selection.wants_cosign(*s))
                .map(|s| tags::cosign_tag(subject, s)),
        );
        for tag in artifact_tags.filter(|t| listed.contains(t)) {
            let Some(at_source) = self.registry().head_manifest(repo, &tag).await? else {
                continue;
            };
            for dest in destinations {
                let there = self.registry().head_manifest(dest, &tag).await?;
                if there.is_none_or(|h| h.digest != at_source.digest) {
                    return Ok(true);
                }
            }
        }
        let listed_by_api = self
            .facts
            .referrers(self.registry(), repo, subject, selection.single_type())
            .await?
            .unwrap_or_default();
        for entry in listed_by_api
            .iter()
            .filter(|e| selection.wants_type(tags::entry_artifact_type(e)))
        {
            let Some(referrer) = tags::entry_digest(entry) else {
                continue;
            };
            for dest in destinations {
                let there = self
                    .registry()
                    .head_manifest(dest, referrer.as_str())
                    .await?;
                if there.is_none() {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    fn registry(&self) -> &O::Registry {
        self.observe.registry()
    }

    fn may_prefetch(&self) -> bool {
        self.options.prefetch_manifests
            && self.prefetched.load(Ordering::Relaxed) < PREFETCH_BUDGET_BYTES
    }
}

/// Destination repositories' tags, listed once for the plan of one source repository.
#[derive(Default)]
struct DestinationTags(HashMap<String, HashSet<String>>);

impl DestinationTags {
    /// Whether `reference`'s repository was listed and holds the tag the image goes to.
    fn holds(&self, reference: &ImageRef, source_tag: &str) -> bool {
        self.listed(reference, source_tag) == Some(true)
    }

    /// Whether `reference`'s repository was listed and lacks the tag the image goes to.
    fn lacks(&self, reference: &ImageRef, source_tag: &str) -> bool {
        self.listed(reference, source_tag) == Some(false)
    }

    /// Whether the listing of `reference`'s repository holds the tag the image goes to;
    /// `None` when the repository was not listed or the image goes by digest alone.
    fn listed(&self, reference: &ImageRef, source_tag: &str) -> Option<bool> {
        let tag = reference.tag().unwrap_or(source_tag);
        if tag.is_empty() {
            return None;
        }
        let tags = self.0.get(&reference.repo_only().to_string())?;
        Some(tags.contains(tag))
    }
}
