//! `ferry plan`: what a sync would copy, from the planner's own code.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Result;
use ferry::plan::{Plan, PlanOptions};

use crate::args::PlanArgs;
use crate::output::{expiring_lines, plan_counts, refused_prune_lines, short_source};

pub async fn run(args: PlanArgs) -> Result<ExitCode> {
    let options = PlanOptions {
        check_destinations: !args.no_check,
        ..PlanOptions::default()
    };
    let (_, plan) = args.config.plan(options).await?;
    if args.json || !std::io::stdout().is_terminal() {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{}", table(&plan));
    }
    for line in expiring_lines(&plan) {
        eprintln!("{line}");
    }
    // A prune its bound refuses is an error now, before a sync meets it.
    let refused = refused_prune_lines(&plan);
    for line in &refused {
        eprintln!("{line}");
    }
    Ok(match refused.is_empty() {
        true => ExitCode::SUCCESS,
        false => ExitCode::from(1),
    })
}

/// The plan as aligned rows: what is copied where, what is current, what is left out.
pub fn table(plan: &Plan) -> String {
    let mut rows: Vec<(&str, String, String)> = Vec::new();
    for notice in plan.expiry.iter().filter(|n| n.expired) {
        let (source, destination) = match notice.mapping.split_once(' ') {
            Some(("destination", target)) => (notice.source.clone(), target.to_string()),
            Some(("image", image)) => (short_source(image), String::new()),
            _ => (format!("source {}", notice.source), String::new()),
        };
        let destination = format!("{destination} (since {}: nothing copied)", notice.expires);
        rows.push(("expired", source, destination.trim_start().to_string()));
    }
    for job in &plan.jobs {
        let mut to: Vec<String> = job
            .destinations
            .iter()
            .map(|d| d.reference.to_string())
            .collect();
        to.sort_unstable();
        let mut destination = to.join(", ");
        if !job.platforms.is_empty() {
            let platforms: Vec<String> = job.platforms.iter().map(|p| p.to_string()).collect();
            destination.push_str(&format!(" [{}]", platforms.join(", ")));
        }
        rows.push(("copy", short_source(&job.source.to_string()), destination));
    }
    for image in &plan.up_to_date {
        rows.push(("up to date", short_source(image), String::new()));
    }
    for s in &plan.skipped {
        rows.push(("skipped", short_source(&s.image), format!("({})", s.reason)));
    }
    for job in &plan.removals {
        for t in &job.tags {
            rows.push((
                "remove",
                short_source(&job.source.with_tag(&t.source_tag).to_string()),
                format!("{} ({})", job.destination_tag(t), t.why.describe()),
            ));
        }
    }
    let width = rows
        .iter()
        .map(|(_, s, _)| s.len())
        .max()
        .unwrap_or(0)
        .max("SOURCE".len());
    let mut out = format!("{:<10}  {:<width$}  DESTINATION\n", "ACTION", "SOURCE");
    for (action, source, destination) in &rows {
        out.push_str(format!("{action:<10}  {source:<width$}  {destination}").trim_end());
        out.push('\n');
    }
    out.push_str(&format!("\n{}\n", plan_counts(plan)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use ferry::expiry::ExpiryNotice;
    use ferry::message::{CopyJob, JobDestination, Reason, RemovalReason, RemoveJob, TagRemoval};
    use ferry::plan::{PlannedJob, Skipped};

    #[test]
    fn rows_are_aligned_and_counted() {
        let plan = Plan {
            jobs: vec![PlannedJob {
                job: CopyJob {
                source: "src.example/proj:api-1.4@sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa".parse().unwrap(),
                destinations: vec![JobDestination {
                    reference: "dst.example/proj/api:1.4".parse().unwrap(),
                    overwrite: true,
                    create_repository: None,
                    backup: None,
                }],
                platforms: vec!["linux/arm64".parse().unwrap()],
                source_name: Some("s".into()),
                reason: Reason::Manual,
                repair: false,
                },
                hints: Default::default(),
            }],
            up_to_date: vec!["src.example/proj:web-2.0@sha256:bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb".into()],
            skipped: vec![Skipped {
                image: "src.example/proj:other".into(),
                reason: "tag names no image".into(),
            }],
            repositories: 1,
            tags: 3,
            removals: vec![RemoveJob {
                destination: "dst.example/proj/api".parse().unwrap(),
                source: "src.example/proj".parse().unwrap(),
                tags: vec![TagRemoval {
                    tag: "1.3".into(),
                    source_tag: "api-1.3".into(),
                    why: RemovalReason::GoneFromSource,
                }],
                source_name: Some("s".into()),
                reason: Reason::Manual,
            }],
            refused_prunes: Vec::new(),
            expiry: vec![ExpiryNotice {
                source: "s".into(),
                mapping: "destination old.example/{repo}".into(),
                expires: "2026-06-30".parse().unwrap(),
                expired: true,
                days_left: None,
            }],
            extras: Vec::new(),
        };
        let text = table(&plan);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[1],
            "expired     s                         old.example/{repo} (since 2026-06-30: nothing copied)"
        );
        assert_eq!(
            lines[2],
            "copy        src.example/proj:api-1.4  dst.example/proj/api:1.4 [linux/arm64]"
        );
        assert_eq!(lines[3], "up to date  src.example/proj:web-2.0");
        assert_eq!(
            lines[4],
            "skipped     src.example/proj:other    (tag names no image)"
        );
        assert_eq!(
            lines[5],
            "remove      src.example/proj:api-1.3  dst.example/proj/api:1.3 (gone from source)"
        );
        assert!(text.ends_with(
            "1 repositories, 3 tags: 1 to copy, 1 up to date, 1 skipped, 1 to remove\n"
        ));
    }
}
