//! The sync configuration shared by the planner, the copier and the CLI: what to read
//! (sources and their filters), where it goes (destinations), and with which credentials.
//!
//! [`SyncConfig::parse`] reads YAML or JSON and validates everything it can without the
//! network: patterns compile, templates render, references parse, platforms parse. Every
//! error names the field it is about (`sources[1].destinations[0].target: …`) so a user
//! can fix the file without guessing. See the README for a worked example.

mod raw;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use regex::Regex;

use crate::auth::normalize_host;
use crate::backup::BackupTemplate;
use crate::ecr_host::EcrHost;
use crate::expiry::Expiry;
use crate::filter::{whole_name_patterns, NameFilter, TagFilter};
use crate::manifest::Platform;
use crate::mapping::{SplitTag, Target, Vars};
use crate::plan::prune::PruneMax;
use crate::reference::{ImageRef, REPOSITORY_NAME};
use crate::referrers::Selection;
use crate::registry::{RegistryLimits, RequestKind};
use raw::*;

pub const VERSION: u32 = 1;

/// A configuration problem, with the path of the field it is about.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// e.g. `sources[0].filters.tags.semver`; empty for the document as a whole.
    pub path: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() || self.path == "." {
            write!(f, "{}", self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

fn err(path: impl Into<String>, message: impl fmt::Display) -> ConfigError {
    ConfigError {
        path: path.into(),
        message: message.to_string(),
    }
}

#[derive(Debug, Clone)]
pub struct SyncConfig {
    pub defaults: Defaults,
    pub credentials: Vec<(String, CredentialSpec)>,
    pub insecure_registries: Vec<String>,
    /// Registry host → what the configuration says it allows.
    pub registries: HashMap<String, RegistryLimits>,
    pub sources: Vec<Source>,
}

#[derive(Debug, Clone, Default)]
pub struct Defaults {
    /// The AWS account and region ferry runs in: `{account}` and `{region}` in templates,
    /// and the default for ECR sources that do not name theirs.
    pub account: Option<String>,
    pub region: Option<String>,
    pub overwrite: bool,
    pub platforms: Vec<Platform>,
    pub image_concurrency: Option<usize>,
    pub blob_concurrency: Option<usize>,
    /// Blobs up to this size, bound for a repository without tags, are asked for with a
    /// mount request instead of a HEAD (0: HEAD every blob). See `copy::untagged`.
    pub mount_probe_max_bytes: Option<u64>,
    /// Tries per registry request, the first included (transient failures only).
    pub request_attempts: Option<usize>,
    /// Seconds of silence after which a registry response is given up on (and retried).
    pub read_timeout_seconds: Option<usize>,
    /// Seconds one request may go on being throttled before its image fails `rate_limited`.
    pub throttle_patience_seconds: Option<usize>,
    /// Which signatures, attestations, SBOMs and referrers follow each image (default all).
    pub referrers: Selection,
    /// Destinations are mirrors unless they say otherwise (default false).
    pub prune: bool,
    pub prune_max: PruneMax,
}

impl Defaults {
    /// The copy engine's settings: these defaults over the engine's own.
    pub fn copy_options(&self) -> crate::copy::CopyOptions {
        let mut options = crate::copy::CopyOptions::default();
        if let Some(n) = self.image_concurrency {
            options.image_concurrency = n;
        }
        if let Some(n) = self.blob_concurrency {
            options.blob_concurrency = n;
        }
        if let Some(n) = self.mount_probe_max_bytes {
            options.mount_probe_max_bytes = n;
        }
        options.referrers = self.referrers.clone();
        options
    }
}

/// Where a registry's credentials come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CredentialSpec {
    /// A Secrets Manager secret: `{"username","password"}` or a docker `config.json`.
    Secret(String),
    /// `GetAuthorizationToken` (the default for ECR hosts anyway).
    Ecr,
    Anonymous,
}

#[derive(Debug, Clone)]
pub struct Source {
    /// Unique; a manual invoke may name the sources it wants.
    pub name: String,
    pub kind: SourceKind,
    pub repositories: NameFilter,
    pub tags: TagFilter,
    pub destinations: Vec<Destination>,
    /// After it nothing of this source is copied, and destinations that prune lose what
    /// it mirrored there.
    pub expires: Option<Expiry>,
}

impl Source {
    /// Whether `destination` of this source has expired at `now` (its own date or the
    /// source's).
    pub fn lapsed(&self, destination: &Destination, now: jiff::Timestamp) -> bool {
        crate::expiry::passed(self.expires.as_ref(), now)
            || crate::expiry::passed(destination.expires.as_ref(), now)
    }
}

/// An entry of an `images:` list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedImage {
    pub image: ImageRef,
    pub expires: Option<Expiry>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceKind {
    /// Repositories of an ECR registry; account and region default to ferry's own.
    Ecr {
        account: Option<String>,
        region: Option<String>,
        repositories: Option<Vec<String>>,
        prefix: Option<String>,
    },
    /// Any distribution registry; repositories from `/v2/_catalog` unless listed.
    Registry {
        host: String,
        repositories: Option<Vec<String>>,
    },
    /// Exactly these images.
    Images(Vec<ListedImage>),
}

#[derive(Debug, Clone)]
pub struct Destination {
    pub target: Target,
    pub create_repository: Option<CreateRepository>,
    /// Replace a destination tag that points at another digest (a mirror follows its
    /// source); when false such tags are left alone and reported.
    pub overwrite: bool,
    pub platforms: Vec<Platform>,
    /// A mirror: tags the source no longer has are removed, within the domain this
    /// destination's mapping and filters could have made (see [`crate::plan::prune`]).
    pub prune: bool,
    /// The most one run may remove here; past it, nothing is removed.
    pub prune_max: PruneMax,
    /// Destination tags (whole-name patterns) never removed, nor reported as extra.
    pub keep: Vec<Regex>,
    /// After it nothing more is copied here; with `prune`, what was mirrored goes.
    pub expires: Option<Expiry>,
    /// Before a tag here is moved, the image it held is kept under this tag.
    pub backup: Option<BackupTemplate>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct CreateRepository {
    pub immutable: bool,
    pub scan_on_push: bool,
}

impl SyncConfig {
    /// Parse and validate a YAML or JSON document.
    /// The configuration's JSON Schema, from the types the parser reads.
    pub fn schema() -> serde_json::Value {
        raw::schema()
    }

    pub fn parse(text: &str) -> Result<SyncConfig, ConfigError> {
        let deserializer = serde_yaml_ng::Deserializer::from_str(text);
        let raw: RawConfig = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            // The YAML error repeats a path of its own in front; ours is the precise one.
            let message = e.into_inner().to_string();
            let message = match message.split_once(": ") {
                Some((prefix, rest)) if !prefix.contains(' ') => rest.to_string(),
                _ => message,
            };
            err(path, message)
        })?;
        validate(raw)
    }

    /// Read a configuration file.
    pub fn load(path: &std::path::Path) -> Result<SyncConfig, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| err("", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text).map_err(|e| ConfigError {
            message: format!("{}: {}", path.display(), e.message),
            ..e
        })
    }

    /// Fill the account and region ferry runs in where the file leaves them out.
    pub fn with_home(mut self, account: Option<String>, region: Option<String>) -> Self {
        self.defaults.account = self.defaults.account.or(account);
        self.defaults.region = self.defaults.region.or(region);
        self
    }

    /// Template values for one source tag.
    pub fn vars<'a>(&'a self, registry: &'a str, repository: &'a str, tag: &'a str) -> Vars<'a> {
        Vars {
            registry,
            repository,
            tag,
            account: self.defaults.account.as_deref(),
            region: self.defaults.region.as_deref(),
        }
    }

    /// The account and region an ECR source with these fields reads: its own, else ferry's
    /// (`defaults`, filled from the environment).
    pub fn ecr_account_region<'a>(
        &'a self,
        account: &'a Option<String>,
        region: &'a Option<String>,
    ) -> (Option<&'a str>, Option<&'a str>) {
        (
            account.as_deref().or(self.defaults.account.as_deref()),
            region.as_deref().or(self.defaults.region.as_deref()),
        )
    }

    /// Whether `source` enumerates `repository` (`registry/repository`): its registry, its
    /// list or prefix, its repository filters; for an `images:` list, one of its entries.
    pub fn source_covers(&self, source: &Source, repository: &ImageRef) -> bool {
        let name = repository.repository();
        let here = |host: &str| {
            ImageRef::new(host, name, None, None)
                .is_ok_and(|r| r.registry() == repository.registry())
        };
        let enumerated = match &source.kind {
            SourceKind::Ecr {
                account,
                region,
                repositories,
                prefix,
            } => {
                let (account, region) = self.ecr_account_region(account, region);
                account
                    .zip(region)
                    .is_some_and(|(a, r)| here(&EcrHost::new(a, r).to_string()))
                    && repositories
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|l| l == name))
                    && prefix.as_deref().is_none_or(|p| name.starts_with(p))
            }
            SourceKind::Registry { host, repositories } => {
                here(host)
                    && repositories
                        .as_ref()
                        .is_none_or(|list| list.iter().any(|l| l == name))
            }
            SourceKind::Images(images) => images
                .iter()
                .any(|listed| listed.image.repo_only() == *repository),
        };
        enumerated && source.repositories.matches(name)
    }

    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.iter().find(|s| s.name == name)
    }

    /// The sources with these names, in the order given; every source when `names` is
    /// empty. An unknown name is an error that lists the configured ones.
    pub fn sources_named(&self, names: &[String]) -> Result<Vec<&Source>, String> {
        if names.is_empty() {
            return Ok(self.sources.iter().collect());
        }
        names
            .iter()
            .map(|n| {
                self.source(n).ok_or_else(|| {
                    let known: Vec<&str> = self.sources.iter().map(|s| s.name.as_str()).collect();
                    format!("no source named {n:?}; configured: {known:?}")
                })
            })
            .collect()
    }
}

