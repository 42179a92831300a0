//! `ferry config schema` and `ferry config check`: the configuration explained, offline.

use std::process::ExitCode;

use anyhow::Result;
use ferry::config::{Destination, Source, SourceKind, SyncConfig};

use crate::args::ConfigCommand;

pub fn run(command: ConfigCommand) -> Result<ExitCode> {
    match command {
        ConfigCommand::Schema => {
            println!("{}", serde_json::to_string_pretty(&SyncConfig::schema())?);
        }
        ConfigCommand::Check { file } => {
            let config = SyncConfig::load(&file)?;
            print!("{}", describe(&config));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What each source of a valid configuration enumerates and where it goes.
fn describe(config: &SyncConfig) -> String {
    let mut out = format!(
        "valid: {} source{}\n",
        config.sources.len(),
        if config.sources.len() == 1 { "" } else { "s" }
    );
    for source in &config.sources {
        out.push_str(&format!(
            "\n{}: {}\n",
            source.name,
            enumerates(config, source)
        ));
        let repositories = source.repositories.describe();
        if !repositories.is_empty() {
            out.push_str(&format!("  repositories: {repositories}\n"));
        }
        let tags = source.tags.describe();
        if !tags.is_empty() {
            out.push_str(&format!("  tags: {tags}\n"));
        }
        if let Some(e) = &source.expires {
            out.push_str(&format!("  expires {e}\n"));
        }
        for d in &source.destinations {
            out.push_str(&format!("  -> {}\n", destination(d)));
        }
    }
    out
}

fn enumerates(config: &SyncConfig, source: &Source) -> String {
    match &source.kind {
        SourceKind::Ecr {
            account,
            region,
            repositories,
            prefix,
        } => {
            let (account, region) = config.ecr_account_region(account, region);
            let account = account.unwrap_or("ferry's own account");
            let region = region.unwrap_or("ferry's own region");
            let which = match (repositories, prefix) {
                (Some(list), _) => format!("repositories {}", list.join(", ")),
                (None, Some(p)) => format!("every repository under {p}"),
                (None, None) => "every repository".into(),
            };
            format!("ECR {account} in {region}, {which} (tags from ListImages)")
        }
        SourceKind::Registry { host, repositories } => match repositories {
            Some(list) => format!(
                "{host}, repositories {} (tags from their tag lists)",
                list.join(", ")
            ),
            None => format!("{host}, every repository of its catalog (/v2/_catalog)"),
        },
        SourceKind::Images(images) => {
            let listed: Vec<String> = images
                .iter()
                .map(|i| match &i.expires {
                    Some(e) => format!("{} (expires {e})", i.image),
                    None => i.image.to_string(),
                })
                .collect();
            format!("{} images: {}", images.len(), listed.join(", "))
        }
    }
}

fn destination(d: &Destination) -> String {
    let mut out = d.target.template().to_string();
    let mut notes = Vec::new();
    if let Some(split) = d.target.split_tag() {
        notes.push(match split.prefixes.is_empty() {
            true => format!("split at {:?}", split.separator),
            false => format!(
                "split at {:?} for {}",
                split.separator,
                split.prefixes.join(", ")
            ),
        });
    }
    if !d.overwrite {
        notes.push("never overwrites".into());
    }
    if !d.platforms.is_empty() {
        let p: Vec<String> = d.platforms.iter().map(|p| p.to_string()).collect();
        notes.push(format!("platforms {}", p.join(", ")));
    }
    if d.prune {
        notes.push(format!("prunes (at most {} a run)", d.prune_max));
    }
    if let Some(b) = &d.backup {
        notes.push(format!("backups as {b}"));
    }
    if let Some(e) = &d.expires {
        notes.push(format!("expires {e}"));
    }
    if d.create_repository.is_some() {
        notes.push("creates its ECR repositories".into());
    }
    if !notes.is_empty() {
        out.push_str(&format!(" ({})", notes.join("; ")));
    }
    out
}
