//! The ways to move the fixture that the benchmark compares: ferry, `skopeo sync`, the
//! pull/tag/push loop of migration guides, and the floor (the unique blobs, uploaded with
//! parallel monolithic PUTs, which no mirroring tool can beat).

use std::path::{Path, PathBuf};

use anyhow::{bail, Result};
use futures::StreamExt;

use crate::fixture::{Image, Seeded, Shape};
use crate::measure::run_timed;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Contender {
    Ferry,
    Skopeo,
    PullTagPush,
    Floor,
}

impl Contender {
    pub fn label(self) -> &'static str {
        match self {
            Contender::Ferry => "ferry sync",
            Contender::Skopeo => "skopeo sync --all",
            Contender::PullTagPush => "podman pull/tag/push",
            Contender::Floor => "floor (unique blobs, parallel PUTs)",
        }
    }
}

/// Everything a contender needs to copy the fixture from `src` to `dst`.
pub struct Job<'a> {
    pub src: &'a str,
    pub dst: &'a str,
    pub shape: &'a Shape,
    pub seeded: &'a Seeded,
    pub workdir: &'a Path,
    pub ferry: &'a Path,
    /// Extra arguments for `ferry sync` (experiments with its knobs).
    pub ferry_args: &'a [String],
    /// How many requests the floor keeps in flight: blob uploads cold, manifest HEADs no-op.
    pub floor_at_once: FloorAtOnce,
}

/// The floor's concurrency. On loopback a few uploads saturate the destination; at a
/// distance the floor must keep as many requests in flight as ferry does, or it measures
/// its own waiting rather than the least the registries need.
#[derive(Debug, Clone, Copy)]
pub struct FloorAtOnce {
    pub uploads: usize,
    pub heads: usize,
}

impl FloorAtOnce {
    pub const LOOPBACK: FloorAtOnce = FloorAtOnce {
        uploads: 8,
        heads: 16,
    };
}

