//! How a contender is measured: wall time, peak RSS (`/usr/bin/time`), bytes it sent to
//! the destination (a counting TCP proxy in front of it), and whether the destination ends
//! up with the source's digests.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fixture::Image;
use anyhow::{bail, Context, Result};
use tokio::net::{TcpListener, TcpStream};

/// A loopback TCP proxy that counts the bytes clients send upstream.
pub struct CountingProxy {
    pub port: u16,
    sent: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingProxy {
    pub async fn start(upstream_port: u16) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let sent = Arc::new(AtomicU64::new(0));
        let counter = sent.clone();
        let task = tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let counter = counter.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let _ = upstream.set_nodelay(true);
                    if let Ok((up, _)) =
                        tokio::io::copy_bidirectional(&mut client, &mut upstream).await
                    {
                        counter.fetch_add(up, Ordering::Relaxed);
                    }
                });
            }
        });
        Ok(CountingProxy { port, sent, task })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Bytes sent upstream by connections that have closed.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.sent.store(0, Ordering::Relaxed);
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// What running some processes cost.
#[derive(Debug, Default, Clone, Copy)]
pub struct Cost {
    pub wall: Duration,
    /// Largest peak RSS of any one process, KiB.
    pub peak_rss_kib: u64,
}

/// Run `program args…` under `/usr/bin/time`, failing with its output if it fails; returns
/// its peak RSS in KiB.
pub fn run_timed(program: &str, args: &[String], env: &[(&str, &str)]) -> Result<u64> {
    let report = tempfile::NamedTempFile::new()?;
    let out = Command::new("/usr/bin/time")
        .args(["-f", "%M", "-o"])
        .arg(report.path())
        .arg(program)
        .args(args)
        .envs(env.iter().copied())
        .output()
        .with_context(|| {
            format!("running {program} (is it installed? scripts/bench.sh installs it)")
        })?;
    if !out.status.success() {
        bail!(
            "{program} {} failed ({}):\n{}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let text = std::fs::read_to_string(report.path())?;
    text.lines()
        .last()
        .and_then(|l| l.trim().parse().ok())
        .with_context(|| format!("no peak RSS from /usr/bin/time: {text}"))
}

/// Run `step` and measure it.
pub async fn measure<F, Fut>(step: F) -> Result<Cost>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = Result<u64>>,
{
    let started = Instant::now();
    let peak_rss_kib = step().await?;
    Ok(Cost {
        wall: started.elapsed(),
        peak_rss_kib,
    })
}

/// Whether every `(repository, tag, digest)` resolves to that digest at `host`.
pub async fn digests_match(host: &str, images: &[Image]) -> Result<bool> {
    let http = reqwest::Client::new();
    for Image {
        repo, tag, digest, ..
    } in images
    {
        let resp = http
            .head(format!("http://{host}/v2/{repo}/manifests/{tag}"))
            .header(
                "accept",
                "application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json",
            )
            .send()
            .await?;
        let got = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        if got != Some(digest.as_str()) {
            return Ok(false);
        }
    }
    Ok(true)
}

pub fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

/// User plus system CPU seconds a process has used so far, from /proc (clock ticks of
/// 1/100 s); 0 once it is gone.
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    (ticks(11) + ticks(12)) / 100.0
}
