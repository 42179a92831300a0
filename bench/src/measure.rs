//! How a contender is measured: wall time, peak RSS (`/usr/bin/time`), bytes it sent to
//! the destination (a counting TCP proxy in front of it), and whether the destination ends
//! up with the source's digests.

use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::fixture::Image;
use anyhow::{bail, Context, Result};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A loopback TCP proxy that counts what clients send upstream: every byte on the wire, the
/// request bodies alone (what a tool uploads, without the HTTP heads whose share grows with
/// the number of requests), and the requests (each costs the registry CPU of its own).
pub struct CountingProxy {
    pub port: u16,
    counts: Arc<Counts>,
    task: tokio::task::JoinHandle<()>,
}

#[derive(Default)]
struct Counts {
    sent: AtomicU64,
    bodies: AtomicU64,
    requests: AtomicU64,
}

impl CountingProxy {
    pub async fn start(upstream_port: u16) -> Result<CountingProxy> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Counts::default());
        let shared = counts.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counts = shared.clone();
                tokio::spawn(async move {
                    let _ = client.set_nodelay(true);
                    let Ok(upstream) = TcpStream::connect(("127.0.0.1", upstream_port)).await
                    else {
                        return;
                    };
                    let _ = upstream.set_nodelay(true);
                    let (mut from_client, mut to_client) = client.into_split();
                    let (mut from_upstream, mut to_upstream) = upstream.into_split();
                    let up = async {
                        let mut buf = vec![0u8; 64 * 1024];
                        let mut bodies = RequestBodies::default();
                        loop {
                            let n = match from_client.read(&mut buf).await {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            counts.sent.fetch_add(n as u64, Ordering::Relaxed);
                            let fed = bodies.feed(&buf[..n]);
                            counts.bodies.fetch_add(fed.body, Ordering::Relaxed);
                            counts.requests.fetch_add(fed.requests, Ordering::Relaxed);
                            if to_upstream.write_all(&buf[..n]).await.is_err() {
                                break;
                            }
                        }
                        let _ = to_upstream.shutdown().await;
                    };
                    let down = tokio::io::copy(&mut from_upstream, &mut to_client);
                    let _ = tokio::join!(up, down);
                });
            }
        });
        Ok(CountingProxy { port, counts, task })
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Every byte sent upstream so far.
    pub fn sent(&self) -> u64 {
        self.counts.sent.load(Ordering::Relaxed)
    }

    /// The bytes of request bodies among them.
    pub fn bodies(&self) -> u64 {
        self.counts.bodies.load(Ordering::Relaxed)
    }

    /// The requests among them (counted when their head is complete).
    pub fn requests(&self) -> u64 {
        self.counts.requests.load(Ordering::Relaxed)
    }

    pub fn reset(&self) {
        self.counts.sent.store(0, Ordering::Relaxed);
        self.counts.bodies.store(0, Ordering::Relaxed);
        self.counts.requests.store(0, Ordering::Relaxed);
    }
}

impl Drop for CountingProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Follows the HTTP/1.1 requests on one connection, as they arrive in pieces, to count
/// them and the bytes of their bodies: `Content-Length` ones, and chunked ones without their
/// framing.
#[derive(Default)]
struct RequestBodies {
    state: Framing,
    /// The head or chunk-size line read so far.
    line: Vec<u8>,
}

#[derive(Default)]
enum Framing {
    #[default]
    Head,
    Body(u64),
    ChunkSize,
    ChunkData(u64),
    /// The CRLF after a chunk's data.
    ChunkEnd(u64),
    Trailer,
    /// Not HTTP/1.1 as expected (a malformed chunk size): nothing more is counted.
    Opaque,
}

