//! Progress callbacks, so the engine stays free of any terminal code: the CLI draws bars,
//! Lambda functions log, tests count.

use crate::reference::ImageRef;
use crate::report::ImageReport;

pub trait Progress: Send + Sync {
    /// An image's manifests are known; `total_bytes` is the size of its blobs.
    fn image_started(&self, _source: &ImageRef, _total_bytes: u64) {}
    /// `bytes` more were read from the source (or found already present).
    fn advanced(&self, _source: &ImageRef, _bytes: u64) {}
    fn image_finished(&self, _report: &ImageReport) {}
}

/// Reports nothing.
pub struct Silent;

impl Progress for Silent {}
