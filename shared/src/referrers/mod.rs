//! Supply-chain artifacts that belong to an image: cosign signatures, attestations and SBOMs
//! under their `sha256-<hex>.sig|.att|.sbom` tags, and OCI 1.1 referrers (manifests whose
//! `subject` is the image), found through the referrers API or, on registries without it,
//! through the referrers tag schema.
//!
//! [`discover`] finds what a source holds for one manifest digest; the copy engine
//! (`copy::artifacts`) pushes it after the image and keeps the destination's fallback index
//! up to date. What a run learns about registries — their tag lists, whether they offer the
//! referrers API — is kept in [`RegistryFacts`] so a sync of many images asks once.

pub mod selection;
pub mod tags;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;

use crate::digest::Digest;
use crate::error::{Error, Location, Operation, Result};
use crate::manifest::Manifest;
use crate::reference::ImageRef;
use crate::registry::ReadRegistry;
use crate::shared_answers::SharedAnswers;
pub use selection::{CosignSuffix, Selection};

/// How long a repository's tag list stands for it. A sync reads each source repository's
/// tags once; a long-lived copier (a warm Lambda) sees signatures pushed since within this.
const TAG_LIST_TTL: Duration = Duration::from_secs(30);

/// How deep artifacts of artifacts are followed (a signature of an attestation of an
/// image is depth 2). Deeper chains are not made by any tool in use, and a bound keeps a
/// malicious cycle of subjects finite even without the visited set.
pub const MAX_DEPTH: usize = 4;

type TagSet = Arc<HashSet<String>>;

/// What a run has learnt about registries, shared by every image it copies.
pub struct RegistryFacts {
    /// `registry/repository` → its tags.
    tag_lists: SharedAnswers<TagSet>,
    /// Registry host → whether it offers the referrers API.
    api: Mutex<HashMap<String, bool>>,
}

impl Default for RegistryFacts {
    fn default() -> Self {
        Self::new()
    }
}

impl RegistryFacts {
    pub fn new() -> Self {
        Self {
            tag_lists: SharedAnswers::new(TAG_LIST_TTL),
            api: Mutex::default(),
        }
    }

    /// The tags of `image`'s repository (empty when the repository does not exist), listed
    /// once per [`TAG_LIST_TTL`] however many images ask.
    pub async fn tags(&self, client: &impl ReadRegistry, image: &ImageRef) -> Result<TagSet> {
        self.tag_lists
            .get_or_try_ask(&repository_key(image), || async {
                match client.list_tags(image).await {
                    Ok(tags) => Ok(Arc::new(tags.into_iter().collect())),
                    Err(Error::RepositoryNotFound { .. }) => Ok(Arc::new(HashSet::new())),
                    Err(e) => Err(e),
                }
            })
            .await
    }

    /// Take `tags`, just listed for `image`'s repository by someone else (the planner
    /// enumerating a source), as that repository's tags.
    pub fn remember_tags(&self, image: &ImageRef, tags: impl IntoIterator<Item = String>) {
        self.tag_lists
            .put(&repository_key(image), Arc::new(tags.into_iter().collect()));
    }

    /// The referrers of `subject` through the API, or `None` when `image`'s registry does
    /// not offer it (asked once per registry per run).
    pub async fn referrers(
        &self,
        client: &impl ReadRegistry,
        image: &ImageRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<Value>>> {
        if self.api_known(image) == Some(false) {
            return Ok(None);
        }
        let answer = client.referrers(image, subject, artifact_type).await?;
        self.api
            .lock()
            .expect("api map poisoned")
            .insert(image.registry().to_string(), answer.is_some());
        Ok(answer)
    }

    /// Whether `image`'s registry offers the referrers API, asking it about `subject` if
    /// no answer is known yet.
    pub async fn has_api(
        &self,
        client: &impl ReadRegistry,
        image: &ImageRef,
        subject: &Digest,
    ) -> Result<bool> {
        match self.api_known(image) {
            Some(known) => Ok(known),
            None => Ok(self
                .referrers(client, image, subject, None)
                .await?
                .is_some()),
        }
    }

    /// Forget the tag lists (not which registries have the API): a long-lived copier
    /// starting a new batch must see signatures pushed since the last one.
    pub fn forget_tags(&self) {
        self.tag_lists.forget();
    }

    fn api_known(&self, image: &ImageRef) -> Option<bool> {
        self.api
            .lock()
            .expect("api map poisoned")
            .get(image.registry())
            .copied()
    }
}

/// Where an artifact lives next to its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Under a cosign tag (`sha256-<hex>.sig`); copied to the same tag.
    CosignTag { tag: String, suffix: CosignSuffix },
    /// A referrer: a manifest whose `subject` names the image, pushed by digest and listed
    /// in the subject's referrers (API or fallback index) through this entry.
    Referrer { entry: Value },
}

/// One artifact of one subject.
#[derive(Debug, Clone)]
pub struct Artifact {
    pub subject: Digest,
    pub digest: Digest,
    pub placement: Placement,
}

