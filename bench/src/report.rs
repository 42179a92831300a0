//! The benchmark's results: JSON for machines, a Markdown table for the README, both with
//! the machine's core count and ferry's ratio to each contender.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;

use crate::contenders::Contender;
use crate::fixture::Shape;
use crate::large::LargeResult;
use crate::planner::PlannerResult;
use crate::production::{QuotaResult, ThrottledResult};

#[derive(Debug, Serialize)]
pub struct ContenderResult {
    pub contender: Contender,
    pub label: &'static str,
    /// Median of the cold runs.
    pub cold_seconds: f64,
    pub runs_seconds: Vec<f64>,
    /// Sent to the destination during the last cold run, HTTP request heads included.
    pub bytes_uploaded: u64,
    /// The request bodies among them: the blobs and manifests uploaded.
    pub payload_uploaded: u64,
    /// Requests the destination answered during the last cold run, and during the no-op.
    pub requests: u64,
    pub noop_requests: Option<u64>,
    pub peak_rss_kib: u64,
    /// `None` for the floor, which pushes no manifests.
    pub digests_equal: Option<bool>,
    pub noop_seconds: Option<f64>,
    /// CPU the source and the destination registry spent during the last cold run: where
    /// requests are dear, the work a contender makes the registries do bounds its time.
    pub registry_cpu_seconds: [f64; 2],
}

impl ContenderResult {
    pub fn new(contender: Contender) -> Self {
        ContenderResult {
            contender,
            label: contender.label(),
            cold_seconds: 0.0,
            runs_seconds: Vec::new(),
            bytes_uploaded: 0,
            payload_uploaded: 0,
            requests: 0,
            noop_requests: None,
            peak_rss_kib: 0,
            digests_equal: None,
            noop_seconds: None,
            registry_cpu_seconds: [0.0, 0.0],
        }
    }
}

/// The least time a sync at a distance can take at the concurrency ferry ran with: round
/// trips on its critical path, whatever the registries' speed.
#[derive(Debug, Clone, Serialize)]
pub struct LatencyFloor {
    pub round_trip_ms: u64,
    /// Images copied at once (ferry's image concurrency).
    pub image_concurrency: usize,
    /// Manifest HEADs in flight while planning a no-op.
    pub planning_concurrency: usize,
    /// A new connection's handshake, the listings, then per `image_concurrency` images the
    /// chain each needs: manifest read, upload start, upload finish (blobs side by side),
    /// manifest write.
    pub cold_seconds: f64,
    /// A handshake, the listings, then one round trip (both ends' HEADs at once) per
    /// `planning_concurrency` images.
    pub noop_seconds: f64,
}

/// Manifest HEADs ferry keeps in flight while planning a no-op: tags at once per repository
/// times repositories at once.
pub fn planning_concurrency() -> usize {
    ferry::plan::PlanOptions::default().concurrency * ferry::plan::REPOSITORIES_AT_ONCE
}

impl LatencyFloor {
    pub fn of(rtt: std::time::Duration, images: usize, image_concurrency: usize) -> Self {
        let planning_concurrency = planning_concurrency();
        let trips = |per_round: usize, at_once: usize| {
            (2 + per_round * images.div_ceil(at_once.max(1))) as f64 * rtt.as_secs_f64()
        };
        LatencyFloor {
            round_trip_ms: rtt.as_millis() as u64,
            image_concurrency,
            planning_concurrency,
            cold_seconds: trips(4, image_concurrency),
            noop_seconds: trips(1, planning_concurrency),
        }
    }
}

#[derive(Debug, Serialize)]
pub struct FixtureResult {
    /// For a fixture at a distance: its round trip and the least time it allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_floor: Option<LatencyFloor>,
    pub shape: Shape,
    pub images: usize,
    /// The fixture's unique blobs.
    pub unique_bytes: u64,
    /// Its manifests, one per image.
    pub manifest_bytes: u64,
    pub contenders: Vec<ContenderResult>,
}

impl FixtureResult {
    fn ferry(&self) -> Option<&ContenderResult> {
        self.contender(Contender::Ferry)
    }

    fn contender(&self, contender: Contender) -> Option<&ContenderResult> {
        self.contenders.iter().find(|c| c.contender == contender)
    }
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub cores: usize,
    pub quick: bool,
    /// Where the registries kept their storage.
    pub storage: String,
    /// Extra arguments ferry ran with.
    pub ferry_args: Vec<String>,
    pub unix_time: u64,
    pub fixtures: Vec<FixtureResult>,
    pub planner: Option<PlannerResult>,
    pub large: Option<LargeResult>,
    pub throttled: Option<ThrottledResult>,
    pub quota: Option<QuotaResult>,
    pub mirror: Option<crate::mirror::MirrorResult>,
}

