//! What pruning may remove from a mirror: the tags of one destination repository that this
//! source's mapping could have made (its *domain*) and whose source tag the source no longer
//! has. Pure code: listing the tags and deleting them are the caller's.
//!
//! A destination tag is in the domain when [`Target::tracer`] traces it back to a tag of
//! the source repository that the source's tag filters admit, it is not a signature,
//! attestation or referrers tag (those go with their image), and no `keep` pattern matches
//! it. Everything else at the destination, pushed by hand or by another source, is never
//! touched. A tag still present at the source is kept even when a selection such as
//! `newest` no longer picks it: the source has it, so a mirror may too.

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use regex::Regex;

use crate::filter::TagFilter;
use crate::mapping::{Target, Vars};
use crate::message::{Reason, RemovalReason, RemoveJob, TagRemoval};
use crate::reference::ImageRef;

/// One tag to remove, and the source tag it mirrored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Removal {
    pub destination: ImageRef,
    pub source_tag: String,
}

impl Removal {
    /// A removal message of this one tag (a delete event's, an expired listed image's),
    /// mirrored from `source` (`registry/repository`) by the source named `source_name`.
    pub fn into_job(
        self,
        source: ImageRef,
        why: RemovalReason,
        source_name: &str,
        reason: Reason,
    ) -> RemoveJob {
        RemoveJob {
            destination: self.destination.repo_only(),
            source,
            tags: vec![TagRemoval {
                tag: self.destination.tag().unwrap_or_default().to_string(),
                source_tag: self.source_tag,
                why,
            }],
            source_name: Some(source_name.to_string()),
            reason,
        }
    }
}

/// A destination repository's tags weighed against its source repository.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Weighed {
    /// Tags in the domain whose source tag is gone, in the order listed.
    pub removals: Vec<Removal>,
    /// Tags in the domain, kept or not: what a percentage bound is taken of.
    pub in_domain: usize,
}

/// The source repository one destination repository is weighed against.
pub struct SourceSide<'a> {
    /// Template values for the source repository (`tag` unused).
    pub vars: Vars<'a>,
    /// Every tag the source repository holds, filtered or not.
    pub tags: &'a HashSet<String>,
    pub filter: &'a TagFilter,
}

/// A destination's mapping, and what protects its tags: a `keep` pattern, the form of its
/// backups; signature, attestation and referrers tags always.
pub struct Protected<'a> {
    pub target: &'a Target,
    pub keep: &'a [Regex],
    pub backup: Option<&'a crate::backup::BackupTemplate>,
}

impl<'a> Protected<'a> {
    pub fn of(destination: &'a crate::config::Destination) -> Self {
        Protected {
            target: &destination.target,
            keep: &destination.keep,
            backup: destination.backup.as_ref(),
        }
    }

    /// Whether `tag` is outside the domain whatever the source holds.
    pub fn protects(&self, tag: &str) -> bool {
        crate::referrers::tags::is_artifact_tag(tag)
            || self.keep.iter().any(|k| k.is_match(tag))
            || self.backup.is_some_and(|b| b.is_backup(tag))
    }
}

/// Weigh `listed`, the tags of `repository` at `destination`.
pub fn weigh(
    source: &SourceSide<'_>,
    destination: &Protected<'_>,
    repository: &ImageRef,
    listed: &[String],
) -> Weighed {
    let mut weighed = Weighed::default();
    let Some(tracer) = destination.target.tracer(&source.vars) else {
        return weighed;
    };
    for tag in listed {
        if destination.protects(tag) {
            continue;
        }
        let destination = repository.with_tag(tag);
        let Some(source_tag) = tracer.source_tag(&destination) else {
            continue;
        };
        if !source.filter.admits(&source_tag) {
            continue;
        }
        weighed.in_domain += 1;
        if !source.tags.contains(&source_tag) {
            weighed.removals.push(Removal {
                destination,
                source_tag,
            });
        }
    }
    weighed
}

/// The destination tag a mirror loses when `source_tag` is deleted from the source (an ECR
/// delete event): the tag `target` makes from it, if that tag is in the domain. The source's
/// tag filters are the caller's; no listing is needed, so a delete event costs no more than
/// the removal itself.
pub fn deleted(destination: &Protected<'_>, vars: &Vars<'_>, source_tag: &str) -> Option<Removal> {
    if crate::referrers::tags::is_artifact_tag(source_tag) {
        return None;
    }
    let target = destination.target;
    let made = target
        .render(&Vars {
            tag: source_tag,
            ..*vars
        })
        .ok()??;
    if destination.protects(made.tag()?) {
        return None;
    }
    let destination = made;
    // Only a tag that traces back to this very source tag is in the domain (a template
    // that drops part of the tag could make the same tag from several).
    let traced = target.tracer(vars)?.source_tag(&destination)?;
    (traced == source_tag).then(|| Removal {
        destination,
        source_tag: source_tag.to_string(),
    })
}

