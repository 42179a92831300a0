//! Command-line arguments. Every flag that takes a secret also reads an environment
//! variable, so passwords need not appear in shell history or `ps`.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Parser, Debug)]
#[command(
    name = "ferry",
    version,
    about = "Copy and mirror container images between registries, byte-exact",
    long_about = "ferry copies container images between OCI/Docker registries without a Docker daemon. \
Copies are byte-exact: manifests keep their digests, every platform of a multi-arch image is copied, \
and blobs stream registry to registry without touching disk.\n\n\
Credentials come from --src-creds/--dest-creds, the docker config (~/.docker/config.json or $DOCKER_CONFIG), \
containers' auth.json ($REGISTRY_AUTH_FILE), credential helpers, and for Amazon ECR from the AWS credential chain."
)]
pub struct Cli {
    /// More log output (-v info, -vv debug). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Copy one image (or every tag of a repository) to one or more destinations.
    #[command(after_help = "\
Examples:
  # Leave ECR for GitLab: one tag, digest preserved
  ferry copy 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4 registry.gitlab.com/acme/platform/app

  # Every tag of a repository
  ferry copy --all-tags 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app registry.gitlab.com/acme/platform/app

  # Docker Hub into ECR, to stop hitting pull rate limits (all platforms)
  ferry copy nginx:1.27 123456789012.dkr.ecr.eu-west-1.amazonaws.com/mirror/nginx

  # One source, several destinations: each blob is read from the source once
  ferry copy alpine:3.20 quay.io/acme/alpine ghcr.io/acme/alpine

  # A local registry over plain HTTP
  ferry copy --insecure-loopback 127.0.0.1:5000/app:dev 127.0.0.1:5001/app

Exit status: 0 when every image was copied or already up to date, 1 when any failed,
2 for bad arguments or configuration.")]
    Copy(CopyArgs),

    /// Show what a sync would copy: every source image of the configuration, where it goes,
    /// and which destinations already hold it.
    #[command(after_help = "\
Examples:
  ferry plan --config ferry.yaml                  # a table on a terminal
  ferry plan --config ferry.yaml --json | jq .    # the plan as JSON
  ferry plan --config ferry.yaml --source platform-ecr

This is the planner Lambda's code: a plan here is what a deployed planner would send.
Exit status: 0 when planned, 2 for a bad configuration or an unreachable source.")]
    Plan(PlanArgs),

    /// Plan and copy everything the configuration names, here and now (no AWS needed unless
    /// the configuration names ECR or Secrets Manager).
    #[command(after_help = "\
Examples:
  ferry sync --config ferry.yaml
  ferry sync --config ferry.yaml --source dockerhub-mirror --json > report.json

Images already at their destinations are not copied again; re-running after a failure
finishes the job. This is the copier Lambda's code, run in-process.
Exit status: 0 when everything is copied or up to date, 1 when any image failed,
2 for a bad configuration.")]
    Sync(SyncArgs),

    /// Check that every destination holds exactly its source image, complete: run it
    /// before switching the old registry off.
    #[command(after_help = "\
Examples:
  ferry verify --config ferry.yaml
  ferry verify 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app registry.gitlab.com/acme/app
  ferry verify --json --config ferry.yaml > verdicts.json
  ferry verify --repair --config ferry.yaml      # mend what is lost, then check again

Each destination tag must resolve to the digest its source tag has now (or the platform
selection of it), every child manifest and blob that manifest needs must exist, and every
signature, attestation, SBOM and referrer the source has for it (--referrers) must be
there too, listed as a referrer of its image. Checked the other way too: a tag in a
destination's domain that its source lacks is EXTRA.
Exit status: 0 when everything matches, 1 when anything is missing, different,
incomplete or extra (unless --allow-extra), 2 for bad arguments or configuration.")]
    Verify(VerifyArgs),