impl Job<'_> {
    /// Copy everything; returns the peak RSS (KiB) of the largest process involved.
    pub async fn run(&self, contender: Contender) -> Result<u64> {
        match contender {
            Contender::Ferry => self.ferry(),
            Contender::Skopeo => self.skopeo(),
            Contender::PullTagPush => self.pull_tag_push(),
            Contender::Floor => self.floor().await.map(|_| 0),
        }
    }

    /// Run again against the complete destination. The floor's no-op is the least any
    /// tool must ask to learn that nothing changed: one manifest HEAD per image at the
    /// source and one at the destination (whose manifests are put first, untimed).
    pub async fn run_noop(&self, contender: Contender) -> Result<u64> {
        match contender {
            Contender::Floor => self.head_floor().await.map(|_| 0),
            other => self.run(other).await,
        }
    }

    /// The floor's destination holds blobs only; put every manifest under its tag so the
    /// no-op floor asks a complete destination. One task per repository: two mounts of one
    /// blob into one repository at once can leave it unlinked in docker-registry.
    pub async fn complete_floor(&self) -> Result<()> {
        let http = reqwest::Client::new();
        let mut repositories: Vec<&str> =
            self.seeded.images.iter().map(|i| i.repo.as_str()).collect();
        repositories.dedup();
        let results: Vec<Result<()>> = futures::stream::iter(repositories)
            .map(|repo| self.complete_floor_repository(&http, repo))
            .buffer_unordered(8)
            .collect()
            .await;
        results.into_iter().collect()
    }

    async fn complete_floor_repository(&self, http: &reqwest::Client, repo: &str) -> Result<()> {
        let dst = self.dst;
        let images: Vec<&Image> = self
            .seeded
            .images
            .iter()
            .filter(|i| i.repo == repo)
            .collect();
        let mut digests: Vec<String> = Vec::new();
        for image in &images {
            let doc: serde_json::Value = serde_json::from_slice(&image.manifest)?;
            let layers = doc["layers"].as_array().cloned().unwrap_or_default();
            for d in std::iter::once(&doc["config"]).chain(&layers) {
                if let Some(d) = d["digest"].as_str() {
                    if !digests.iter().any(|x| x == d) {
                        digests.push(d.to_string());
                    }
                }
            }
        }
        for digest in digests {
            let mount = http
                .post(format!(
                    "http://{dst}/v2/{repo}/blobs/uploads/?mount={digest}&from=floor"
                ))
                .header("content-length", "0")
                .send()
                .await?;
            if mount.status().as_u16() != 201 {
                bail!("mounting {digest} into {repo}: {}", mount.status());
            }
        }
        for image in images {
            let put = http
                .put(format!("http://{dst}/v2/{repo}/manifests/{}", image.tag))
                .header("content-type", MANIFEST_TYPE)
                .body(image.manifest.clone())
                .send()
                .await?;
            if put.status().as_u16() != 201 {
                bail!(
                    "putting {repo}:{}: {} {}",
                    image.tag,
                    put.status(),
                    put.text().await.unwrap_or_default()
                );
            }
        }
        Ok(())
    }

    /// One manifest HEAD per image at the source and at the destination, 16 in flight.
    async fn head_floor(&self) -> Result<()> {
        let http = reqwest::Client::new();
        let requests = self
            .seeded
            .images
            .iter()
            .flat_map(|i| [self.src, self.dst].map(|host| (host, i)));
        let results: Vec<Result<()>> = futures::stream::iter(requests)
            .map(|(host, image)| {
                let http = http.clone();
                async move {
                    let head = http
                        .head(format!(
                            "http://{host}/v2/{}/manifests/{}",
                            image.repo, image.tag
                        ))
                        .header("accept", MANIFEST_TYPE)
                        .send()
                        .await?;
                    if !head.status().is_success() {
                        bail!(
                            "HEAD {}:{} at {host}: {}",
                            image.repo,
                            image.tag,
                            head.status()
                        );
                    }
                    Ok(())
                }
            })
            .buffer_unordered(self.floor_at_once.heads)
            .collect()
            .await;
        results.into_iter().collect()
    }

    fn repositories(&self) -> Vec<String> {
        (0..self.shape.repositories)
            .map(|r| self.shape.repository(r))
            .collect()
    }

    fn ferry(&self) -> Result<u64> {
        let config = self.workdir.join("ferry.yaml");
        let repos = self
            .repositories()
            .iter()
            .map(|r| format!("\"{r}\""))
            .collect::<Vec<_>>()
            .join(", ");
        std::fs::write(
            &config,
            format!(
                "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [{repos}]}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
                self.src, self.dst
            ),
        )?;
        let mut args: Vec<String> = vec![
            "sync".into(),
            "--insecure-loopback".into(),
            "--json".into(),
            "--config".into(),
            config.to_string_lossy().into(),
        ];
        args.extend(self.ferry_args.iter().cloned());
        run_timed(
            &self.ferry.to_string_lossy(),
            &args,
            &[("RUST_LOG", "warn")],
        )
    }

    fn skopeo(&self) -> Result<u64> {
        let file = self.workdir.join("skopeo-sync.yaml");
        let mut yaml = format!(
            "\"{}\":\n  tls-verify: false\n  images-by-tag-regex:\n",
            self.src
        );
        for repo in self.repositories() {
            yaml.push_str(&format!("    \"{repo}\": \".*\"\n"));
        }
        std::fs::write(&file, yaml)?;
        run_timed(
            "skopeo",
            &[
                "sync".into(),
                "--all".into(),
                "--preserve-digests".into(),
                "--src".into(),
                "yaml".into(),
                "--dest".into(),
                "docker".into(),
                "--dest-tls-verify=false".into(),
                file.to_string_lossy().into(),
                // skopeo puts each repository under this by its last path segment.
                self.dst.to_string(),
            ],
            &[],
        )
    }

    /// What migration guides script: for each image, sequentially, pull, tag, push.
    fn pull_tag_push(&self) -> Result<u64> {
        let mut peak = 0;
        for Image { repo, tag, .. } in &self.seeded.images {
            let from = format!("{}/{repo}:{tag}", self.src);
            let to = format!("{}/{repo}:{tag}", self.dst);
            for args in [
                vec!["pull", "-q", "--tls-verify=false", &from],
                vec!["tag", &from, &to],
                vec!["push", "-q", "--tls-verify=false", &to],
            ] {
                let args: Vec<String> = args.into_iter().map(str::to_string).collect();
                peak = peak.max(run_timed("podman", &args, &[])?);
            }
        }
        Ok(peak)
    }

    /// Upload every unique blob once, `floor_at_once.uploads` at a time, each with one POST and
    /// one PUT.
    async fn floor(&self) -> Result<()> {
        let http = reqwest::Client::new();
        let dst = self.dst;
        let results: Vec<Result<()>> = futures::stream::iter(&self.seeded.unique_blobs)
            .map(|(digest, bytes)| {
                let http = http.clone();
                async move { upload(&http, dst, "floor", digest, bytes.clone()).await }
            })
            .buffer_unordered(self.floor_at_once.uploads)
            .collect()
            .await;
        results.into_iter().collect()
    }
}

/// One monolithic upload: a POST for the session, one PUT with every byte.
async fn upload(
    http: &reqwest::Client,
    dst: &str,
    repo: &str,
    digest: &str,
    bytes: Vec<u8>,
) -> Result<()> {
    let start = http
        .post(format!("http://{dst}/v2/{repo}/blobs/uploads/"))
        .header("content-length", "0")
        .send()
        .await?;
    let location = start
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let url = if location.starts_with("http") {
        location
    } else {
        format!("http://{dst}{location}")
    };
    let sep = if url.contains('?') { '&' } else { '?' };
    let put = http
        .put(format!("{url}{sep}digest={digest}"))
        .header("content-type", "application/octet-stream")
        .body(bytes)
        .send()
        .await?;
    if put.status().as_u16() != 201 {
        bail!("upload of {digest} to {repo}: {}", put.status());
    }
    Ok(())
}

/// The fixture's manifests are all of this type.
const MANIFEST_TYPE: &str = "application/vnd.docker.distribution.manifest.v2+json";

/// Reset podman's local image store so each pull/tag/push run starts cold.
pub fn reset_podman() {
    let _ = std::process::Command::new("podman")
        .args(["rmi", "--all", "--force"])
        .output();
}

/// The `ferry` binary to measure: a release build.
pub fn default_ferry() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/release/ferry")
}