impl RequestBodies {
    /// Take the next bytes of the connection: how many were body bytes, and how many
    /// request heads they completed.
    fn feed(&mut self, mut bytes: &[u8]) -> Fed {
        let mut body = 0;
        let mut requests = 0;
        while !bytes.is_empty() {
            match self.state {
                Framing::Opaque => break,
                Framing::Body(left) => {
                    let n = take(&mut bytes, left);
                    body += n;
                    self.state = match left - n {
                        0 => Framing::Head,
                        left => Framing::Body(left),
                    };
                }
                Framing::ChunkData(left) => {
                    let n = take(&mut bytes, left);
                    body += n;
                    self.state = match left - n {
                        0 => Framing::ChunkEnd(2),
                        left => Framing::ChunkData(left),
                    };
                }
                Framing::ChunkEnd(left) => {
                    let n = take(&mut bytes, left);
                    self.state = match left - n {
                        0 => Framing::ChunkSize,
                        left => Framing::ChunkEnd(left),
                    };
                }
                Framing::Head | Framing::ChunkSize | Framing::Trailer => {
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    self.line.push(byte);
                    if self.line_step() {
                        requests += 1;
                    }
                }
            }
        }
        Fed { body, requests }
    }

    /// After a byte of a head, a chunk-size line or a trailer: move on when it is complete.
    /// True when a request's head just ended.
    fn line_step(&mut self) -> bool {
        match self.state {
            Framing::Head if self.line.ends_with(b"\r\n\r\n") => {
                let head = String::from_utf8_lossy(&self.line).to_ascii_lowercase();
                let header = |name: &str| {
                    head.lines()
                        .find_map(|l| l.strip_prefix(name)?.trim_start().strip_prefix(':'))
                        .map(|v| v.trim().to_string())
                };
                self.state = if header("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
                    Framing::ChunkSize
                } else {
                    match header("content-length").and_then(|v| v.parse().ok()) {
                        Some(0) | None => Framing::Head,
                        Some(n) => Framing::Body(n),
                    }
                };
                self.line.clear();
                return true;
            }
            Framing::ChunkSize if self.line.ends_with(b"\r\n") => {
                let text = String::from_utf8_lossy(&self.line);
                let size = text.trim().split(';').next().unwrap_or_default();
                self.state = match u64::from_str_radix(size.trim(), 16) {
                    Ok(0) => Framing::Trailer,
                    Ok(n) => Framing::ChunkData(n),
                    Err(_) => Framing::Opaque,
                };
                self.line.clear();
            }
            Framing::Trailer if self.line.ends_with(b"\r\n") => {
                // An empty line ends the trailer, and the request.
                if self.line.len() == 2 {
                    self.state = Framing::Head;
                }
                self.line.clear();
            }
            _ => {}
        }
        false
    }
}

/// What one piece of a connection held.
#[derive(Debug, Default, PartialEq)]
struct Fed {
    body: u64,
    requests: u64,
}

/// Consume up to `left` bytes from the front of `bytes`; how many were taken.
fn take(bytes: &mut &[u8], left: u64) -> u64 {
    let n = left.min(bytes.len() as u64);
    *bytes = &bytes[n as usize..];
    n
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

#[cfg(test)]
mod tests {
    use super::RequestBodies;

    /// Feed `wire` in pieces of `step` bytes; the body bytes and requests counted.
    fn count(wire: &[u8], step: usize) -> (u64, u64) {
        let mut parser = RequestBodies::default();
        wire.chunks(step)
            .map(|piece| parser.feed(piece))
            .fold((0, 0), |(b, r), fed| (b + fed.body, r + fed.requests))
    }

    #[test]
    fn counts_requests_and_only_the_bodies_of_requests_in_any_pieces() {
        let mut wire = Vec::new();
        wire.extend_from_slice(b"HEAD /v2/a/blobs/sha256:x HTTP/1.1\r\nhost: h\r\n\r\n");
        wire.extend_from_slice(
            b"PUT /v2/a/blobs/uploads/u?digest=d HTTP/1.1\r\nContent-Length: 11\r\n\r\nhello world",
        );
        wire.extend_from_slice(
            b"PATCH /v2/a/blobs/uploads/v HTTP/1.1\r\ntransfer-encoding: chunked\r\n\r\n",
        );
        wire.extend_from_slice(
            b"5;ext=1\r\nabcde\r\n10\r\n0123456789abcdef\r\n0\r\nx-trailer: y\r\n\r\n",
        );
        wire.extend_from_slice(b"PUT /v2/a/manifests/1 HTTP/1.1\r\ncontent-length:3\r\n\r\n{}\n");
        for step in [1, 2, 3, 7, 64, wire.len()] {
            assert_eq!(count(&wire, step), (11 + 5 + 16 + 3, 4), "pieces of {step}");
        }
    }
}
