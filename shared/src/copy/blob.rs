//! Copying one blob to one or more destinations: skip what is there, mount what the same
//! registry has elsewhere, and stream the rest from the source once, to every destination
//! at the same time.
//!
//! Memory stays flat: the source body is read chunk by chunk into small bounded channels,
//! one per destination upload, and nothing waits for the whole blob. The sha256 is checked
//! as bytes pass; the last chunk is held back until the digest is verified, so a corrupt
//! source blob never reaches a destination in full (and the destination, which checks the
//! digest too, discards the partial upload).

use std::io;
use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::mpsc;
use url::Url;

use super::progress::Progress;
use crate::digest::Digest;
use crate::error::{Error, Location, Result};
use crate::manifest::Descriptor;
use crate::reference::ImageRef;
use crate::registry::{RegistryClient, UploadStart};

/// Chunks buffered per destination upload. With reqwest's ~8–64 KiB chunks this bounds a
/// transfer to a few MiB at most whatever the blob size.
const CHANNEL_CHUNKS: usize = 32;

/// What happened to a blob at one destination.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobOutcome {
    /// Already there (known this run, or answered a HEAD).
    Present,
    Mounted,
    Uploaded,
}

/// How a destination stands before any byte is read from the source.
enum Standing {
    /// Nothing to send.
    Done(BlobOutcome),
    /// The bytes must be sent; into this session when a mount request opened one.
    Send(Option<Url>),
}

pub struct BlobCopy<'a> {
    pub client: &'a RegistryClient,
    pub claims: &'a super::blob_claims::BlobClaims,
    pub untagged: &'a super::untagged::UntaggedRepos,
    /// Blobs up to this size bound for a repository without tags are asked for with a
    /// mount probe instead of a HEAD ([`super::untagged`]).
    pub mount_probe_max_bytes: u64,
    pub progress: &'a Arc<dyn Progress>,
    pub source: &'a ImageRef,
    pub blob: &'a Descriptor,
}