/// The repositories `target` maps `vars`' source repository to: for each tag the source
/// holds, and for a sample tag of each configured split prefix (so a prefix whose tags are
/// all gone is still looked at). A split image none of whose tags is left, and no prefix
/// names, is not found: nothing lists it.
pub fn destination_repositories<'s>(
    target: &Target,
    vars: &Vars<'_>,
    source_tags: impl IntoIterator<Item = &'s str>,
) -> Vec<ImageRef> {
    const SAMPLE: &str = "latest";
    let samples: Vec<String> = match target.split_tag() {
        None => vec![SAMPLE.to_string()],
        Some(split) => split
            .prefixes
            .iter()
            .map(|p| format!("{p}{}{SAMPLE}", split.separator))
            .collect(),
    };
    let mut repositories = std::collections::BTreeMap::new();
    let mut add = |tag: &str| {
        if crate::referrers::tags::is_artifact_tag(tag) {
            return;
        }
        if let Ok(Some(reference)) = target.render(&Vars { tag, ..*vars }) {
            let repository = reference.repo_only();
            repositories
                .entry(repository.to_string())
                .or_insert(repository);
        }
    };
    samples.iter().for_each(|t| add(t));
    source_tags.into_iter().for_each(add);
    repositories.into_values().collect()
}

/// A destination tag in a domain whose source tag is gone: what a prune would remove, as
/// `ferry verify` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Extra {
    /// `registry/repository:tag` at the destination.
    pub destination: String,
    /// The source image it would have been made from.
    pub source: String,
}

/// A prune its bound refused: nothing was removed from this repository.
#[serde_with::serde_as]
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RefusedPrune {
    /// `registry/repository` at the destination.
    pub destination: String,
    /// Tags it would have removed, of those in its domain.
    pub removals: usize,
    pub in_domain: usize,
    #[serde_as(as = "serde_with::DisplayFromStr")]
    pub prune_max: PruneMax,
}

impl fmt::Display for RefusedPrune {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: pruning would remove {} of the {} tags it mirrors, more than prune_max ({}) allows; nothing was removed. If the source really lost them, raise prune_max for this destination; otherwise check the source and its filters",
            self.destination, self.removals, self.in_domain, self.prune_max
        )
    }
}

/// How much one run may remove from one destination: a count, or a percentage of the tags
/// in its domain. A prune that would remove more removes nothing: a source that lists
/// nothing during an outage, or a mistyped filter, must not empty a mirror.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PruneMax {
    Count(usize),
    Percent(u8),
}

impl Default for PruneMax {
    fn default() -> Self {
        PruneMax::Percent(50)
    }
}

impl PruneMax {
    /// Whether removing `removals` of `in_domain` tags stays within the bound.
    pub fn allows(self, removals: usize, in_domain: usize) -> bool {
        match self {
            PruneMax::Count(n) => removals <= n,
            PruneMax::Percent(p) => removals * 100 <= in_domain * usize::from(p),
        }
    }
}

impl FromStr for PruneMax {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        const EXPECTED: &str =
            "expected a number of tags (20) or a percentage of the mirrored tags (50%)";
        let s = s.trim();
        match s.strip_suffix('%') {
            Some(p) => match p.trim().parse::<u8>() {
                Ok(p) if p <= 100 => Ok(PruneMax::Percent(p)),
                _ => Err(format!("{s:?}: a percentage is 0% to 100%")),
            },
            None => s
                .parse()
                .map(PruneMax::Count)
                .map_err(|_| format!("{s:?}: {EXPECTED}")),
        }
    }
}

impl fmt::Display for PruneMax {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PruneMax::Count(n) => write!(f, "{n}"),
            PruneMax::Percent(p) => write!(f, "{p}%"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mapping::SplitTag;

    fn vars(repository: &str) -> Vars<'_> {
        Vars {
            registry: "src.example",
            repository,
            tag: "",
            account: None,
            region: None,
        }
    }

    fn set(tags: &[&str]) -> HashSet<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    fn list(tags: &[&str]) -> Vec<String> {
        tags.iter().map(|t| t.to_string()).collect()
    }