impl Artifact {
    /// What to push the artifact's manifest under: its cosign tag, or its digest.
    pub fn reference(&self) -> String {
        match &self.placement {
            Placement::CosignTag { tag, .. } => tag.clone(),
            Placement::Referrer { .. } => self.digest.to_string(),
        }
    }

    /// For people: `sig tag sha256-….sig`, `referrer sha256:… (application/spdx+json)`.
    pub fn describe(&self) -> String {
        match &self.placement {
            Placement::CosignTag { tag, suffix } => format!("{} tag {tag}", suffix.as_str()),
            Placement::Referrer { .. } => format!("referrer {} ({})", self.digest, self.kind()),
        }
    }

    /// `sig`, `att` or `sbom` for cosign tags; a referrer's artifact type.
    pub fn kind(&self) -> String {
        match &self.placement {
            Placement::CosignTag { suffix, .. } => suffix.as_str().to_string(),
            Placement::Referrer { entry } => match tags::entry_artifact_type(entry) {
                "" => "referrer".to_string(),
                t => t.to_string(),
            },
        }
    }
}

/// What a source holds for one subject.
#[derive(Debug, Default)]
pub struct Found {
    pub artifacts: Vec<Artifact>,
    /// The source's fallback index, when that is where its referrers were listed: copied
    /// as it is to a destination that has none, so its digest is kept too.
    pub source_index: Option<Manifest>,
}

/// What a tag list is known by: its registry and repository, whoever listed it.
fn repository_key(image: &ImageRef) -> String {
    format!("{}/{}", image.registry(), image.repository())
}

/// A subject's fallback index as a repository holds it (the referrers tag schema's
/// `sha256-<hex>` tag), for registries without the referrers API.
pub struct FallbackIndex {
    pub tag: String,
    pub manifest: Manifest,
    /// Its entries, or why they cannot be read (the tag holds something that is not an
    /// index): reading a source fails on that, updating a destination refuses to replace
    /// it, and verifying counts no referrer listed.
    pub entries: std::result::Result<Vec<Value>, String>,
}

/// The fallback index of `subject` in `repo`'s repository, `None` when there is none.
pub async fn fallback_index(
    client: &impl ReadRegistry,
    repo: &ImageRef,
    subject: &Digest,
) -> Result<Option<FallbackIndex>> {
    let tag = tags::fallback_tag(subject);
    match client.get_manifest(repo, &tag).await {
        Ok(manifest) => Ok(Some(FallbackIndex {
            entries: tags::entries(&manifest.raw),
            manifest,
            tag,
        })),
        Err(Error::ManifestNotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// Every artifact of `subject` in `source`'s repository that `selection` wants.
pub async fn discover(
    client: &impl ReadRegistry,
    facts: &RegistryFacts,
    source: &ImageRef,
    subject: &Digest,
    selection: &Selection,
) -> Result<Found> {
    let mut found = Found::default();
    if selection.is_none() {
        return Ok(found);
    }
    let suffixes: Vec<CosignSuffix> = CosignSuffix::ALL
        .into_iter()
        .filter(|s| selection.wants_cosign(*s))
        .collect();
    let api = facts
        .referrers(client, source, subject, selection.single_type())
        .await?;
    let tags = if !suffixes.is_empty() || api.is_none() {
        facts.tags(client, source).await?
    } else {
        TagSet::default()
    };

    for suffix in suffixes {
        let tag = tags::cosign_tag(subject, suffix);
        if !tags.contains(&tag) {
            continue;
        }
        // Listed a moment ago; gone now means deleted since, which is not an error.
        if let Some(head) = client.head_manifest(source, &tag).await? {
            found.artifacts.push(Artifact {
                subject: subject.clone(),
                digest: head.digest,
                placement: Placement::CosignTag { tag, suffix },
            });
        }
    }

    let entries = match api {
        Some(entries) => entries,
        None => {
            if !tags.contains(&tags::fallback_tag(subject)) {
                return Ok(found);
            }
            let Some(index) = fallback_index(client, source, subject).await? else {
                return Ok(found);
            };
            let entries = index.entries.map_err(|detail| Error::Protocol {
                at: Location {
                    registry: source.registry().into(),
                    repository: source.repository().into(),
                },
                op: Operation::ListReferrers,
                detail: format!("referrers tag {} is not an index: {detail}", index.tag),
            })?;
            found.source_index = Some(index.manifest);
            entries
        }
    };
    for entry in entries {
        let Some(digest) = tags::entry_digest(&entry) else {
            tracing::warn!(%subject, "a referrers entry without a valid digest was skipped");
            continue;
        };
        if !selection.wants_type(tags::entry_artifact_type(&entry)) {
            continue;
        }
        found.artifacts.push(Artifact {
            subject: subject.clone(),
            digest,
            placement: Placement::Referrer { entry },
        });
    }
    Ok(found)
}
