//! `ferry verify`: does every destination hold exactly its source image, complete, and
//! nothing else in its domain? With `--repair`, copy again what is not so, and check again.

use std::collections::HashMap;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferry::aws::AwsClients;
use ferry::copy::{Copier, CopyOptions};
use ferry::jobs::JobRunner;
use ferry::manifest::Platform;
use ferry::message::{CopyJob, JobDestination, Reason};
use ferry::plan::prune::Extra;
use ferry::plan::PlanOptions;
use ferry::reference::ImageRef;
use ferry::referrers::tags;
use ferry::registry::{RegistryClient, RetryPolicy};
use ferry::report::ImageReport;
use ferry::verify::{Expectation, Finding, Verdict, Verifier, VerifySummary};
use futures::{stream, StreamExt};
use serde::Serialize;

use crate::args::VerifyArgs;
use crate::output::{self, short_source, skipped_line};
use crate::setup;

#[derive(Serialize)]
struct VerifyReport<'a> {
    #[serde(flatten)]
    summary: &'a VerifySummary,
    /// Destination tags their source does not have.
    extra: usize,
    verdicts: &'a [Verdict],
    extras: &'a [Extra],
    /// With `--repair`: the copies made, and what the first check found (`verdicts` are
    /// then the check after the repair).
    #[serde(skip_serializing_if = "Option::is_none")]
    repair: Option<RepairReport<'a>>,
}

#[derive(Serialize)]
struct RepairReport<'a> {
    images: &'a [ImageReport],
    before: &'a [Verdict],
}

/// What to verify, and what with.
struct Checking {
    /// Each source image and where it should be, as the copy jobs that put it there.
    jobs: Vec<CopyJob>,
    /// Destination tags their source lacks (found while planning).
    extras: Vec<Extra>,
    registry: Arc<RegistryClient>,
    aws: Arc<AwsClients>,
    options: CopyOptions,
}

pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    let checking = if args.pairs.is_empty() {
        from_config(&args).await?
    } else {
        if args.config.config.is_some() {
            bail!("give either --config or SRC DST pairs, not both");
        }
        from_pairs(&args).await?
    };
    // As many images checked at once as a sync copies: verifying is round trips too, and
    // that concurrency was chosen at a distance.
    let verifier = Verifier::new(
        &checking.registry,
        checking.options.image_concurrency.max(1),
        checking.options.referrers.clone(),
    );
    let expectations = checking
        .jobs
        .iter()
        .map(Expectation::from_job)
        .collect::<Result<Vec<_>, _>>()?;
    let mut verdicts = verifier.verify_all(&expectations).await;
    let mut repaired = None;
    if args.repair {
        let jobs = repairs(&checking.jobs, &verdicts);
        if !jobs.is_empty() {
            if !args.json {
                eprintln!("repairing {} images", jobs.len());
            }
            let copier = Copier::new(checking.registry.clone(), checking.options.clone());
            let runner = JobRunner::new(copier, checking.aws.clone());
            let runner = &runner;
            let concurrency = checking.options.image_concurrency.max(1);
            let images: Vec<ImageReport> = stream::iter(&jobs)
                .map(|job| async move {
                    match runner.run(job, &Default::default()).await {
                        Ok(reports) => reports,
                        Err(e) => vec![e.report(job)],
                    }
                })
                .buffer_unordered(concurrency)
                .flat_map(stream::iter)
                .collect()
                .await;
            if !args.json {
                for image in &images {
                    eprintln!("{}", output::image_line(image));
                }
            }
            // What was repaired is verified again; the rest stands as found.
            let again = jobs
                .iter()
                .map(Expectation::from_job)
                .collect::<Result<Vec<_>, _>>()?;
            let after = verifier.verify_all(&again).await;
            let before = verdicts.clone();
            let at: HashMap<(String, String), usize> = verdicts
                .iter()
                .enumerate()
                .map(|(i, v)| ((v.source.clone(), v.destination.clone()), i))
                .collect();
            for verdict in after {
                match at.get(&(verdict.source.clone(), verdict.destination.clone())) {
                    Some(&i) => verdicts[i] = verdict,
                    None => verdicts.push(verdict),
                }
            }
            repaired = Some((images, before));
        }
    }
    let Checking { extras, .. } = checking;
    let summary = VerifySummary::of(&verdicts);
    if args.json {
        let report = VerifyReport {
            summary: &summary,
            extra: extras.len(),
            verdicts: &verdicts,
            extras: &extras,
            repair: repaired
                .as_ref()
                .map(|(images, before)| RepairReport { images, before }),
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        for v in verdicts.iter().filter(|v| args.all || !v.is_ok()) {
            println!("{}", line(v));
        }
        for e in &extras {
            println!(
                "EXTRA       {} (the source has no {})",
                e.destination,
                short_source(&e.source)
            );
        }
        println!(
            "verified {} destinations{}: {} ok, {} missing, {} different, {} incomplete, {} lacking signatures or referrers, {} could not be checked; {} extra{}",
            summary.verified,
            if repaired.is_some() { " after repair" } else { "" },
            summary.ok,
            summary.missing,
            summary.different,
            summary.incomplete,
            summary.missing_artifacts,
            summary.errors,
            extras.len(),
            match (extras.is_empty(), args.allow_extra) {
                (false, true) => " (allowed)",
                _ => "",
            }
        );
    }
    Ok(
        if summary.all_ok() && (extras.is_empty() || args.allow_extra) {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        },
    )
}

