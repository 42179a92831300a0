//! The copy engine: one source image to one or more destinations, byte-exact.
//!
//! For each image: one manifest HEAD per registry decides whether there is anything to do;
//! then the manifest tree is read, every blob is made present at every destination
//! ([`blob`]), child manifests are pushed before their parents, and the tag goes last. A tag
//! therefore never points at something incomplete, and an interrupted copy is finished by
//! running it again.

pub mod artifacts;
pub mod blob;
pub mod blob_claims;
pub mod progress;
pub mod tree;
pub mod untagged;

use std::sync::Arc;
use std::time::Instant;

use futures::{stream, StreamExt};

use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::manifest::{Manifest, ManifestKind, Platform};
use crate::reference::ImageRef;
use crate::referrers::{self, Selection};
use crate::registry::{ManifestHead, RegistryClient};
use crate::report::{BlobStats, DestinationReport, ErrorInfo, ImageReport, RunReport, Status};
use blob::{BlobCopy, BlobOutcome};
use blob_claims::BlobClaims;
use progress::{Progress, Silent};

/// A blob this small costs little to send again where a registry does not mount, and on a
/// cold copy of many small images the HEADs it saves are a large part of the destination
/// registry's CPU (measured in the README's benchmark section).
pub const DEFAULT_MOUNT_PROBE_MAX_BYTES: u64 = 1 << 20;

#[derive(Debug, Clone)]
pub struct CopyOptions {
    /// Images copied at the same time.
    pub image_concurrency: usize,
    /// Blobs of one image copied at the same time.
    pub blob_concurrency: usize,
    /// Blobs up to this size, bound for a repository without tags, are asked for with one
    /// mount request instead of a HEAD and then an upload session ([`untagged`]); 0 HEADs all.
    pub mount_probe_max_bytes: u64,
    /// Copy only these platforms of a multi-platform image; empty copies everything exactly.
    pub platforms: Vec<Platform>,
    /// The signatures, attestations, SBOMs and other referrers that follow each image.
    pub referrers: Selection,
}

/// Images copied at once unless configured: chosen where round trips to distant registries
/// are the limit (the benchmark's wan run), and no slower on loopback.
pub const DEFAULT_IMAGE_CONCURRENCY: usize = 32;
/// Blobs of one image copied at once unless configured.
pub const DEFAULT_BLOB_CONCURRENCY: usize = 6;

impl Default for CopyOptions {
    fn default() -> Self {
        CopyOptions {
            image_concurrency: DEFAULT_IMAGE_CONCURRENCY,
            blob_concurrency: DEFAULT_BLOB_CONCURRENCY,
            mount_probe_max_bytes: DEFAULT_MOUNT_PROBE_MAX_BYTES,
            platforms: Vec::new(),
            referrers: Selection::All,
        }
    }
}

/// One image and where it goes. A destination without a tag takes the source's tag (or, for
/// a source named by digest only, is pushed by digest).
#[derive(Debug, Clone)]
pub struct CopyRequest {
    pub source: ImageRef,
    pub destinations: Vec<ImageRef>,
    /// Replace destination tags that point at another digest. When false they are left
    /// alone and reported as [`Status::Kept`].
    pub overwrite: bool,
    /// This image's platform filter; empty means the copier's [`CopyOptions::platforms`].
    pub platforms: Vec<Platform>,
    /// What planning in this process already found out about the image.
    pub hints: PlanHints,
    /// Do not trust a destination tag that points at the image: check that every blob and
    /// child manifest under it is there, and send what is missing (`ferry verify --repair`,
    /// a deep check). The tag itself is not pushed again.
    pub repair: bool,
    /// Before moving a destination tag that holds another image, keep that image under a
    /// tag made from this template (read from the destination and put back there).
    pub backup: Option<crate::backup::BackupTemplate>,
}

/// What planning in the same process already learned about an image, so the copy need not
/// ask the registries again. It never travels in a queue message: a copier reading a queue
/// asks for itself, because the registries may have changed since the plan.
#[derive(Debug, Clone, Default)]
pub struct PlanHints {
    /// The source's root manifest as read while planning (before any platform filter).
    pub manifest: Option<Arc<Manifest>>,
    /// No destination held the tag a moment ago (its tag list lacked it, or a HEAD found
    /// nothing), so there is nothing to compare with: the copy skips its manifest HEADs
    /// (only when it may overwrite, since a tag that appeared since would otherwise have to
    /// be kept).
    pub destinations_absent: bool,
    /// Every destination held the image a moment ago: only its artifacts are checked.
    pub destinations_current: bool,
}

