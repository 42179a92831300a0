//! A mirror's upkeep at a distance: what it costs to mend a mirror broken behind ferry's
//! back and to keep one in step with a source that loses tags.
//!
//! The `many` shape is mirrored once (not measured), both registries `--rtt-ms` away. Then:
//!
//! - **repair**: a per-tag layer of some images is deleted at the destination (a lost blob,
//!   a garbage collection gone wrong). Measured: `ferry sync` (it trusts matching tags and
//!   leaves them broken), `ferry verify --repair`, and `skopeo sync` (which asks for every
//!   blob of every image, so it mends them too), each from the same broken state; after
//!   each, `ferry verify` counts what is still incomplete.
//! - **prune**: a tenth of the source's tags are deleted. Measured: `ferry sync` with
//!   `prune: true`; after it, `ferry verify` counts the extras left (none is the goal; a
//!   mirror without prune keeps them all, as skopeo does).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use ferry_testbed::production::Production;
use ferry_testbed::proxy::FaultProxy;
use ferry_testbed::{Auth, DockerRegistry};
use serde::Serialize;
use serde_json::Value;

use crate::fixture::{self, Shape};
use crate::measure::CountingProxy;

#[derive(Debug, Serialize)]
pub struct MirrorResult {
    pub images: usize,
    pub rtt_ms: u64,
    /// Images whose per-tag layer was deleted at the destination before each repair run.
    pub broken: usize,
    /// Bytes of the lost layers: what a repair has to send at least.
    pub lost_bytes: u64,
    pub repair: Vec<MirrorRun>,
    /// Source tags deleted before the prune run.
    pub gone: usize,
    pub prune: MirrorRun,
}

#[derive(Debug, Serialize)]
pub struct MirrorRun {
    pub what: String,
    pub seconds: f64,
    /// Request bodies sent to the destination.
    pub bytes_sent: u64,
    pub requests: u64,
    /// `ferry verify` afterwards: images still incomplete, and extras.
    pub incomplete_after: u64,
    pub extras_after: u64,
}

