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
//! once per repository, then trusted for [`FRESH_FOR`]). Only for small blobs: a registry
//! that does not mount opens a session even for a blob it has, which is then sent again.
//! A registry that answers a mount probe with an error is not probed again this process.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::reference::ImageRef;
use crate::registry::RegistryClient;

/// How long a repository found without tags is treated as such. A run's images follow one
/// another within seconds; the copier Lambda outlives many runs, whose repositories fill up.
const FRESH_FOR: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct FreshRepos {
    /// `registry/repository` → when it was asked, and whether it was found without tags.
    asked: Mutex<HashMap<String, (Instant, bool)>>,
    /// Registries that answered a mount probe with an error.
    refusing: Mutex<HashSet<String>>,
}

impl FreshRepos {
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether a small blob bound for `dest` may be asked for with a mount probe: the
    /// registry has not refused one, and the repository held no tag within [`FRESH_FOR`].
    /// Two images racing to ask both list the tags; either answer is right.
    pub async fn may_probe(&self, client: &RegistryClient, dest: &ImageRef) -> bool {
        if self.refuses(dest.registry()) {
            return false;
        }
        let key = format!("{}/{}", dest.registry(), dest.repository());
        let known = self
            .asked
            .lock()
            .expect("fresh repos poisoned")
            .get(&key)
            .filter(|(at, _)| at.elapsed() < FRESH_FOR)
            .map(|(_, fresh)| *fresh);
        if let Some(fresh) = known {
            return fresh;
        }
        let fresh = match client.has_tags(dest).await {
            Ok(has) => !has,
            Err(e) => {
                tracing::debug!(repository = %key, error = %e, "destination tags not listed; blobs are HEADed");
                false
            }
        };
        self.asked
            .lock()
            .expect("fresh repos poisoned")
            .insert(key, (Instant::now(), fresh));
        fresh
    }

    /// `registry` answered a mount probe with an error: blobs there are HEADed from now on.
    pub fn refused(&self, registry: &str) {
        self.refusing
            .lock()
            .expect("fresh repos poisoned")
            .insert(registry.to_string());
    }

    fn refuses(&self, registry: &str) -> bool {
        self.refusing
            .lock()
            .expect("fresh repos poisoned")
            .contains(registry)
    }
}