impl BlobCopy<'_> {
    /// Make the blob present in every destination; one result per destination, in order.
    pub async fn run(&self, destinations: &[ImageRef]) -> Vec<Result<BlobOutcome>> {
        let digest = &self.blob.digest;
        let mut results: Vec<Option<Result<BlobOutcome>>> =
            destinations.iter().map(|_| None).collect();
        let mut guards = self
            .claims
            .lock(
                digest,
                destinations.iter().map(|d| d.registry().to_string()),
            )
            .await;

        // Per registry, the first destination that needs the bytes gets them from the source;
        // the others of that registry mount from it afterwards.
        let mut uploads: Vec<(usize, Option<Url>)> = Vec::new();
        let mut deferred: Vec<usize> = Vec::new();
        for (i, dest) in destinations.iter().enumerate() {
            let known = guards.get_mut(dest.registry()).expect("locked above");
            match self.settle_without_source(dest, known).await {
                Ok(Standing::Done(outcome)) => {
                    known.insert(dest.repository().to_string());
                    results[i] = Some(Ok(outcome));
                }
                // A session it opened is left to expire: the mount afterwards needs none.
                Ok(Standing::Send(_))
                    if uploads
                        .iter()
                        .any(|&(u, _)| destinations[u].registry() == dest.registry()) =>
                {
                    deferred.push(i)
                }
                Ok(Standing::Send(session)) => uploads.push((i, session)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }

        if !uploads.is_empty() {
            let (indices, sessions): (Vec<usize>, Vec<Option<Url>>) = uploads.into_iter().unzip();
            let targets: Vec<&ImageRef> = indices.iter().map(|&i| &destinations[i]).collect();
            let outcomes = self.upload_with_retry(&targets, sessions).await;
            for (&i, outcome) in indices.iter().zip(outcomes) {
                if outcome.is_ok() {
                    guards
                        .get_mut(destinations[i].registry())
                        .expect("locked")
                        .insert(destinations[i].repository().to_string());
                }
                results[i] = Some(outcome.map(|_| BlobOutcome::Uploaded));
            }
        }

        for i in deferred {
            let dest = &destinations[i];
            let known = guards.get_mut(dest.registry()).expect("locked");
            let outcome = match self.settle_without_source(dest, known).await {
                Ok(Standing::Done(o)) => Ok(o),
                // Mount unsupported or the upload above failed: send the bytes here too.
                Ok(Standing::Send(session)) => self
                    .upload_with_retry(&[dest], vec![session])
                    .await
                    .pop()
                    .expect("one result")
                    .map(|_| BlobOutcome::Uploaded),
                Err(e) => Err(e),
            };
            if outcome.is_ok() {
                known.insert(dest.repository().to_string());
            }
            results[i] = Some(outcome);
        }
        results
            .into_iter()
            .map(|r| r.expect("every destination settled"))
            .collect()
    }

    /// Settle the blob at `dest` without reading the source: known this run, present
    /// (HEAD, or a mount probe in a repository without tags, see [`super::untagged`]), or
    /// mountable from a repository of the same registry that has it. Otherwise the bytes
    /// must be sent, into the session a mount request that could not mount opened.
    async fn settle_without_source(
        &self,
        dest: &ImageRef,
        known: &super::blob_claims::KnownRepos,
    ) -> Result<Standing> {
        let digest = &self.blob.digest;
        if known.contains(dest.repository()) {
            return Ok(Standing::Done(BlobOutcome::Present));
        }
        let probe = self.blob.size <= self.mount_probe_max_bytes
            && self.untagged.may_probe(self.client, dest).await;
        if !probe && self.client.blob_exists(dest, digest).await? {
            return Ok(Standing::Done(BlobOutcome::Present));
        }
        let mount_from = known
            .iter()
            .find(|r| r.as_str() != dest.repository())
            .cloned()
            .or_else(|| {
                (self.client.same_registry(self.source, dest)
                    && self.source.repository() != dest.repository())
                .then(|| self.source.repository().to_string())
            })
            .or_else(|| probe.then(|| dest.repository().to_string()));
        let Some(from) = mount_from else {
            return Ok(Standing::Send(None));
        };
        match self.client.start_upload(dest, Some((&from, digest))).await {
            Ok(UploadStart::Mounted) if from == dest.repository() => {
                Ok(Standing::Done(BlobOutcome::Present))
            }
            Ok(UploadStart::Mounted) => Ok(Standing::Done(BlobOutcome::Mounted)),
            Ok(UploadStart::Session(url)) => Ok(Standing::Send(Some(url))),
            Err(e) if probe && !e.is_retryable() => {
                tracing::debug!(registry = dest.registry(), error = %e, "mount probe refused; blobs there are HEADed from now on");
                self.untagged.refused(dest.registry());
                match self.client.blob_exists(dest, digest).await? {
                    true => Ok(Standing::Done(BlobOutcome::Present)),
                    false => Ok(Standing::Send(None)),
                }
            }
            Err(e) => Err(e),
        }
    }

    /// Stream the blob to `targets`, retrying the ones whose failure was transient. The
    /// first attempt uses the sessions already open (one per target, or `None`); a retry
    /// opens untagged ones.
    async fn upload_with_retry(
        &self,
        targets: &[&ImageRef],
        mut sessions: Vec<Option<Url>>,
    ) -> Vec<Result<()>> {
        let policy = self.client.retry_policy();
        let mut results: Vec<Option<Result<()>>> = targets.iter().map(|_| None).collect();
        let mut attempts = crate::registry::retry::Attempts::default();
        loop {
            let pending: Vec<usize> = (0..targets.len())
                .filter(|&i| match &results[i] {
                    None => true,
                    Some(Err(e)) => e.is_retryable(),
                    Some(Ok(())) => false,
                })
                .collect();
            let pending_refs: Vec<&ImageRef> = pending.iter().map(|&i| targets[i]).collect();
            let open: Vec<Option<Url>> = pending.iter().map(|&i| sessions[i].take()).collect();
            let outcomes = self.upload_once(&pending_refs, open).await;
            for (&i, r) in pending.iter().zip(outcomes) {
                results[i] = Some(r);
            }
            let Some(retry) = results
                .iter()
                .filter_map(|r| r.as_ref()?.as_ref().err())
                .find(|e| e.is_retryable())
            else {
                break;
            };
            let Some(pause) = policy.again(&mut attempts, retry) else {
                break;
            };
            if !pause.is_zero() {
                tracing::warn!(digest = %self.blob.digest, error = %retry, pause_ms = pause.as_millis() as u64, "retrying blob");
                tokio::time::sleep(pause).await;
            }
        }
        results.into_iter().map(|r| r.expect("attempted")).collect()
    }

    /// One pass: open an upload session per target that has none, then pump the source body
    /// into all of them at once. The source download starts while the sessions open (one
    /// round trip less per blob); its body waits, unread, for the uploads.
    async fn upload_once(
        &self,
        targets: &[&ImageRef],
        sessions: Vec<Option<Url>>,
    ) -> Vec<Result<()>> {
        let digest = &self.blob.digest;
        let size = self.blob.size;
        let mut results: Vec<Option<Result<()>>> = targets.iter().map(|_| None).collect();
        let open_sessions = async {
            let mut open: Vec<(usize, Url)> = Vec::new();
            for (i, (dest, session)) in targets.iter().zip(sessions).enumerate() {
                if let Some(url) = session {
                    open.push((i, url));
                    continue;
                }
                match self.client.start_upload(dest, None).await {
                    Ok(UploadStart::Session(url)) => open.push((i, url)),
                    Ok(UploadStart::Mounted) => results[i] = Some(Ok(())),
                    Err(e) => results[i] = Some(Err(e)),
                }
            }
            open
        };
        let (open, download) =
            tokio::join!(open_sessions, self.client.get_blob(self.source, digest));
        if open.is_empty() {
            return results.into_iter().map(|r| r.expect("settled")).collect();
        }

        let mut senders = Vec::new();
        let mut uploads = Vec::new();
        for (i, url) in open {
            let (tx, rx) = mpsc::channel::<io::Result<Bytes>>(CHANNEL_CHUNKS);
            let body =
                reqwest::Body::wrap_stream(futures::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                }));
            let dest = targets[i];
            let client = self.client;
            uploads.push(async move {
                (
                    i,
                    client.finish_upload(dest, &url, digest, size, body).await,
                )
            });
            senders.push(Some(tx));
        }
        // Every registry this blob passes through whose transfers are capped.
        let mut capped: Vec<Arc<crate::registry::pace::RegistryPace>> = Vec::new();
        let mut registries: Vec<&str> = vec![self.source.registry()];
        registries.extend(targets.iter().map(|t| t.registry()));
        registries.sort_unstable();
        registries.dedup();
        for registry in registries {
            let pace = self.client.pace(registry);
            if pace.caps_bandwidth() {
                capped.push(pace);
            }
        }
        let (pumped, uploaded) = tokio::join!(
            self.pump(download, senders, &capped),
            futures::future::join_all(uploads)
        );
        for (i, r) in uploaded {
            results[i] = Some(match (&pumped, r) {
                // A source-side failure explains every destination's failure better than the
                // truncated upload it caused.
                (Err(e), _) => Err(clone_error(e)),
                (Ok(()), r) => r,
            });
        }
        results.into_iter().map(|r| r.expect("settled")).collect()
    }

    /// Read the source blob once and feed every live sender; verify size and digest before
    /// the final chunk goes out.
    async fn pump(
        &self,
        download: Result<reqwest::Response>,
        mut senders: Vec<Option<mpsc::Sender<io::Result<Bytes>>>>,
        capped: &[Arc<crate::registry::pace::RegistryPace>],
    ) -> Result<()> {
        let result = match download {
            Ok(response) => self.pump_inner(response, &mut senders, capped).await,
            Err(e) => Err(e),
        };
        if let Err(e) = &result {
            for tx in senders.iter_mut().filter_map(Option::take) {
                let _ = tx.send(Err(io::Error::other(e.to_string()))).await;
            }
        }
        result
    }

    async fn pump_inner(
        &self,
        response: reqwest::Response,
        senders: &mut [Option<mpsc::Sender<io::Result<Bytes>>>],
        capped: &[Arc<crate::registry::pace::RegistryPace>],
    ) -> Result<()> {
        let digest = &self.blob.digest;
        let at = Location {
            registry: self.source.registry().into(),
            repository: self.source.repository().into(),
        };
        let mut body = response.bytes_stream();
        let mut verifier = digest.verifier();
        let mut held: Option<Bytes> = None;
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Error::Transient {
                at: at.clone(),
                op: crate::error::Operation::ReadBlob,
                detail: format!("reading blob {digest}: {}", e.without_url()),
            })?;
            verifier.update(&chunk);
            if verifier.bytes_seen() > self.blob.size {
                return Err(mismatch(
                    &at,
                    digest,
                    format!(
                        "more than the {} bytes the manifest declares",
                        self.blob.size
                    ),
                ));
            }
            self.progress.advanced(self.source, chunk.len() as u64);
            // Waiting here holds the source read and every upload to the slowest cap: the
            // bytes pass through all of them at once.
            for pace in capped {
                pace.transfer(chunk.len() as u64).await;
            }
            if let Some(previous) = held.replace(chunk) {
                send_all(senders, previous).await;
            }
        }
        let seen = verifier.bytes_seen();
        if seen != self.blob.size {
            return Err(mismatch(
                &at,
                digest,
                format!(
                    "{seen} bytes where the manifest declares {}",
                    self.blob.size
                ),
            ));
        }
        if let Err(actual) = verifier.finish() {
            return Err(mismatch(&at, digest, actual.to_string()));
        }
        if let Some(last) = held {
            send_all(senders, last).await;
        }
        for tx in senders.iter_mut() {
            tx.take();
        }
        Ok(())
    }
}