    /// How a deployed migration is getting on: images waiting and in flight, repositories
    /// still to plan, dead letters by kind; followed until the copy queue is empty.
    #[command(after_help = "\
Examples:
  ferry status --stack ferry
  ferry status --stack ferry --once --json
  ferry status --copy-queue $COPY_QUEUE --plan-queue $PLAN_QUEUE --dead-letter-queue $DLQ

Counts are SQS's own (approximate, as its console's are). The rate and the time left come
from how the copy queue's count falls between samples over the last minute. It stops once
the copy and planning queues are empty in two samples running, or on Ctrl-C; on a
terminal it draws a progress bar, elsewhere it prints one plain line per sample.
With --stack the queues come from the stack's CopyQueueUrl, PlanQueueUrl and
DeadLetterQueueUrl outputs (cloudformation:DescribeStacks); a URL given as well wins.")]
    Status(StatusArgs),

    /// List the deployed pipeline's dead letters by kind, without consuming them; with
    /// --requeue, send them back to their queues once their cause is fixed.
    #[command(after_help = "\
Examples:
  # What failed for good, and why
  ferry dead-letters --stack ferry

  # The registry is back: retry only what ran out of retries
  ferry dead-letters --stack ferry --requeue --kind retries_exhausted

  # Without CloudFormation: the queues by URL
  ferry dead-letters --queue $DLQ --requeue --copy-queue $COPY_QUEUE --plan-queue $PLAN_QUEUE

Reading leaves every message in the queue (each is hidden while the queue is paged through
and made visible again at once). Requeued copy and removal messages go to --copy-queue,
planning tasks to --plan-queue; a requeued copy that is already done is a no-op. Messages
the queue's redrive policy moved carry no reason (kind moved_by_redrive).
Exit status: 0, or 1 when requeueing failed part way (nothing is lost: a message sent
but not deleted is copied twice, harmlessly), 2 for bad arguments.")]
    DeadLetters(DeadLettersArgs),

    /// The configuration file: its JSON Schema, or a check of one file without touching
    /// any registry.
    #[command(subcommand)]
    Config(ConfigCommand),
}

#[derive(Args, Debug)]
pub struct CopyArgs {
    /// Source image: host[:port]/repo[:tag][@sha256:digest]; Docker Hub names like alpine:3 work.
    #[arg(value_name = "SRC")]
    pub source: String,

    /// Destination(s). Without a tag, the source's tag is used.
    #[arg(value_name = "DST", required = true)]
    pub destinations: Vec<String>,

    /// Copy every tag of the source repository (SRC and DST name repositories, without tags).
    #[arg(long)]
    pub all_tags: bool,

    /// Copy only this platform of a multi-platform image (os/arch[/variant]); repeatable.
    /// One platform copies that platform's manifest (its own digest); several build a
    /// smaller index (a new digest). A single-platform image is copied as it is. Default:
    /// every platform, exactly.
    #[arg(long = "platform", value_name = "OS/ARCH")]
    pub platforms: Vec<String>,

    #[command(flatten)]
    pub creds: CredentialArgs,

    /// An extra docker config.json / auth.json to read credentials from, ahead of the defaults.
    #[arg(long, value_name = "PATH")]
    pub authfile: Option<PathBuf>,

    #[command(flatten)]
    pub endpoints: EndpointArgs,

    /// Images copied at the same time (with --all-tags).
    #[arg(long, default_value_t = ferry::copy::DEFAULT_IMAGE_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub image_concurrency: u16,

    /// Blobs of one image copied at the same time.
    #[arg(long, default_value_t = ferry::copy::DEFAULT_BLOB_CONCURRENCY as u16, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub blob_concurrency: u16,

    #[command(flatten)]
    pub referrers: ReferrerArgs,

    /// Attempts per request for transient failures (5xx, resets, 429), with backoff.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=20))]
    pub retries: u32,

    /// Print one JSON report on stdout instead of progress and a summary.
    #[arg(long)]
    pub json: bool,
}

/// Which supply-chain artifacts travel with each image.
#[derive(Args, Debug, Clone)]
pub struct ReferrerArgs {
    /// Signatures, attestations, SBOMs and other referrers to copy with each image: `all`,
    /// `none`, or a comma-separated list of `sig`, `att`, `sbom` and artifact types (e.g.
    /// `sig,application/spdx+json`). `sig`, `att` and `sbom` cover both cosign's tags
    /// (sha256-<digest>.sig) and OCI 1.1 referrers of those kinds; they are copied even
    /// when tag filters would not select their tags. Default: all (sync: the
    /// configuration's defaults.referrers, else all).
    #[arg(long, value_name = "all|none|TYPE,...", value_parser = parse_selection)]
    pub referrers: Option<ferry::referrers::Selection>,
}

