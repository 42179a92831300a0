//! Destination repositories that held no tag a moment ago, where a small blob is asked for
//! with a mount request instead of a HEAD.
//!
//! Before uploading a blob the copy must learn whether the destination already has it (an
//! earlier run may have sent it before failing). A HEAD answers that, then an upload needs a
//! session: two round trips before the bytes. A mount request naming the destination
//! repository itself as the source answers both at once where the registry mounts (the
//! distribution server does, tested here; the OCI spec lets any registry): `201` when the
//! blob is there, else `202` with the upload session. On a cold migration, where every HEAD
//! misses, that is one request less per blob.
//!
//! Only where nobody pulls: a mount that finds the blob re-links it in the repository, a
//! write that a HEAD does not make, so it is used only in repositories without tags (asked
//! once per repository, then trusted for [`TRUSTED_FOR`]). Only for small blobs: a registry
//! that does not mount opens a session even for a blob it has, which is then sent again.
//! A registry that answers a mount probe with an error is not probed again this process.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::Duration;

use crate::reference::ImageRef;
use crate::registry::RegistryClient;
use crate::shared_answers::SharedAnswers;

/// How long a repository found without tags is treated as such. A run's images follow one
/// another within seconds; the copier Lambda outlives many runs, whose repositories fill up.
const TRUSTED_FOR: Duration = Duration::from_secs(60);

pub struct UntaggedRepos {
    /// `registry/repository` → whether it was found without tags.
    asked: SharedAnswers<bool>,
    /// Registries that answered a mount probe with an error.
    refusing: Mutex<HashSet<String>>,
}

impl Default for UntaggedRepos {
    fn default() -> Self {
        Self::new()
    }
}

impl UntaggedRepos {
    pub fn new() -> Self {
        Self {
            asked: SharedAnswers::new(TRUSTED_FOR),
            refusing: Mutex::default(),
        }
    }

    /// Whether a small blob bound for `dest` may be asked for with a mount probe: the
    /// registry has not refused one, and the repository held no tag within [`TRUSTED_FOR`]
    /// (asked once, however many blobs of its images want to know at the same time).
    pub async fn may_probe(&self, client: &RegistryClient, dest: &ImageRef) -> bool {
        if self.refuses(dest.registry()) {
            return false;
        }
        let key = format!("{}/{}", dest.registry(), dest.repository());
        self.asked
            .get_or_ask(&key, || async {
                match client.has_tags(dest).await {
                    Ok(has) => !has,
                    Err(e) => {
                        tracing::debug!(repository = %key, error = %e, "destination tags not listed; blobs are HEADed");
                        false
                    }
                }
            })
            .await
    }

    /// `registry` answered a mount probe with an error: blobs there are HEADed from now on.
    pub fn refused(&self, registry: &str) {
        self.refusing
            .lock()
            .expect("untagged repos poisoned")
            .insert(registry.to_string());
    }

    fn refuses(&self, registry: &str) -> bool {
        self.refusing
            .lock()
            .expect("untagged repos poisoned")
            .contains(registry)
    }
}
