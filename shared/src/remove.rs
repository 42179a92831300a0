//! Carrying out removals from mirrors ([`RemoveJob`]): what the copier does with a removal
//! message and `ferry sync` does after its copies, so both behave the same.
//!
//! For each tag: a tag removed because the source lost it is first asked for at the source
//! again (a HEAD, which no registry counts as a pull), and kept if it is back: a delete
//! event or a plan can be older than a re-push. Then:
//!
//! - **ECR** destinations remove tags with `BatchDeleteImage`, which untags an image that
//!   has other tags and deletes one that has none.
//! - **Other registries** are asked to DELETE the tag. Where they delete only whole
//!   manifests (distribution 2.x), the manifest is deleted by digest, which takes every tag
//!   pointing at it, so it is deleted only when no tag that stays shares it; otherwise the
//!   tag is reported as one that cannot be removed alone, and left.
//!
//! A removed image's signatures, attestations and SBOMs (cosign tags) and its fallback
//! referrers index go with it once no tag that stays points at it. Untagged manifests and
//! blobs left behind are the destination's garbage collection's to reclaim.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;

use crate::aws::AwsClients;
use crate::batch::Disposition;
use crate::config::SyncConfig;
use crate::digest::Digest;
use crate::ecr_host::EcrHost;
use crate::error::{Error, Result};
use crate::message::{RemovalReason, RemoveJob};
use crate::reference::ImageRef;
use crate::referrers::tags::{cosign_tag, fallback_tag, is_artifact_tag};
use crate::referrers::CosignSuffix;
use crate::registry::{Deleted, ReadRegistry, RegistryClient};
use crate::report::ErrorInfo;

/// What became of one tag of a removal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RemovalReport {
    /// `registry/repository:tag` at the destination.
    pub destination: String,
    #[serde(flatten)]
    pub outcome: Outcome,
    /// Signature, attestation, SBOM and fallback index tags removed with it.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    Removed,
    /// Not there any more: success, since removals are retried and replayed.
    AlreadyGone,
    /// The source has the tag again (pushed since it was planned for removal): kept.
    BackAtSource,
    /// The registry deletes only whole manifests, and this tag that stays shares it.
    SharesManifest {
        with: String,
    },
    Failed {
        error: ErrorInfo,
    },
}

impl RemovalReport {
    pub fn failed(&self) -> Option<&ErrorInfo> {
        match &self.outcome {
            Outcome::Failed { error } => Some(error),
            _ => None,
        }
    }
}

/// The dead-letter kind of a removal for a destination that is not a mirror of its source.
pub const NOT_A_MIRROR: &str = "not_a_mirror";

/// Whether `config` makes `job`'s destination a mirror of its source: some source that
/// enumerates the job's source repository (the one named, if the job names one) has a
/// destination that prunes and whose mapping makes each
/// of the job's tags from its source tag; a tag removed as expired must be expired there at
/// `now` too (it is not asked for at the source first). A tag is removed only where the
/// configuration says so, whoever wrote the message and whatever changed since it was
/// planned.
pub fn permitted(
    config: &SyncConfig,
    job: &RemoveJob,
    now: jiff::Timestamp,
) -> std::result::Result<(), String> {
    let source_repository = job.source.repository();
    let vars = config.vars(job.source.registry(), source_repository, "");
    let mirrors = config
        .sources
        .iter()
        .filter(|s| job.source_name.as_ref().is_none_or(|n| *n == s.name))
        .filter(|s| config.source_covers(s, &job.source))
        .flat_map(|s| s.destinations.iter().map(move |d| (s, d)))
        .filter(|(_, d)| d.prune)
        .filter_map(|(s, d)| d.target.tracer(&vars).map(|t| (s, d, t)));
    for (source, destination, tracer) in mirrors {
        let protected = crate::plan::prune::Protected::of(destination);
        let made_here = job.tags.iter().all(|t| {
            !protected.protects(&t.tag)
                && tracer.source_tag(&job.destination_tag(t)).as_deref()
                    == Some(t.source_tag.as_str())
                && (t.why != RemovalReason::Expired
                    || expired_here(source, destination, &job.source, &t.source_tag, now))
        });
        if made_here {
            return Ok(());
        }
    }
    Err(format!(
        "no destination that prunes (prune: true) mirrors {} to {} in this configuration, or not one whose date has passed for a tag removed as expired, so nothing was removed; a removal planned before prune was turned off or the date moved, or for another configuration, is refused",
        job.source, job.destination
    ))
}