fn parse_selection(s: &str) -> Result<ferry::referrers::Selection, String> {
    s.parse()
}

/// Credentials named on the command line, each bound to its side's registries only.
#[derive(Args, Debug, Clone)]
pub struct CredentialArgs {
    /// Source credentials as USER:PASSWORD (or a token as the password).
    #[arg(
        long,
        env = "FERRY_SRC_CREDS",
        hide_env_values = true,
        value_name = "USER:PASSWORD"
    )]
    pub src_creds: Option<String>,

    /// Destination credentials as USER:PASSWORD, used for every destination registry.
    #[arg(
        long,
        env = "FERRY_DEST_CREDS",
        hide_env_values = true,
        value_name = "USER:PASSWORD"
    )]
    pub dest_creds: Option<String>,
}

/// How registries are reached: shared by every command.
#[derive(Args, Debug, Clone)]
pub struct EndpointArgs {
    /// Use plain HTTP (no TLS) for this registry host[:port]; repeatable.
    #[arg(
        long = "insecure-registry",
        value_name = "HOST",
        env = "FERRY_INSECURE_REGISTRIES",
        value_delimiter = ','
    )]
    pub insecure_registries: Vec<String>,

    /// Use plain HTTP for loopback registries (127.0.0.0/8, [::1], localhost).
    #[arg(long)]
    pub insecure_loopback: bool,

    /// Send requests for registry NAME to TARGET (host:port or URL), e.g. to reach an ECR name
    /// through a proxy or a local test registry; repeatable.
    #[arg(
        long = "registry-endpoint",
        value_name = "NAME=TARGET",
        env = "FERRY_REGISTRY_ENDPOINTS",
        value_delimiter = ','
    )]
    pub registry_endpoints: Vec<String>,
}

/// The sync configuration and what it leaves to the environment.
#[derive(Args, Debug, Clone)]
pub struct ConfigArgs {
    /// The sync configuration (YAML or JSON): sources, filters, destinations, credentials.
    /// The same document the Lambda functions are deployed with.
    #[arg(short, long, value_name = "FILE", env = "FERRY_CONFIG_FILE")]
    pub config: Option<PathBuf>,

    /// Only this source (by its name in the configuration); repeatable. Default: all.
    #[arg(long = "source", value_name = "NAME")]
    pub sources: Vec<String>,

    /// The AWS account for {account} in targets and for ECR sources that name none.
    #[arg(long, value_name = "ID", env = "FERRY_ACCOUNT_ID")]
    pub account: Option<String>,

    /// The AWS region for {region} in targets and for ECR sources that name none.
    #[arg(long, value_name = "REGION", env = "AWS_REGION")]
    pub region: Option<String>,

    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

#[derive(Args, Debug)]
pub struct PlanArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// List every image, including those the destinations already hold (no HEAD requests
    /// or listings at the destinations, so no removals are planned either).
    #[arg(long)]
    pub no_check: bool,

    /// Print the plan as JSON (the default when stdout is not a terminal).
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// Images copied at the same time. Default: the configuration's
    /// defaults.image_concurrency, else 32.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub image_concurrency: Option<u16>,

    /// Blobs of one image copied at the same time. Default: the configuration's
    /// defaults.blob_concurrency, else 6.
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub blob_concurrency: Option<u16>,

    #[command(flatten)]
    pub referrers: ReferrerArgs,

    /// Print one JSON report on stdout instead of progress and a summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub config: ConfigArgs,

    /// SRC DST pairs to check instead of (or as well as) the configuration's plan. Without
    /// tags, every tag of SRC is checked under the same tag in DST.
    #[arg(value_name = "SRC DST")]
    pub pairs: Vec<String>,

    /// Platform the copies were made with (os/arch[/variant]), for SRC DST pairs; repeatable.
    #[arg(long = "platform", value_name = "OS/ARCH")]
    pub platforms: Vec<String>,

    /// Credentials for SRC DST pairs.
    #[command(flatten)]
    pub creds: CredentialArgs,