fn validate(raw: RawConfig) -> Result<SyncConfig, ConfigError> {
    if raw.version != VERSION {
        return Err(err(
            "version",
            format!(
                "unsupported version {} (this ferry reads version {VERSION})",
                raw.version
            ),
        ));
    }
    let d = raw.defaults;
    if let Some(a) = &d.account {
        check_account(a, "defaults.account")?;
    }
    let defaults = Defaults {
        account: d.account,
        region: d.region,
        overwrite: d.overwrite.unwrap_or(true),
        platforms: platforms(&d.platforms, "defaults.platforms")?,
        image_concurrency: positive(d.image_concurrency, "defaults.image_concurrency")?,
        blob_concurrency: positive(d.blob_concurrency, "defaults.blob_concurrency")?,
        mount_probe_max_bytes: d.mount_probe_max_bytes,
        request_attempts: positive(d.request_attempts, "defaults.request_attempts")?,
        read_timeout_seconds: positive(d.read_timeout_seconds, "defaults.read_timeout_seconds")?,
        throttle_patience_seconds: positive(
            d.throttle_patience_seconds,
            "defaults.throttle_patience_seconds",
        )?,
        referrers: referrers(d.referrers, "defaults.referrers")?,
        prune: d.prune.unwrap_or(false),
        prune_max: prune_max(d.prune_max, "defaults.prune_max")?.unwrap_or_default(),
    };
    let mut credentials = Vec::new();
    for (host, c) in raw.credentials {
        let path = format!("credentials.{host}");
        let spec =
            match c {
                RawCredential::Secret(id) if id.trim().is_empty() => {
                    return Err(err(
                        path,
                        "secret must name a Secrets Manager secret id or ARN",
                    ))
                }
                RawCredential::Secret(id) => CredentialSpec::Secret(id),
                RawCredential::Ecr if !EcrHost::is_ecr(&host) => return Err(err(
                    path,
                    "ecr credentials only work for <account>.dkr.ecr.<region>.amazonaws.com hosts",
                )),
                RawCredential::Ecr => CredentialSpec::Ecr,
                RawCredential::Anonymous => CredentialSpec::Anonymous,
            };
        credentials.push((normalize_host(&host), spec));
    }
    let mut registries = HashMap::new();
    for (host, limits) in raw.registries {
        let path = format!("registries.{host}");
        if host.trim().is_empty() || host.contains('/') {
            return Err(err(
                path,
                "must be a registry host such as registry-1.docker.io or 127.0.0.1:5000",
            ));
        }
        registries.insert(normalize_host(&host), registry_limits(limits, &path)?);
    }
    if raw.sources.is_empty() {
        return Err(err("sources", "at least one source is needed"));
    }
    let mut names = HashSet::new();
    let mut sources = Vec::new();
    for (i, s) in raw.sources.into_iter().enumerate() {
        let source = validate_source(s, i, &defaults)?;
        if !names.insert(source.name.clone()) {
            return Err(err(
                format!("sources[{i}].name"),
                format!(
                    "{:?} is used by another source; names must be unique",
                    source.name
                ),
            ));
        }
        sources.push(source);
    }
    Ok(SyncConfig {
        defaults,
        credentials,
        insecure_registries: raw.insecure_registries,
        registries,
        sources,
    })
}

