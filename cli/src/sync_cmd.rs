//! `ferry sync`: plan with the planner's code, then copy every job with the copier's code,
//! in this process.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use ferry::copy::Copier;
use ferry::jobs::JobRunner;
use ferry::plan::prune::RefusedPrune;
use ferry::plan::{Plan, PlanOptions, PlannedJob, Skipped};
use ferry::referrers::RegistryFacts;
use ferry::remove::{RemovalReport, Remover};
use ferry::report::{ImageReport, RunReport};
use futures::{stream, StreamExt};
use serde::Serialize;

use crate::args::SyncArgs;
use crate::output;

/// `--json` output: the copy report, with what planning counted and left out.
#[derive(Serialize)]
struct SyncReport {
    repositories: usize,
    tags: usize,
    skipped: Vec<Skipped>,
    #[serde(flatten)]
    run: RunReport,
    /// Tags removed from destinations that prune (or kept, and why).
    removals: Vec<RemovalReport>,
    refused_prunes: Vec<RefusedPrune>,
    /// Mappings expired or expiring soon.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    expiry: Vec<ferry::expiry::ExpiryNotice>,
}

pub async fn run(args: SyncArgs) -> Result<ExitCode> {
    let started = Instant::now();
    let services = args.config.services(args.config.load()?).await?;
    let mut options = services.copy_options();
    if let Some(n) = args.image_concurrency {
        options.image_concurrency = n.into();
    }
    if let Some(n) = args.blob_concurrency {
        options.blob_concurrency = n.into();
    }
    if let Some(selection) = &args.referrers.referrers {
        options.referrers = selection.clone();
    }
    let concurrency = options.image_concurrency.max(1);
    let show_bars = !args.json && std::io::stderr().is_terminal();
    let bars = show_bars.then(|| Arc::new(crate::progress::Bars::new()));
    // Source tag lists read while planning serve the copy's search for signatures too.
    let facts = Arc::new(RegistryFacts::new());
    let mut copier = Copier::new(services.registry.clone(), options).with_facts(facts.clone());
    if let Some(b) = &bars {
        copier = copier.with_progress(b.clone());
    }
    let runner = JobRunner::new(copier, services.aws.clone());
    let runner = &runner;

    // Copying starts with the first repository planned rather than after the last: on a
    // large registry planning takes a while, and it leaves the registries half idle.
    let (jobs, planned_jobs) = futures::channel::mpsc::unbounded::<PlannedJob>();
    let mut plan = Plan::default();
    let planning = {
        let plan = &mut plan;
        // The copy happens right here, so manifests read while planning are kept for it.
        let options = PlanOptions {
            prefetch_manifests: true,
            ..PlanOptions::default()
        };
        let services = &services;
        let config = &args.config;
        async move {
            let planned = config
                .plan_each(services, options, facts, |part| {
                    for job in &part.jobs {
                        // Fails only once copying has stopped, which it does not before
                        // this sender is dropped.
                        let _ = jobs.unbounded_send(job.clone());
                    }
                    plan.merge(part);
                })
                .await;
            // Closing the queue lets the copy finish once it has done what was planned.
            drop(jobs);
            planned
        }
    };
    let copying = planned_jobs
        .map(|job| async move {
            // The hints are what planning just learnt: the copy need not ask again.
            match runner.run(&job.job, &job.hints).await {
                Ok(reports) => reports,
                Err(e) => vec![e.report(&job)],
            }
        })
        .buffer_unordered(concurrency)
        .flat_map(stream::iter)
        .collect::<Vec<ImageReport>>();
    let (planned, images) = tokio::join!(planning, copying);
    if let Some(b) = &bars {
        b.finish();
    }
    let planned = match planned {
        // Nothing was planned to copy before planning failed: the failure is all to say.
        Err(e) if images.is_empty() => return Err(e),
        planned => planned,
    };
    // Printed once the progress bars are gone, which lines printed meanwhile would garble.
    if !args.json {
        eprintln!("planned {}", output::plan_counts(&plan));
        for s in &plan.skipped {
            eprintln!("{}", output::skipped_line(s));
        }
        for n in &plan.expiry {
            eprintln!("{}: {n}", if n.expired { "expired" } else { "warning" });
        }
    }

    // Removals come after every copy: a mirror never lacks a tag it should have while
    // ferry is busy taking others away. Not after a planning failure, which may have come
    // from the source these removals were weighed against.
    let removals: Vec<RemovalReport> = match &planned {
        Err(_) => Vec::new(),
        Ok(()) => {
            let remover = Remover::new(&services.registry, &services.aws);
            let remover = &remover;
            stream::iter(&plan.removals)
                .map(|job| remover.remove(job))
                .buffer_unordered(concurrency)
                .flat_map(stream::iter)
                .collect()
                .await
        }
    };
    let mut run = RunReport::from_images(images, started.elapsed().as_millis() as u64);
    run.up_to_date += plan.up_to_date.len() as u64;
    let failed = !run.success()
        || !plan.refused_prunes.is_empty()
        || removals.iter().any(|r| r.failed().is_some());
    if args.json {
        let report = SyncReport {
            repositories: plan.repositories,
            tags: plan.tags,
            skipped: plan.skipped,
            run,
            removals,
            refused_prunes: plan.refused_prunes,
            expiry: plan.expiry,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if !show_bars {
            for image in &run.images {
                eprintln!("{}", output::image_line(image));
            }
        }
        for r in &removals {
            eprintln!("{}", output::removal_line(r));
        }
        for line in output::refused_prune_lines(&plan) {
            eprintln!("{line}");
        }
        eprintln!("{}", output::summary(&run));
        let quota = output::quota_lines(&run);
        for line in &quota {
            eprintln!("{line}");
        }
        let waiting: u64 = run.waiting_for_quota.iter().map(|w| w.images).sum();
        if failed && waiting < run.failed {
            eprintln!("re-run the same command to retry what failed; what was copied stays copied");
        }
    }
    // What was planned before planning failed has been copied and reported; the failure
    // is the run's error.
    planned?;
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
