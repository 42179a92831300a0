//! Image references: `host[:port]/path/repo[:tag][@digest]`, normalized the way docker does.
//!
//! Parsing is delegated to `oci-client` (its `Reference` is a port of docker's own
//! normalization: `alpine:3` becomes `docker.io/library/alpine:3`). What this module adds is
//! knowing whether the user wrote a tag at all (`oci-client` silently inserts `latest`, but
//! `--all-tags` needs a bare repository), a validated [`Digest`], and errors that say what to
//! type instead.

use std::fmt;
use std::str::FromStr;

use crate::digest::Digest;

/// Docker Hub's canonical name in references, and the host its registry API is served from.
pub const DOCKER_HUB: &str = "docker.io";
pub const DOCKER_HUB_API_HOST: &str = "registry-1.docker.io";

/// The distribution spec's repository-name grammar. oci-client accepts some names docker
/// and registries reject (upper case), so ferry checks before any request is made.
pub static REPOSITORY_NAME: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
    regex::Regex::new(
        r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$",
    )
    .expect("valid regex")
});

/// Whether `tag` is a tag by the distribution spec's grammar (`[A-Za-z0-9_][A-Za-z0-9._-]`,
/// at most 128 characters).
pub fn is_tag(tag: &str) -> bool {
    static TAG: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$").expect("valid regex")
    });
    TAG.is_match(tag)
}

/// A parsed image reference. A reference may name a tag, a digest, both, or (for whole
/// repository operations such as `--all-tags`) neither.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct ImageRef {
    registry: String,
    repository: String,
    tag: Option<String>,
    digest: Option<Digest>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("invalid image reference {input:?}: {reason}. Expected host[:port]/repository[:tag][@sha256:<64 hex>], e.g. registry.example.com/team/app:1.4 or alpine:3")]
pub struct InvalidReference {
    pub input: String,
    pub reason: String,
}

impl ImageRef {
    pub fn registry(&self) -> &str {
        &self.registry
    }

    pub fn repository(&self) -> &str {
        &self.repository
    }

    pub fn tag(&self) -> Option<&str> {
        self.tag.as_deref()
    }

    pub fn digest(&self) -> Option<&Digest> {
        self.digest.as_ref()
    }

    /// The host the registry's HTTP API answers on (Docker Hub's differs from its name).
    pub fn api_host(&self) -> &str {
        if self.registry == DOCKER_HUB {
            DOCKER_HUB_API_HOST
        } else {
            &self.registry
        }
    }

    /// What to put after `/manifests/` to fetch this image: the digest when pinned, so a
    /// tag moved mid-copy cannot change what is copied.
    pub fn manifest_reference(&self) -> Option<String> {
        match (&self.digest, &self.tag) {
            (Some(d), _) => Some(d.to_string()),
            (None, Some(t)) => Some(t.clone()),
            (None, None) => None,
        }
    }

    /// The same repository with only this tag.
    pub fn with_tag(&self, tag: &str) -> ImageRef {
        ImageRef {
            tag: Some(tag.to_string()),
            digest: None,
            ..self.clone()
        }
    }

    /// The same repository pinned to `digest` (keeping the tag for display).
    pub fn with_digest(&self, digest: Digest) -> ImageRef {
        ImageRef {
            digest: Some(digest),
            ..self.clone()
        }
    }

    /// The same repository with neither tag nor digest.
    pub fn repo_only(&self) -> ImageRef {
        ImageRef {
            tag: None,
            digest: None,
            ..self.clone()
        }
    }