    #[command(flatten)]
    pub referrers: ReferrerArgs,

    /// Also list the images that are fine.
    #[arg(long)]
    pub all: bool,

    /// Succeed even if destinations hold tags their source does not (EXTRA): tags in the
    /// domain a destination mirrors (what `prune: true` would remove), or, for SRC DST
    /// repository pairs, any tag of DST that SRC lacks. Without it they make verify fail, so
    /// a migration is checked both ways before the source is switched off.
    #[arg(long)]
    pub allow_extra: bool,

    /// Copy again what verify finds missing, incomplete (a lost blob or child manifest:
    /// only what is absent is sent), lacking signatures or referrers, or different where
    /// the destination may be overwritten (`overwrite`; never for SRC DST pairs); then
    /// verify again and report that. Extras are never removed here (see `prune`).
    #[arg(long)]
    pub repair: bool,

    /// Print the verdicts as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct DeadLettersArgs {
    /// The deployed stack: its queues are read from its outputs (CloudFormation).
    #[arg(long, env = "FERRY_STACK", value_name = "NAME")]
    pub stack: Option<String>,

    /// The dead-letter queue's URL (the stack's DeadLetterQueueUrl output), instead of
    /// --stack.
    #[arg(long, env = "FERRY_DEAD_LETTER_QUEUE_URL", value_name = "URL")]
    pub queue: Option<String>,

    /// Send the dead letters (those of --kind, or all) back to their queues, and delete
    /// them here.
    #[arg(long)]
    pub requeue: bool,

    /// Only dead letters of this ferry-error-kind (retries_exhausted, denied, ...);
    /// repeatable.
    #[arg(long = "kind", value_name = "KIND")]
    pub kinds: Vec<String>,

    /// Where requeued copy and removal messages go (the stack's CopyQueueUrl output).
    #[arg(long, env = "FERRY_COPY_QUEUE_URL", value_name = "URL")]
    pub copy_queue: Option<String>,

    /// Where requeued planning tasks go (the stack's PlanQueueUrl output).
    #[arg(long, env = "FERRY_PLAN_QUEUE_URL", value_name = "URL")]
    pub plan_queue: Option<String>,

    /// Read at most this many.
    #[arg(long, default_value_t = 10_000)]
    pub limit: usize,

    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The deployed stack: its queues are read from its outputs (CloudFormation).
    #[arg(long, env = "FERRY_STACK", value_name = "NAME")]
    pub stack: Option<String>,

    /// The copy queue's URL (the stack's CopyQueueUrl output), instead of --stack.
    #[arg(long, env = "FERRY_COPY_QUEUE_URL", value_name = "URL")]
    pub copy_queue: Option<String>,

    /// The planning queue's URL (PlanQueueUrl): repositories still to plan.
    #[arg(long, env = "FERRY_PLAN_QUEUE_URL", value_name = "URL")]
    pub plan_queue: Option<String>,

    /// The dead-letter queue's URL (DeadLetterQueueUrl): what failed for good, by kind.
    #[arg(long, env = "FERRY_DEAD_LETTER_QUEUE_URL", value_name = "URL")]
    pub dead_letter_queue: Option<String>,

    /// One snapshot, then exit.
    #[arg(long)]
    pub once: bool,

    /// Seconds between samples while following.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub interval: u64,

    /// JSON: one object for --once, one per line while following.
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand, Debug)]
pub enum ConfigCommand {
    /// Print the JSON Schema of the configuration (draft 2020-12), for editor completion
    /// and CI validation. It is derived from the types the parser reads, so it cannot
    /// drift from them; the parser checks more (templates, patterns, dates): run `check`.
    #[command(after_help = "\
Examples:
  ferry config schema > ferry.schema.json
  # VS Code (YAML extension): first line of ferry.yaml
  # yaml-language-server: $schema=./ferry.schema.json")]
    Schema,

    /// Check a configuration offline, as the functions will read it, and say what each
    /// source will enumerate and where it goes.
    #[command(after_help = "\
Exit status: 0 when the file is valid, 2 with the first error (naming its field) when not.")]
    Check {
        /// The configuration (YAML or JSON).
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
}
