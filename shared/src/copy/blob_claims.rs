//! What this run knows about blobs at the destinations, so that each unique blob is read
//! from the source once per run however many images and destinations share it.
//!
//! There is one slot per (destination registry, blob digest). Whoever works on a blob for a
//! registry holds its slot, so a second image needing the same blob waits for the first
//! instead of downloading it again, then finds it known (same repository) or mounts it
//! (another repository of that registry). Slots are always taken in sorted order, so two
//! images that need the same blobs in two registries cannot deadlock.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard};

use crate::digest::Digest;

/// Repositories of one registry known to hold one blob.
pub type KnownRepos = HashSet<String>;

/// The slot of one blob in one destination registry.
type Slot = Arc<AsyncMutex<KnownRepos>>;

#[derive(Default)]
pub struct BlobClaims {
    slots: Mutex<HashMap<(String, Digest), Slot>>,
}

impl BlobClaims {
    pub fn new() -> Self {
        Self::default()
    }

    /// Forget every blob: a long-lived copier (a warm Lambda) starts each batch trusting
    /// nothing it learned in earlier ones, when a blob it saw may since have been deleted
    /// (a repository removed and re-created, a garbage collection), and a manifest that
    /// names it would be refused on every retry.
    pub fn forget(&self) {
        self.slots.lock().expect("claims poisoned").clear();
    }

    /// Take the slots of `digest` in each of `registries`, in sorted order.
    pub async fn lock(
        &self,
        digest: &Digest,
        registries: impl IntoIterator<Item = String>,
    ) -> BTreeMap<String, OwnedMutexGuard<KnownRepos>> {
        let mut names: Vec<String> = registries.into_iter().collect();
        names.sort();
        names.dedup();
        let mut guards = BTreeMap::new();
        for name in names {
            let slot = {
                let mut slots = self.slots.lock().expect("claims poisoned");
                slots
                    .entry((name.clone(), digest.clone()))
                    .or_default()
                    .clone()
            };
            guards.insert(name, slot.lock_owned().await);
        }
        guards
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn second_claimant_waits_and_sees_what_the_first_recorded() {
        let claims = Arc::new(BlobClaims::new());
        let d = Digest::sha256_of(b"x");
        let mut first = claims.lock(&d, ["r1".to_string()]).await;
        let l2 = claims.clone();
        let d2 = d.clone();
        let waiter = tokio::spawn(async move {
            let guards = l2.lock(&d2, ["r1".to_string()]).await;
            guards["r1"].contains("app")
        });
        // A paused clock: the sleep lets the waiter run until it blocks, and costs nothing.
        tokio::time::sleep(Duration::from_secs(1)).await;
        assert!(!waiter.is_finished(), "must wait while the slot is held");
        first.get_mut("r1").unwrap().insert("app".into());
        drop(first);
        assert!(waiter.await.unwrap());
    }

    #[tokio::test]
    async fn opposite_orders_do_not_deadlock() {
        let claims = Arc::new(BlobClaims::new());
        let d = Digest::sha256_of(b"y");
        let mut tasks = Vec::new();
        for i in 0..20 {
            let l = claims.clone();
            let d = d.clone();
            tasks.push(tokio::spawn(async move {
                let regs = if i % 2 == 0 {
                    vec!["a".to_string(), "b".to_string()]
                } else {
                    vec!["b".to_string(), "a".to_string()]
                };
                let _g = l.lock(&d, regs).await;
                tokio::task::yield_now().await;
            }));
        }
        tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(tasks))
            .await
            .expect("deadlock");
    }
}
