//! `ferry verify`: does every destination hold exactly its source image, complete?

use std::process::ExitCode;

use anyhow::{bail, Context, Result};
use ferry::manifest::Platform;
use ferry::plan::prune::Extra;
use ferry::plan::PlanOptions;
use ferry::reference::ImageRef;
use ferry::referrers::{tags, Selection};
use ferry::registry::{RegistryClient, RetryPolicy};
use ferry::verify::{Expectation, Finding, Verdict, Verifier, VerifySummary};
use serde::Serialize;

use crate::args::VerifyArgs;
use crate::output::{short_source, skipped_line};
use crate::setup;

/// Images checked at the same time.
const CONCURRENCY: usize = 8;

#[derive(Serialize)]
struct VerifyReport<'a> {
    #[serde(flatten)]
    summary: &'a VerifySummary,
    /// Destination tags their source does not have.
    extra: usize,
    verdicts: &'a [Verdict],
    extras: &'a [Extra],
}

/// What verify found: a verdict per destination image, and the extras.
struct Checked {
    verdicts: Vec<Verdict>,
    extras: Vec<Extra>,
}

pub async fn run(args: VerifyArgs) -> Result<ExitCode> {
    let checked = if args.pairs.is_empty() {
        from_config(&args).await?
    } else {
        if args.config.config.is_some() {
            bail!("give either --config or SRC DST pairs, not both");
        }
        from_pairs(&args).await?
    };
    let Checked { verdicts, extras } = checked;
    let summary = VerifySummary::of(&verdicts);
    if args.json {
        let report = VerifyReport {
            summary: &summary,
            extra: extras.len(),
            verdicts: &verdicts,
            extras: &extras,
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
            "verified {} destinations: {} ok, {} missing, {} different, {} incomplete, {} lacking signatures or referrers, {} could not be checked; {} extra{}",
            summary.verified,
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

/// Every destination the configuration's plan names, whether or not it looks current,
/// and the tags in each destination's domain that its source lacks.
async fn from_config(args: &VerifyArgs) -> Result<Checked> {
    let options = PlanOptions {
        check_destinations: false,
        extras: true,
        ..PlanOptions::default()
    };
    let (services, plan) = args.config.plan(options).await?;
    for s in &plan.skipped {
        eprintln!("{}", skipped_line(s));
    }
    let expectations = plan
        .jobs
        .iter()
        .map(|planned| Expectation::from_job(&planned.job))
        .collect::<Result<Vec<_>, _>>()?;
    let referrers = args
        .referrers
        .referrers
        .clone()
        .unwrap_or_else(|| services.config.defaults.referrers.clone());
    let verdicts = verifier(&services.registry, referrers)
        .verify_all(&expectations)
        .await;
    Ok(Checked {
        verdicts,
        extras: plan.extras,
    })
}

async fn from_pairs(args: &VerifyArgs) -> Result<Checked> {
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
    let mut expectations = Vec::new();
    let mut extras = Vec::new();
    for (source, destination) in pairs {
        if source.manifest_reference().is_some() {
            expectations.push(Expectation {
                source,
                destinations: vec![destination],
                platforms: platforms.clone(),
            });
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
            expectations.push(Expectation {
                source: source.with_tag(&tag),
                destinations: vec![destination.with_tag(&tag)],
                platforms: platforms.clone(),
            });
        }
    }
    let referrers = args.referrers.referrers.clone().unwrap_or_default();
    let verdicts = verifier(&client, referrers).verify_all(&expectations).await;
    Ok(Checked { verdicts, extras })
}

fn verifier(client: &RegistryClient, referrers: Selection) -> Verifier<'_> {
    Verifier::new(client, CONCURRENCY, referrers)
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
