//! ferry against registries shaped like production ones, through the test bed's proxy: a
//! destination that caps manifest PUTs (ECR answers `429` without `Retry-After` past its
//! 10 `PutImage` a second), and a source that meters manifest GETs per window (Docker Hub's
//! pull quota). What matters there is not speed against other tools but that nothing is
//! lost, the refusals stay few, and the time stays near what the limit allows.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use ferry_testbed::fixtures::{Seeder, Style};
use ferry_testbed::production::{Op, Production};
use ferry_testbed::proxy::{FaultProxy, HttpMethod};
use ferry_testbed::{Auth, DockerRegistry};
use serde::Serialize;

#[derive(Debug, Serialize)]
pub struct ThrottledResult {
    pub images: usize,
    /// Manifest PUTs the destination allows a second.
    pub manifest_puts_per_second: f64,
    pub seconds: f64,
    /// `images / manifest_puts_per_second`: no tool is faster.
    pub limit_seconds: f64,
    pub copied: u64,
    pub exit_code: Option<i32>,
    pub manifest_puts: usize,
    pub manifest_puts_refused: usize,
}

#[derive(Debug, Serialize)]
pub struct QuotaRun {
    pub exit_code: Option<i32>,
    pub copied: u64,
    pub waiting: u64,
    pub refused: usize,
}

#[derive(Debug, Serialize)]
pub struct QuotaResult {
    pub images: usize,
    /// Manifest GETs the source allows per window.
    pub quota: u64,
    pub window_seconds: u64,
    /// One `ferry sync` per window.
    pub runs: Vec<QuotaRun>,
}

/// Small single-layer images, `per_repository` in each of `repositories`.
async fn seed(seeder: &Seeder, repositories: usize, per_repository: usize) -> Vec<String> {
    let names: Vec<String> = (0..repositories).map(|r| format!("prod-{r:02}")).collect();
    for (r, repo) in names.iter().enumerate() {
        for t in 0..per_repository {
            seeder
                .push_image(
                    repo,
                    &format!("1.{t}"),
                    Style::Oci,
                    &[2048],
                    (r * 1000 + t) as u64,
                )
                .await;
        }
    }
    names
}

/// `ferry sync --json` from `src` into `dst` over `repos`: its report and exit status.
async fn sync(
    ferry: &Path,
    workdir: &Path,
    src: &str,
    dst: &str,
    repos: &[String],
) -> Result<(serde_json::Value, Option<i32>)> {
    let config = workdir.join("production.yaml");
    std::fs::write(
        &config,
        format!(
            "version: 1\nsources:\n  - registry: {{host: \"{src}\", repositories: [{}]}}\n    destinations: [{{target: \"{dst}/{{repo}}\"}}]\n",
            repos.join(", ")
        ),
    )?;
    let mut cmd = Command::new(ferry);
    cmd.args(["sync", "--insecure-loopback", "--json", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn");
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await?
        .context("running ferry")?;
    let report = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "ferry sync printed no report: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    })?;
    Ok((report, out.status.code()))
}

/// `images` into a destination allowing `rate` manifest PUTs a second, at ferry's defaults.
pub async fn throttled(
    images: usize,
    rate: f64,
    storage: &Path,
    ferry: &Path,
) -> Result<ThrottledResult> {
    let workdir = tempfile::tempdir()?;
    let src = DockerRegistry::start_under(storage, Auth::None);
    let repos = seed(&src.seeder(), 4, images.div_ceil(4)).await;
    let dst = DockerRegistry::start_under(storage, Auth::None);
    let proxy = FaultProxy::start(&dst.url()).await;
    proxy.production(Production::default().rate(Op::ManifestPut, rate));
    let started = Instant::now();
    let (report, exit_code) =
        sync(ferry, workdir.path(), &src.host(), &proxy.host(), &repos).await?;
    let seconds = started.elapsed().as_secs_f64();
    let manifest_puts = proxy
        .seen()
        .iter()
        .filter(|s| s.method == HttpMethod::PUT && s.path.contains("/manifests/"))
        .count();
    let seeded = repos.len() * images.div_ceil(4);
    Ok(ThrottledResult {
        images: seeded,
        manifest_puts_per_second: rate,
        seconds,
        limit_seconds: seeded as f64 / rate,
        copied: report["copied"].as_u64().unwrap_or(0),
        exit_code,
        manifest_puts,
        manifest_puts_refused: proxy.refused().of(Op::ManifestPut),
    })
}

/// Thirty images from a source allowing `quota` manifest GETs per `window`: one sync per
/// window until none waits (at most four).
pub async fn quota(
    quota: u64,
    window: Duration,
    storage: &Path,
    ferry: &Path,
) -> Result<QuotaResult> {
    let workdir = tempfile::tempdir()?;
    let src = DockerRegistry::start_under(storage, Auth::None);
    let repos = seed(&src.seeder(), 3, 10).await;
    let dst = DockerRegistry::start_under(storage, Auth::None);
    let proxy = FaultProxy::start(&src.url()).await;
    proxy.production(Production::default().pull_quota(quota, window));
    let mut runs = Vec::new();
    let mut refused_before = 0;
    for _ in 0..4 {
        let started = Instant::now();
        let (report, exit_code) =
            sync(ferry, workdir.path(), &proxy.host(), &dst.host(), &repos).await?;
        let refused = proxy.refused().quota;
        let waiting = report["waiting_for_quota"]
            .as_array()
            .map_or(0, |w| w.iter().filter_map(|e| e["images"].as_u64()).sum());
        runs.push(QuotaRun {
            exit_code,
            copied: report["copied"].as_u64().unwrap_or(0),
            waiting,
            refused: refused - refused_before,
        });
        refused_before = refused;
        if waiting == 0 {
            break;
        }
        // The next window: the proxy's starts with the first GET of a run.
        tokio::time::sleep(window.saturating_sub(started.elapsed()) + Duration::from_millis(500))
            .await;
    }
    Ok(QuotaResult {
        images: 30,
        quota,
        window_seconds: window.as_secs(),
        runs,
    })
}
