//! Checking a copy before relying on it: does the destination tag resolve to the digest the
//! source has now (or the platform selection of it the copy was asked for), and is every
//! child manifest and blob that manifest needs really present at the destination? This is
//! what a team runs before switching the old registry off.

use std::collections::HashSet;

use futures::{stream, StreamExt};
use serde::Serialize;

use crate::copy::tree::select_platforms;
use crate::digest::Digest;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, ManifestKind, Platform};
use crate::message::{CopyJob, MessageError};
use crate::reference::ImageRef;
use crate::referrers::{self, tags, Placement, RegistryFacts, Selection};
use crate::registry::RegistryClient;

/// One source image and where a copy of it should be.
#[derive(Debug, Clone)]
pub struct Expectation {
    /// The source, by tag (what it points at now is what the destination must hold).
    pub source: ImageRef,
    pub destinations: Vec<ImageRef>,
    /// The platform filter the copy was made with; empty for an exact copy.
    pub platforms: Vec<Platform>,
}

impl Expectation {
    /// What a planned copy job promises.
    pub fn from_job(job: &CopyJob) -> std::result::Result<Expectation, MessageError> {
        let request = job.request()?;
        Ok(Expectation {
            source: request.source,
            destinations: request.destinations,
            platforms: request.platforms,
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum Finding {
    /// The destination holds exactly the expected image, complete.
    Ok,
    /// The destination tag does not exist.
    Missing,
    /// The destination tag points at another image (the source tag moved, or someone
    /// pushed there).
    Different { expected: String, found: String },
    /// The tag is right but manifests or blobs it needs are absent.
    Incomplete { absent: Vec<String> },
    /// The image is complete, but signatures, attestations, SBOMs or other referrers the
    /// source has for it are absent, different, or not listed as its referrers.
    MissingArtifacts { absent: Vec<String> },
    /// The check itself failed (the source is gone, access denied, network).
    Error { message: String },
}

#[derive(Debug, Clone, Serialize)]
pub struct Verdict {
    pub source: String,
    pub destination: String,
    #[serde(flatten)]
    pub finding: Finding,
}

impl Verdict {
    pub fn is_ok(&self) -> bool {
        self.finding == Finding::Ok
    }
}

/// Totals over many verdicts.
#[derive(Debug, Default, Clone, Serialize)]
pub struct VerifySummary {
    pub verified: usize,
    pub ok: usize,
    pub missing: usize,
    pub different: usize,
    pub incomplete: usize,
    pub missing_artifacts: usize,
    pub errors: usize,
}

impl VerifySummary {
    pub fn of(verdicts: &[Verdict]) -> Self {
        let mut s = VerifySummary {
            verified: verdicts.len(),
            ..Default::default()
        };
        for v in verdicts {
            match v.finding {
                Finding::Ok => s.ok += 1,
                Finding::Missing => s.missing += 1,
                Finding::Different { .. } => s.different += 1,
                Finding::Incomplete { .. } => s.incomplete += 1,
                Finding::MissingArtifacts { .. } => s.missing_artifacts += 1,
                Finding::Error { .. } => s.errors += 1,
            }
        }
        s
    }

    pub fn all_ok(&self) -> bool {
        self.ok == self.verified
    }
}

pub struct Verifier<'a> {
    client: &'a RegistryClient,
    /// Images checked at the same time; blob checks of one image run this wide too.
    concurrency: usize,
    /// The artifacts that should have followed each image.
    referrers: Selection,
    facts: RegistryFacts,
}

impl<'a> Verifier<'a> {
    pub fn new(client: &'a RegistryClient, concurrency: usize, referrers: Selection) -> Self {
        Verifier {
            client,
            concurrency,
            referrers,
            facts: RegistryFacts::new(),
        }
    }

    /// Check every destination of every expectation.
    pub async fn verify_all(&self, expectations: &[Expectation]) -> Vec<Verdict> {
        let mut out: Vec<Verdict> = stream::iter(expectations)
            .map(|e| self.verify(e))
            .buffer_unordered(self.concurrency.max(1))
            .flat_map(stream::iter)
            .collect()
            .await;
        out.sort_by(|a, b| a.destination.cmp(&b.destination));
        out
    }

    /// Check one source image's destinations.
    pub async fn verify(&self, expectation: &Expectation) -> Vec<Verdict> {
        let source = &expectation.source;
        let verdict = |destination: &ImageRef, finding| Verdict {
            source: source.to_string(),
            destination: destination.to_string(),
            finding,
        };
        let expected = match self.expected(expectation).await {
            Ok(m) => m,
            Err(e) => {
                let finding = Finding::Error {
                    message: format!("reading the source: {e}"),
                };
                return expectation
                    .destinations
                    .iter()
                    .map(|d| verdict(d, finding.clone()))
                    .collect();
            }
        };
        let mut out = Vec::new();
        for destination in &expectation.destinations {
            let finding = self
                .check(source, destination, &expected)
                .await
                .unwrap_or_else(|e| Finding::Error {
                    message: e.to_string(),
                });
            out.push(verdict(destination, finding));
        }
        out
    }

    /// The root manifest a correct copy holds: the source's own, or its platform selection.
    async fn expected(&self, expectation: &Expectation) -> Result<Manifest> {
        let source = &expectation.source;
        let reference = source
            .manifest_reference()
            .ok_or_else(|| Error::Config(format!("{source} names no tag or digest")))?;
        let root = self.client.get_manifest(source, &reference).await?;
        select_platforms(self.client, source, root, &expectation.platforms).await
    }

    async fn check(
        &self,
        source: &ImageRef,
        destination: &ImageRef,
        expected: &Manifest,
    ) -> Result<Finding> {
        let tag = destination
            .tag()
            .or_else(|| source.tag())
            .map(str::to_string)
            .unwrap_or_else(|| expected.digest.to_string());
        let Some(head) = self.client.head_manifest(destination, &tag).await? else {
            return Ok(Finding::Missing);
        };
        if head.digest != expected.digest {
            return Ok(Finding::Different {
                expected: expected.digest.to_string(),
                found: head.digest.to_string(),
            });
        }
        let absent = self.absent(source, destination, expected).await?;
        if !absent.is_empty() {
            return Ok(Finding::Incomplete { absent });
        }
        let mut subjects: Vec<Digest> =
            expected.children.iter().map(|c| c.digest.clone()).collect();
        subjects.push(expected.digest.clone());
        let absent = self
            .missing_artifacts(source, destination, subjects)
            .await?;
        Ok(if absent.is_empty() {
            Finding::Ok
        } else {
            Finding::MissingArtifacts { absent }
        })
    }

    /// The source's artifacts of `subjects` (and their artifacts) that the destination
    /// lacks, holds in another version, or does not list as referrers of their subject.
    async fn missing_artifacts(
        &self,
        source: &ImageRef,
        destination: &ImageRef,
        subjects: Vec<Digest>,
    ) -> Result<Vec<String>> {
        let (source, destination) = (source.repo_only(), destination.repo_only());
        let mut absent = Vec::new();
        let mut followed: HashSet<Digest> = subjects.iter().cloned().collect();
        let mut level = subjects;
        for _ in 0..referrers::MAX_DEPTH {
            let mut next = Vec::new();
            for subject in &level {
                let found = referrers::discover(
                    self.client,
                    &self.facts,
                    &source,
                    subject,
                    &self.referrers,
                )
                .await?;
                let mut listed: Option<HashSet<Digest>> = None;
                for artifact in found.artifacts {
                    let what = artifact.describe();
                    match self
                        .client
                        .head_manifest(&destination, &artifact.reference())
                        .await?
                    {
                        None => {
                            absent.push(what);
                            continue;
                        }
                        Some(h) if h.digest != artifact.digest => {
                            absent.push(format!("{what}: the destination holds {}", h.digest));
                            continue;
                        }
                        Some(_) => {}
                    }
                    if let Placement::Referrer { .. } = artifact.placement {
                        if listed.is_none() {
                            listed = Some(self.listed_referrers(&destination, subject).await?);
                        }
                        if !listed
                            .as_ref()
                            .is_some_and(|l| l.contains(&artifact.digest))
                        {
                            absent.push(format!("{what}: not listed as a referrer of {subject}"));
                            continue;
                        }
                    }
                    if followed.insert(artifact.digest.clone()) {
                        next.push(artifact.digest);
                    }
                }
            }
            if next.is_empty() {
                break;
            }
            level = next;
        }
        Ok(absent)
    }

    /// The referrers `destination` lists for `subject`: through its API, else its
    /// fallback index.
    async fn listed_referrers(
        &self,
        destination: &ImageRef,
        subject: &Digest,
    ) -> Result<HashSet<Digest>> {
        let entries = match self
            .facts
            .referrers(self.client, destination, subject, None)
            .await?
        {
            Some(entries) => entries,
            // A tag that holds no index lists no referrer: they are reported missing.
            None => referrers::fallback_index(self.client, destination, subject)
                .await?
                .and_then(|index| index.entries.ok())
                .unwrap_or_default(),
        };
        Ok(entries.iter().filter_map(tags::entry_digest).collect())
    }

    /// Everything below `root` that the destination lacks: child manifests (read from the
    /// destination, so their bytes are checked against their digests) and blobs.
    async fn absent(
        &self,
        source: &ImageRef,
        destination: &ImageRef,
        root: &Manifest,
    ) -> Result<Vec<String>> {
        let mut absent = Vec::new();
        let mut seen: HashSet<Digest> = HashSet::new();
        let mut pending = vec![root.clone()];
        let mut blobs = Vec::new();
        while let Some(manifest) = pending.pop() {
            if manifest.kind == ManifestKind::Index {
                for child in &manifest.children {
                    if !seen.insert(child.digest.clone()) {
                        continue;
                    }
                    match self
                        .client
                        .get_manifest(destination, child.digest.as_str())
                        .await
                    {
                        Ok(m) => pending.push(m),
                        Err(Error::ManifestNotFound { .. }) => {
                            absent.push(format!("manifest {}", child.digest))
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            for blob in manifest.blobs {
                if seen.insert(blob.digest.clone()) {
                    blobs.push(blob);
                }
            }
        }
        let checks: Vec<Result<Option<String>>> = stream::iter(blobs)
            .map(|blob| async move {
                if self.client.blob_exists(destination, &blob.digest).await? {
                    return Ok(None);
                }
                // A foreign layer the source does not serve is fetched from its URLs by
                // whoever pulls; the copy leaves it out, so its absence is expected.
                if blob.is_foreign() && !self.client.blob_exists(source, &blob.digest).await? {
                    return Ok(None);
                }
                Ok(Some(format!("blob {}", blob.digest)))
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        for check in checks {
            if let Some(missing) = check? {
                absent.push(missing);
            }
        }
        absent.sort();
        Ok(absent)
    }
}