impl CopyRequest {
    pub fn new(source: ImageRef, destinations: Vec<ImageRef>) -> Self {
        CopyRequest {
            source,
            destinations,
            overwrite: true,
            platforms: Vec::new(),
            hints: PlanHints::default(),
            repair: false,
            backup: None,
        }
    }
}

pub struct Copier {
    client: Arc<RegistryClient>,
    options: CopyOptions,
    claims: BlobClaims,
    untagged: untagged::UntaggedRepos,
    facts: Arc<referrers::RegistryFacts>,
    progress: Arc<dyn Progress>,
}

/// What an image copy settled on.
struct CopiedImage {
    /// The digest every destination now holds.
    digest: Digest,
    /// Every manifest of the image, children first: the subjects its artifacts refer to.
    subjects: Vec<Digest>,
}

/// Per-destination state while an image is copied.
struct Target {
    dest: ImageRef,
    /// What the manifest is pushed under: a tag, or the digest.
    reference: String,
    existing: Option<Digest>,
    status: Status,
    error: Option<Error>,
    /// The tag already names the image, which is being repaired: only what is missing
    /// under it is sent, and the target is up to date if nothing was.
    repairing: bool,
    /// Something was sent to this target (a blob uploaded or mounted, a manifest put).
    changed: bool,
    /// The tag the image it held was kept under before it was moved.
    backup: Option<String>,
}

impl Copier {
    pub fn new(client: Arc<RegistryClient>, options: CopyOptions) -> Self {
        Copier {
            client,
            options,
            claims: BlobClaims::new(),
            untagged: untagged::UntaggedRepos::new(),
            facts: Arc::new(referrers::RegistryFacts::new()),
            progress: Arc::new(Silent),
        }
    }

    pub fn with_progress(mut self, progress: Arc<dyn Progress>) -> Self {
        self.progress = progress;
        self
    }

    /// Share what is known of registries with a planner in the same process, so that the
    /// source tag lists it has just read are not read again for signatures.
    pub fn with_facts(mut self, facts: Arc<referrers::RegistryFacts>) -> Self {
        self.facts = facts;
        self
    }

    /// Start a new batch of work in a long-lived copier (a warm Lambda): source tag lists
    /// read for earlier batches are forgotten, so artifacts pushed since are found, and so
    /// are the blobs known at destinations, which may have been deleted since.
    pub fn begin_batch(&self) {
        self.facts.forget_tags();
        self.claims.forget();
    }

    pub fn client(&self) -> &RegistryClient {
        &self.client
    }

    /// Copy every request, `image_concurrency` at a time; reports come back in request order.
    pub async fn copy_all(&self, requests: Vec<CopyRequest>) -> RunReport {
        let started = Instant::now();
        let mut reports: Vec<(usize, ImageReport)> = stream::iter(requests.into_iter().enumerate())
            .map(|(i, r)| async move { (i, self.copy_image(&r).await) })
            .buffer_unordered(self.options.image_concurrency.max(1))
            .collect()
            .await;
        reports.sort_by_key(|(i, _)| *i);
        RunReport::from_images(
            reports.into_iter().map(|(_, r)| r).collect(),
            started.elapsed().as_millis() as u64,
        )
    }