pub async fn measure(
    scale: f64,
    rtt: Duration,
    storage: &Path,
    ferry: &Path,
) -> Result<MirrorResult> {
    let workdir = tempfile::tempdir()?;
    let shape = Shape::many(scale);
    let src = DockerRegistry::start_under(storage, Auth::None);
    let seeded = fixture::seed(&src.seeder(), &shape).await;
    let dst = DockerRegistry::start_under(storage, Auth::None);
    let far = |upstream: String| async move {
        let proxy = FaultProxy::start(&upstream).await;
        proxy.production(Production::at_distance(rtt));
        proxy
    };
    let (src_far, dst_far) = (far(src.url()).await, far(dst.url()).await);
    let counter = CountingProxy::start(dst_far.addr.port()).await?;
    let repos: Vec<String> = (0..shape.repositories)
        .map(|r| shape.repository(r))
        .collect();
    let config = |prune: bool| {
        format!(
            "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [{}]}}\n    destinations: [{{target: \"{}/{{repo}}\", prune: {prune}}}]\n",
            src_far.host(),
            repos.join(", "),
            counter.host()
        )
    };
    let mirror = workdir.path().join("mirror.yaml");
    std::fs::write(&mirror, config(false))?;
    ferry_json(ferry, &["sync"], &mirror)?;

    // One image in fifty (at least one) loses its own layer at the destination.
    let broken: Vec<(&str, String)> = seeded
        .images
        .iter()
        .step_by(50.min(seeded.images.len()).max(1))
        .map(|i| {
            let doc: Value = serde_json::from_slice(&i.manifest).expect("seeded manifest");
            let layer = doc["layers"][2]["digest"]
                .as_str()
                .expect("a per-tag layer");
            (i.repo.as_str(), layer.to_string())
        })
        .collect();
    let lost_bytes: u64 = broken
        .iter()
        .map(|(_, digest)| {
            seeded
                .unique_blobs
                .iter()
                .find(|(d, _)| d == digest)
                .map_or(0, |(_, b)| b.len() as u64)
        })
        .sum();
    let dst_seeder = dst.seeder();
    let mut repair = Vec::new();
    for (what, program, args) in [
        ("ferry sync", "ferry", vec!["sync"]),
        ("ferry verify --repair", "ferry", vec!["verify", "--repair"]),
        ("skopeo sync --all", "skopeo", vec![]),
    ] {
        for (repo, digest) in &broken {
            dst_seeder.delete_blob(repo, digest).await;
        }
        counter.reset();
        let started = Instant::now();
        match program {
            "ferry" => {
                ferry_json(ferry, &args, &mirror)?;
            }
            _ => skopeo_sync(workdir.path(), &src_far.host(), &counter.host(), &repos)?,
        }
        let seconds = started.elapsed().as_secs_f64();
        let (bytes_sent, requests) = (counter.bodies(), counter.requests());
        let (incomplete_after, extras_after) = verify(ferry, &mirror)?;
        repair.push(MirrorRun {
            what: what.into(),
            seconds,
            bytes_sent,
            requests,
            incomplete_after,
            extras_after,
        });
        // Whatever a contender left broken is mended before the next one starts.
        ferry_json(ferry, &["verify", "--repair"], &mirror)?;
    }

    // A tenth of the source's tags go; the mirror prunes.
    let src_seeder = src.seeder();
    let gone: Vec<_> = seeded.images.iter().step_by(10).collect();
    for image in &gone {
        src_seeder.delete_manifest(&image.repo, &image.digest).await;
    }
    std::fs::write(&mirror, config(true))?;
    counter.reset();
    let started = Instant::now();
    ferry_json(ferry, &["sync"], &mirror)?;
    let seconds = started.elapsed().as_secs_f64();
    let (bytes_sent, requests) = (counter.bodies(), counter.requests());
    let (incomplete_after, extras_after) = verify(ferry, &mirror)?;
    Ok(MirrorResult {
        images: seeded.images.len(),
        rtt_ms: rtt.as_millis() as u64,
        broken: broken.len(),
        lost_bytes,
        repair,
        gone: gone.len(),
        prune: MirrorRun {
            what: "ferry sync (prune: true)".into(),
            seconds,
            bytes_sent,
            requests,
            incomplete_after,
            extras_after,
        },
    })
}

/// `ferry ARGS --json --config CONFIG`: its report. Exit 1 (something left to report) is
/// an answer here, not a failure.
fn ferry_json(ferry: &Path, args: &[&str], config: &Path) -> Result<Value> {
    let out = Command::new(ferry)
        .args(args)
        .args(["--insecure-loopback", "--json", "--config"])
        .arg(config)
        .env("RUST_LOG", "warn")
        .output()
        .context("running ferry")?;
    if !matches!(out.status.code(), Some(0 | 1)) {
        bail!(
            "ferry {} failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "ferry {} printed no report: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// What `ferry verify` finds: images incomplete, and extra tags.
fn verify(ferry: &Path, config: &Path) -> Result<(u64, u64)> {
    let report = ferry_json(ferry, &["verify"], config)?;
    Ok((
        report["incomplete"].as_u64().unwrap_or_default(),
        report["extra"].as_u64().unwrap_or_default(),
    ))
}

/// `skopeo sync` of every tag of `repos` from `src` into `dst` (by each repository's last
/// path segment, which the fixture's names are).
fn skopeo_sync(workdir: &Path, src: &str, dst: &str, repos: &[String]) -> Result<()> {
    let file = workdir.join("skopeo-mirror.yaml");
    let mut yaml = format!("\"{src}\":\n  tls-verify: false\n  images-by-tag-regex:\n");
    for repo in repos {
        yaml.push_str(&format!("    \"{repo}\": \".*\"\n"));
    }
    std::fs::write(&file, yaml)?;
    let out = Command::new("skopeo")
        .args([
            "sync",
            "--all",
            "--preserve-digests",
            "--src",
            "yaml",
            "--dest",
            "docker",
            "--dest-tls-verify=false",
        ])
        .arg(&file)
        .arg(dst)
        .output()
        .context("running skopeo (scripts/bench.sh installs it)")?;
    if !out.status.success() {
        bail!(
            "skopeo sync failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