fn registry_limits(raw: RawRegistryLimits, path: &str) -> Result<RegistryLimits, ConfigError> {
    let mut requests_per_second = BTreeMap::new();
    for (name, rate) in raw.requests_per_second {
        let at = format!("{path}.requests_per_second.{name}");
        let kind = RequestKind::from_name(&name).ok_or_else(|| {
            let known: Vec<&str> = RequestKind::ALL.iter().map(|k| k.name()).collect();
            err(
                &at,
                format!("unknown kind of request; one of {}", known.join(", ")),
            )
        })?;
        if !(rate.is_finite() && rate > 0.0) {
            return Err(err(
                at,
                "must be a number of requests a second above 0 (0.5 is one every two seconds)",
            ));
        }
        requests_per_second.insert(kind, rate);
    }
    let bytes_per_second = match raw.bytes_per_second {
        None => None,
        Some(b) => Some(byte_count(&b).map_err(|e| err(format!("{path}.bytes_per_second"), e))?),
    };
    Ok(RegistryLimits {
        requests_per_second,
        concurrency: positive(raw.concurrency, &format!("{path}.concurrency"))?,
        bytes_per_second,
    })
}

/// `52428800`, `"50MiB"`, `"20 MB"` → bytes. Units: B, KB/MB/GB (powers of 1000) and
/// KiB/MiB/GiB (powers of 1024).
fn byte_count(value: &RawBytes) -> Result<u64, String> {
    const EXPECTED: &str = "expected bytes a second: a number, or one with a unit such as 50MiB or 20MB (B, KB, MB, GB, KiB, MiB, GiB)";
    let n = match value {
        RawBytes::Number(n) => *n,
        RawBytes::Text(text) => {
            let text = text.trim();
            let split = text
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .unwrap_or(text.len());
            let (number, unit) = text.split_at(split);
            let number: f64 = number.parse().map_err(|_| EXPECTED.to_string())?;
            let scale: f64 = match unit.trim() {
                "" | "B" => 1.0,
                "KB" | "kB" => 1e3,
                "MB" => 1e6,
                "GB" => 1e9,
                "KiB" => 1024.0,
                "MiB" => 1024.0 * 1024.0,
                "GiB" => 1024.0 * 1024.0 * 1024.0,
                _ => return Err(EXPECTED.into()),
            };
            (number * scale) as u64
        }
    };
    if n < 1024 {
        return Err(format!(
            "{n} bytes a second is too little to move an image; {EXPECTED}"
        ));
    }
    Ok(n)
}