fn mismatch(at: &Location, digest: &Digest, actual: String) -> Error {
    Error::DigestMismatch {
        at: at.clone(),
        what: format!("blob {digest}"),
        expected: digest.clone(),
        actual,
    }
}

/// Send a chunk to every upload still running; an upload that ended (failed) is dropped.
async fn send_all(senders: &mut [Option<mpsc::Sender<io::Result<Bytes>>>], chunk: Bytes) {
    for slot in senders.iter_mut() {
        if let Some(tx) = slot {
            if tx.send(Ok(chunk.clone())).await.is_err() {
                *slot = None;
            }
        }
    }
}

/// Errors are not `Clone` (they may wrap sources); a source-side failure is reported to
/// every destination with the same kind and message.
fn clone_error(e: &Error) -> Error {
    match e {
        Error::Transient { at, op, detail } => Error::Transient {
            at: at.clone(),
            op: *op,
            detail: detail.clone(),
        },
        Error::RateLimited { at, retry_after } => Error::RateLimited {
            at: at.clone(),
            retry_after: *retry_after,
        },
        Error::DigestMismatch {
            at,
            what,
            expected,
            actual,
        } => Error::DigestMismatch {
            at: at.clone(),
            what: what.clone(),
            expected: expected.clone(),
            actual: actual.clone(),
        },
        Error::BlobNotFound { at, digest } => Error::BlobNotFound {
            at: at.clone(),
            digest: digest.clone(),
        },
        Error::NoCredentials { at, op } => Error::NoCredentials {
            at: at.clone(),
            op: *op,
        },
        Error::Denied { at, op, message } => Error::Denied {
            at: at.clone(),
            op: *op,
            message: message.clone(),
        },
        other => Error::Protocol {
            at: Location {
                registry: String::new(),
                repository: String::new(),
            },
            op: crate::error::Operation::ReadBlob,
            detail: other.to_string(),
        },
    }
}
