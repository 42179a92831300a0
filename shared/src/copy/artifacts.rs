//! An image's supply-chain artifacts, copied after the image: cosign tags, referrers, and
//! artifacts of those artifacts (a signature of an SBOM), level by level.
//!
//! Order keeps the guarantees of an image copy: an artifact goes only to destinations that
//! hold its subject, each artifact is pushed blobs first and its manifest last, and a
//! destination's fallback index (`sha256-<hex>`, for registries without the referrers API)
//! is extended only after the referrers it lists are present. The index is merged, never
//! replaced: entries another tool put there stay.

use std::collections::HashSet;

use serde_json::Value;

use super::{display_suffix, fail, location, tree, Copier, CopyRequest, Target};
use crate::digest::Digest;
use crate::error::{Error, Operation, Result};
use crate::manifest::{Manifest, OCI_INDEX};
use crate::reference::ImageRef;
use crate::referrers::{self, tags, Artifact, Placement};
use crate::report::{ArtifactReport, BlobStats, DestinationReport, ErrorInfo, Status};

impl Copier {
    /// Copy the artifacts of every digest in `subjects` (an image and its children) to
    /// `holders`, the destinations that now hold the image. One report per artifact, plus
    /// one per fallback index written or failed.
    pub(super) async fn copy_artifacts(
        &self,
        request: &CopyRequest,
        subjects: Vec<Digest>,
        holders: &[ImageRef],
        stats: &mut BlobStats,
    ) -> Vec<ArtifactReport> {
        let source = request.source.repo_only();
        let mut reports = Vec::new();
        let mut followed: HashSet<Digest> = subjects.iter().cloned().collect();
        let mut level = subjects;
        for _ in 0..referrers::MAX_DEPTH {
            let mut next = Vec::new();
            for subject in level {
                let found = match referrers::discover(
                    &*self.client,
                    &self.facts,
                    &source,
                    &subject,
                    &self.options.referrers,
                )
                .await
                {
                    Ok(found) => found,
                    Err(e) => {
                        reports.push(unreadable(&subject, holders, &e));
                        continue;
                    }
                };
                // Per holder, the referrer entries now present there.
                let mut present: Vec<Vec<Value>> = vec![Vec::new(); holders.len()];
                for artifact in &found.artifacts {
                    let report = self
                        .copy_artifact(&source, artifact, holders, request.overwrite, stats)
                        .await;
                    let mut everywhere = true;
                    for (i, d) in report.destinations.iter().enumerate() {
                        let there = matches!(d.status, Status::Copied | Status::UpToDate);
                        everywhere &= there;
                        if let (true, Placement::Referrer { entry }) = (there, &artifact.placement)
                        {
                            present[i].push(entry.clone());
                        }
                    }
                    if everywhere && followed.insert(artifact.digest.clone()) {
                        next.push(artifact.digest.clone());
                    }
                    reports.push(report);
                }
                for (dest, entries) in holders.iter().zip(&present) {
                    if entries.is_empty() {
                        continue;
                    }
                    let outcome = self
                        .update_fallback(dest, &subject, entries, found.source_index.as_ref())
                        .await;
                    if let Some(report) = fallback_report(dest, &subject, outcome) {
                        reports.push(report);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        reports
    }

    /// Make one artifact present at every holder, like an image: HEAD, then blobs and
    /// manifests for those that lack it.
    async fn copy_artifact(
        &self,
        source: &ImageRef,
        artifact: &Artifact,
        holders: &[ImageRef],
        overwrite: bool,
        stats: &mut BlobStats,
    ) -> ArtifactReport {
        let reference = artifact.reference();
        let mut targets: Vec<Target> = holders
            .iter()
            .map(|dest| Target {
                dest: dest.clone(),
                reference: reference.clone(),
                existing: None,
                status: Status::Copied,
                error: None,
                repairing: false,
                changed: false,
                backup: None,
            })
            .collect();
        let heads = futures::future::join_all(
            targets
                .iter()
                .map(|t| self.client.head_manifest(&t.dest, &t.reference)),
        )
        .await;
        for (t, head) in targets.iter_mut().zip(heads) {
            match head {
                Ok(Some(h)) if h.digest == artifact.digest => t.status = Status::UpToDate,
                Ok(Some(_)) if !overwrite => t.status = Status::Kept,
                Ok(h) => t.existing = h.map(|h| h.digest),
                Err(e) => fail(t, e),
            }
        }
        let mut unreadable = None;
        if targets.iter().any(|t| t.status == Status::Copied) {
            match self.read_artifact(source, &artifact.digest).await {
                Ok(image) => {
                    self.push_tree(source, &image, None, &mut targets, stats)
                        .await
                }
                Err(e) => unreadable = Some(ErrorInfo::from(&e)),
            }
        }
        ArtifactReport {
            subject: artifact.subject.to_string(),
            digest: Some(artifact.digest.to_string()),
            kind: artifact.kind(),
            tag: match &artifact.placement {
                Placement::CosignTag { tag, .. } => Some(tag.clone()),
                Placement::Referrer { .. } => None,
            },
            destinations: targets
                .iter()
                .map(|t| {
                    let (status, error) = match (&unreadable, t.status) {
                        (Some(e), Status::Copied) => (Status::Failed, Some(e.clone())),
                        _ => (t.status, t.error.as_ref().map(ErrorInfo::from)),
                    };
                    DestinationReport {
                        reference: format!(
                            "{}{}",
                            t.dest.repo_name(),
                            display_suffix(&t.reference)
                        ),
                        status,
                        error,
                        backup: None,
                    }
                })
                .collect(),
        }
    }

    async fn read_artifact(&self, source: &ImageRef, digest: &Digest) -> Result<tree::ImageTree> {
        let root = self.client.get_manifest(source, digest.as_str()).await?;
        tree::fetch(&self.client, source, root, self.options.blob_concurrency).await
    }

    /// List `entries` (referrers of `subject` present at `dest`) in `dest`'s fallback index
    /// if it has no referrers API. Returns the digest of the index written, or `None` when
    /// there was nothing to write.
    async fn update_fallback(
        &self,
        dest: &ImageRef,
        subject: &Digest,
        entries: &[Value],
        source_index: Option<&Manifest>,
    ) -> Result<Option<Digest>> {
        if self.facts.has_api(&*self.client, dest, subject).await? {
            // The registry lists a referrer by its `subject` as soon as it is pushed.
            return Ok(None);
        }
        let tag = tags::fallback_tag(subject);
        let existing = match referrers::fallback_index(&*self.client, dest, subject).await? {
            Some(index) => index.entries.map_err(|detail| Error::Protocol {
                at: location(dest),
                op: Operation::ListReferrers,
                detail: format!(
                    "referrers tag {tag} holds no index ({detail}); ferry will not replace it"
                ),
            })?,
            None => Vec::new(),
        };
        let Some(merged) = tags::merge(&existing, entries) else {
            return Ok(None);
        };
        // The source's own index, when it is exactly what belongs here, keeps its digest.
        let raw = match source_index {
            Some(index)
                if existing.is_empty() && tags::entries(&index.raw).is_ok_and(|e| e == merged) =>
            {
                index.raw.clone()
            }
            _ => tags::render(&merged),
        };
        let index = Manifest::parse(raw.clone(), Digest::sha256_of(&raw), Some(OCI_INDEX))
            .map_err(|source| Error::Manifest {
                at: location(dest),
                source,
            })?;
        self.client.put_manifest(dest, &tag, &index).await?;
        Ok(Some(index.digest))
    }
}

/// The report of a fallback index update, if anything was written or went wrong.
fn fallback_report(
    dest: &ImageRef,
    subject: &Digest,
    outcome: Result<Option<Digest>>,
) -> Option<ArtifactReport> {
    let tag = tags::fallback_tag(subject);
    let (digest, status, error) = match outcome {
        Ok(None) => return None,
        Ok(Some(d)) => (Some(d.to_string()), Status::Copied, None),
        Err(e) => (None, Status::Failed, Some(ErrorInfo::from(&e))),
    };
    Some(ArtifactReport {
        subject: subject.to_string(),
        digest,
        kind: "referrers index".into(),
        tag: Some(tag.clone()),
        destinations: vec![DestinationReport {
            reference: format!("{}:{tag}", dest.repo_name()),
            status,
            error,
            backup: None,
        }],
    })
}

/// The report for a subject whose artifacts could not be listed at the source: a failure
/// at every holder, so the image is tried again rather than reported complete.
fn unreadable(subject: &Digest, holders: &[ImageRef], e: &Error) -> ArtifactReport {
    ArtifactReport {
        subject: subject.to_string(),
        digest: None,
        kind: "referrers".into(),
        tag: None,
        destinations: holders
            .iter()
            .map(|dest| DestinationReport {
                reference: dest.repo_name(),
                status: Status::Failed,
                error: Some(ErrorInfo::from(e)),
                backup: None,
            })
            .collect(),
    }
}