    /// `registry/repository` without tag or digest.
    pub fn repo_name(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    pub fn new(
        registry: &str,
        repository: &str,
        tag: Option<&str>,
        digest: Option<Digest>,
    ) -> Result<ImageRef, InvalidReference> {
        let mut text = format!("{registry}/{repository}");
        if let Some(t) = tag {
            text.push(':');
            text.push_str(t);
        }
        if let Some(d) = &digest {
            text.push('@');
            text.push_str(d.as_str());
        }
        text.parse()
    }
}

/// Whether the last path component of `input` carries a `:tag` (a `:` before the first `/`
/// is a port, not a tag).
fn has_explicit_tag(input: &str) -> bool {
    let name = input.split('@').next().unwrap_or_default();
    let last = name.rsplit('/').next().unwrap_or_default();
    last.contains(':')
}

impl FromStr for ImageRef {
    type Err = InvalidReference;

    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let invalid = |reason: String| InvalidReference {
            input: input.to_string(),
            reason,
        };
        if input.trim() != input || input.is_empty() {
            return Err(invalid("it is empty or has surrounding whitespace".into()));
        }
        if input.contains("://") {
            return Err(invalid(
                "a reference has no URL scheme; drop the http:// or https:// prefix".into(),
            ));
        }
        let parsed = oci_client::Reference::try_from(input).map_err(|e| invalid(e.to_string()))?;
        if !REPOSITORY_NAME.is_match(parsed.repository()) {
            return Err(invalid(format!(
                "repository {:?} must be lowercase letters, digits and separators (. _ __ -) in /-separated parts",
                parsed.repository()
            )));
        }
        let digest = parsed
            .digest()
            .map(|d| d.parse::<Digest>())
            .transpose()
            .map_err(|e| invalid(e.reason.to_string()))?;
        // oci-client inserts `latest` when neither tag nor digest is written; keep a tag only
        // where the user wrote one.
        let tag = if has_explicit_tag(input) {
            parsed.tag().map(str::to_string)
        } else {
            None
        };
        if let Some(t) = &tag {
            if t.len() > 128 {
                return Err(invalid(format!(
                    "tag is {} characters long; the limit is 128",
                    t.len()
                )));
            }
        }
        Ok(ImageRef {
            registry: parsed.registry().to_string(),
            repository: parsed.repository().to_string(),
            tag,
            digest,
        })
    }
}

impl fmt::Display for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.registry, self.repository)?;
        if let Some(t) = &self.tag {
            write!(f, ":{t}")?;
        }
        if let Some(d) = &self.digest {
            write!(f, "@{d}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for ImageRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ImageRef({self})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff";

    #[test]
    fn normalizes_like_docker() {
        let cases: &[(&str, &str, &str, Option<&str>, bool)] = &[
            ("alpine:3", "docker.io", "library/alpine", Some("3"), false),
            ("alpine", "docker.io", "library/alpine", None, false),
            (
                "bitnami/redis:7",
                "docker.io",
                "bitnami/redis",
                Some("7"),
                false,
            ),
            ("localhost:5000/app", "localhost:5000", "app", None, false),
            (
                "127.0.0.1:5000/team/app:1.4",
                "127.0.0.1:5000",
                "team/app",
                Some("1.4"),
                false,
            ),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com/proj:api-1.4",
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                "proj",
                Some("api-1.4"),
                false,
            ),
            ("quay.io/org/app@DIGEST", "quay.io", "org/app", None, true),
            (
                "quay.io/org/app:v1@DIGEST",
                "quay.io",
                "org/app",
                Some("v1"),
                true,
            ),
            (
                "r.io/app:sha256-abc.sig",
                "r.io",
                "app",
                Some("sha256-abc.sig"),
                false,
            ),
        ];
        for (input, registry, repo, tag, has_digest) in cases {
            let input = input.replace("DIGEST", D);
            let r: ImageRef = input.parse().unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(r.registry(), *registry, "{input}");
            assert_eq!(r.repository(), *repo, "{input}");
            assert_eq!(r.tag(), *tag, "{input}");
            assert_eq!(r.digest().is_some(), *has_digest, "{input}");
        }
    }

    #[test]
    fn rejects_bad_references_with_the_reason() {
        let cases = [
            "",
            "UPPER/case",
            "https://r.io/app:1",
            "r.io/app:",
            "r.io/../etc/passwd",
            "r.io/app@sha256:abc",
            " r.io/app",
        ];
        for input in cases {
            let err = input.parse::<ImageRef>().unwrap_err();
            assert!(
                err.to_string().contains("invalid image reference"),
                "{input}"
            );
        }
        let long = format!("r.io/app:{}", "a".repeat(129));
        assert!(long.parse::<ImageRef>().is_err());
    }

    #[test]
    fn docker_hub_uses_its_api_host_and_manifest_reference_prefers_digest() {
        let r: ImageRef = format!("alpine:3@{D}").parse().unwrap();
        assert_eq!(r.api_host(), "registry-1.docker.io");
        assert_eq!(r.manifest_reference().unwrap(), D);
        assert_eq!(r.to_string(), format!("docker.io/library/alpine:3@{D}"));
        let bare: ImageRef = "r.io/app".parse().unwrap();
        assert_eq!(bare.manifest_reference(), None);
        assert_eq!(bare.with_tag("x").to_string(), "r.io/app:x");
    }
}
