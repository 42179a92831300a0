//! Manifests as ferry sees them: raw bytes that are never re-serialized, plus the
//! descriptors read out of them (which blobs and child manifests they need).
//!
//! Parsing here is deliberately loose: unknown fields, unknown media types and non-canonical
//! JSON are all fine, because ferry only needs the descriptors to know what to copy; the bytes
//! pushed to the destination are always the source's bytes.

use std::fmt;
use std::str::FromStr;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const OCI_ARTIFACT_MANIFEST: &str = "application/vnd.oci.artifact.manifest.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
pub const DOCKER_SCHEMA1_SIGNED: &str = "application/vnd.docker.distribution.manifest.v1+prettyjws";

/// What ferry sends in `Accept`: every manifest kind it can copy, so a registry never
/// converts a manifest into an older format (which would change its digest).
pub const ACCEPT_MANIFESTS: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.artifact.manifest.v1+json";

/// Registries cap manifests at a few MiB (distribution: 4 MiB); anything larger is not a
/// manifest and is refused before it is read whole.
pub const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

/// A content descriptor: what a manifest says about one blob or child manifest.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default)]
    pub urls: Vec<String>,
    #[serde(default)]
    pub platform: Option<Platform>,
    #[serde(default)]
    pub artifact_type: Option<String>,
}

impl Descriptor {
    /// Foreign (non-distributable) layers: the image says where to download them from, and
    /// many registries (Docker Hub's Windows images) do not serve them at all.
    pub fn is_foreign(&self) -> bool {
        !self.urls.is_empty()
            || self.media_type.contains(".foreign.")
            || self.media_type.contains(".nondistributable.")
    }
}

/// An OS/architecture pair, e.g. `linux/arm64/v8`.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// Whether an index entry's platform satisfies this filter: a filter without a variant
    /// matches every variant.
    pub fn matches(&self, entry: &Platform) -> bool {
        self.os == entry.os
            && self.architecture == entry.architecture
            && (self.variant.is_none() || self.variant == entry.variant)
    }
}