/// The copies that mend what `verdicts` found: a missing tag, an incomplete image (a
/// deep copy, which sends only the blobs and child manifests it lacks), absent signatures
/// or referrers, and a tag at another image where the destination may be overwritten. A
/// check that failed, or a differing tag that may not be overwritten, is left as reported.
fn repairs(jobs: &[CopyJob], verdicts: &[Verdict]) -> Vec<CopyJob> {
    // (source, destination) → whether the tag there is at another image.
    let broken: HashMap<(&str, &str), bool> = verdicts
        .iter()
        .filter_map(|v| {
            let different = match v.finding {
                Finding::Missing
                | Finding::Incomplete { .. }
                | Finding::MissingArtifacts { .. } => false,
                Finding::Different { .. } => true,
                Finding::Ok | Finding::Error { .. } => return None,
            };
            Some(((v.source.as_str(), v.destination.as_str()), different))
        })
        .collect();
    jobs.iter()
        .filter_map(|job| {
            let source = job.source.to_string();
            let destinations: Vec<JobDestination> = job
                .destinations
                .iter()
                .filter(|d| {
                    let destination = d.reference.to_string();
                    broken
                        .get(&(source.as_str(), destination.as_str()))
                        .is_some_and(|&different| d.overwrite || !different)
                })
                .cloned()
                .collect();
            (!destinations.is_empty()).then(|| CopyJob {
                destinations,
                repair: true,
                ..job.clone()
            })
        })
        .collect()
}

/// Every destination the configuration's plan names, whether or not it looks current,
/// and the tags in each destination's domain that its source lacks.
async fn from_config(args: &VerifyArgs) -> Result<Checking> {
    let options = PlanOptions {
        check_destinations: false,
        extras: true,
        ..PlanOptions::default()
    };
    let (services, plan) = args.config.plan(options).await?;
    for s in &plan.skipped {
        eprintln!("{}", skipped_line(s));
    }
    let mut options = services.copy_options();
    if let Some(referrers) = &args.referrers.referrers {
        options.referrers = referrers.clone();
    }
    Ok(Checking {
        jobs: plan.jobs.into_iter().map(|p| p.job).collect(),
        extras: plan.extras,
        registry: services.registry.clone(),
        aws: services.aws.clone(),
        options,
    })
}

