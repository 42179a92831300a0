//! `ferry copy`: turn arguments into a registry client and copy requests, run them, report.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use ferry::copy::{all_tags, Copier, CopyOptions, CopyRequest};
use ferry::manifest::Platform;
use ferry::reference::ImageRef;
use ferry::registry::RegistryClient;

use crate::args::CopyArgs;
use crate::output;
use crate::setup;

pub async fn run(args: CopyArgs) -> Result<ExitCode> {
    let source: ImageRef = args.source.parse()?;
    let destinations: Vec<ImageRef> = args
        .destinations
        .iter()
        .map(|d| d.parse())
        .collect::<Result<_, _>>()?;
    let platforms: Vec<Platform> = args
        .platforms
        .iter()
        .map(|p| p.parse::<Platform>().map_err(anyhow::Error::msg))
        .collect::<Result<_>>()?;
    if args.all_tags {
        if source.tag().is_some() || source.digest().is_some() {
            bail!("--all-tags copies every tag of a repository: give SRC without a tag or digest (got {source})");
        }
        if let Some(d) = destinations
            .iter()
            .find(|d| d.tag().is_some() || d.digest().is_some())
        {
            bail!("--all-tags keeps each tag's name: give DST without a tag (got {d})");
        }
    } else if source.tag().is_none() && source.digest().is_none() {
        bail!("{source} names no tag or digest: add :TAG (e.g. {}:latest), or pass --all-tags to copy every tag", source.repo_name());
    }

    let client = Arc::new(build_client(&args, &source, &destinations)?);
    let requests = if args.all_tags {
        let requests = all_tags(&client, &source, &destinations)
            .await
            .context("listing the source's tags")?;
        if requests.is_empty() {
            bail!("{source} has no tags");
        }
        requests
    } else {
        vec![CopyRequest::new(source, destinations)]
    };

    let options = CopyOptions {
        image_concurrency: args.image_concurrency.into(),
        blob_concurrency: args.blob_concurrency.into(),
        platforms,
        referrers: args.referrers.referrers.clone().unwrap_or_default(),
        ..CopyOptions::default()
    };
    let show_bars = !args.json && std::io::stderr().is_terminal();
    let bars = show_bars.then(|| Arc::new(crate::progress::Bars::new()));
    let mut copier = Copier::new(client, options);
    if let Some(b) = &bars {
        copier = copier.with_progress(b.clone());
    }
    let run = copier.copy_all(requests).await;
    if let Some(b) = &bars {
        b.finish();
    }

    if args.json {
        println!("{}", serde_json::to_string_pretty(&run)?);
    } else {
        if !show_bars {
            for image in &run.images {
                eprintln!("{}", output::image_line(image));
            }
        }
        eprintln!("{}", output::summary(&run));
        for line in output::quota_lines(&run)
            .into_iter()
            .chain(output::credential_hints(&run))
        {
            eprintln!("{line}");
        }
    }
    Ok(if run.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn build_client(
    args: &CopyArgs,
    source: &ImageRef,
    destinations: &[ImageRef],
) -> Result<RegistryClient> {
    let credentials = setup::ExplicitCredentials {
        authfile: args.authfile.as_deref(),
        src_creds: args.creds.src_creds.as_deref(),
        dest_creds: args.creds.dest_creds.as_deref(),
    };
    let sources = [source];
    let destinations: Vec<&ImageRef> = destinations.iter().collect();
    setup::registry_client(
        args.endpoints.endpoints()?,
        args.retries,
        &credentials,
        &sources,
        &destinations,
    )
}
