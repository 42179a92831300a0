//! What planning decides for one source tag, from the configuration and what it observed:
//! pure functions, no registry in sight, so every decision is table-tested here.
//!
//! Planning one tag goes: [`render`] its destinations from the configuration; ask the
//! registries what each destination holds ([`Seen`]) and which digest the source tag
//! points at (the observing, in `plan/mod.rs`); then [`decide`] the jobs. What a
//! destination holds that the source no longer does (pruning, expiry) will be decided here
//! too, from the same observations.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Serialize;

use super::PlanOptions;
use crate::config::{Destination, Source, SyncConfig};
use crate::copy::{CopyRequest, PlanHints};
use crate::digest::Digest;
use crate::ecr_host::EcrHost;
use crate::error::{Error, Result};
use crate::manifest::{Manifest, Platform};
use crate::message::{CopyJob, JobDestination, MessageError, Reason};
use crate::reference::ImageRef;

/// One destination a source tag goes to, as the configuration renders it.
#[derive(Debug, Clone)]
pub struct Rendered<'a> {
    pub destination: &'a Destination,
    pub reference: ImageRef,
}

/// An image planning leaves out, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub image: String,
    pub reason: String,
}

/// What one destination was seen to hold under the tag before deciding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// The tag, at this digest.
    Holds(Digest),
    /// Not the tag: its repository's listing lacks it, or a HEAD found nothing.
    Missing,
    /// Not asked (a platform-filtered copy has a digest of its own, so the source's says
    /// nothing of it), or the asking failed: the copy will ask.
    Unknown,
}

/// A copy job as planning made it, with what planning learnt of its image for a copy in
/// the same process (`ferry sync`). Only the job goes on a queue, and only the job is
/// shown: a copier reading a queue asks the registries itself, as they may have changed.
#[derive(Debug, Clone)]
pub struct PlannedJob {
    pub job: CopyJob,
    pub hints: PlanHints,
}

impl PlannedJob {
    /// The job's copy request, with the hints.
    pub fn request(&self) -> std::result::Result<CopyRequest, MessageError> {
        let mut request = self.job.request()?;
        request.hints = self.hints.clone();
        Ok(request)
    }
}

/// A planned job is read as its job: its source, destinations, platforms.
impl std::ops::Deref for PlannedJob {
    type Target = CopyJob;

    fn deref(&self) -> &CopyJob {
        &self.job
    }
}

impl Serialize for PlannedJob {
    fn serialize<S: serde::Serializer>(
        &self,
        serializer: S,
    ) -> std::result::Result<S::Ok, S::Error> {
        self.job.serialize(serializer)
    }
}

/// The plan of one source tag.
#[derive(Debug, Default)]
pub struct TagPlan {
    pub jobs: Vec<PlannedJob>,
    pub skipped: Vec<Skipped>,
    /// The pinned source image, when every destination holds it and nothing lags.
    pub up_to_date: Option<String>,
}

impl TagPlan {
    /// The tag was listed but is gone when asked for.
    pub fn disappeared(image: &ImageRef) -> TagPlan {
        TagPlan {
            skipped: vec![Skipped {
                image: image.to_string(),
                reason: "the tag disappeared between listing and reading".into(),
            }],
            ..TagPlan::default()
        }
    }
}

/// The destinations of `tag` of `host/repository` under `source`, and the ones its
/// destinations' tag-prefix splits leave out (a tag that names no image of the split).
pub fn render<'a>(
    config: &SyncConfig,
    source: &'a Source,
    base: &ImageRef,
    tag: &str,
) -> Result<(Vec<Rendered<'a>>, Vec<Skipped>)> {
    let vars = config.vars(base.registry(), base.repository(), tag);
    let mut rendered = Vec::new();
    let mut skipped = Vec::new();
    for destination in &source.destinations {
        match destination.target.render(&vars) {
            Ok(Some(reference))
                if destination
                    .backup
                    .as_ref()
                    .zip(reference.tag())
                    .is_some_and(|(b, t)| b.is_backup(t)) =>
            {
                skipped.push(Skipped {
                    image: base.to_string(),
                    reason: format!(
                        "{reference} would have the form of a backup tag ({}), so it is not mirrored there",
                        destination.backup.as_ref().expect("matched above")
                    ),
                })
            }
            Ok(Some(reference)) => rendered.push(Rendered {
                destination,
                reference,
            }),
            Ok(None) => skipped.push(Skipped {
                image: base.to_string(),
                reason: format!(
                    "tag names no image for the split of {}",
                    destination.target.template()
                ),
            }),
            Err(e) => return Err(Error::Config(format!("source {}: {e}", source.name))),
        }
    }
    Ok((rendered, skipped))
}

