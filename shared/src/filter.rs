//! Which repositories and tags of a source are synced: include/exclude patterns, a semver
//! range, and "the newest N".
//!
//! Patterns are regular expressions matched against the whole name (`api-.*` matches
//! `api-1.4`, not `my-api-1.4`), as regsync and skopeo do, so a pattern never selects more
//! than it reads as. Pure code: listings in, selection out.

use std::cmp::Ordering;

use regex::Regex;
use semver::{Version, VersionReq};

/// A pattern, a range or a count that cannot be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FilterError {
    #[error("{pattern:?} is not a valid regular expression: {reason}")]
    Pattern { pattern: String, reason: String },
    #[error("{range:?} is not a valid semver range (e.g. \">=1.2, <2\"): {reason}")]
    Range { range: String, reason: String },
    #[error("newest must be at least 1")]
    Newest,
}

/// Include/exclude patterns over names. No include patterns means everything is included;
/// an exclude always wins.
#[derive(Debug, Clone, Default)]
pub struct NameFilter {
    include: Vec<Regex>,
    exclude: Vec<Regex>,
}

/// A compiled whole-name pattern as the user wrote it.
fn written(pattern: &Regex) -> &str {
    let text = pattern.as_str();
    text.strip_prefix("^(?:")
        .and_then(|t| t.strip_suffix(")$"))
        .unwrap_or(text)
}

impl NameFilter {
    /// The filter in words (`include a|b, exclude c`); empty when it admits everything.
    pub fn describe(&self) -> String {
        let list = |patterns: &[Regex]| patterns.iter().map(written).collect::<Vec<_>>().join(" ");
        let mut parts = Vec::new();
        if !self.include.is_empty() {
            parts.push(format!("include {}", list(&self.include)));
        }
        if !self.exclude.is_empty() {
            parts.push(format!("exclude {}", list(&self.exclude)));
        }
        parts.join(", ")
    }

    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, FilterError> {
        Ok(NameFilter {
            include: compile(include)?,
            exclude: compile(exclude)?,
        })
    }

    pub fn matches(&self, name: &str) -> bool {
        (self.include.is_empty() || self.include.iter().any(|r| r.is_match(name)))
            && !self.exclude.iter().any(|r| r.is_match(name))
    }
}

/// Patterns matched against whole names, as everywhere in the configuration.
pub fn whole_name_patterns(patterns: &[String]) -> Result<Vec<Regex>, FilterError> {
    compile(patterns)
}

fn compile(patterns: &[String]) -> Result<Vec<Regex>, FilterError> {
    patterns
        .iter()
        .map(|p| {
            Regex::new(&format!("^(?:{p})$")).map_err(|e| FilterError::Pattern {
                pattern: p.clone(),
                reason: e.to_string().lines().last().unwrap_or_default().to_string(),
            })
        })
        .collect()
}

/// A tag as a source lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagInfo {
    pub name: String,
    /// The manifest digest, when the listing says it (ECR does; a tags list does not).
    pub digest: Option<String>,
    /// Push time in seconds since the epoch, when the listing says it.
    pub pushed_at: Option<i64>,
}

