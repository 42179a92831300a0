//! `ferry sync`: plan with the planner's code, then copy every job with the copier's code,
//! in this process.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use ferry::copy::Copier;
use ferry::jobs::JobRunner;
use ferry::plan::{PlanOptions, Skipped};
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
}

pub async fn run(args: SyncArgs) -> Result<ExitCode> {
    let started = Instant::now();
    // The copy happens right here, so manifests read while planning are kept for it.
    let options = PlanOptions {
        prefetch_manifests: true,
        ..PlanOptions::default()
    };
    let (services, plan) = args.config.plan(options).await?;
    if !args.json {
        eprintln!("planned {}", output::plan_counts(&plan));
        for s in &plan.skipped {
            eprintln!("{}", output::skipped_line(s));
        }
    }

    let mut options = services.copy_options();
    if let Some(n) = args.image_concurrency {
        options.image_concurrency = n.into();
    }
    if let Some(selection) = &args.referrers.referrers {
        options.referrers = selection.clone();
    }
    let concurrency = options.image_concurrency.max(1);
    let show_bars = !args.json && std::io::stderr().is_terminal();
    let bars = show_bars.then(|| Arc::new(crate::progress::Bars::new()));
    let mut copier = Copier::new(services.registry.clone(), options);
    if let Some(b) = &bars {
        copier = copier.with_progress(b.clone());
    }
    let runner = JobRunner::new(copier, services.aws.clone());
    let runner = &runner;
    let images: Vec<ImageReport> = stream::iter(&plan.jobs)
        .map(|job| async move {
            match runner.run(job).await {
                Ok(reports) => reports,
                Err(e) => vec![e.report(job)],
            }
        })
        .buffer_unordered(concurrency)
        .flat_map(stream::iter)
        .collect()
        .await;
    if let Some(b) = &bars {
        b.finish();
    }

    let mut run = RunReport::from_images(images, started.elapsed().as_millis() as u64);
    run.up_to_date += plan.up_to_date.len() as u64;
    let failed = !run.success();
    if args.json {
        let report = SyncReport {
            repositories: plan.repositories,
            tags: plan.tags,
            skipped: plan.skipped,
            run,
        };
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        if !show_bars {
            for image in &run.images {
                eprintln!("{}", output::image_line(image));
            }
        }
        eprintln!("{}", output::summary(&run));
        if failed {
            eprintln!("re-run the same command to retry what failed; what was copied stays copied");
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
