//! What a copy did, per image and destination, in a form both people (CLI summary) and
//! machines (`--json`, Lambda logs) read. Errors appear as their message and kind; messages
//! never contain credentials.

use serde::Serialize;

use crate::error::Error;

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

#[derive(Debug, Clone, Serialize)]
pub struct ErrorInfo {
    pub kind: &'static str,
    pub message: String,
    pub retryable: bool,
}

impl From<&Error> for ErrorInfo {
    fn from(e: &Error) -> Self {
        ErrorInfo {
            kind: e.kind(),
            message: e.to_string(),
            retryable: e.is_retryable(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct DestinationReport {
    pub reference: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorInfo>,
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

    /// Whether every failure of this image may succeed when tried again.
    pub fn retryable(&self) -> bool {
        self.status == Status::Failed
            && self
                .error
                .iter()
                .chain(self.destinations.iter().filter_map(|d| d.error.as_ref()))
                .chain(
                    self.artifacts
                        .iter()
                        .flat_map(|a| a.destinations.iter().filter_map(|d| d.error.as_ref())),
                )
                .all(|e| e.retryable)
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
}

impl RunReport {
    pub fn from_images(images: Vec<ImageReport>, duration_ms: u64) -> Self {
        let count = |s| images.iter().filter(|i| i.status == s).count() as u64;
        RunReport {
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
