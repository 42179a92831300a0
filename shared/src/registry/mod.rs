//! A client for the OCI distribution API, built for copying: every call returns what the
//! registry really said (raw manifest bytes, content type, digest header), bodies stream, and
//! failures come back as [`crate::error::Error`] variants a caller can act on.
//!
//! Why not `oci_client::Client` for the requests themselves: it does not expose response
//! headers (the manifest `Content-Type` needed to push bytes back unchanged, `Retry-After`,
//! the `Location` a failed mount falls back to), it has no retry on 401 with a fresh token,
//! and its tokens carry a single repository scope, so cross-repository mounts cannot be
//! authorized. ferry keeps `oci-client` for reference parsing and builds this thin layer on the
//! same `reqwest`.

mod client;
pub mod endpoint;
pub mod pace;
pub mod quota;
mod read;
mod response;
pub mod retry;
mod session;

pub use client::{Deleted, ManifestHead, RegistryClient, RegistryOptions, UploadStart};
pub use endpoint::Endpoints;
pub use pace::{Limits, RegistryLimits, RequestKind};
pub use read::ReadRegistry;
pub use retry::RetryPolicy;
pub use session::Scope;