/// Whether a destination that no listing answered for is worth a manifest HEAD: planning
/// checks destinations, and the copy is the source's own manifest (a platform-filtered
/// copy has a digest of its own, which the source's says nothing of).
pub fn asks_destination(options: &PlanOptions, rendered: &Rendered<'_>) -> bool {
    options.check_destinations && rendered.destination.platforms.is_empty()
}

/// Whether every destination holds `digest` already (there is at least one): then only
/// the image's signatures and referrers may still need a copy.
pub fn all_current(seen: &[Seen], digest: &Digest) -> bool {
    !seen.is_empty() && seen.iter().all(|s| *s == Seen::Holds(digest.clone()))
}

/// The jobs for `pinned` (the source tag at the digest planning saw), given what each of
/// `rendered` was seen to hold. `manifest` is the source manifest if planning read it (kept
/// for a copy in this process); `lagging` is, for an image every destination holds, what
/// the check of its signatures and referrers found behind (`None`: nothing).
///
/// Destinations holding the digest get no job. The others are grouped by platform filter,
/// one job per group (each group is one copy of one manifest); a group whose destinations
/// were all seen missing needs no manifest HEADs in the copy. Repositories are created
/// only at ECR destinations, the only registries that do not create them on push.
pub fn decide(
    source: &Source,
    reason: Reason,
    pinned: &ImageRef,
    rendered: Vec<Rendered<'_>>,
    seen: Vec<Seen>,
    manifest: Option<Arc<Manifest>>,
    lagging: Option<PlanHints>,
) -> TagPlan {
    let digest = pinned.digest();
    let job = |destinations, platforms, hints| PlannedJob {
        job: CopyJob {
            source: pinned.clone(),
            destinations,
            platforms,
            source_name: Some(source.name.clone()),
            reason,
            repair: false,
        },
        hints,
    };
    let mut out = TagPlan::default();
    // By platform filter (as text, for an order): its platforms, destinations, and whether
    // all of those were seen missing.
    type Group = (Vec<Platform>, Vec<JobDestination>, bool);
    let mut groups: BTreeMap<Vec<String>, Group> = BTreeMap::new();
    let mut current = Vec::new();
    for (r, seen) in rendered.into_iter().zip(seen) {
        let holds_it = matches!(&seen, Seen::Holds(d) if Some(d) == digest);
        if holds_it {
            current.push(JobDestination {
                reference: r.reference.clone(),
                overwrite: r.destination.overwrite,
                create_repository: None,
                backup: r.destination.backup.clone(),
            });
            continue;
        }
        let key = r
            .destination
            .platforms
            .iter()
            .map(|p| p.to_string())
            .collect();
        let create_repository = r
            .destination
            .create_repository
            .filter(|_| EcrHost::is_ecr(r.reference.registry()));
        let (_, destinations, all_missing) = groups
            .entry(key)
            .or_insert_with(|| (r.destination.platforms.clone(), Vec::new(), true));
        *all_missing &= seen == Seen::Missing;
        destinations.push(JobDestination {
            reference: r.reference.clone(),
            overwrite: r.destination.overwrite,
            create_repository,
            backup: r.destination.backup.clone(),
        });
    }
    if groups.is_empty() && !current.is_empty() {
        match lagging {
            // Current, but its signatures or referrers have not followed it yet: a job that
            // only checks those (the copy trusts that the image is there).
            Some(hints) => out.jobs.push(job(current, Vec::new(), hints)),
            None => out.up_to_date = Some(pinned.to_string()),
        }
    }
    for (platforms, destinations, destinations_absent) in groups.into_values() {
        out.jobs.push(job(
            destinations,
            platforms,
            PlanHints {
                manifest: manifest.clone(),
                destinations_absent,
                destinations_current: false,
            },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "src.example/team/app";

    fn digest(n: u8) -> Digest {
        Digest::sha256_of(&[n])
    }

    fn config(destinations: &str) -> SyncConfig {
        let text = format!(
            "version: 1\nsources:\n  - name: s\n    registry: {{host: src.example}}\n    destinations:\n{destinations}"
        );
        SyncConfig::parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The jobs as (destinations, platforms, destinations_absent, destinations_current),
    /// and whether the image is up to date.
    type Summary = (Vec<(Vec<String>, Vec<String>, bool, bool)>, bool);

    fn summary(plan: &TagPlan) -> Summary {
        (
            plan.jobs
                .iter()
                .map(|j| {
                    (
                        j.destinations
                            .iter()
                            .map(|d| d.reference.to_string())
                            .collect(),
                        j.platforms.iter().map(|p| p.to_string()).collect(),
                        j.hints.destinations_absent,
                        j.hints.destinations_current,
                    )
                })
                .collect(),
            plan.up_to_date.is_some(),
        )
    }

    fn plan(config: &SyncConfig, tag: &str, seen: &[Seen], lagging: Option<PlanHints>) -> TagPlan {
        let source = &config.sources[0];
        let base: ImageRef = format!("{SRC}:{tag}").parse().unwrap();
        let (rendered, skipped) = render(config, source, &base, tag).unwrap();
        assert!(skipped.is_empty(), "{skipped:?}");
        assert_eq!(
            rendered.len(),
            seen.len(),
            "one observation per destination"
        );
        decide(
            source,
            Reason::Manual,
            &base.with_digest(digest(1)),
            rendered,
            seen.to_vec(),
            None,
            lagging,
        )
    }

    fn refs(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn jobs_follow_from_what_the_destinations_hold() {
        let two =
            config("      - target: \"a.example/{repo}\"\n      - target: \"b.example/{repo}\"\n");
        let split = config(
            "      - target: \"a.example/{repo}\"\n      - target: \"b.example/{repo}\"\n        platforms: [linux/amd64]\n      - target: \"c.example/{repo}\"\n        platforms: [linux/amd64]\n",
        );
        let held = Seen::Holds(digest(1));
        let other = Seen::Holds(digest(2));
        let lag = PlanHints {
            destinations_current: true,
            ..PlanHints::default()
        };
        // What, under which configuration, seen where, what lags, and the plan.
        type Case<'a> = (
            &'a str,
            &'a SyncConfig,
            Vec<Seen>,
            Option<PlanHints>,
            Summary,
        );
        let cases: Vec<Case> = vec![
            (
                "every destination current: up to date, no job",
                &two,
                vec![held.clone(), held.clone()],
                None,
                (vec![], true),
            ),
            (
                "every destination current but a signature lags: one job that checks artifacts",
                &two,
                vec![held.clone(), held.clone()],
                Some(lag),
                (
                    vec![(
                        refs(&["a.example/team/app:1", "b.example/team/app:1"]),
                        vec![],
                        false,
                        true,
                    )],
                    false,
                ),
            ),
            (
                "one current, one missing: a job for the missing one, which needs no HEAD",
                &two,
                vec![held.clone(), Seen::Missing],
                None,
                (
                    vec![(refs(&["b.example/team/app:1"]), vec![], true, false)],
                    false,
                ),
            ),
            (
                "another digest at one, the other unknown: both copied, the copy asks",
                &two,
                vec![other.clone(), Seen::Unknown],
                None,
                (
                    vec![(
                        refs(&["a.example/team/app:1", "b.example/team/app:1"]),
                        vec![],
                        false,
                        false,
                    )],
                    false,
                ),
            ),
            (
                "platform filters: one job per group, missing only where all of it is",
                &split,
                vec![Seen::Missing, Seen::Unknown, Seen::Unknown],
                None,
                (
                    vec![
                        (refs(&["a.example/team/app:1"]), vec![], true, false),
                        (
                            refs(&["b.example/team/app:1", "c.example/team/app:1"]),
                            refs(&["linux/amd64"]),
                            false,
                            false,
                        ),
                    ],
                    false,
                ),
            ),
        ];
        for (what, config, seen, lagging, expected) in cases {
            assert_eq!(
                summary(&plan(config, "1", &seen, lagging)),
                expected,
                "{what}"
            );
        }
    }

    #[test]
    fn a_planned_job_is_shown_and_sent_as_its_job_alone() {
        let two = config("      - target: \"a.example/{repo}\"\n");
        let plan = plan(&two, "1", &[Seen::Missing], None);
        let planned = &plan.jobs[0];
        assert!(planned.hints.destinations_absent);
        assert_eq!(
            serde_json::to_value(planned).unwrap(),
            serde_json::to_value(&planned.job).unwrap()
        );
        // The request a copy in this process gets carries the hints; the job's does not.
        assert!(planned.request().unwrap().hints.destinations_absent);
        assert!(!planned.job.request().unwrap().hints.destinations_absent);
    }

    #[test]
    fn a_destination_that_may_not_overwrite_gets_its_job_and_the_copy_keeps_its_tag() {
        // The copy, not the plan, tells "kept" from "copied": it compares at push time.
        let keep = config("      - target: \"a.example/{repo}\"\n        overwrite: false\n");
        let plan = plan(&keep, "1", &[Seen::Holds(digest(2))], None);
        assert_eq!(plan.jobs.len(), 1);
        assert!(!plan.jobs[0].destinations[0].overwrite);
        assert!(plan.up_to_date.is_none());
    }

    #[test]
    fn repositories_are_created_only_at_ecr_destinations() {
        let both = config(
            "      - target: \"123456789012.dkr.ecr.eu-west-1.amazonaws.com/{repo}\"\n        create_repository: {immutable: true}\n      - target: \"a.example/{repo}\"\n",
        );
        let plan = plan(&both, "1", &[Seen::Missing, Seen::Missing], None);
        let created: Vec<bool> = plan.jobs[0]
            .destinations
            .iter()
            .map(|d| d.create_repository.is_some())
            .collect();
        assert_eq!(created, [true, false]);
    }

    #[test]
    fn a_tag_prefix_split_that_selects_nothing_is_skipped_with_its_reason() {
        let split = config(
            "      - target: \"a.example/{repo}/{image}\"\n        split_tag: {prefixes: [api, worker]}\n",
        );
        let source = &split.sources[0];
        let base: ImageRef = format!("{SRC}:docs-1.4").parse().unwrap();
        let (rendered, skipped) = render(&split, source, &base, "docs-1.4").unwrap();
        assert!(rendered.is_empty());
        assert_eq!(skipped.len(), 1);
        assert!(skipped[0].reason.contains("names no image"), "{skipped:?}");
        let (rendered, skipped) = render(&split, source, &base, "api-1.4").unwrap();
        assert!(skipped.is_empty());
        assert_eq!(
            rendered[0].reference.to_string(),
            "a.example/team/app/api:1.4"
        );
    }

    #[test]
    fn destinations_are_asked_only_where_the_answer_decides_something() {
        let split = config(
            "      - target: \"a.example/{repo}\"\n      - target: \"b.example/{repo}\"\n        platforms: [linux/amd64]\n",
        );
        let base: ImageRef = format!("{SRC}:1").parse().unwrap();
        let (rendered, _) = render(&split, &split.sources[0], &base, "1").unwrap();
        let on = PlanOptions::default();
        let off = PlanOptions {
            check_destinations: false,
            ..PlanOptions::default()
        };
        let cases = [(&on, 0, true), (&on, 1, false), (&off, 0, false)];
        for (options, which, asks) in cases {
            assert_eq!(
                asks_destination(options, &rendered[which]),
                asks,
                "destination {which}, checking {}",
                options.check_destinations
            );
        }
    }

    #[test]
    fn current_means_every_destination_holds_the_digest() {
        let d = digest(1);
        let cases = [
            (vec![], false),
            (vec![Seen::Holds(d.clone())], true),
            (vec![Seen::Holds(d.clone()), Seen::Unknown], false),
            (vec![Seen::Holds(digest(2))], false),
            (vec![Seen::Missing], false),
        ];
        for (seen, expected) in cases {
            assert_eq!(all_current(&seen, &d), expected, "{seen:?}");
        }
    }
}