fn validate_source(s: RawSource, i: usize, defaults: &Defaults) -> Result<Source, ConfigError> {
    let at = |field: &str| format!("sources[{i}].{field}");
    let kind = match (s.ecr, s.registry, s.images) {
        (Some(e), None, None) => {
            if let Some(a) = &e.account {
                check_account(a, &at("ecr.account"))?;
            }
            if let Some(repos) = &e.repositories {
                check_repositories(repos, &at("ecr.repositories"))?;
            }
            SourceKind::Ecr {
                account: e.account,
                region: e.region,
                repositories: e.repositories,
                prefix: e.prefix,
            }
        }
        (None, Some(r), None) => {
            if r.host.trim().is_empty() || r.host.contains('/') {
                return Err(err(
                    at("registry.host"),
                    "must be a registry host such as registry.example.com or 127.0.0.1:5000",
                ));
            }
            if let Some(repos) = &r.repositories {
                check_repositories(repos, &at("registry.repositories"))?;
            }
            SourceKind::Registry {
                host: r.host,
                repositories: r.repositories,
            }
        }
        (None, None, Some(images)) => {
            if images.is_empty() {
                return Err(err(at("images"), "list at least one image"));
            }
            let mut listed = Vec::new();
            for (j, entry) in images.iter().enumerate() {
                let text = &entry.image;
                let r: ImageRef = text
                    .parse()
                    .map_err(|e| err(at(&format!("images[{j}]")), e))?;
                if r.manifest_reference().is_none() {
                    return Err(err(
                        at(&format!("images[{j}]")),
                        format!("{text} names no tag or digest; write {text}:TAG"),
                    ));
                }
                listed.push(ListedImage {
                    image: r,
                    expires: expiry(
                        entry.expires.as_deref(),
                        &at(&format!("images[{j}].expires")),
                    )?,
                });
            }
            SourceKind::Images(listed)
        }
        _ => {
            return Err(err(
                format!("sources[{i}]"),
                "a source is exactly one of ecr:, registry: or images:",
            ))
        }
    };
    let name = s.name.unwrap_or_else(|| default_name(&kind, i));
    let expires = expiry(s.expires.as_deref(), &at("expires"))?;
    let f = s.filters;
    let repositories = NameFilter::new(&f.repositories.include, &f.repositories.exclude)
        .map_err(|e| err(at("filters.repositories"), e))?;
    let tags = TagFilter::new(
        &f.tags.include,
        &f.tags.exclude,
        f.tags.semver.as_deref(),
        f.tags.newest,
    )
    .map_err(|e| err(at("filters.tags"), e))?;
    if s.destinations.is_empty() {
        return Err(err(
            at("destinations"),
            "at least one destination is needed",
        ));
    }
    let mut destinations = Vec::new();
    for (j, d) in s.destinations.into_iter().enumerate() {
        let dat = |field: &str| at(&format!("destinations[{j}].{field}"));
        let split = d.split_tag.map(|s| SplitTag {
            separator: s.separator,
            prefixes: s.prefixes,
        });
        if split.as_ref().is_some_and(|s| s.separator.is_empty()) {
            return Err(err(dat("split_tag.separator"), "must not be empty"));
        }
        let target = Target::new(&d.target, split).map_err(|e| err(dat("target"), e))?;
        let create_repository = match d.create_repository {
            None => None,
            Some(c) => {
                if !target_is_ecr(&target) {
                    return Err(err(
                        dat("create_repository"),
                        "only ECR destinations (<account>.dkr.ecr.<region>.amazonaws.com/…) can create repositories",
                    ));
                }
                Some(CreateRepository {
                    immutable: c.immutable,
                    scan_on_push: c.scan_on_push,
                })
            }
        };
        let platforms = match d.platforms {
            Some(p) => platforms(&p, &dat("platforms"))?,
            None => defaults.platforms.clone(),
        };
        let prune = d.prune.unwrap_or(defaults.prune);
        if prune && !target.names_tag() {
            return Err(err(
                dat(if d.prune.is_some() { "prune" } else { "target" }),
                format!(
                    "cannot prune: the target {:?} does not carry the source tag ({{tag}}), so ferry cannot tell which destination tags it made; put {{tag}} in the target, or set prune: false here",
                    d.target
                ),
            ));
        }
        let keep = whole_name_patterns(d.keep.as_deref().unwrap_or_default())
            .map_err(|e| err(dat("keep"), e))?;
        let overwrite = d.overwrite.unwrap_or(defaults.overwrite);
        let backup = match &d.backup {
            None => None,
            Some(text) => {
                let template: BackupTemplate = text.parse().map_err(|e| err(dat("backup"), e))?;
                if !overwrite {
                    return Err(err(
                        dat("backup"),
                        "keeps the image an overwrite replaces, and this destination never overwrites (overwrite: false); set overwrite: true or drop backup",
                    ));
                }
                if let Some(mirrored) = backup_collides(&target, &template, &kind) {
                    return Err(err(
                        dat("backup"),
                        format!(
                            "the target makes mirrored tags such as {mirrored:?}, which have the form of backup tags {:?}: the two would be told apart by nothing; give the backups a prefix or suffix the target's tags never have",
                            template.as_str()
                        ),
                    ));
                }
                Some(template)
            }
        };
        destinations.push(Destination {
            target,
            create_repository,
            overwrite,
            platforms,
            prune,
            prune_max: prune_max(d.prune_max, &dat("prune_max"))?.unwrap_or(defaults.prune_max),
            keep,
            expires: expiry(d.expires.as_deref(), &dat("expires"))?,
            backup,
        });
    }
    Ok(Source {
        name,
        kind,
        repositories,
        tags,
        destinations,
        expires,
    })
}

