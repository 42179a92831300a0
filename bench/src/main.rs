//! `ferry-bench`: ferry against `skopeo sync`, a pull/tag/push loop and the raw upload
//! floor, on the same fixtures in the same run. Each contender starts from an empty
//! destination registry; figures are the median wall time of the runs, bytes sent to the
//! destination, peak RSS, whether the destination digests equal the source's, and the time
//! of a no-op re-sync. Results go to `bench/results/latest.{json,md}`.
//!
//! Run with `scripts/bench.sh` (it installs skopeo and podman and builds ferry).

mod contenders;
mod fixture;
mod large;
mod measure;
mod mirror;
mod planner;
mod production;
mod report;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use ferry_testbed::production::Production;
use ferry_testbed::proxy::FaultProxy;
use ferry_testbed::{Auth, DockerRegistry};

use contenders::{Contender, FloorAtOnce, Job};
use fixture::Shape;
use measure::{digests_match, measure, median, process_cpu_seconds, CountingProxy};
use report::{ContenderResult, FixtureResult};

#[derive(Parser, Debug)]
#[command(about = "Benchmark ferry against skopeo sync, pull/tag/push and the upload floor")]
struct Args {
    /// Small fixtures and one run each: about two minutes.
    #[arg(long)]
    quick: bool,
    /// What to run (default: all): the bulk and many fixtures with every contender, the
    /// many fixture again with both registries --rtt-ms away (wan: ferry and skopeo), the
    /// planner's throughput, the peak RSS of a large layer's copy, ferry against a
    /// destination that caps manifest PUTs (throttled) and a source with a pull quota, and
    /// a mirror's upkeep at a distance: repairing lost blobs, pruning (mirror).
    #[arg(long = "fixture", value_parser = ["bulk", "many", "wan", "planner", "large", "throttled", "quota", "mirror"])]
    fixtures: Vec<String>,
    /// The round trip to each registry in the wan fixture, in milliseconds (a proxy on
    /// loopback adds it to every request, and again to each new connection's first).
    #[arg(long, default_value_t = 40)]
    rtt_ms: u64,
    /// Tags the planner enumerates and enqueues (default 10000, 500 with --quick).
    #[arg(long)]
    planner_tags: Option<usize>,
    /// Size of the large layer in MiB (default 1024, 64 with --quick).
    #[arg(long)]
    large_mib: Option<u64>,
    /// Contenders to run (default: all, except the pull/tag/push loop on many: 500 images
    /// one after another take it minutes a run, and no target depends on it; name it to run
    /// it there too).
    #[arg(long = "contender", value_enum)]
    contenders: Vec<Contender>,
    /// Cold runs per contender; the median is reported (default 3, 1 with --quick and for
    /// the wan fixture).
    #[arg(long)]
    runs: Option<usize>,
    /// Multiply every fixture's layer sizes by this (counts by its square root).
    #[arg(long)]
    scale: Option<f64>,
    /// An extra argument for every `ferry sync` run, e.g. `--ferry-arg=--image-concurrency=8`;
    /// repeatable.
    #[arg(long = "ferry-arg", allow_hyphen_values = true)]
    ferry_args: Vec<String>,
    /// The ferry binary to measure.
    #[arg(long, default_value_os_t = contenders::default_ferry())]
    ferry: PathBuf,
    /// Seed the first of the bulk, many or wan fixtures, start an empty destination, print both
    /// hosts and wait (for profiling a contender by hand; wan holds both behind its --rtt-ms
    /// proxies); nothing is measured.
    #[arg(long)]
    hold: bool,
    /// Where the registries keep their storage. The default, /dev/shm (a tmpfs) when there
    /// is one, keeps the disk out of the measurement: docker-registry fsyncs every blob, and
    /// on a virtual disk that adds seconds of noise to every contender.
    #[arg(long, default_value_os_t = default_storage())]
    storage: PathBuf,
    /// Where results are written.
    #[arg(long, default_value_os_t = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/results")))]
    out: PathBuf,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    anyhow::ensure!(
        args.ferry.exists(),
        "{} does not exist: build it with cargo build --release -p ferry-cli",
        args.ferry.display()
    );
    let scale = args
        .scale
        .unwrap_or(if args.quick { 1.0 / 16.0 } else { 1.0 });
    let runs = args.runs.unwrap_or(if args.quick { 1 } else { 3 }).max(1);
    let fixtures: Vec<String> = if args.fixtures.is_empty() {
        [
            "bulk",
            "many",
            "wan",
            "planner",
            "large",
            "throttled",
            "quota",
            "mirror",
        ]
        .map(String::from)
        .to_vec()
    } else {
        args.fixtures.clone()
    };
    let wants = |name: &str| fixtures.iter().any(|f| f == name);
    let contenders_for = |fixture: &str| -> Vec<Contender> {
        if !args.contenders.is_empty() {
            return args.contenders.clone();
        }
        let mut all = vec![
            Contender::Ferry,
            Contender::Skopeo,
            Contender::PullTagPush,
            Contender::Floor,
        ];
        if fixture == "many" && !args.quick {
            all.retain(|c| *c != Contender::PullTagPush);
        }
        if fixture == "wan" {
            // A pull/tag/push loop 40 ms away would take the better part of an hour.
            all.retain(|c| *c != Contender::PullTagPush);
        }
        all
    };
    let workdir = tempfile::tempdir()?;
    if args.hold {
        let name = fixtures
            .iter()
            .find(|f| matches!(f.as_str(), "bulk" | "many" | "wan"))
            .map_or("many", String::as_str);
        let rtt = (name == "wan").then(|| Duration::from_millis(args.rtt_ms));
        return hold(&shape_named(name, scale), &args.storage, rtt).await;
    }
    let mut results = Vec::new();
    for name in fixtures
        .iter()
        .filter(|f| matches!(f.as_str(), "bulk" | "many" | "wan"))
    {
        let shape = shape_named(name, scale);
        let rtt = (name == "wan").then(|| Duration::from_millis(args.rtt_ms));
        // At a distance skopeo takes over ten minutes a run; one run is the default there.
        let fixture_runs = match name.as_str() {
            "wan" => args.runs.unwrap_or(1).max(1),
            _ => runs,
        };
        results.push(
            run_fixture(
                &shape,
                &contenders_for(name),
                fixture_runs,
                &args,
                workdir.path(),
                rtt,
            )
            .await?,
        );
    }
    let mut report = report::Report::new(results, args.quick, &args.storage, &args.ferry_args);
    if wants("planner") {
        let tags = args
            .planner_tags
            .unwrap_or(if args.quick { 500 } else { 10_000 });
        report.planner = Some(planner::measure(tags, &args.storage).await?);
    }
    if wants("large") {
        let mib = args.large_mib.unwrap_or(if args.quick { 64 } else { 1024 });
        report.large = Some(large::measure(mib << 20, &args.storage, &args.ferry).await?);
    }
    if wants("throttled") {
        let images = if args.quick { 20 } else { 100 };
        report.throttled =
            Some(production::throttled(images, 5.0, &args.storage, &args.ferry).await?);
    }
    if wants("quota") {
        let window = Duration::from_secs(if args.quick { 3 } else { 10 });
        report.quota = Some(production::quota(12, window, &args.storage, &args.ferry).await?);
    }
    if wants("mirror") {
        let rtt = Duration::from_millis(args.rtt_ms);
        report.mirror = Some(mirror::measure(scale, rtt, &args.storage, &args.ferry).await?);
    }
    report.write(&args.out)?;
    println!("{}", report.markdown());
    Ok(())
}