/// Whether `source`'s mapping of `source_tag` of `repository` to `destination` has expired:
/// the source or destination itself, or the `images:` entry naming that tag.
fn expired_here(
    source: &crate::config::Source,
    destination: &crate::config::Destination,
    repository: &ImageRef,
    source_tag: &str,
    now: jiff::Timestamp,
) -> bool {
    if source.lapsed(destination, now) {
        return true;
    }
    let crate::config::SourceKind::Images(images) = &source.kind else {
        return false;
    };
    images.iter().any(|listed| {
        listed.image.repo_only() == *repository
            && listed.image.tag() == Some(source_tag)
            && crate::expiry::passed(listed.expires.as_ref(), now)
    })
}

/// How a removal message is settled: done when every tag is removed or kept for a reason;
/// delivered again when what failed may pass; to the dead-letter queue otherwise (a
/// registry that refuses deletes, a missing permission).
pub fn disposition(reports: &[RemovalReport]) -> Disposition {
    let failed: Vec<&ErrorInfo> = reports.iter().filter_map(|r| r.failed()).collect();
    if failed.is_empty() {
        return Disposition::Done;
    }
    let reason = reports
        .iter()
        .filter_map(|r| {
            r.failed()
                .map(|e| format!("{}: {}", r.destination, e.message))
        })
        .collect::<Vec<_>>()
        .join("; ");
    match failed.iter().find(|e| !e.retryable) {
        None => Disposition::Retry { reason },
        Some(permanent) => Disposition::Permanent {
            kind: permanent.kind.to_string(),
            reason,
        },
    }
}

pub struct Remover<'a> {
    registry: &'a RegistryClient,
    aws: &'a AwsClients,
}

impl<'a> Remover<'a> {
    pub fn new(registry: &'a RegistryClient, aws: &'a AwsClients) -> Self {
        Remover { registry, aws }
    }

    /// Remove `job`'s tags; one report per tag, in the job's order.
    pub async fn remove(&self, job: &RemoveJob) -> Vec<RemovalReport> {
        let mut reports: BTreeMap<usize, RemovalReport> = BTreeMap::new();
        // Back at the source since planning: kept.
        let asked = futures::future::join_all(job.tags.iter().map(|t| async move {
            match t.why {
                RemovalReason::Expired => Ok(false),
                RemovalReason::GoneFromSource => {
                    let source = job.source.with_tag(&t.source_tag);
                    let head = self.registry.head_manifest(&source, &t.source_tag).await;
                    head.map(|h| h.is_some())
                }
            }
        }))
        .await;
        let mut going = Vec::new();
        for (i, back) in asked.into_iter().enumerate() {
            match back {
                Ok(true) => {
                    reports.insert(i, self.report(job, i, Outcome::BackAtSource));
                }
                Ok(false) => going.push(i),
                Err(e) => {
                    let error = ErrorInfo::from(&e);
                    reports.insert(i, self.report(job, i, Outcome::Failed { error }));
                }
            }
        }
        let done = match EcrHost::parse(job.destination.registry()) {
            Some(host) => self.remove_from_ecr(&host, job, &going).await,
            None => self.remove_from_registry(job, &going).await,
        };
        reports.extend(done);
        reports.into_values().collect()
    }

    /// Untag with `BatchDeleteImage`; then the artifacts of images left without tags.
    async fn remove_from_ecr(
        &self,
        host: &EcrHost,
        job: &RemoveJob,
        going: &[usize],
    ) -> Vec<(usize, RemovalReport)> {
        let tags: Vec<&str> = going.iter().map(|&i| job.tags[i].tag.as_str()).collect();
        let mut out = Vec::new();
        let deleted = match self.ecr_delete(host, &job.destination, &tags).await {
            Ok(deleted) => deleted,
            Err(e) => {
                let error = ErrorInfo::from(&e);
                for &i in going {
                    out.push((
                        i,
                        self.report(
                            job,
                            i,
                            Outcome::Failed {
                                error: error.clone(),
                            },
                        ),
                    ));
                }
                return out;
            }
        };
        for &i in going {
            let tag = &job.tags[i].tag;
            let mut report = self.report(job, i, Outcome::AlreadyGone);
            if let Some(digest) = deleted.get(tag) {
                report.outcome = Outcome::Removed;
                match self.ecr_untagged_artifacts(host, job, digest).await {
                    Ok(artifacts) => report.artifacts = artifacts,
                    Err(e) => {
                        tracing::warn!(image = %report.destination, error = %e, "its signatures and referrers index were not removed");
                    }
                }
            }
            out.push((i, report));
        }
        out
    }

