//! Human-readable lines and the closing summary.

use ferry::error::End;
use ferry::plan::{Plan, Skipped};
use ferry::reference::ImageRef;
use ferry::report::{ErrorInfo, ImageReport, RunReport, Status};

pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A source as people read it: `host/repo:tag`, without the digest it was pinned to when
/// it has a tag.
pub fn short_source(source: &str) -> String {
    match source.parse::<ImageRef>() {
        Ok(image) => match image.tag() {
            Some(tag) => image.with_tag(tag).to_string(),
            None => source.to_string(),
        },
        Err(_) => source.to_string(),
    }
}

/// `N repositories, N tags: N to copy, N up to date, N skipped`.
/// A source image planning left out, and why.
pub fn skipped_line(skipped: &Skipped) -> String {
    format!(
        "skipped     {} ({})",
        short_source(&skipped.image),
        skipped.reason
    )
}

pub fn plan_counts(plan: &Plan) -> String {
    let mut counts = format!(
        "{} repositories, {} tags: {} to copy, {} up to date, {} skipped",
        plan.repositories,
        plan.tags,
        plan.jobs.len(),
        plan.up_to_date.len(),
        plan.skipped.len()
    );
    let removals: usize = plan.removals.iter().map(|r| r.tags.len()).sum();
    if removals > 0 {
        counts.push_str(&format!(", {removals} to remove"));
    }
    counts
}

/// Each mapping that expires soon, as a warning.
pub fn expiring_lines(plan: &Plan) -> Vec<String> {
    plan.expiry
        .iter()
        .filter(|n| !n.expired)
        .map(|n| format!("warning: {n}"))
        .collect()
}

/// Each prune its bound refused, as the error it is.
pub fn refused_prune_lines(plan: &Plan) -> Vec<String> {
    plan.refused_prunes
        .iter()
        .map(|r| format!("error: prune refused: {r}"))
        .collect()
}

/// What became of one removed tag.
pub fn removal_line(r: &ferry::remove::RemovalReport) -> String {
    use ferry::remove::Outcome;
    let what = match &r.outcome {
        Outcome::Removed => "removed".to_string(),
        Outcome::AlreadyGone => "already gone".to_string(),
        Outcome::BackAtSource => "kept (back at the source)".to_string(),
        Outcome::SharesManifest { with } => format!(
            "kept: this registry deletes only whole manifests, and {with} shares it (remove that tag too, or delete by hand)"
        ),
        Outcome::Failed { error } => format!("FAILED ({}): {}", error.kind, error.message),
    };
    let mut line = format!("removal     {} {what}", r.destination);
    if !r.artifacts.is_empty() {
        line.push_str(&format!(" (with {})", r.artifacts.join(", ")));
    }
    line
}

pub fn image_line(r: &ImageReport) -> String {
    let dests: Vec<&str> = r
        .destinations
        .iter()
        .map(|d| d.reference.as_str())
        .collect();
    match r.status {
        Status::Copied => {
            format!(
                "copied      {} -> {} ({} uploaded in {} blobs, {} mounted, {} already there{})",
                r.source,
                dests.join(", "),
                human_bytes(r.stats.bytes_uploaded),
                r.stats.blobs_uploaded,
                r.stats.blobs_mounted,
                r.stats.blobs_skipped,
                artifacts_copied(r)
            ) + &backups(r)
        }
        Status::UpToDate => format!("up to date  {} -> {}", r.source, dests.join(", ")),
        Status::Kept => format!(
            "kept        {} -> {} (the destination tag holds another image; overwrite is off)",
            r.source,
            dests.join(", ")
        ),
        Status::Failed => {
            let mut line = format!("FAILED      {}", r.source);
            if let Some(e) = &r.error {
                line.push_str(&format!("\n    {}", e.message));
            }
            for d in &r.destinations {
                if let Some(e) = &d.error {
                    line.push_str(&format!("\n    -> {}: {}", d.reference, e.message));
                }
            }
            for a in &r.artifacts {
                for d in a.destinations.iter().filter(|d| d.status == Status::Failed) {
                    if let Some(e) = &d.error {
                        line.push_str(&format!(
                            "\n    -> {} ({} of {}): {}",
                            d.reference, a.kind, a.subject, e.message
                        ));
                    }
                }
            }
            line
        }
    }
}

