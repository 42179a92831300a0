//! One image with a single large layer copied by `ferry copy`: peak RSS shows that a blob
//! streams through ferry whatever its size (the target is under 64 MiB for 1 GiB).

use std::time::Instant;

use anyhow::Result;
use ferry_testbed::{Auth, DockerRegistry};
use serde::Serialize;

use crate::measure::{digests_match, run_timed};

#[derive(Debug, Serialize)]
pub struct LargeResult {
    pub layer_bytes: u64,
    pub seconds: f64,
    pub peak_rss_kib: u64,
    pub digests_equal: bool,
}

pub async fn measure(
    layer_bytes: u64,
    storage: &std::path::Path,
    ferry: &std::path::Path,
) -> Result<LargeResult> {
    let src = DockerRegistry::start_under(storage, Auth::None);
    let dst = DockerRegistry::start_under(storage, Auth::None);
    let seeder = src.seeder();
    let seeding = Instant::now();
    let layer = seeder.push_large_blob("large", layer_bytes, 7).await;
    let config = seeder
        .push_blob(
            "large",
            "application/vnd.oci.image.config.v1+json",
            br#"{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}"#,
        )
        .await;
    let pushed = seeder
        .push_manifest_of(
            "large",
            "1",
            "application/vnd.oci.image.manifest.v1+json",
            &config,
            std::slice::from_ref(&layer),
        )
        .await;
    eprintln!(
        "large: one {:.0} MiB layer, seeded in {:.1} s",
        layer_bytes as f64 / (1 << 20) as f64,
        seeding.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let peak_rss_kib = run_timed(
        &ferry.to_string_lossy(),
        &[
            "copy".into(),
            "--insecure-loopback".into(),
            format!("{}/large:1", src.host()),
            format!("{}/large:1", dst.host()),
        ],
        &[("RUST_LOG", "warn")],
    )?;
    let seconds = started.elapsed().as_secs_f64();
    let image = crate::fixture::Image {
        repo: "large".into(),
        tag: "1".into(),
        digest: pushed.digest,
        manifest: pushed.raw,
    };
    Ok(LargeResult {
        layer_bytes,
        seconds,
        peak_rss_kib,
        digests_equal: digests_match(&dst.host(), &[image]).await?,
    })
}
