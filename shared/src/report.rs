//! What a copy did, per image and destination, in a form both people (CLI summary) and
//! machines (`--json`, Lambda logs) read. Errors appear as their message and kind; messages
//! never contain credentials.

use serde::Serialize;

use crate::error::{End, Error};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Something was pushed.
    Copied,
    /// The destination already had this exact image; nothing was pushed.
    UpToDate,
    /// The destination tag points at another image and overwriting is off: left alone.
    Kept,
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ErrorInfo {
    pub kind: &'static str,
    pub message: String,
    pub retryable: bool,
    /// Which end of the copy refused, when the error says.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<End>,
    /// For `quota_exhausted`: whose quota, and when it allows more.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub quota: Option<QuotaWait>,
}

/// A registry's spent pull quota that an image waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaWait {
    pub registry: String,
    /// Manifest reads allowed per window.
    pub limit: u64,
    pub window_seconds: u64,
    /// When the window allows more, in seconds since the Unix epoch.
    pub resets_at: u64,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> Self {
        let quota = match e {
            Error::QuotaExhausted {
                at,
                limit,
                window,
                resets_at,
            } => Some(QuotaWait {
                registry: at.registry.clone(),
                limit: *limit,
                window_seconds: window.as_secs(),
                resets_at: resets_at
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_secs(),
            }),
            _ => None,
        };
        ErrorInfo {
            kind: e.kind(),
            message: e.to_string(),
            retryable: e.is_retryable(),
            end: e.end(),
            quota,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    pub reference: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
    /// Where the image the tag held before this copy was kept (`backup:`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub backup: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct BlobStats {
    pub blobs_uploaded: u64,
    pub blobs_skipped: u64,
    pub blobs_mounted: u64,
    pub bytes_uploaded: u64,
    pub manifests_pushed: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct ImageReport {
    pub source: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    pub status: Status,
    pub destinations: Vec<DestinationReport>,
    #[serde(flatten)]
    pub stats: BlobStats,
    /// Signatures, attestations, SBOMs and other referrers that followed the image.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub artifacts: Vec<ArtifactReport>,
    pub duration_ms: u64,
    /// An error that stopped the image before any destination was tried.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
}

/// One supply-chain artifact of an image (or a referrers index ferry maintains for one)
/// and what became of it at each destination.
#[derive(Debug, Clone, Serialize)]
pub struct ArtifactReport {
    /// The manifest the artifact belongs to: the image or one of its children.
    pub subject: String,
    /// The artifact's manifest digest; absent when it could not even be found.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub digest: Option<String>,
    /// `sig`, `att`, `sbom` (cosign tags), a referrer's artifact type, or `referrers index`.
    pub kind: String,
    /// The tag it is stored under, if any (cosign tags, fallback indexes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag: Option<String>,
    pub destinations: Vec<DestinationReport>,
}

impl ImageReport {
    /// The first error of this image, for one-line summaries.
    pub fn first_error(&self) -> Option<&ErrorInfo> {
        self.error
            .as_ref()
            .or_else(|| self.destinations.iter().find_map(|d| d.error.as_ref()))
            .or_else(|| {
                self.artifacts
                    .iter()
                    .flat_map(|a| &a.destinations)
                    .find_map(|d| d.error.as_ref())
            })
    }

    /// Every error of this image: its own, its destinations', its artifacts'.
    fn errors(&self) -> impl Iterator<Item = &ErrorInfo> {
        self.error
            .iter()
            .chain(self.destinations.iter().filter_map(|d| d.error.as_ref()))
            .chain(
                self.artifacts
                    .iter()
                    .flat_map(|a| a.destinations.iter().filter_map(|d| d.error.as_ref())),
            )
    }

    /// Whether every failure of this image may succeed when tried again.
    pub fn retryable(&self) -> bool {
        self.status == Status::Failed && self.errors().all(|e| e.retryable)
    }

    /// The spent pull quota this failed image waits for, if every failure of it is one
    /// that waiting for it, or retrying, can cure: the latest-resetting such quota.
    pub fn waits_for_quota(&self) -> Option<&QuotaWait> {
        if self.status != Status::Failed || !self.errors().all(|e| e.retryable || e.quota.is_some())
        {
            return None;
        }
        self.errors()
            .filter_map(|e| e.quota.as_ref())
            .max_by_key(|q| q.resets_at)
    }
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct RunReport {
    pub images: Vec<ImageReport>,
    pub copied: u64,
    pub up_to_date: u64,
    pub kept: u64,
    pub failed: u64,
    pub bytes_uploaded: u64,
    pub duration_ms: u64,
    /// Failed images that wait for a registry's spent pull quota, by registry.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub waiting_for_quota: Vec<QuotaWaiting>,
}

impl RunReport {
    pub fn from_images(images: Vec<ImageReport>, duration_ms: u64) -> Self {
        let count = |s| images.iter().filter(|i| i.status == s).count() as u64;
        RunReport {
            waiting_for_quota: waiting_for_quota(&images),
            copied: count(Status::Copied),
            up_to_date: count(Status::UpToDate),
            kept: count(Status::Kept),
            failed: count(Status::Failed),
            bytes_uploaded: images.iter().map(|i| i.stats.bytes_uploaded).sum(),
            duration_ms,
            images,
        }
    }

    pub fn success(&self) -> bool {
        self.failed == 0
    }
}

/// The images that wait for a spent pull quota, by registry.
fn waiting_for_quota(images: &[ImageReport]) -> Vec<QuotaWaiting> {
    let mut by_registry: std::collections::BTreeMap<&str, QuotaWaiting> = Default::default();
    for wait in images.iter().filter_map(ImageReport::waits_for_quota) {
        let entry = by_registry
            .entry(&wait.registry)
            .or_insert_with(|| QuotaWaiting {
                quota: wait.clone(),
                images: 0,
            });
        entry.images += 1;
        if wait.resets_at > entry.quota.resets_at {
            entry.quota = wait.clone();
        }
    }
    by_registry.into_values().collect()
}

/// How many images of a run wait for one registry's pull quota.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QuotaWaiting {
    #[serde(flatten)]
    pub quota: QuotaWait,
    pub images: u64,
}