    /// Copy one image to all its destinations.
    pub async fn copy_image(&self, request: &CopyRequest) -> ImageReport {
        let started = Instant::now();
        let mut stats = BlobStats::default();
        let mut targets: Vec<Target> = Vec::new();
        let outcome = self
            .copy_image_inner(request, &mut targets, &mut stats)
            .await;
        let (digest, error, artifacts) = match outcome {
            Ok(copied) => {
                // The artifacts go only where the image now is, and only after it is.
                let holders: Vec<ImageRef> = targets
                    .iter()
                    .filter(|t| matches!(t.status, Status::Copied | Status::UpToDate))
                    .map(|t| t.dest.clone())
                    .collect();
                let artifacts = if holders.is_empty() || self.options.referrers.is_none() {
                    Vec::new()
                } else {
                    self.copy_artifacts(request, copied.subjects, &holders, &mut stats)
                        .await
                };
                (Some(copied.digest.to_string()), None, artifacts)
            }
            Err(e) => (None, Some(ErrorInfo::from(&e)), Vec::new()),
        };
        let destinations: Vec<DestinationReport> = if targets.is_empty() {
            request
                .destinations
                .iter()
                .map(|d| DestinationReport {
                    reference: d.to_string(),
                    status: Status::Failed,
                    error: None,
                    backup: None,
                })
                .collect()
        } else {
            targets
                .iter()
                .map(|t| DestinationReport {
                    reference: format!("{}{}", t.dest.repo_name(), display_suffix(&t.reference)),
                    status: t.status,
                    error: t.error.as_ref().map(ErrorInfo::from),
                    backup: t
                        .backup
                        .as_ref()
                        .map(|b| format!("{}:{b}", t.dest.repo_name())),
                })
                .collect()
        };
        let artifact_statuses = || {
            artifacts
                .iter()
                .flat_map(|a| a.destinations.iter().map(|d| d.status))
        };
        let status = if error.is_some()
            || destinations.iter().any(|d| d.status == Status::Failed)
            || artifact_statuses().any(|s| s == Status::Failed)
        {
            Status::Failed
        } else if destinations.iter().any(|d| d.status == Status::Copied)
            || artifact_statuses().any(|s| s == Status::Copied)
        {
            Status::Copied
        } else if destinations.iter().any(|d| d.status == Status::Kept) {
            Status::Kept
        } else {
            Status::UpToDate
        };
        let report = ImageReport {
            source: request.source.to_string(),
            digest,
            status,
            destinations,
            stats,
            artifacts,
            duration_ms: started.elapsed().as_millis() as u64,
            error,
        };
        match report.status {
            Status::Failed => {
                tracing::info!(source = %report.source, error = ?report.first_error().map(|e| &e.message), "image failed")
            }
            _ => {
                tracing::info!(source = %report.source, status = ?report.status, bytes = report.stats.bytes_uploaded, "image done")
            }
        }
        self.progress.image_finished(&report);
        report
    }