/// The image concurrency ferry runs with: a `--ferry-arg=--image-concurrency=N`, else its
/// default.
fn ferry_image_concurrency(args: &Args) -> usize {
    ferry_arg(args, "--image-concurrency=").unwrap_or(ferry::copy::DEFAULT_IMAGE_CONCURRENCY)
}

/// The blobs of one image ferry copies at once: a `--ferry-arg=--blob-concurrency=N`, else
/// its default.
fn ferry_blob_concurrency(args: &Args) -> usize {
    ferry_arg(args, "--blob-concurrency=").unwrap_or(ferry::copy::DEFAULT_BLOB_CONCURRENCY)
}

fn ferry_arg(args: &Args, flag: &str) -> Option<usize> {
    args.ferry_args
        .iter()
        .find_map(|a| a.strip_prefix(flag)?.parse().ok())
}

fn default_storage() -> PathBuf {
    let shm = PathBuf::from("/dev/shm");
    if shm.is_dir() {
        shm
    } else {
        std::env::temp_dir()
    }
}

fn shape_named(name: &str, scale: f64) -> Shape {
    match name {
        "bulk" => Shape::bulk(scale),
        "wan" => Shape::wan(scale),
        _ => Shape::many(scale),
    }
}

async fn hold(shape: &Shape, storage: &std::path::Path, rtt: Option<Duration>) -> Result<()> {
    let src = DockerRegistry::start_under(storage, Auth::None);
    let seeded = fixture::seed(&src.seeder(), shape).await;
    let dst = DockerRegistry::start_under(storage, Auth::None);
    // The wan fixture's registries are held behind the proxies that put them at a distance.
    let far = |upstream: String| async move {
        let proxy = FaultProxy::start(&upstream).await;
        if let Some(rtt) = rtt {
            proxy.production(Production::at_distance(rtt));
        }
        proxy
    };
    let (src_far, dst_far) = (far(src.url()).await, far(dst.url()).await);
    let host = |near: String, far: &FaultProxy| match rtt {
        Some(_) => far.host(),
        None => near,
    };
    println!(
        "{}: {} images seeded\nsource:      {}\ndestination: {}\nrepositories: {}\nCtrl-C stops both.",
        shape.name,
        seeded.images.len(),
        host(src.host(), &src_far),
        host(dst.host(), &dst_far),
        (0..shape.repositories)
            .map(|r| shape.repository(r))
            .collect::<Vec<_>>()
            .join(" ")
    );
    tokio::signal::ctrl_c().await?;
    Ok(())
}

