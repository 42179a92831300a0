//! The whole of an image: its manifest, every child manifest of an index (recursively:
//! nested indexes, attestation manifests), and every blob they reference, in the order they
//! must reach the destination.

use std::collections::HashSet;

use futures::{stream, StreamExt, TryStreamExt};

use crate::error::{Error, Result};
use crate::manifest::{Descriptor, Manifest, ManifestKind, Platform};
use crate::reference::ImageRef;
use crate::registry::RegistryClient;

/// An image ready to copy.
#[derive(Debug)]
pub struct ImageTree {
    /// Manifests children-first: every manifest comes after all manifests it references, and
    /// the root comes last.
    pub manifests: Vec<Manifest>,
    /// Blobs to copy, each once, foreign layers the source does not serve left out.
    pub blobs: Vec<Descriptor>,
    /// Foreign layers that were left out because the source does not serve them.
    pub skipped_foreign: Vec<Descriptor>,
}

impl ImageTree {
    pub fn root(&self) -> &Manifest {
        self.manifests.last().expect("a tree has a root")
    }

    pub fn total_bytes(&self) -> u64 {
        self.blobs.iter().map(|b| b.size).sum()
    }
}

/// Fetch every manifest below `root` from `source` and collect the blobs.
pub async fn fetch(
    client: &RegistryClient,
    source: &ImageRef,
    root: Manifest,
    concurrency: usize,
) -> Result<ImageTree> {
    let mut manifests = Vec::new();
    collect(
        client,
        source,
        root,
        concurrency,
        &mut manifests,
        &mut HashSet::new(),
    )
    .await?;
    let mut seen = HashSet::new();
    let mut blobs = Vec::new();
    let mut skipped_foreign = Vec::new();
    for m in &manifests {
        for b in &m.blobs {
            if !seen.insert(b.digest.clone()) {
                continue;
            }
            // A foreign layer is fetched from its URLs by whoever pulls the image; copy it only
            // when the source registry happens to hold it.
            if b.is_foreign() && !client.blob_exists(source, &b.digest).await? {
                skipped_foreign.push(b.clone());
                continue;
            }
            blobs.push(b.clone());
        }
    }
    Ok(ImageTree {
        manifests,
        blobs,
        skipped_foreign,
    })
}

fn collect<'a>(
    client: &'a RegistryClient,
    source: &'a ImageRef,
    manifest: Manifest,
    concurrency: usize,
    out: &'a mut Vec<Manifest>,
    seen: &'a mut HashSet<crate::digest::Digest>,
) -> futures::future::BoxFuture<'a, Result<()>> {
    Box::pin(async move {
        if manifest.kind == ManifestKind::Index {
            let wanted: Vec<String> = manifest
                .children
                .iter()
                .filter(|c| !seen.contains(&c.digest))
                .map(|c| c.digest.to_string())
                .collect();
            let children: Vec<Manifest> = stream::iter(wanted)
                .map(|digest| async move { client.get_manifest(source, &digest).await })
                .buffered(concurrency.max(1))
                .try_collect()
                .await?;
            for child in children {
                if seen.insert(child.digest.clone()) {
                    collect(client, source, child, concurrency, out, seen).await?;
                }
            }
        }
        out.push(manifest);
        Ok(())
    })
}

/// Apply a platform filter to the root of an image. A single match becomes the image (its
/// own digest, unchanged); several matches become a new index of just those entries (which
/// necessarily has a new digest). An image that is not an index is returned as it is.
pub async fn select_platforms(
    client: &RegistryClient,
    source: &ImageRef,
    root: Manifest,
    platforms: &[Platform],
) -> Result<Manifest> {
    if platforms.is_empty() || root.kind != ManifestKind::Index {
        return Ok(root);
    }
    let matching: Vec<&Descriptor> = root
        .children
        .iter()
        .filter(|c| {
            c.platform
                .as_ref()
                .is_some_and(|p| platforms.iter().any(|f| f.matches(p)))
        })
        .collect();
    match matching.as_slice() {
        [] => Err(Error::Config(format!(
            "{source} has no manifest for platform {}; it has: {}",
            platforms
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            root.children
                .iter()
                .filter_map(|c| c.platform.as_ref())
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ))),
        [one] => client.get_manifest(source, one.digest.as_str()).await,
        several => {
            let keep: HashSet<&str> = several.iter().map(|d| d.digest.as_str()).collect();
            let mut doc: serde_json::Value =
                serde_json::from_slice(&root.raw).map_err(|e| Error::Config(e.to_string()))?;
            if let Some(list) = doc.get_mut("manifests").and_then(|m| m.as_array_mut()) {
                list.retain(|entry| {
                    entry
                        .get("digest")
                        .and_then(|d| d.as_str())
                        .is_some_and(|d| keep.contains(d))
                });
            }
            let raw = bytes::Bytes::from(
                serde_json::to_vec(&doc).map_err(|e| Error::Config(e.to_string()))?,
            );
            let digest = crate::digest::Digest::sha256_of(&raw);
            Manifest::parse(raw, digest, Some(root.media_type.as_str())).map_err(|source_err| {
                Error::Manifest {
                    at: crate::error::Location {
                        registry: source.registry().into(),
                        repository: source.repository().into(),
                    },
                    source: source_err,
                }
            })
        }
    }
}