    async fn copy_image_inner(
        &self,
        request: &CopyRequest,
        targets: &mut Vec<Target>,
        stats: &mut BlobStats,
    ) -> Result<CopiedImage> {
        let source = &request.source;
        let source_ref = source.manifest_reference().ok_or_else(|| {
            Error::Config(format!(
                "{source} names no tag or digest; add :TAG, or use --all-tags to copy every tag"
            ))
        })?;
        if request.destinations.is_empty() {
            return Err(Error::Config(format!("no destination given for {source}")));
        }

        // Decide what the destinations should end up with, as cheaply as possible: without a
        // platform filter that is the source digest (a HEAD, which registries such as Docker
        // Hub do not count as a pull).
        let platforms = if request.platforms.is_empty() {
            &self.options.platforms
        } else {
            &request.platforms
        };
        // A manifest read while planning stands for the source's root only if it is the
        // image the request names.
        let prior_root = request
            .hints
            .manifest
            .as_ref()
            .filter(|m| source.digest().is_none_or(|d| *d == m.digest))
            .map(|m| Manifest::clone(m));
        // Whether a HEAD said the image is an index: its children have referrers of their own.
        let mut index_hint = false;
        let (want, mut root) = if platforms.is_empty() {
            let digest = match source.digest() {
                Some(d) => d.clone(),
                None => {
                    let head = self
                        .client
                        .head_manifest(source, &source_ref)
                        .await?
                        .ok_or_else(|| Error::ManifestNotFound {
                            at: location(source),
                            reference: source_ref.clone(),
                        })?;
                    index_hint |= head.is_index();
                    head.digest
                }
            };
            let root = prior_root.filter(|m| m.digest == digest);
            (digest, root)
        } else {
            let fetched = match prior_root {
                Some(m) => m,
                None => self.client.get_manifest(source, &source_ref).await?,
            };
            let selected = tree::select_platforms(&self.client, source, fetched, platforms).await?;
            (selected.digest.clone(), Some(selected))
        };

        for dest in &request.destinations {
            let reference = dest
                .tag()
                .or(source.tag())
                .map(str::to_string)
                .unwrap_or_else(|| want.to_string());
            targets.push(Target {
                dest: dest.repo_only(),
                reference,
                existing: None,
                status: Status::Copied,
                error: None,
                repairing: false,
                changed: false,
                backup: None,
            });
        }
        let heads = if request.hints.destinations_current && !request.repair {
            targets
                .iter()
                .map(|_| {
                    Ok(Some(ManifestHead {
                        digest: want.clone(),
                        media_type: None,
                    }))
                })
                .collect()
        } else if request.hints.destinations_absent && request.overwrite {
            targets.iter().map(|_| Ok(None)).collect()
        } else {
            futures::future::join_all(
                targets
                    .iter()
                    .map(|t| self.client.head_manifest(&t.dest, &t.reference)),
            )
            .await
        };
        for (t, head) in targets.iter_mut().zip(heads) {
            match head {
                Ok(Some(h)) if h.digest == want && request.repair => {
                    t.existing = Some(h.digest);
                    t.repairing = true;
                }
                Ok(Some(h)) if h.digest == want => {
                    index_hint |= h.is_index();
                    t.status = Status::UpToDate
                }
                Ok(Some(_)) if !request.overwrite => t.status = Status::Kept,
                Ok(h) => t.existing = h.map(|h| h.digest),
                Err(e) => fail(t, e),
            }
        }
        if !targets.iter().any(|t| t.status == Status::Copied) {
            // Nothing to push, but the artifacts of the image and of its children may still
            // be missing at the destinations.
            let is_index = root
                .as_ref()
                .map_or(index_hint, |r| r.kind == ManifestKind::Index);
            let mut subjects = Vec::new();
            if is_index && !self.options.referrers.is_none() {
                let root = match root.take() {
                    Some(r) => r,
                    None => self.client.get_manifest(source, want.as_str()).await?,
                };
                subjects.extend(root.children.iter().map(|c| c.digest.clone()));
            }
            subjects.push(want.clone());
            return Ok(CopiedImage {
                digest: want,
                subjects,
            });
        }

        let root = match root.take() {
            Some(r) => r,
            None => self.client.get_manifest(source, want.as_str()).await?,
        };
        let image = tree::fetch(&self.client, source, root, self.options.blob_concurrency).await?;
        for skipped in &image.skipped_foreign {
            tracing::info!(digest = %skipped.digest, "foreign layer not served by the source; left to its URLs");
        }
        self.progress.image_started(source, image.total_bytes());

        self.push_tree(source, &image, request.backup.as_ref(), targets, stats)
            .await;
        Ok(CopiedImage {
            digest: want,
            subjects: image.manifests.iter().map(|m| m.digest.clone()).collect(),
        })
    }