/// `, 2 signatures and referrers copied`, when any were.
/// Where the images the moved tags held were kept (`backup:`).
fn backups(r: &ImageReport) -> String {
    let kept: Vec<&str> = r
        .destinations
        .iter()
        .filter_map(|d| d.backup.as_deref())
        .collect();
    match kept.is_empty() {
        true => String::new(),
        false => format!("; the images the tags held kept as {}", kept.join(", ")),
    }
}

fn artifacts_copied(r: &ImageReport) -> String {
    let n = r
        .artifacts
        .iter()
        .filter(|a| a.kind != "referrers index")
        .filter(|a| a.destinations.iter().any(|d| d.status == Status::Copied))
        .count();
    match n {
        0 => String::new(),
        1 => ", 1 signature or referrer copied".into(),
        n => format!(", {n} signatures and referrers copied"),
    }
}

pub fn summary(run: &RunReport) -> String {
    let kept = if run.kept > 0 {
        format!(", {} kept", run.kept)
    } else {
        String::new()
    };
    format!(
        "{} copied, {} up to date{kept}, {} failed; {} uploaded in {:.1}s",
        run.copied,
        run.up_to_date,
        run.failed,
        human_bytes(run.bytes_uploaded),
        run.duration_ms as f64 / 1000.0
    )
}

/// One line per registry whose spent pull quota images wait for: how many, until when,
/// and what to do.
pub fn quota_lines(run: &RunReport) -> Vec<String> {
    let now = std::time::SystemTime::now();
    run.waiting_for_quota
        .iter()
        .map(|w| {
            let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(w.quota.resets_at);
            let wait = at.duration_since(now).unwrap_or_default();
            format!(
                "{} {} for the pull quota of {} ({} manifest reads per {}), spent until {} (in {}): run the same command again then to copy {}",
                w.images,
                if w.images == 1 { "image waits" } else { "images wait" },
                w.quota.registry,
                w.quota.limit,
                ferry::error::wait_words(std::time::Duration::from_secs(w.quota.window_seconds)),
                httpdate::fmt_http_date(at),
                ferry::error::wait_words(wait),
                if w.images == 1 { "it" } else { "them" },
            )
        })
        .collect()
}

/// For `ferry copy`, which takes credentials as flags: a line per end that had none, naming
/// the flag that gives them. The library's own messages name no flags, since the Lambdas
/// raise them too.
pub fn credential_hints(run: &RunReport) -> Vec<String> {
    let mut ends: Vec<End> = run
        .images
        .iter()
        .flat_map(errors_of)
        .filter(|e| e.kind == "no_credentials")
        .filter_map(|e| e.end)
        .collect();
    ends.sort_by_key(|end| *end == End::Destination);
    ends.dedup();
    ends.into_iter()
        .map(|end| {
            let (flag, env, which) = match end {
                End::Source => ("--src-creds", "FERRY_SRC_CREDS", "source"),
                End::Destination => ("--dest-creds", "FERRY_DEST_CREDS", "destination"),
            };
            format!("hint: give the {which} registry's credentials with {flag} USER:PASSWORD (or {env}), or --authfile PATH")
        })
        .collect()
}

/// Every error an image report holds: the image's own, its destinations', its artifacts'.
fn errors_of(r: &ImageReport) -> impl Iterator<Item = &ErrorInfo> {
    r.error
        .iter()
        .chain(r.destinations.iter().filter_map(|d| d.error.as_ref()))
        .chain(
            r.artifacts
                .iter()
                .flat_map(|a| a.destinations.iter().filter_map(|d| d.error.as_ref())),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_bytes() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3 * 1024 * 1024 * 1024), "3.0 GiB");
    }
}