    /// `BatchDeleteImage` of `tags`: the digest each removed tag pointed at. A tag ECR does
    /// not have is left out (already gone).
    async fn ecr_delete(
        &self,
        host: &EcrHost,
        repository: &ImageRef,
        tags: &[&str],
    ) -> Result<HashMap<String, Digest>> {
        let client = self.aws.ecr(&host.region).await;
        let mut deleted = HashMap::new();
        // BatchDeleteImage takes up to 100 image ids a call.
        for chunk in tags.chunks(100) {
            let ids = chunk.iter().map(|t| {
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_tag(*t)
                    .build()
            });
            let answer = client
                .batch_delete_image()
                .registry_id(&host.account)
                .repository_name(repository.repository())
                .set_image_ids(Some(ids.collect()))
                .send()
                .await;
            let answer = match answer {
                Ok(a) => a,
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_repository_not_found_exception()) =>
                {
                    return Ok(deleted)
                }
                Err(e) => {
                    use aws_sdk_ecr::error::ProvideErrorMetadata;
                    let mut error = crate::aws::error("ecr:BatchDeleteImage", &e);
                    let denied = e.as_service_error().and_then(|s| s.code())
                        == Some("AccessDeniedException");
                    if let (true, Error::Aws { detail, .. }) = (denied, &mut error) {
                        detail.push_str(
                            "; deployed with the template, list this repository in PrunedRepositoryArns: only those repositories let the copier remove tags",
                        );
                    }
                    return Err(error);
                }
            };
            for id in answer.image_ids() {
                if let (Some(tag), Some(digest)) = (id.image_tag(), id.image_digest()) {
                    if let Ok(d) = digest.parse() {
                        deleted.insert(tag.to_string(), d);
                    }
                }
            }
            for failure in answer.failures() {
                use aws_sdk_ecr::types::ImageFailureCode as Code;
                match failure.failure_code() {
                    Some(Code::ImageNotFound) | Some(Code::ImageTagDoesNotMatchDigest) => {}
                    _ => {
                        return Err(Error::Aws {
                            action: "ecr:BatchDeleteImage",
                            detail: failure
                                .failure_reason()
                                .unwrap_or("refused without a reason")
                                .to_string(),
                            retryable: false,
                        })
                    }
                }
            }
        }
        Ok(deleted)
    }

    /// The artifact tags of `subject`, removed from an ECR repository once `subject` has no
    /// tag left there.
    async fn ecr_untagged_artifacts(
        &self,
        host: &EcrHost,
        job: &RemoveJob,
        subject: &Digest,
    ) -> Result<Vec<String>> {
        let client = self.aws.ecr(&host.region).await;
        let described = client
            .describe_images()
            .registry_id(&host.account)
            .repository_name(job.destination.repository())
            .image_ids(
                aws_sdk_ecr::types::ImageIdentifier::builder()
                    .image_digest(subject.as_str())
                    .build(),
            )
            .send()
            .await;
        let still_tagged = match described {
            Ok(d) => d
                .image_details()
                .iter()
                .any(|i| i.image_tags().iter().any(|t| !is_artifact_tag(t))),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_image_not_found_exception()) =>
            {
                false
            }
            Err(e) => return Err(crate::aws::error("ecr:DescribeImages", &e)),
        };
        if still_tagged {
            return Ok(Vec::new());
        }
        let tags = artifact_tags(subject);
        let refs: Vec<&str> = tags.iter().map(String::as_str).collect();
        let deleted = self.ecr_delete(host, &job.destination, &refs).await?;
        Ok(tags
            .into_iter()
            .filter(|t| deleted.contains_key(t))
            .map(|t| job.destination.with_tag(&t).to_string())
            .collect())
    }

    /// DELETE by tag where the registry can, by digest where no tag that stays shares the
    /// manifest.
    async fn remove_from_registry(
        &self,
        job: &RemoveJob,
        going: &[usize],
    ) -> Vec<(usize, RemovalReport)> {
        let mut out = Vec::new();
        let repository = &job.destination;
        // What each tag points at now.
        let heads = futures::future::join_all(going.iter().map(|&i| async move {
            let tag = &job.tags[i].tag;
            (
                i,
                self.registry
                    .head_manifest(&repository.with_tag(tag), tag)
                    .await,
            )
        }))
        .await;
        let mut by_digest: BTreeMap<Digest, Vec<usize>> = BTreeMap::new();
        for (i, head) in heads {
            match head {
                Ok(Some(h)) => by_digest.entry(h.digest).or_default().push(i),
                Ok(None) => out.push((i, self.report(job, i, Outcome::AlreadyGone))),
                Err(e) => {
                    let error = ErrorInfo::from(&e);
                    out.push((i, self.report(job, i, Outcome::Failed { error })));
                }
            }
        }
        let removing: HashSet<&str> = going.iter().map(|&i| job.tags[i].tag.as_str()).collect();
        let mut staying = Staying::new(repository, &removing);
        // Whether this registry removes single tags: learnt from the first tag DELETE, and
        // not asked again once it has said no.
        let mut by_tag = true;
        for (digest, tags) in by_digest {
            let mut outcomes: Vec<(usize, Outcome)> = Vec::new();
            for &i in &tags {
                if !by_tag {
                    break;
                }
                match self
                    .registry
                    .delete_manifest(repository, &job.tags[i].tag)
                    .await
                {
                    Ok(Deleted::Removed) => outcomes.push((i, Outcome::Removed)),
                    Ok(Deleted::AlreadyGone) => outcomes.push((i, Outcome::AlreadyGone)),
                    Ok(Deleted::NotByTag) => by_tag = false,
                    Err(e) => outcomes.push((
                        i,
                        Outcome::Failed {
                            error: ErrorInfo::from(&e),
                        },
                    )),
                }
            }
            let sharer = staying.sharing(self.registry, &digest).await;
            if !by_tag {
                // Every tag of this manifest not yet answered goes with one digest DELETE.
                let rest: Vec<usize> = tags
                    .iter()
                    .copied()
                    .filter(|i| !outcomes.iter().any(|(j, _)| j == i))
                    .collect();
                let outcome = match &sharer {
                    Ok(Some(with)) => Outcome::SharesManifest {
                        with: repository.with_tag(with).to_string(),
                    },
                    Ok(None) => match self
                        .registry
                        .delete_manifest(repository, digest.as_str())
                        .await
                    {
                        Ok(Deleted::Removed) => Outcome::Removed,
                        Ok(_) => Outcome::AlreadyGone,
                        Err(e) => Outcome::Failed {
                            error: ErrorInfo::from(&e),
                        },
                    },
                    Err(e) => Outcome::Failed {
                        error: ErrorInfo::from(e),
                    },
                };
                outcomes.extend(rest.into_iter().map(|i| (i, outcome.clone())));
            }
            let removed = outcomes.iter().any(|(_, o)| *o == Outcome::Removed);
            let mut artifacts = Vec::new();
            if removed && matches!(sharer, Ok(None)) {
                match self.remove_registry_artifacts(repository, &digest).await {
                    Ok(a) => artifacts = a,
                    Err(e) => {
                        tracing::warn!(repository = %repository, subject = %digest, error = %e, "its signatures and referrers index were not removed");
                    }
                }
            }
            for (n, (i, outcome)) in outcomes.into_iter().enumerate() {
                let mut report = self.report(job, i, outcome);
                if n == 0 {
                    report.artifacts = std::mem::take(&mut artifacts);
                }
                out.push((i, report));
            }
        }
        out
    }

    /// Remove `subject`'s cosign tags and fallback referrers index from `repository`.
    async fn remove_registry_artifacts(
        &self,
        repository: &ImageRef,
        subject: &Digest,
    ) -> Result<Vec<String>> {
        let mut removed = Vec::new();
        for tag in artifact_tags(subject) {
            let Some(head) = self
                .registry
                .head_manifest(&repository.with_tag(&tag), &tag)
                .await?
            else {
                continue;
            };
            let gone = match self.registry.delete_manifest(repository, &tag).await? {
                Deleted::NotByTag => {
                    self.registry
                        .delete_manifest(repository, head.digest.as_str())
                        .await?
                }
                other => other,
            };
            if gone == Deleted::Removed {
                removed.push(repository.with_tag(&tag).to_string());
            }
        }
        Ok(removed)
    }

    fn report(&self, job: &RemoveJob, i: usize, outcome: Outcome) -> RemovalReport {
        RemovalReport {
            destination: job.destination_tag(&job.tags[i]).to_string(),
            outcome,
            artifacts: Vec::new(),
        }
    }
}