    /// Push `image` to every target still marked [`Status::Copied`]: all blobs first, then
    /// child manifests, then the root under the target's reference. A target that fails is
    /// marked so and gets nothing more.
    async fn push_tree(
        &self,
        source: &ImageRef,
        image: &tree::ImageTree,
        backup: Option<&crate::backup::BackupTemplate>,
        targets: &mut [Target],
        stats: &mut BlobStats,
    ) {
        // Blobs, all of them, before any manifest.
        let active: Vec<usize> = active_indexes(targets);
        let dests: Vec<ImageRef> = active.iter().map(|&i| targets[i].dest.clone()).collect();
        let per_blob: Vec<(u64, Vec<Result<BlobOutcome>>)> = stream::iter(image.blobs.iter())
            .map(|blob| {
                let dests = &dests;
                async move {
                    let copy = BlobCopy {
                        client: &self.client,
                        claims: &self.claims,
                        untagged: &self.untagged,
                        mount_probe_max_bytes: self.options.mount_probe_max_bytes,
                        progress: &self.progress,
                        source,
                        blob,
                    };
                    (blob.size, copy.run(dests).await)
                }
            })
            .buffer_unordered(self.options.blob_concurrency.max(1))
            .collect()
            .await;
        for (size, outcomes) in per_blob {
            for (&ti, outcome) in active.iter().zip(outcomes) {
                match outcome {
                    Ok(BlobOutcome::Uploaded) => {
                        stats.blobs_uploaded += 1;
                        stats.bytes_uploaded += size;
                        targets[ti].changed = true;
                    }
                    Ok(BlobOutcome::Mounted) => {
                        stats.blobs_mounted += 1;
                        targets[ti].changed = true;
                    }
                    Ok(BlobOutcome::Present) => stats.blobs_skipped += 1,
                    Err(e) => {
                        if targets[ti].error.is_none() {
                            fail(&mut targets[ti], e);
                        }
                    }
                }
            }
        }

        // Then manifests, children first, and the tag last. A target being repaired gets
        // only the children it lacks, and keeps its tag as it is.
        let pushing = active_indexes(targets);
        let pushes =
            futures::future::join_all(pushing.iter().map(|&i| &targets[i]).map(|t| async {
                let mut pushed = 0u64;
                let (children, root) = image.manifests.split_at(image.manifests.len() - 1);
                for child in children {
                    if t.repairing
                        && self
                            .client
                            .head_manifest(&t.dest, child.digest.as_str())
                            .await?
                            .is_some()
                    {
                        continue;
                    }
                    self.client
                        .put_manifest(&t.dest, child.digest.as_str(), child)
                        .await?;
                    pushed += 1;
                }
                if t.repairing {
                    return Ok::<(u64, Option<String>), Error>((pushed, None));
                }
                // The image the tag held is kept before the tag moves; without its backup
                // the tag is not moved (nothing is lost), and the failure is reported.
                let mut kept = None;
                if let (Some(template), Some(previous)) = (backup, &t.existing) {
                    kept = Some(self.back_up(t, template, previous).await?);
                    pushed += 1;
                }
                self.client
                    .put_manifest(&t.dest, &t.reference, &root[0])
                    .await
                    .map_err(|e| match e {
                        Error::ImmutableTag {
                            at,
                            tag,
                            existing: None,
                        } => Error::ImmutableTag {
                            at,
                            tag,
                            existing: t.existing.clone(),
                        },
                        other => other,
                    })?;
                Ok::<(u64, Option<String>), Error>((pushed + 1, kept))
            }))
            .await;
        for (ti, result) in pushing.into_iter().zip(pushes) {
            match result {
                Ok((n, kept)) => {
                    stats.manifests_pushed += n;
                    let t = &mut targets[ti];
                    t.backup = kept;
                    t.changed |= n > 0;
                    if t.repairing && !t.changed {
                        t.status = Status::UpToDate;
                    }
                }
                Err(e) => fail(&mut targets[ti], e),
            }
        }
    }
}

impl Copier {
    /// Put the manifest `t`'s tag holds (`previous`) under its backup tag, in the same
    /// repository: its blobs and children are there already. The backup's name is the
    /// template's for the tag at this moment.
    async fn back_up(
        &self,
        t: &Target,
        template: &crate::backup::BackupTemplate,
        previous: &Digest,
    ) -> Result<String> {
        let name = template
            .render(&t.reference, previous, jiff::Timestamp::now())
            .map_err(Error::Config)?;
        let held = self.client.get_manifest(&t.dest, previous.as_str()).await?;
        self.client.put_manifest(&t.dest, &name, &held).await?;
        tracing::info!(destination = %t.dest, tag = %t.reference, backup = %name, previous = %previous, "kept the previous image before moving the tag");
        Ok(name)
    }
}

fn display_suffix(reference: &str) -> String {
    if reference.contains(':') {
        format!("@{reference}")
    } else {
        format!(":{reference}")
    }
}

fn fail(t: &mut Target, e: Error) {
    t.status = Status::Failed;
    t.error = Some(e);
}

fn active_indexes(targets: &[Target]) -> Vec<usize> {
    (0..targets.len())
        .filter(|&i| targets[i].status == Status::Copied)
        .collect()
}

fn location(image: &ImageRef) -> Location {
    Location {
        registry: image.registry().into(),
        repository: image.repository().into(),
    }
}

/// Expand `source` (a repository) into one request per tag, each to the same tag in every
/// destination repository.
pub async fn all_tags(
    client: &RegistryClient,
    source: &ImageRef,
    destinations: &[ImageRef],
) -> Result<Vec<CopyRequest>> {
    let tags = client.list_tags(&source.repo_only()).await?;
    Ok(tags
        .into_iter()
        // Signature and referrers tags travel with the images they belong to.
        .filter(|tag| !referrers::tags::is_artifact_tag(tag))
        .map(|tag| {
            CopyRequest::new(
                source.with_tag(&tag),
                destinations.iter().map(|d| d.with_tag(&tag)).collect(),
            )
        })
        .collect())
}
