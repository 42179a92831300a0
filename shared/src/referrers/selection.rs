//! Which supply-chain artifacts follow an image: `--referrers=none|all|TYPE,...`.
//!
//! A TYPE is a short name for what admission policies check — `sig`, `att`, `sbom` — or an
//! exact artifact type (anything with a `/`, e.g. `application/spdx+json`). A short name
//! covers both places tools put that kind of artifact: cosign's tags (`sha256-<hex>.sig`)
//! and OCI 1.1 referrers of the matching artifact types.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Artifact types that count as signatures: cosign's and Notary v2's.
const SIGNATURE_TYPES: &[&str] = &[
    "application/vnd.dev.cosign.artifact.sig.v1+json",
    "application/vnd.dev.cosign.simplesigning.v1+json",
    "application/vnd.cncf.notary.signature",
];
/// In-toto attestations as cosign and others push them.
const ATTESTATION_TYPES: &[&str] = &[
    "application/vnd.dsse.envelope.v1+json",
    "application/vnd.in-toto+json",
    "application/vnd.dev.cosign.artifact.att.v1+json",
];
/// SBOM formats (SPDX, CycloneDX, Syft) and cosign's SBOM artifact.
const SBOM_TYPES: &[&str] = &[
    "application/spdx+json",
    "text/spdx",
    "application/vnd.cyclonedx+json",
    "application/vnd.cyclonedx+xml",
    "application/vnd.syft+json",
    "application/vnd.dev.cosign.artifact.sbom.v1+json",
];

/// The suffix of a cosign tag: `sha256-<hex>.sig` and friends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CosignSuffix {
    Sig,
    Att,
    Sbom,
}

impl CosignSuffix {
    pub const ALL: [CosignSuffix; 3] = [CosignSuffix::Sig, CosignSuffix::Att, CosignSuffix::Sbom];

    pub fn as_str(self) -> &'static str {
        match self {
            CosignSuffix::Sig => "sig",
            CosignSuffix::Att => "att",
            CosignSuffix::Sbom => "sbom",
        }
    }
}

/// One kind of artifact a user asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Signature,
    Attestation,
    Sbom,
    /// An exact artifact type.
    Type(String),
}

impl Kind {
    fn matches_type(&self, artifact_type: &str) -> bool {
        match self {
            Kind::Signature => SIGNATURE_TYPES.contains(&artifact_type),
            Kind::Attestation => ATTESTATION_TYPES.contains(&artifact_type),
            Kind::Sbom => SBOM_TYPES.contains(&artifact_type),
            Kind::Type(t) => t == artifact_type,
        }
    }

    fn cosign_suffix(&self) -> Option<CosignSuffix> {
        match self {
            Kind::Signature => Some(CosignSuffix::Sig),
            Kind::Attestation => Some(CosignSuffix::Att),
            Kind::Sbom => Some(CosignSuffix::Sbom),
            Kind::Type(_) => None,
        }
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "sig" | "sigs" | "signature" | "signatures" => Ok(Kind::Signature),
            "att" | "atts" | "attestation" | "attestations" => Ok(Kind::Attestation),
            "sbom" | "sboms" => Ok(Kind::Sbom),
            t if t.contains('/') && !t.contains(char::is_whitespace) => {
                Ok(Kind::Type(t.to_string()))
            }
            other => Err(format!(
                "unknown referrer type {other:?}: use none, all, or a comma-separated list of sig, att, sbom and artifact types such as application/spdx+json"
            )),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Kind::Signature => f.write_str("sig"),
            Kind::Attestation => f.write_str("att"),
            Kind::Sbom => f.write_str("sbom"),
            Kind::Type(t) => f.write_str(t),
        }
    }
}

/// What follows an image to its destinations.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Selection {
    /// Every cosign tag and every referrer, whatever its type (the default: a mirror that
    /// loses signatures fails admission at the destination).
    #[default]
    All,
    None,
    Only(Vec<Kind>),
}

impl Selection {
    pub fn is_none(&self) -> bool {
        matches!(self, Selection::None)
    }

    /// Whether cosign tags with this suffix follow the image.
    pub fn wants_cosign(&self, suffix: CosignSuffix) -> bool {
        match self {
            Selection::All => true,
            Selection::None => false,
            Selection::Only(kinds) => kinds.iter().any(|k| k.cosign_suffix() == Some(suffix)),
        }
    }

    /// Whether a referrer of this artifact type follows the image.
    pub fn wants_type(&self, artifact_type: &str) -> bool {
        match self {
            Selection::All => true,
            Selection::None => false,
            Selection::Only(kinds) => kinds.iter().any(|k| k.matches_type(artifact_type)),
        }
    }

    /// The one exact artifact type asked for, if that is all: registries can filter by it.
    pub fn single_type(&self) -> Option<&str> {
        match self {
            Selection::Only(kinds) => match kinds.as_slice() {
                [Kind::Type(t)] => Some(t),
                _ => None,
            },
            _ => None,
        }
    }
}

impl FromStr for Selection {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "all" => Ok(Selection::All),
            "none" => Ok(Selection::None),
            "" => Err("empty referrer selection: use none, all, or a list such as sig,sbom".into()),
            list => {
                let kinds = list
                    .split(',')
                    .map(str::parse)
                    .collect::<Result<Vec<Kind>, String>>()?;
                Ok(Selection::Only(kinds))
            }
        }
    }
}

impl TryFrom<String> for Selection {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Selection> for String {
    fn from(s: Selection) -> String {
        s.to_string()
    }
}

impl fmt::Display for Selection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selection::All => f.write_str("all"),
            Selection::None => f.write_str("none"),
            Selection::Only(kinds) => {
                let names: Vec<String> = kinds.iter().map(Kind::to_string).collect();
                f.write_str(&names.join(","))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_cover_cosign_tags_and_referrer_types() {
        let s: Selection = "sig,application/spdx+json".parse().unwrap();
        assert!(s.wants_cosign(CosignSuffix::Sig));
        assert!(!s.wants_cosign(CosignSuffix::Sbom));
        assert!(s.wants_type("application/vnd.dev.cosign.artifact.sig.v1+json"));
        assert!(s.wants_type("application/vnd.cncf.notary.signature"));
        assert!(s.wants_type("application/spdx+json"));
        assert!(!s.wants_type("application/vnd.cyclonedx+json"));
        assert_eq!(s.to_string(), "sig,application/spdx+json");
        assert_eq!(s.single_type(), None);
    }

    #[test]
    fn all_and_none() {
        let all: Selection = "all".parse().unwrap();
        assert!(all.wants_cosign(CosignSuffix::Att) && all.wants_type("x/y"));
        let none: Selection = "none".parse().unwrap();
        assert!(none.is_none() && !none.wants_cosign(CosignSuffix::Sig) && !none.wants_type("x/y"));
        assert_eq!(Selection::default(), Selection::All);
    }

    #[test]
    fn a_single_exact_type_can_be_filtered_by_the_registry() {
        let s: Selection = "application/spdx+json".parse().unwrap();
        assert_eq!(s.single_type(), Some("application/spdx+json"));
    }

    #[test]
    fn unknown_names_are_refused_with_the_choices() {
        let e = "sig,signed".parse::<Selection>().unwrap_err();
        assert!(
            e.contains("\"signed\"") && e.contains("sig, att, sbom"),
            "{e}"
        );
        assert!("".parse::<Selection>().is_err());
    }
}