/// The tags that go with an image: its cosign signature, attestation and SBOM, and the
/// fallback referrers index.
fn artifact_tags(subject: &Digest) -> Vec<String> {
    CosignSuffix::ALL
        .into_iter()
        .map(|s| cosign_tag(subject, s))
        .chain(std::iter::once(fallback_tag(subject)))
        .collect()
}

/// HEADs asked at once for the digests of the tags that stay.
const STAYING_AT_ONCE: usize = 16;

/// The tags of a destination repository that stay (not being removed, not artifacts):
/// listed, and asked for their digests (a HEAD each, a few at a time), once per job and
/// only when a manifest deletion needs to know whether one of them shares it.
struct Staying<'r> {
    repository: &'r ImageRef,
    removing: &'r HashSet<&'r str>,
    /// Staying tag → digest, once asked.
    digests: Option<Vec<(String, Digest)>>,
}

impl<'r> Staying<'r> {
    fn new(repository: &'r ImageRef, removing: &'r HashSet<&'r str>) -> Self {
        Staying {
            repository,
            removing,
            digests: None,
        }
    }

    /// A staying tag that points at `digest`, if there is one.
    async fn sharing(
        &mut self,
        registry: &impl ReadRegistry,
        digest: &Digest,
    ) -> Result<Option<String>> {
        if self.digests.is_none() {
            self.digests = Some(self.ask(registry).await?);
        }
        Ok(self
            .digests
            .iter()
            .flatten()
            .find(|(_, d)| d == digest)
            .map(|(t, _)| t.clone()))
    }