impl TagInfo {
    pub fn named(name: &str) -> Self {
        TagInfo {
            name: name.to_string(),
            digest: None,
            pushed_at: None,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TagFilter {
    names: NameFilter,
    semver: Option<VersionReq>,
    newest: Option<usize>,
}

impl TagFilter {
    /// The filter in words (`include v.*, semver >=1.0, newest 20`); empty when it admits
    /// every tag.
    pub fn describe(&self) -> String {
        let mut parts = vec![self.names.describe()];
        parts.extend(self.semver.as_ref().map(|v| format!("semver {v}")));
        parts.extend(self.newest.map(|n| format!("newest {n}")));
        parts.retain(|p| !p.is_empty());
        parts.join(", ")
    }

    pub fn new(
        include: &[String],
        exclude: &[String],
        semver: Option<&str>,
        newest: Option<usize>,
    ) -> Result<Self, FilterError> {
        let semver = semver
            .map(|r| {
                VersionReq::parse(r).map_err(|e| FilterError::Range {
                    range: r.to_string(),
                    reason: e.to_string(),
                })
            })
            .transpose()?;
        if newest == Some(0) {
            return Err(FilterError::Newest);
        }
        Ok(TagFilter {
            names: NameFilter::new(include, exclude)?,
            semver,
            newest,
        })
    }

    /// Whether one tag passes the patterns and the range (a single pushed tag is the newest
    /// by definition, so `newest` does not apply). Tags holding another image's signatures
    /// or referrers never pass: they travel with that image.
    pub fn admits(&self, tag: &str) -> bool {
        !crate::referrers::tags::is_artifact_tag(tag)
            && self.names.matches(tag)
            && self
                .semver
                .as_ref()
                .is_none_or(|req| version_of(tag).is_some_and(|v| req.matches(&v)))
    }

    /// The tags to sync, in the order given (newest first when `newest` applies).
    ///
    /// "Newest" orders by push time when every candidate has one (ECR's `imagePushedAt`),
    /// otherwise by the version in the tag, with tags that carry no version last.
    pub fn select(&self, tags: Vec<TagInfo>) -> Vec<TagInfo> {
        let mut selected: Vec<TagInfo> = tags
            .into_iter()
            .filter(|t| !crate::referrers::tags::is_artifact_tag(&t.name))
            .filter(|t| self.names.matches(&t.name))
            .filter(|t| match &self.semver {
                None => true,
                Some(req) => version_of(&t.name).is_some_and(|v| req.matches(&v)),
            })
            .collect();
        if let Some(n) = self.newest {
            if selected.iter().all(|t| t.pushed_at.is_some()) {
                // Tags pushed in the same instant (one CI run, a registry that keeps
                // seconds only) are ordered by version, so the choice stays meaningful.
                selected.sort_by(|a, b| {
                    b.pushed_at
                        .cmp(&a.pushed_at)
                        .then_with(|| newer_version_first(&a.name, &b.name))
                });
            } else {
                selected.sort_by(|a, b| newer_version_first(&a.name, &b.name));
            }
            selected.truncate(n);
        }
        selected
    }
}

fn newer_version_first(a: &str, b: &str) -> Ordering {
    match (version_of(a), version_of(b)) {
        (Some(va), Some(vb)) => vb.cmp(&va).then(a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The version a tag names, read leniently the way tags are written: `1.4`, `v1.4.2`,
/// `1.4.0-rc.1`, and with an image prefix as in the one-repository convention (`api-1.4`).
pub fn version_of(tag: &str) -> Option<Version> {
    static PATTERN: std::sync::OnceLock<Regex> = std::sync::OnceLock::new();
    let pattern = PATTERN.get_or_init(|| {
        Regex::new(r"^(?:[A-Za-z][A-Za-z0-9_.]*?-)?v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$")
            .expect("valid pattern")
    });
    let c = pattern.captures(tag)?;
    let num =
        |i: usize| -> Option<u64> { c.get(i).map(|m| m.as_str().parse().ok()).unwrap_or(Some(0)) };
    let mut version = Version::new(num(1)?, num(2)?, num(3)?);
    if let Some(pre) = c.get(4) {
        version.pre = semver::Prerelease::new(pre.as_str()).ok()?;
    }
    Some(version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &[&str]) -> Vec<String> {
        v.iter().map(|x| x.to_string()).collect()
    }

    fn names(tags: &[TagInfo]) -> Vec<&str> {
        tags.iter().map(|t| t.name.as_str()).collect()
    }

    #[test]
    fn patterns_match_whole_names_and_exclude_wins() {
        let f = NameFilter::new(&s(&["api-.*", "worker"]), &s(&[".*-rc.*"])).unwrap();
        let cases = [
            ("api-1.4", true),
            ("my-api-1.4", false),
            ("worker", true),
            ("worker-1", false),
            ("api-1.5-rc1", false),
        ];
        for (name, expected) in cases {
            assert_eq!(f.matches(name), expected, "{name}");
        }
        assert!(NameFilter::default().matches("anything"));
    }

    #[test]
    fn bad_patterns_and_ranges_are_named() {
        let e = NameFilter::new(&s(&["("]), &[]).unwrap_err();
        assert!(matches!(e, FilterError::Pattern { ref pattern, .. } if pattern == "("));
        let e = TagFilter::new(&[], &[], Some(">=banana"), None).unwrap_err();
        assert!(e.to_string().contains(">=banana"), "{e}");
        assert_eq!(
            TagFilter::new(&[], &[], None, Some(0)).unwrap_err(),
            FilterError::Newest
        );
    }

    #[test]
    fn versions_are_read_leniently() {
        let cases = [
            ("1.4", Some("1.4.0")),
            ("v2", Some("2.0.0")),
            ("1.4.2-rc.1", Some("1.4.2-rc.1")),
            ("api-1.4", Some("1.4.0")),
            ("worker-v3.1.1", Some("3.1.1")),
            ("latest", None),
            ("sha256-abc.sig", None),
            ("1.2.3.4", None),
        ];
        for (tag, expected) in cases {
            assert_eq!(
                version_of(tag).map(|v| v.to_string()).as_deref(),
                expected,
                "{tag}"
            );
        }
    }

    #[test]
    fn semver_range_selects_versions_only() {
        let f = TagFilter::new(&[], &[], Some(">=1.2, <2"), None).unwrap();
        let tags = ["1.1", "1.2", "1.9.9", "2.0", "latest", "api-1.5"]
            .map(TagInfo::named)
            .to_vec();
        assert_eq!(names(&f.select(tags)), ["1.2", "1.9.9", "api-1.5"]);
    }

    #[test]
    fn newest_uses_push_time_when_every_tag_has_one() {
        let f = TagFilter::new(&[], &[], None, Some(2)).unwrap();
        let tag = |n: &str, t| TagInfo {
            pushed_at: Some(t),
            ..TagInfo::named(n)
        };
        let tags = vec![tag("9.0", 10), tag("1.0", 30), tag("latest", 20)];
        assert_eq!(names(&f.select(tags)), ["1.0", "latest"]);
    }

    #[test]
    fn tags_pushed_in_the_same_second_are_ordered_by_version() {
        let f = TagFilter::new(&[], &[], None, Some(3)).unwrap();
        let tag = |n: &str, t| TagInfo {
            pushed_at: Some(t),
            ..TagInfo::named(n)
        };
        let tags = vec![
            tag("1.0.9", 5),
            tag("1.0.10", 5),
            tag("1.0.2", 5),
            tag("1.0.1", 4),
        ];
        assert_eq!(names(&f.select(tags)), ["1.0.10", "1.0.9", "1.0.2"]);
    }

    #[test]
    fn newest_falls_back_to_versions() {
        let f = TagFilter::new(&s(&["[0-9.]+|latest"]), &[], None, Some(3)).unwrap();
        let tags = ["1.10", "1.9", "latest", "2.0", "dev"]
            .map(TagInfo::named)
            .to_vec();
        assert_eq!(names(&f.select(tags)), ["2.0", "1.10", "1.9"]);
    }
}