async fn from_pairs(args: &VerifyArgs) -> Result<Checking> {
    if !args.pairs.len().is_multiple_of(2) {
        bail!(
            "SRC DST come in pairs; got {} image names (the last, {}, has no destination)",
            args.pairs.len(),
            args.pairs.last().expect("odd means at least one")
        );
    }
    let platforms: Vec<Platform> = args
        .platforms
        .iter()
        .map(|p| p.parse::<Platform>().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    let mut pairs = Vec::new();
    for pair in args.pairs.chunks(2) {
        let source: ImageRef = pair[0]
            .parse()
            .with_context(|| format!("SRC {}", pair[0]))?;
        let destination: ImageRef = pair[1]
            .parse()
            .with_context(|| format!("DST {}", pair[1]))?;
        pairs.push((source, destination));
    }
    let sources: Vec<&ImageRef> = pairs.iter().map(|(s, _)| s).collect();
    let destinations: Vec<&ImageRef> = pairs.iter().map(|(_, d)| d).collect();
    let credentials = setup::ExplicitCredentials {
        authfile: None,
        src_creds: args.creds.src_creds.as_deref(),
        dest_creds: args.creds.dest_creds.as_deref(),
    };
    let client = setup::registry_client(
        args.config.endpoints.endpoints()?,
        RetryPolicy::default().max_attempts,
        &credentials,
        &sources,
        &destinations,
    )?;
    // Pairs say nothing of overwriting: a tag at another image is reported, not replaced.
    let job = |source: ImageRef, destination: ImageRef| CopyJob {
        source,
        destinations: vec![JobDestination {
            reference: destination,
            overwrite: false,
            create_repository: None,
            backup: None,
        }],
        platforms: platforms.clone(),
        source_name: None,
        reason: Reason::Manual,
        repair: false,
    };
    let mut jobs = Vec::new();
    let mut extras = Vec::new();
    for (source, destination) in pairs {
        if source.manifest_reference().is_some() {
            jobs.push(job(source, destination));
            continue;
        }
        if destination.tag().is_some() || destination.digest().is_some() {
            bail!("{source} names a repository, so {destination} must too (every tag is checked under its own name)");
        }
        let tags = client
            .list_tags(&source)
            .await
            .with_context(|| format!("listing the tags of {source}"))?;
        // Signature and referrers tags are checked with the images they belong to.
        let tags: Vec<String> = tags
            .into_iter()
            .filter(|t| !tags::is_artifact_tag(t))
            .collect();
        // A whole repository pair: every other tag of DST is extra.
        let held = match client.list_tags(&destination).await {
            Ok(held) => held,
            Err(ferry::error::Error::RepositoryNotFound { .. }) => Vec::new(),
            Err(e) => return Err(e).with_context(|| format!("listing the tags of {destination}")),
        };
        extras.extend(
            held.iter()
                .filter(|t| !tags::is_artifact_tag(t) && !tags.contains(t))
                .map(|t| Extra {
                    destination: destination.with_tag(t).to_string(),
                    source: source.with_tag(t).to_string(),
                }),
        );
        for tag in tags {
            jobs.push(job(source.with_tag(&tag), destination.with_tag(&tag)));
        }
    }
    let options = CopyOptions {
        referrers: args.referrers.referrers.clone().unwrap_or_default(),
        ..CopyOptions::default()
    };
    Ok(Checking {
        jobs,
        extras,
        registry: Arc::new(client),
        aws: Arc::new(AwsClients::from_environment()),
        options,
    })
}

fn line(v: &Verdict) -> String {
    let source = short_source(&v.source);
    match &v.finding {
        Finding::Ok => format!("ok          {}", v.destination),
        Finding::Missing => format!("MISSING     {} (source {source})", v.destination),
        Finding::Different { expected, found } => format!(
            "DIFFERENT   {} holds {found}; source {source} is {expected}",
            v.destination
        ),
        Finding::Incomplete { absent } => {
            format!("INCOMPLETE  {} lacks {}", v.destination, absent.join(", "))
        }
        Finding::MissingArtifacts { absent } => {
            format!("ARTIFACTS   {} lacks {}", v.destination, absent.join(", "))
        }
        Finding::Error { message } => format!("ERROR       {}: {message}", v.destination),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(source: &str, destinations: &[(&str, bool)]) -> CopyJob {
        CopyJob {
            source: source.parse().unwrap(),
            destinations: destinations
                .iter()
                .map(|(d, overwrite)| JobDestination {
                    reference: d.parse().unwrap(),
                    overwrite: *overwrite,
                    create_repository: None,
                    backup: None,
                })
                .collect(),
            platforms: Vec::new(),
            source_name: None,
            reason: Reason::Manual,
            repair: false,
        }
    }

    fn verdict(source: &str, destination: &str, finding: Finding) -> Verdict {
        Verdict {
            source: source.into(),
            destination: destination.into(),
            finding,
        }
    }

    #[test]
    fn repairs_mend_what_is_broken_and_replace_only_where_overwriting_is_allowed() {
        let src = "src.example/app:1.0";
        let jobs = [job(
            src,
            &[
                ("a.example/app:1.0", true),
                ("b.example/app:1.0", false),
                ("c.example/app:1.0", true),
                ("d.example/app:1.0", false),
                ("e.example/app:1.0", true),
            ],
        )];
        let different = || Finding::Different {
            expected: "sha256:1".into(),
            found: "sha256:2".into(),
        };
        let verdicts = [
            verdict(src, "a.example/app:1.0", different()),
            verdict(src, "b.example/app:1.0", different()),
            verdict(
                src,
                "c.example/app:1.0",
                Finding::Incomplete {
                    absent: vec!["blob sha256:3".into()],
                },
            ),
            verdict(src, "d.example/app:1.0", Finding::Missing),
            verdict(
                src,
                "e.example/app:1.0",
                Finding::Error {
                    message: "denied".into(),
                },
            ),
        ];
        let repairs = repairs(&jobs, &verdicts);
        assert_eq!(repairs.len(), 1);
        assert!(repairs[0].repair);
        let to: Vec<String> = repairs[0]
            .destinations
            .iter()
            .map(|d| d.reference.to_string())
            .collect();
        assert_eq!(
            to,
            [
                "a.example/app:1.0",
                "c.example/app:1.0",
                "d.example/app:1.0"
            ]
        );
    }
}