async fn run_fixture(
    shape: &Shape,
    contenders: &[Contender],
    runs: usize,
    args: &Args,
    workdir: &std::path::Path,
    rtt: Option<Duration>,
) -> Result<FixtureResult> {
    let src = DockerRegistry::start_under(&args.storage, Auth::None);
    // At a distance, both registries sit behind a proxy that adds the round trip.
    let distant = |upstream: String| async move {
        let proxy = FaultProxy::start(&upstream).await;
        if let Some(rtt) = rtt {
            proxy.production(Production::at_distance(rtt));
        }
        proxy
    };
    let src_far = distant(src.url()).await;
    let src_host = match rtt {
        Some(_) => src_far.host(),
        None => src.host(),
    };
    let seeding = Instant::now();
    let seeded = fixture::seed(&src.seeder(), shape).await;
    eprintln!(
        "{}: {} images, {} unique blobs, {:.1} MiB unique, seeded in {:.1} s",
        shape.name,
        seeded.images.len(),
        seeded.unique_blobs.len(),
        seeded.unique_bytes() as f64 / (1 << 20) as f64,
        seeding.elapsed().as_secs_f64()
    );
    let mut out = Vec::new();
    for &contender in contenders {
        let mut walls = Vec::new();
        let mut result = ContenderResult::new(contender);
        for run in 0..runs {
            if contender == Contender::PullTagPush {
                contenders::reset_podman();
            }
            let dst = DockerRegistry::start_under(&args.storage, Auth::None);
            let proxy = CountingProxy::start(dst.port).await?;
            let dst_far = distant(format!("http://{}", proxy.host())).await;
            let dst_host = match rtt {
                Some(_) => dst_far.host(),
                None => proxy.host(),
            };
            let job = Job {
                src: &src_host,
                dst: &dst_host,
                shape,
                seeded: &seeded,
                workdir,
                ferry: &args.ferry,
                ferry_args: &args.ferry_args,
                floor_at_once: match rtt {
                    Some(_) => FloorAtOnce {
                        uploads: ferry_image_concurrency(args) * ferry_blob_concurrency(args),
                        heads: report::planning_concurrency(),
                    },
                    None => FloorAtOnce::LOOPBACK,
                },
            };
            let registries_cpu = || {
                (
                    process_cpu_seconds(src.pid()),
                    process_cpu_seconds(dst.pid()),
                )
            };
            let cpu_before = registries_cpu();
            let cost = measure(|| job.run(contender))
                .await
                .with_context(|| format!("{} on {}", contender.label(), shape.name))?;
            tokio::time::sleep(Duration::from_millis(100)).await;
            let cpu_after = registries_cpu();
            result.registry_cpu_seconds = [cpu_after.0 - cpu_before.0, cpu_after.1 - cpu_before.1];
            walls.push(cost.wall);
            result.peak_rss_kib = result.peak_rss_kib.max(cost.peak_rss_kib);
            result.bytes_uploaded = proxy.sent();
            result.payload_uploaded = proxy.bodies();
            result.requests = proxy.requests();
            eprintln!(
                "  {:<38} run {}: {:>7.2} s, {:.1} MiB in {} requests sent, registry CPU {:.1} s + {:.1} s",
                contender.label(),
                run + 1,
                cost.wall.as_secs_f64(),
                proxy.sent() as f64 / (1 << 20) as f64,
                proxy.requests(),
                result.registry_cpu_seconds[0],
                result.registry_cpu_seconds[1]
            );
            if run + 1 == runs {
                result.digests_equal = (contender != Contender::Floor)
                    .then_some(digests_match(&dst.host(), &seeded.images).await?);
                if contender == Contender::Floor {
                    job.complete_floor().await?;
                }
                {
                    proxy.reset();
                    let noop = measure(|| job.run_noop(contender)).await?;
                    result.noop_seconds = Some(noop.wall.as_secs_f64());
                    result.noop_requests = Some(proxy.requests());
                    eprintln!(
                        "  {:<38} no-op: {:>7.2} s, {} requests",
                        contender.label(),
                        noop.wall.as_secs_f64(),
                        proxy.requests()
                    );
                }
            }
        }
        result.runs_seconds = walls.iter().map(Duration::as_secs_f64).collect();
        result.cold_seconds = median(walls).as_secs_f64();
        out.push(result);
    }
    Ok(FixtureResult {
        latency_floor: rtt.map(|rtt| {
            report::LatencyFloor::of(rtt, seeded.images.len(), ferry_image_concurrency(args))
        }),
        shape: shape.clone(),
        images: seeded.images.len(),
        unique_bytes: seeded.unique_bytes(),
        manifest_bytes: seeded.manifest_bytes(),
        contenders: out,
    })
}