impl Report {
    pub fn new(
        fixtures: Vec<FixtureResult>,
        quick: bool,
        storage: &Path,
        ferry_args: &[String],
    ) -> Report {
        Report {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            quick,
            storage: storage.display().to_string(),
            ferry_args: ferry_args.to_vec(),
            unix_time: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            fixtures,
            planner: None,
            large: None,
            throttled: None,
            quota: None,
            mirror: None,
        }
    }

    /// `latest.json` and `latest.md` in `dir` (quick runs: `quick.json`, `quick.md`, so a
    /// test run never overwrites the published figures).
    pub fn write(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir)?;
        let stem = if self.quick { "quick" } else { "latest" };
        std::fs::write(
            dir.join(format!("{stem}.json")),
            serde_json::to_string_pretty(self)?,
        )?;
        std::fs::write(dir.join(format!("{stem}.md")), self.markdown())?;
        Ok(())
    }

    pub fn markdown(&self) -> String {
        let mut md = format!(
            "Machine: {} cores; registry storage under {}.{}{}\n\n\
             Cold sync: the median of the runs, each into an empty destination. No-op: the same \
             again into the complete destination (for the floor: one manifest HEAD per image at \
             the source and one at the destination, the least a tool must ask). Sent: every \
             byte to the destination, HTTP request heads included, over the fixture's unique \
             blobs and manifests; payload: the request bodies alone (blobs and manifests \
             uploaded). Requests: those the destination answered, cold and no-op. Registry CPU: what the source and the destination registry \
             spent during the last cold run (both share the machine's cores with the \
             contender).\n",
            self.cores,
            self.storage,
            if self.quick { " Quick sizes." } else { "" },
            if self.ferry_args.is_empty() {
                String::new()
            } else {
                format!(" ferry ran with `{}`.", self.ferry_args.join(" "))
            }
        );
        for f in &self.fixtures {
            let s = &f.shape;
            md.push_str(&format!(
                "\n**{}**: {} repositories × {} tags = {} images; layers {} / {} / {} (base / per repository / per tag); {} of unique blobs, {} of manifests.\n\n",
                s.name, s.repositories, s.tags, f.images,
                size(s.base_bytes as u64), size(s.repository_bytes as u64), size(s.tag_bytes as u64),
                size(f.unique_bytes), size(f.manifest_bytes)
            ));
            if let Some(l) = &f.latency_floor {
                let ferry = f.ferry();
                let of = |t: Option<f64>, floor: f64| {
                    t.map_or(String::new(), |t| format!(" (ferry {:.2}× it)", t / floor))
                };
                md.push_str(&format!(
                    "Both registries {} ms away (a proxy adds the round trip to every request, and again to each new connection's first). Latency floor at ferry's concurrency ({} images at once; {} HEADs in flight while planning): cold {:.2} s{}, no-op {:.2} s{}. ",
                    l.round_trip_ms,
                    l.image_concurrency,
                    l.planning_concurrency,
                    l.cold_seconds,
                    of(ferry.map(|r| r.cold_seconds), l.cold_seconds),
                    l.noop_seconds,
                    of(ferry.and_then(|r| r.noop_seconds), l.noop_seconds),
                ));
                // Round trips are not the only floor: what the registries must compute
                // shares this machine's cores, and the measured floor pays it too.
                if let Some(floor) = f.contender(Contender::Floor) {
                    md.push_str(&format!(
                        "Measured floor (the floor contender through the same proxies, as many requests in flight as ferry: its blob uploads cold, its HEADs no-op): cold {:.2} s{}, no-op {}.",
                        floor.cold_seconds,
                        of(ferry.map(|r| r.cold_seconds), floor.cold_seconds),
                        floor.noop_seconds.map_or("–".into(), |n| format!(
                            "{n:.2} s{}",
                            of(ferry.and_then(|r| r.noop_seconds), n)
                        )),
                    ));
                }
                if let Some(ferry) = ferry {
                    let cpu: f64 = ferry.registry_cpu_seconds.iter().sum();
                    md.push_str(&format!(
                        " The two registries' CPU in ferry's cold run ({:.1} s) takes at least {:.2} s on {} cores.",
                        cpu,
                        cpu / self.cores.max(1) as f64,
                        self.cores
                    ));
                }
                md.push_str("\n\n");
            }
            md.push_str("| contender | cold sync (median) | contender ÷ ferry | no-op re-sync | no-op ÷ ferry | sent to destination | ÷ fixture bytes | payload ÷ fixture bytes | requests to destination (cold / no-op) | peak RSS | registry CPU (source + destination) | digests equal |\n");
            md.push_str(
                "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |\n",
            );
            let ferry = f.ferry();
            for c in &f.contenders {
                let ratio = ferry
                    .map(|r| format!("{:.2}×", c.cold_seconds / r.cold_seconds))
                    .unwrap_or_default();
                let noop_ratio = match (c.noop_seconds, ferry.and_then(|r| r.noop_seconds)) {
                    (Some(n), Some(r)) => format!("{:.1}×", n / r),
                    _ => "–".into(),
                };
                md.push_str(&format!(
                    "| {} | {:.2} s | {} | {} | {} | {} | {:.3} | {:.3} | {} / {} | {} | {:.1} + {:.1} s | {} |\n",
                    c.label,
                    c.cold_seconds,
                    ratio,
                    c.noop_seconds.map_or("–".into(), |n| format!("{n:.2} s")),
                    noop_ratio,
                    size(c.bytes_uploaded),
                    c.bytes_uploaded as f64 / (f.unique_bytes + f.manifest_bytes) as f64,
                    c.payload_uploaded as f64 / (f.unique_bytes + f.manifest_bytes) as f64,
                    c.requests,
                    c.noop_requests.map_or("–".into(), |n| n.to_string()),
                    if c.peak_rss_kib == 0 {
                        "–".into()
                    } else {
                        size(c.peak_rss_kib * 1024)
                    },
                    c.registry_cpu_seconds[0],
                    c.registry_cpu_seconds[1],
                    match c.digests_equal {
                        Some(true) => "yes",
                        Some(false) => "no",
                        None => "–",
                    }
                ));
            }
        }
        if let Some(p) = &self.planner {
            md.push_str(&format!(
                "\n**planner**: {} tags in {} moto ECR repositories enumerated and enqueued by one planner invocation in {:.1} s ({:.0} tags/s), {} messages on the copy queue; CPU: planner {:.1} s, moto {:.1} s.\n",
                p.tags,
                p.repositories,
                p.seconds,
                p.tags as f64 / p.seconds,
                p.messages,
                p.planner_cpu_seconds,
                p.moto_cpu_seconds
            ));
        }
        if let Some(l) = &self.large {
            md.push_str(&format!(
                "\n**large**: `ferry copy` of one image with a single {} layer: {:.1} s, peak RSS {}, digests equal: {}.\n",
                size(l.layer_bytes),
                l.seconds,
                size(l.peak_rss_kib * 1024),
                if l.digests_equal { "yes" } else { "no" }
            ));
        }
        if let Some(t) = &self.throttled {
            md.push_str(&format!(
                "
**throttled**: `ferry sync` at its defaults of {} small images into a destination allowing {} manifest PUTs a second (429 without Retry-After past it): {} copied in {:.1} s ({:.2}× the {:.0} s the limit allows), {} of {} manifest PUTs refused ({:.1}%), exit {}.
",
                t.images,
                t.manifest_puts_per_second,
                t.copied,
                t.seconds,
                t.seconds / t.limit_seconds,
                t.limit_seconds,
                t.manifest_puts_refused,
                t.manifest_puts,
                100.0 * t.manifest_puts_refused as f64 / t.manifest_puts.max(1) as f64,
                t.exit_code.map_or("–".into(), |c| c.to_string()),
            ));
        }
        if let Some(q) = &self.quota {
            let runs: Vec<String> = q
                .runs
                .iter()
                .map(|r| {
                    format!(
                        "{} copied, {} waiting, {} refused, exit {}",
                        r.copied,
                        r.waiting,
                        r.refused,
                        r.exit_code.map_or("–".into(), |c| c.to_string())
                    )
                })
                .collect();
            md.push_str(&format!(
                "
**quota**: {} images from a source allowing {} manifest GETs per {} s window, one `ferry sync` per window: {}.
",
                q.images,
                q.quota,
                q.window_seconds,
                runs.join("; then ")
            ));
        }
        if let Some(m) = &self.mirror {
            md.push_str(&format!(
                "\n**mirror** ({} images, both registries {} ms away): {} images lose a layer at the destination ({} in all) before each run; then a tenth of the source's tags ({}) are deleted and the mirror prunes.\n\n| run | time | sent to destination | requests | incomplete after | extra after |\n| --- | ---: | ---: | ---: | ---: | ---: |\n",
                m.images,
                m.rtt_ms,
                m.broken,
                size(m.lost_bytes),
                m.gone
            ));
            for r in m.repair.iter().chain(std::iter::once(&m.prune)) {
                md.push_str(&format!(
                    "| {} | {:.1} s | {} | {} | {} | {} |\n",
                    r.what,
                    r.seconds,
                    size(r.bytes_sent),
                    r.requests,
                    r.incomplete_after,
                    r.extras_after
                ));
            }
        }
        md
    }
}

fn size(bytes: u64) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{:.0} KiB", bytes as f64 / 1024.0)
    }
}
