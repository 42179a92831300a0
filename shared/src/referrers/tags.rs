//! The tags through which artifacts are found on registries without the referrers API:
//! cosign's `sha256-<hex>.sig|.att|.sbom`, and the OCI 1.1 referrers tag schema
//! `sha256-<hex>`, an index listing every referrer of that digest.
//!
//! The fallback index is shared by every tool that pushes referrers of a subject, so it is
//! only ever extended: entries already there are kept as they are.

use bytes::Bytes;
use serde_json::Value;

use super::selection::CosignSuffix;
use crate::digest::Digest;
use crate::manifest::OCI_INDEX;

/// The tag cosign stores an artifact of `subject` under.
pub fn cosign_tag(subject: &Digest, suffix: CosignSuffix) -> String {
    format!("{}.{}", fallback_tag(subject), suffix.as_str())
}

/// The referrers tag schema's tag for `subject`: `<alg>-<hex>`, the algorithm truncated to
/// 32 characters and the hex to 64, as the distribution spec says.
pub fn fallback_tag(subject: &Digest) -> String {
    let alg: String = subject.algorithm().chars().take(32).collect();
    let hex: String = subject.hex().chars().take(64).collect();
    format!("{alg}-{hex}")
}

/// Whether `tag` holds an artifact of another image (a cosign tag or a fallback index)
/// rather than an image of its own. Such tags travel with their subject, so planning
/// never lists them as images: a mirror copying a fallback index as a plain tag would
/// replace the destination's index instead of merging into it.
pub fn is_artifact_tag(tag: &str) -> bool {
    let base = CosignSuffix::ALL
        .iter()
        .find_map(|s| tag.strip_suffix(&format!(".{}", s.as_str())))
        .unwrap_or(tag);
    let Some((alg, hex)) = base.split_once('-') else {
        return false;
    };
    let len = match alg {
        "sha256" => 64,
        "sha512" => 128,
        _ => return false,
    };
    // The schema truncates the hex to 64 characters.
    hex.len() == len.min(64)
        && hex
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The subject an artifact tag belongs to: `sha256-<hex>.sig` and `sha256-<hex>` are of
/// `sha256:<hex>`. `None` for other tags, and for a sha512 subject whose fallback tag's hex
/// the schema truncated.
pub fn subject_of(tag: &str) -> Option<Digest> {
    if !is_artifact_tag(tag) {
        return None;
    }
    let base = tag.split_once('.').map_or(tag, |(b, _)| b);
    let (alg, hex) = base.split_once('-')?;
    format!("{alg}:{hex}").parse().ok()
}

/// The `manifests` entries of a referrers index (API response or fallback tag), each as the
/// registry wrote it so that annotations and unknown fields survive.
pub fn entries(index: &[u8]) -> Result<Vec<Value>, String> {
    let doc: Value = serde_json::from_slice(index).map_err(|e| e.to_string())?;
    match doc.get("manifests") {
        Some(Value::Array(list)) => Ok(list.clone()),
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(_) => Err("\"manifests\" is not a list".into()),
    }
}

/// The digest an entry describes, if it is well-formed.
pub fn entry_digest(entry: &Value) -> Option<Digest> {
    entry.get("digest")?.as_str()?.parse().ok()
}

/// The artifact type of an entry: its `artifactType`, else (older clients) nothing.
pub fn entry_artifact_type(entry: &Value) -> &str {
    entry
        .get("artifactType")
        .and_then(Value::as_str)
        .unwrap_or_default()
}

/// `existing` with every entry of `additions` it lacks appended, or `None` when it lacks
/// none (nothing to write).
pub fn merge(existing: &[Value], additions: &[Value]) -> Option<Vec<Value>> {
    let mut merged = existing.to_vec();
    let mut changed = false;
    for entry in additions {
        let digest = entry_digest(entry);
        if digest.is_some() && merged.iter().any(|e| entry_digest(e) == digest) {
            continue;
        }
        merged.push(entry.clone());
        changed = true;
    }
    changed.then_some(merged)
}

/// A fallback index holding `entries`.
pub fn render(entries: &[Value]) -> Bytes {
    let doc = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": entries,
    });
    Bytes::from(serde_json::to_vec(&doc).expect("JSON values serialize"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn digest(c: char) -> Digest {
        format!("sha256:{}", c.to_string().repeat(64))
            .parse()
            .unwrap()
    }

    #[test]
    fn an_artifact_tag_names_its_subject() {
        let hex = "ab".repeat(32);
        let subject: Digest = format!("sha256:{hex}").parse().unwrap();
        for tag in [
            format!("sha256-{hex}.sig"),
            format!("sha256-{hex}.att"),
            format!("sha256-{hex}"),
        ] {
            assert_eq!(subject_of(&tag), Some(subject.clone()), "{tag}");
        }
        assert_eq!(subject_of("1.4"), None);
        assert_eq!(
            subject_of(&format!("sha512-{hex}")),
            None,
            "truncated: not a digest"
        );
    }

    #[test]
    fn tag_names_follow_cosign_and_the_distribution_spec() {
        let d = digest('a');
        assert_eq!(fallback_tag(&d), format!("sha256-{}", "a".repeat(64)));
        assert_eq!(
            cosign_tag(&d, CosignSuffix::Sbom),
            format!("sha256-{}.sbom", "a".repeat(64))
        );
    }

    #[test]
    fn artifact_tags_are_told_from_image_tags() {
        let d = digest('e');
        assert!(is_artifact_tag(&fallback_tag(&d)));
        for s in CosignSuffix::ALL {
            assert!(is_artifact_tag(&cosign_tag(&d, s)));
        }
        for tag in [
            "latest",
            "sha256-abc.sig",
            "sha256-",
            "1.4",
            &format!("sha256-{}.zip", "e".repeat(64)),
            &format!("md5-{}", "e".repeat(64)),
            &format!("sha256-{}", "E".repeat(64)),
        ] {
            assert!(!is_artifact_tag(tag), "{tag}");
        }
    }

    #[test]
    fn merging_keeps_what_is_there_and_adds_what_is_missing() {
        let theirs =
            json!({"digest": digest('b').as_str(), "mediaType": "x", "annotations": {"k": "v"}});
        let ours = json!({"digest": digest('c').as_str(), "mediaType": "x"});
        let same_as_theirs = json!({"digest": digest('b').as_str(), "mediaType": "x"});
        let merged = merge(
            std::slice::from_ref(&theirs),
            &[same_as_theirs, ours.clone()],
        )
        .unwrap();
        assert_eq!(merged, vec![theirs.clone(), ours.clone()]);
        assert_eq!(merge(&merged, &[ours]), None);
    }

    #[test]
    fn rendered_indexes_read_back() {
        let e = json!({"digest": digest('d').as_str(), "artifactType": "application/spdx+json", "mediaType": "m", "size": 3});
        let raw = render(std::slice::from_ref(&e));
        let back = entries(&raw).unwrap();
        assert_eq!(back, vec![e]);
        assert_eq!(entry_artifact_type(&back[0]), "application/spdx+json");
        assert_eq!(entry_digest(&back[0]), Some(digest('d')));
        assert!(entries(b"{\"manifests\": 3}").is_err());
        assert!(entries(b"{}").unwrap().is_empty());
    }
}