    fn removed(weighed: &Weighed) -> Vec<String> {
        weighed
            .removals
            .iter()
            .map(|r| r.destination.tag().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn only_tags_the_mapping_made_from_a_source_tag_now_gone_are_removed() {
        let semver = TagFilter::new(&[], &[], Some(">=1.0.0"), None).unwrap();
        let all = TagFilter::new(&[], &[], None, None).unwrap();
        let v_prefixed = Target::new("dst.example/{repo}:v{tag}", None).unwrap();
        let plain = Target::new("dst.example/{repo}", None).unwrap();
        let keep = vec![Regex::new("^release-").unwrap()];
        let sig = ["sha256-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sig"];
        // What, filter, target, keep, source tags, destination tags, removed, in domain.
        type Case<'a> = (
            &'a str,
            &'a TagFilter,
            &'a Target,
            &'a [Regex],
            &'a [&'a str],
            &'a [&'a str],
            &'a [&'a str],
            usize,
        );
        let cases: Vec<Case> = vec![
            (
                "a vanished tag goes; a present one stays",
                &all,
                &plain,
                &[],
                &["1.0.0"],
                &["1.0.0", "0.9.0"],
                &["0.9.0"],
                2,
            ),
            (
                "a tag the filters reject was not ferry's to make: kept",
                &semver,
                &plain,
                &[],
                &["1.0.0"],
                &["1.0.0", "0.9.0", "hand-pushed"],
                &[],
                1,
            ),
            (
                "a keep pattern protects a tag in the domain",
                &all,
                &plain,
                &keep,
                &[],
                &["release-1", "2.0"],
                &["2.0"],
                1,
            ),
            (
                "signatures go with their image, never on their own",
                &all,
                &plain,
                &[],
                &[],
                &sig,
                &[],
                0,
            ),
            (
                "a tag the template cannot have made (no v prefix) is outside the domain",
                &all,
                &v_prefixed,
                &[],
                &["2"],
                &["v2", "v1", "1"],
                &["v1"],
                2,
            ),
        ];
        let repository: ImageRef = "dst.example/team/app".parse().unwrap();
        for (what, filter, target, keep, source, listed, expected, in_domain) in cases {
            let tags = set(source);
            let side = SourceSide {
                vars: vars("team/app"),
                tags: &tags,
                filter,
            };
            let protected = Protected {
                target,
                keep,
                backup: None,
            };
            let weighed = weigh(&side, &protected, &repository, &list(listed));
            assert_eq!(removed(&weighed), list(expected), "{what}");
            assert_eq!(weighed.in_domain, in_domain, "{what}");
        }
    }

    #[test]
    fn backups_are_outside_the_domain() {
        let all = TagFilter::new(&[], &[], None, None).unwrap();
        let plain = Target::new("dst.example/{repo}", None).unwrap();
        let backup: crate::backup::BackupTemplate = "{tag}-{digest12}".parse().unwrap();
        let tags = set(&["1.0"]);
        let side = SourceSide {
            vars: vars("team/app"),
            tags: &tags,
            filter: &all,
        };
        let repository: ImageRef = "dst.example/team/app".parse().unwrap();
        let listed = list(&["1.0", "0.9", "1.0-3f2a9c1b2d4e"]);
        let with_backups = Protected {
            target: &plain,
            keep: &[],
            backup: Some(&backup),
        };
        let weighed = weigh(&side, &with_backups, &repository, &listed);
        assert_eq!(removed(&weighed), list(&["0.9"]));
        assert_eq!(weighed.in_domain, 2);
        // Without a backup template the same tag is one the mapping could have made.
        let without = Protected {
            target: &plain,
            keep: &[],
            backup: None,
        };
        let weighed = weigh(&side, &without, &repository, &listed);
        assert_eq!(removed(&weighed), list(&["0.9", "1.0-3f2a9c1b2d4e"]));
    }

    #[test]
    fn a_deleted_source_tag_removes_the_tag_made_from_it_if_in_the_domain() {
        let plain = Target::new("dst.example/{repo}", None).unwrap();
        let v_prefixed = Target::new("dst.example/{repo}:v{tag}", None).unwrap();
        let fixed = Target::new("dst.example/{repo}:stable", None).unwrap();
        let split = Target::new(
            "dst.example/{image}:{tag}",
            Some(SplitTag {
                separator: "-".into(),
                prefixes: vec!["api".into()],
            }),
        )
        .unwrap();
        let keep = [Regex::new("^release-").unwrap()];
        let sig = "sha256-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sig";
        // What, target, keep, deleted source tag, destination tag removed.
        type Case<'a> = (&'a str, &'a Target, &'a [Regex], &'a str, Option<&'a str>);
        let cases: [Case; 7] = [
            (
                "the same tag",
                &plain,
                &[],
                "1.4",
                Some("dst.example/team/app:1.4"),
            ),
            (
                "through the template",
                &v_prefixed,
                &[],
                "1.4",
                Some("dst.example/team/app:v1.4"),
            ),
            ("kept by a pattern", &plain, &keep, "release-1", None),
            (
                "a signature follows its image, not its own event",
                &plain,
                &[],
                sig,
                None,
            ),
            (
                "a template without {tag} has no domain",
                &fixed,
                &[],
                "1.4",
                None,
            ),
            (
                "split into its image's repository",
                &split,
                &[],
                "api-1.4",
                Some("dst.example/api:1.4"),
            ),
            (
                "a tag the split names no image for",
                &split,
                &[],
                "worker-1.4",
                None,
            ),
        ];
        for (what, target, keep, source_tag, expected) in cases {
            let protected = Protected {
                target,
                keep,
                backup: None,
            };
            let got = deleted(&protected, &vars("team/app"), source_tag);
            assert_eq!(
                got.as_ref().map(|r| r.destination.to_string()).as_deref(),
                expected,
                "{what}"
            );
            if let Some(r) = got {
                assert_eq!(r.source_tag, source_tag, "{what}");
            }
        }
    }

    #[test]
    fn a_split_prunes_each_image_repository_against_its_prefix() {
        let all = TagFilter::new(&[], &[], None, None).unwrap();
        let split = Target::new(
            "dst.example/g/{repo}/{image}:{tag}",
            Some(SplitTag {
                separator: "-".into(),
                prefixes: vec![],
            }),
        )
        .unwrap();
        let tags = set(&["api-1.4", "worker-1.4"]);
        let side = SourceSide {
            vars: vars("proj"),
            tags: &tags,
            filter: &all,
        };
        let api: ImageRef = "dst.example/g/proj/api".parse().unwrap();
        let protected = Protected {
            target: &split,
            keep: &[],
            backup: None,
        };
        let weighed = weigh(&side, &protected, &api, &list(&["1.4", "1.3"]));
        assert_eq!(removed(&weighed), list(&["1.3"]));
        assert_eq!(weighed.removals[0].source_tag, "api-1.3");
    }

    #[test]
    fn a_source_repository_maps_to_its_destination_repositories() {
        let split = |prefixes: &[&str]| {
            Target::new(
                "dst.example/g/{repo}/{image}:{tag}",
                Some(SplitTag {
                    separator: "-".into(),
                    prefixes: prefixes.iter().map(|p| p.to_string()).collect(),
                }),
            )
            .unwrap()
        };
        let plain = Target::new("dst.example/m/{repo}", None).unwrap();
        let cases: Vec<(&str, Target, Vec<&str>, Vec<&str>)> = vec![
            (
                "a plain target: one repository, even when no tag is left",
                plain,
                vec![],
                vec!["dst.example/m/proj"],
            ),
            (
                "a split: each image the tags name",
                split(&[]),
                vec!["api-1.4", "worker-2", "api-1.3", "latest"],
                vec!["dst.example/g/proj/api", "dst.example/g/proj/worker"],
            ),
            (
                "a split's prefixes are looked at when their tags are all gone",
                split(&["api", "worker"]),
                vec!["api-1.4"],
                vec!["dst.example/g/proj/api", "dst.example/g/proj/worker"],
            ),
            (
                "artifact tags name no image",
                split(&[]),
                vec!["sha256-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.sig"],
                vec![],
            ),
        ];
        for (what, target, tags, expected) in cases {
            let found: Vec<String> = destination_repositories(&target, &vars("proj"), tags)
                .iter()
                .map(|r| r.to_string())
                .collect();
            assert_eq!(found, expected, "{what}");
        }
    }

    #[test]
    fn the_bound_refuses_more_than_its_share() {
        let cases = [
            (PruneMax::Percent(50), 5, 10, true),
            (PruneMax::Percent(50), 6, 10, false),
            (PruneMax::Percent(50), 1, 0, false),
            (PruneMax::Percent(100), 10, 10, true),
            (PruneMax::Count(3), 3, 1000, true),
            (PruneMax::Count(3), 4, 1000, false),
            (PruneMax::Count(0), 0, 0, true),
        ];
        for (max, removals, in_domain, allowed) in cases {
            assert_eq!(
                max.allows(removals, in_domain),
                allowed,
                "{max} of {in_domain}: {removals}"
            );
        }
    }

    #[test]
    fn the_bound_reads_as_written() {
        assert_eq!("50%".parse(), Ok(PruneMax::Percent(50)));
        assert_eq!(" 20 ".parse(), Ok(PruneMax::Count(20)));
        assert!("150%"
            .parse::<PruneMax>()
            .unwrap_err()
            .contains("0% to 100%"));
        assert!("half"
            .parse::<PruneMax>()
            .unwrap_err()
            .contains("percentage"));
        assert_eq!(PruneMax::default().to_string(), "50%");
    }
}