/// A mirrored tag the target makes that has the form of a backup, if it makes such tags
/// for ordinary source tags: then backups and mirrored tags could not be told apart.
/// (A source tag that merely happens to have a backup's form is not mirrored to such a
/// destination; planning skips it and says so.)
fn backup_collides(
    target: &Target,
    template: &BackupTemplate,
    kind: &SourceKind,
) -> Option<String> {
    let registry = match kind {
        SourceKind::Registry { host, .. } => host.as_str(),
        _ => "registry.example",
    };
    let sample_tag = match target.split_tag() {
        Some(split) => format!(
            "{}{}1.0",
            split.prefixes.first().map_or("image", String::as_str),
            split.separator
        ),
        None => "1.0".to_string(),
    };
    let vars = Vars {
        registry,
        repository: "sample/repository",
        tag: &sample_tag,
        account: Some("123456789012"),
        region: Some("us-east-1"),
    };
    let mirrored = target.render(&vars).ok()??;
    let tag = mirrored.tag()?;
    template.is_backup(tag).then(|| tag.to_string())
}

fn expiry(text: Option<&str>, at: &str) -> Result<Option<Expiry>, ConfigError> {
    text.map(|t| t.parse().map_err(|e| err(at, e))).transpose()
}

fn default_name(kind: &SourceKind, i: usize) -> String {
    match kind {
        SourceKind::Ecr { .. } => format!("ecr-{i}"),
        SourceKind::Registry { host, .. } => format!("{host}-{i}"),
        SourceKind::Images(_) => format!("images-{i}"),
    }
}