impl FromStr for Platform {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            [os, arch] if !os.is_empty() && !arch.is_empty() => Ok(Platform {
                os: os.to_string(),
                architecture: arch.to_string(),
                variant: None,
            }),
            [os, arch, variant] if !os.is_empty() && !arch.is_empty() && !variant.is_empty() => {
                Ok(Platform {
                    os: os.to_string(),
                    architecture: arch.to_string(),
                    variant: Some(variant.to_string()),
                })
            }
            _ => Err(format!(
                "invalid platform {s:?}: expected os/arch or os/arch/variant, e.g. linux/amd64 or linux/arm64/v8"
            )),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ManifestKind {
    /// An image or artifact manifest: it references blobs.
    Image,
    /// An OCI index or Docker manifest list: it references other manifests.
    Index,
}

/// A manifest's media type as a document or a registry's `Content-Type` states it, with
/// parameters (`; charset=utf-8`) dropped, so that comparing two is comparing types.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MediaType(String);

impl MediaType {
    pub fn new(text: &str) -> MediaType {
        MediaType(text.split(';').next().unwrap_or(text).trim().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// An OCI index or a Docker manifest list.
    pub fn is_index(&self) -> bool {
        matches!(self.as_str(), OCI_INDEX | DOCKER_MANIFEST_LIST)
    }

    /// What ferry copies under this type, or why it does not.
    pub fn kind(&self) -> Result<ManifestKind, ManifestError> {
        match self.as_str() {
            OCI_INDEX | DOCKER_MANIFEST_LIST => Ok(ManifestKind::Index),
            OCI_MANIFEST | DOCKER_MANIFEST | OCI_ARTIFACT_MANIFEST => Ok(ManifestKind::Image),
            DOCKER_SCHEMA1 | DOCKER_SCHEMA1_SIGNED => Err(ManifestError::Schema1(self.0.clone())),
            other => Err(ManifestError::UnsupportedMediaType(other.to_string())),
        }
    }
}

impl std::fmt::Display for MediaType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl PartialEq<&str> for MediaType {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

/// A manifest exactly as the registry served it, with what it references.
#[derive(Debug, Clone)]
pub struct Manifest {
    pub raw: Bytes,
    pub digest: Digest,
    pub media_type: MediaType,
    pub kind: ManifestKind,
    /// Blobs this manifest needs: config first, then layers (or an artifact's blobs).
    pub blobs: Vec<Descriptor>,
    /// Child manifests of an index, in index order.
    pub children: Vec<Descriptor>,
    pub subject: Option<Descriptor>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ManifestError {
    #[error("manifest is not valid JSON for a manifest: {0}")]
    NotJson(String),
    #[error("Docker schema 1 manifests ({0}) are deprecated and not supported; rebuild or re-push the image with a current Docker or buildah to get a schema 2 / OCI manifest")]
    Schema1(String),
    #[error("unsupported manifest media type {0:?}")]
    UnsupportedMediaType(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawManifest {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    config: Option<Descriptor>,
    #[serde(default)]
    layers: Option<Vec<Descriptor>>,
    #[serde(default)]
    blobs: Option<Vec<Descriptor>>,
    #[serde(default)]
    manifests: Option<Vec<Descriptor>>,
    #[serde(default)]
    subject: Option<Descriptor>,
}

impl Manifest {
    /// Parse `raw` (already verified to hash to `digest`). `content_type` is the registry's
    /// `Content-Type`, used only when the document does not name its own media type.
    pub fn parse(
        raw: Bytes,
        digest: Digest,
        content_type: Option<&str>,
    ) -> Result<Self, ManifestError> {
        let doc: RawManifest =
            serde_json::from_slice(&raw).map_err(|e| ManifestError::NotJson(e.to_string()))?;
        let declared = doc
            .media_type
            .clone()
            .filter(|m| !m.is_empty())
            .or_else(|| content_type.map(|c| c.split(';').next().unwrap_or(c).trim().to_string()))
            .filter(|m| {
                !m.is_empty() && m != "application/json" && m != "application/octet-stream"
            });
        if doc.schema_version == Some(1) {
            return Err(ManifestError::Schema1(
                declared.unwrap_or_else(|| DOCKER_SCHEMA1.into()),
            ));
        }
        let media_type = match declared {
            Some(m) => MediaType::new(&m),
            // OCI makes `mediaType` optional; fall back to the document's shape.
            None if doc.manifests.is_some() => MediaType::new(OCI_INDEX),
            None if doc.config.is_some() => MediaType::new(OCI_MANIFEST),
            None if doc.blobs.is_some() => MediaType::new(OCI_ARTIFACT_MANIFEST),
            None => return Err(ManifestError::UnsupportedMediaType("<none>".into())),
        };
        let kind = media_type.kind()?;
        let mut blobs = Vec::new();
        blobs.extend(doc.config);
        blobs.extend(doc.layers.unwrap_or_default());
        blobs.extend(doc.blobs.unwrap_or_default());
        Ok(Manifest {
            raw,
            digest,
            media_type,
            kind,
            blobs,
            children: doc.manifests.unwrap_or_default(),
            subject: doc.subject,
        })
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn media_types_compare_without_their_parameters() {
        let cases = [
            (
                "application/vnd.oci.image.index.v1+json; charset=utf-8",
                true,
                Ok(ManifestKind::Index),
            ),
            (DOCKER_MANIFEST_LIST, true, Ok(ManifestKind::Index)),
            (
                " application/vnd.oci.image.manifest.v1+json ",
                false,
                Ok(ManifestKind::Image),
            ),
            (DOCKER_SCHEMA1_SIGNED, false, Err("schema1")),
            ("text/html", false, Err("unsupported")),
        ];
        for (text, index, kind) in cases {
            let m = MediaType::new(text);
            assert_eq!(m.is_index(), index, "{text}");
            let got = m.kind().map_err(|e| match e {
                ManifestError::Schema1(_) => "schema1",
                _ => "unsupported",
            });
            assert_eq!(got, kind, "{text}");
        }
        assert_eq!(MediaType::new("a/b; x=y"), MediaType::new("a/b"));
    }
    use super::*;

    fn d(n: u8) -> String {
        format!("sha256:{}", hex::encode([n; 32]))
    }

    fn parse(json: &str, ct: Option<&str>) -> Result<Manifest, ManifestError> {
        let raw = Bytes::from(json.to_string());
        let digest = Digest::sha256_of(&raw);
        Manifest::parse(raw, digest, ct)
    }

    #[test]
    fn reads_descriptors_of_every_manifest_kind() {
        let image = format!(
            r#"{{"schemaVersion":2,"mediaType":"{DOCKER_MANIFEST}","config":{{"mediaType":"application/vnd.docker.container.image.v1+json","digest":"{}","size":2}},"layers":[{{"mediaType":"application/vnd.docker.image.rootfs.diff.tar.gzip","digest":"{}","size":3}}]}}"#,
            d(1),
            d(2)
        );
        let m = parse(&image, None).unwrap();
        assert_eq!(
            (m.kind, m.blobs.len(), m.children.len()),
            (ManifestKind::Image, 2, 0)
        );
        assert_eq!(m.blobs[0].digest.as_str(), d(1));

        let index = format!(
            r#"{{"schemaVersion":2,"manifests":[{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":5,"platform":{{"os":"linux","architecture":"arm64","variant":"v8"}}}}]}}"#,
            d(3)
        );
        let m = parse(&index, Some(OCI_INDEX)).unwrap();
        assert_eq!(m.kind, ManifestKind::Index);
        assert_eq!(m.media_type, OCI_INDEX);
        assert_eq!(
            m.children[0].platform.as_ref().unwrap().variant.as_deref(),
            Some("v8")
        );

        // No mediaType field and a generic content type: inferred from the shape.
        let bare = format!(
            r#"{{"schemaVersion":2,"config":{{"mediaType":"application/vnd.cncf.helm.config.v1+json","digest":"{}","size":1}},"layers":[]}}"#,
            d(4)
        );
        let m = parse(&bare, Some("application/json")).unwrap();
        assert_eq!(m.media_type, OCI_MANIFEST);

        let artifact = format!(
            r#"{{"mediaType":"{OCI_ARTIFACT_MANIFEST}","artifactType":"x","blobs":[{{"mediaType":"a","digest":"{}","size":1}}],"subject":{{"mediaType":"{OCI_MANIFEST}","digest":"{}","size":9}}}}"#,
            d(5),
            d(6)
        );
        let m = parse(&artifact, None).unwrap();
        assert_eq!(m.blobs.len(), 1);
        assert_eq!(m.subject.unwrap().digest.as_str(), d(6));
    }

    #[test]
    fn rejects_schema1_non_json_and_unknown_types() {
        assert!(matches!(
            parse(r#"{"schemaVersion":1,"fsLayers":[]}"#, None),
            Err(ManifestError::Schema1(_))
        ));
        assert!(matches!(
            parse("<html>502 Bad Gateway</html>", None),
            Err(ManifestError::NotJson(_))
        ));
        assert!(matches!(
            parse(r#"{"mediaType":"text/plain"}"#, None),
            Err(ManifestError::UnsupportedMediaType(_))
        ));
    }

    #[test]
    fn foreign_layers_and_platform_filters() {
        let foreign: Descriptor = serde_json::from_str(&format!(
            r#"{{"mediaType":"application/vnd.docker.image.rootfs.foreign.diff.tar.gzip","digest":"{}","size":1,"urls":["https://example.com/l"]}}"#,
            d(7)
        ))
        .unwrap();
        assert!(foreign.is_foreign());

        let filter: Platform = "linux/arm64".parse().unwrap();
        let v8: Platform = "linux/arm64/v8".parse().unwrap();
        assert!(filter.matches(&v8));
        assert!(!v8.matches(&"linux/arm64/v7".parse().unwrap()));
        assert!(!filter.matches(&"linux/amd64".parse().unwrap()));
        assert!("linux".parse::<Platform>().is_err());
        assert_eq!(v8.to_string(), "linux/arm64/v8");
    }
}