    async fn ask(&self, registry: &impl ReadRegistry) -> Result<Vec<(String, Digest)>> {
        use futures::{StreamExt, TryStreamExt};
        let tags = match registry.list_tags(self.repository).await {
            Ok(tags) => tags,
            Err(Error::RepositoryNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let staying = tags
            .into_iter()
            .filter(|t| !self.removing.contains(t.as_str()) && !is_artifact_tag(t));
        let mut digests: Vec<(String, Digest)> = futures::stream::iter(staying)
            .map(|tag| async move {
                let head = registry
                    .head_manifest(&self.repository.with_tag(&tag), &tag)
                    .await?;
                Ok::<_, Error>(head.map(|h| (tag, h.digest)))
            })
            .buffer_unordered(STAYING_AT_ONCE)
            .try_filter_map(|found| async move { Ok(found) })
            .try_collect()
            .await?;
        // Reported sharers are the same whatever order the answers came in.
        digests.sort();
        Ok(digests)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::{Reason, TagRemoval};

    fn job(source: &str, tag: &str, why: RemovalReason) -> RemoveJob {
        RemoveJob {
            destination: "dst.example/team/app".parse().unwrap(),
            source: source.parse().unwrap(),
            tags: vec![TagRemoval {
                tag: tag.into(),
                source_tag: tag.into(),
                why,
            }],
            source_name: None,
            reason: Reason::Manual,
        }
    }

    #[test]
    fn a_removal_is_permitted_only_where_the_configuration_makes_a_mirror() {
        let config = SyncConfig::parse(
            r#"
version: 1
sources:
  - registry: {host: src.example}
    destinations: [{target: "dst.example/{repo}", prune: true, keep: [stable]}]
  - images:
      - {image: "old.example/team/app:1.0", expires: 2027-01-31}
      - old.example/team/app:2.0
    destinations: [{target: "dst.example/{repo}", prune: true}]
  - registry: {host: late.example}
    destinations: [{target: "dst.example/{repo}", prune: true, expires: 2027-03-31}]
  - registry: {host: kept.example}
    destinations: [{target: "dst.example/{repo}"}]
"#,
        )
        .unwrap();
        let now: jiff::Timestamp = "2027-02-15T00:00:00Z".parse().unwrap();
        let gone = RemovalReason::GoneFromSource;
        let expired = RemovalReason::Expired;
        // What, job, permitted.
        let cases = [
            (
                "a tag gone from a pruned source",
                job("src.example/team/app", "1.0", gone),
                true,
            ),
            (
                "a tag a keep pattern protects",
                job("src.example/team/app", "stable", gone),
                false,
            ),
            (
                "a destination that does not prune",
                job("kept.example/team/app", "1.0", gone),
                false,
            ),
            (
                "expired, but the source has no date",
                job("src.example/team/app", "1.0", expired),
                false,
            ),
            (
                "an expired images entry",
                job("old.example/team/app", "1.0", expired),
                true,
            ),
            (
                "an images entry without a date",
                job("old.example/team/app", "2.0", expired),
                false,
            ),
            (
                "a destination whose date is still to come",
                job("late.example/team/app", "1.0", expired),
                false,
            ),
        ];
        for (what, job, allowed) in cases {
            assert_eq!(permitted(&config, &job, now).is_ok(), allowed, "{what}");
        }
        let after: jiff::Timestamp = "2027-04-01T00:00:00Z".parse().unwrap();
        assert!(permitted(
            &config,
            &job("late.example/team/app", "1.0", expired),
            after
        )
        .is_ok());
    }
}