fn target_is_ecr(target: &Target) -> bool {
    matches!(target.sample(), Ok(r) if EcrHost::is_ecr(r.registry()))
}

fn check_account(account: &str, path: &str) -> Result<(), ConfigError> {
    if account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit()) {
        Ok(())
    } else {
        Err(err(
            path,
            format!("{account:?} is not a 12-digit AWS account id (quote it in YAML so leading zeros survive)"),
        ))
    }
}

fn check_repositories(repos: &[String], path: &str) -> Result<(), ConfigError> {
    for (j, r) in repos.iter().enumerate() {
        if !REPOSITORY_NAME.is_match(r) {
            return Err(err(
                format!("{path}[{j}]"),
                format!("{r:?} is not a repository name (lowercase letters, digits, separators . _ - and /)"),
            ));
        }
    }
    Ok(())
}

fn platforms(list: &[String], path: &str) -> Result<Vec<Platform>, ConfigError> {
    list.iter()
        .enumerate()
        .map(|(j, p)| p.parse().map_err(|e| err(format!("{path}[{j}]"), e)))
        .collect()
}

fn referrers(value: Option<RawReferrers>, path: &str) -> Result<Selection, ConfigError> {
    match value {
        None => Ok(Selection::All),
        Some(RawReferrers::One(s)) => s.parse().map_err(|e| err(path, e)),
        Some(RawReferrers::List(list)) if list.is_empty() => Err(err(
            path,
            "an empty list selects nothing: write `none` to copy images without their referrers",
        )),
        Some(RawReferrers::List(list)) => list.join(",").parse().map_err(|e| err(path, e)),
    }
}

fn prune_max(value: Option<RawPruneMax>, path: &str) -> Result<Option<PruneMax>, ConfigError> {
    match value {
        None => Ok(None),
        Some(RawPruneMax::Count(n)) => Ok(Some(PruneMax::Count(n as usize))),
        Some(RawPruneMax::Text(text)) => text.parse().map(Some).map_err(|e| err(path, e)),
    }
}

fn positive(value: Option<usize>, path: &str) -> Result<Option<usize>, ConfigError> {
    match value {
        Some(0) => Err(err(path, "must be at least 1")),
        v => Ok(v),
    }
}

#[cfg(test)]
mod tests;
