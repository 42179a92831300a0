//! The library's error type: one variant per thing a caller can act on, each carrying the
//! registry, repository and reference it is about, and one place ([`Error::is_retryable`])
//! that decides whether trying again can help.
//!
//! Messages never contain credentials: nothing in this module is given a secret.

use std::time::{Duration, SystemTime};

use crate::digest::Digest;
use crate::manifest::ManifestError;

/// What ferry was doing when a registry said no. Used to name the permission that is
/// missing (for ECR, the IAM action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    ReadManifest,
    ReadBlob,
    CheckBlob,
    ListTags,
    ListReferrers,
    ListRepositories,
    StartUpload,
    UploadBlob,
    MountBlob,
    PushManifest,
    /// Removing a tag or manifest from a pruned mirror.
    DeleteManifest,
}

/// Which end of a copy a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum End {
    Source,
    Destination,
}

impl Operation {
    pub fn end(self) -> End {
        if self.is_push() {
            End::Destination
        } else {
            End::Source
        }
    }

    pub fn is_push(self) -> bool {
        matches!(
            self,
            Operation::StartUpload
                | Operation::UploadBlob
                | Operation::MountBlob
                | Operation::PushManifest
                | Operation::DeleteManifest
        )
    }

    /// The ECR IAM action this operation needs.
    pub fn ecr_action(self) -> &'static str {
        match self {
            Operation::ReadManifest => "ecr:BatchGetImage",
            Operation::ReadBlob => "ecr:GetDownloadUrlForLayer",
            Operation::CheckBlob => "ecr:BatchCheckLayerAvailability",
            Operation::ListTags => "ecr:ListImages",
            Operation::ListReferrers => "ecr:BatchGetImage",
            Operation::ListRepositories => "ecr:DescribeRepositories",
            Operation::StartUpload | Operation::MountBlob => "ecr:InitiateLayerUpload",
            Operation::UploadBlob => "ecr:UploadLayerPart and ecr:CompleteLayerUpload",
            Operation::PushManifest => "ecr:PutImage",
            Operation::DeleteManifest => "ecr:BatchDeleteImage",
        }
    }

    fn verb(self) -> &'static str {
        if self == Operation::DeleteManifest {
            "delete from"
        } else if self.is_push() {
            "push to"
        } else {
            "pull from"
        }
    }
}

/// Where an error happened: `registry/repository` and what was asked of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub registry: String,
    pub repository: String,
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.repository.is_empty() {
            f.write_str(&self.registry)
        } else {
            write!(f, "{}/{}", self.registry, self.repository)
        }
    }
}

fn is_ecr(registry: &str) -> bool {
    crate::ecr_host::EcrHost::is_ecr(registry)
}

fn denied_hint(at: &Location, op: &Operation) -> String {
    if is_ecr(&at.registry) {
        format!(
            "the AWS identity needs {} on that repository",
            op.ecr_action()
        )
    } else if op.is_push() {
        "check that the destination credentials may push to that repository".to_string()
    } else {
        "check that the source credentials may pull that repository".to_string()
    }
}

fn missing_repository_hint(at: &Location, op: &Operation) -> String {
    match (op.is_push(), is_ecr(&at.registry)) {
        (true, true) => format!(
            "create it first (aws ecr create-repository --repository-name {}), or let ferry create it with create_repository on the destination",
            at.repository
        ),
        (true, false) => "create it first: this registry does not create repositories on push".into(),
        (false, _) => "check the repository name, and that the credentials may see it".into(),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidReference(#[from] crate::reference::InvalidReference),

    #[error("{at}: manifest {reference} not found (check that the tag or digest exists)")]
    ManifestNotFound { at: Location, reference: String },

    /// The repository itself does not exist (a listing's or an upload's 404 `NAME_UNKNOWN`).
    #[error("{at}: repository does not exist; {}", missing_repository_hint(at, op))]
    RepositoryNotFound { at: Location, op: Operation },

    /// The registry does not delete manifests at all (docker-registry without
    /// `storage.delete.enabled`).
    #[error("{at}: the registry refuses to delete {reference} (deletes are switched off there); a distribution registry needs `storage: delete: enabled: true` in its configuration, and other registries an account allowed to delete")]
    DeleteRefused { at: Location, reference: String },

    /// Pruning would remove more than `prune_max` allows (the refusals, worded).
    #[error("prune refused: {0}")]
    PruneRefused(String),

    #[error("{at}: blob {digest} not found at the source")]
    BlobNotFound { at: Location, digest: Digest },

    #[error("{} {at} needs credentials: no basic auth credentials were found for {}. Log in (docker login {}), or give them in the configuration's credentials or a docker config file{}", op.verb(), at.registry, at.registry, if is_ecr(&at.registry) { "; for ECR, make AWS credentials available to ferry" } else { "" })]
    NoCredentials { at: Location, op: Operation },

    #[error("{} {at} denied ({op:?}): {message}; {}", op.verb(), denied_hint(at, op))]
    Denied {
        at: Location,
        op: Operation,
        message: String,
    },

    #[error("{at}: tag {tag} is immutable and already points at another image{}; ferry will not overwrite it. Push under a new tag, or delete the old image first", existing.as_ref().map(|d| format!(" ({d})")).unwrap_or_default())]
    ImmutableTag {
        at: Location,
        tag: String,
        existing: Option<Digest>,
    },

    #[error("{at}: digest mismatch for {what}: expected {expected}, got {actual}")]
    DigestMismatch {
        at: Location,
        what: String,
        expected: Digest,
        actual: String,
    },

    #[error("{at}: rate limited by the registry{}", retry_after.map(|d| format!(" (asked to wait {}s)", d.as_secs())).unwrap_or_default())]
    RateLimited {
        at: Location,
        retry_after: Option<Duration>,
    },

    /// The registry's pull quota (manifest reads per window) is spent: nothing to retry
    /// before `resets_at`.
    #[error("{at}: the registry's pull quota is spent ({limit} manifest reads per {}); it allows more from {} (in {})", wait_words(*window), httpdate::fmt_http_date(*resets_at), wait_words(resets_at.duration_since(SystemTime::now()).unwrap_or_default()))]
    QuotaExhausted {
        at: Location,
        limit: u64,
        window: Duration,
        resets_at: SystemTime,
    },

    #[error("{at}: {op:?} failed: {detail}")]
    Transient {
        at: Location,
        op: Operation,
        detail: String,
    },

    #[error("{at}: {op:?}: unexpected registry response: {detail}")]
    Protocol {
        at: Location,
        op: Operation,
        detail: String,
    },

    #[error("{at}: {source}")]
    Manifest {
        at: Location,
        #[source]
        source: ManifestError,
    },

    #[error("{at}: manifest is larger than {limit} bytes; refusing to read it")]
    ManifestTooLarge { at: Location, limit: usize },

    #[error("credentials: {0}")]
    Credentials(String),

    /// An AWS API call (ECR, SQS, Secrets Manager) failed.
    #[error("{action} failed: {detail}")]
    Aws {
        action: &'static str,
        detail: String,
        retryable: bool,
    },

    #[error("configuration: {0}")]
    Config(String),
}

impl Error {
    /// Whether the same request, repeated later, may succeed. Everything not listed as
    /// transient is permanent: retrying a denied push or an immutable tag only burns time.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Error::Transient { .. }
                | Error::RateLimited { .. }
                | Error::Aws {
                    retryable: true,
                    ..
                }
        )
    }

    /// When a spent pull quota allows reads again, for errors that wait for one.
    pub fn resets_at(&self) -> Option<SystemTime> {
        match self {
            Error::QuotaExhausted { resets_at, .. } => Some(*resets_at),
            _ => None,
        }
    }

    /// How long the registry asked us to wait, if it said.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::RateLimited { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// The end of the copy a registry error came from, where the request says.
    pub fn end(&self) -> Option<End> {
        match self {
            Error::NoCredentials { op, .. }
            | Error::Denied { op, .. }
            | Error::RepositoryNotFound { op, .. }
            | Error::Transient { op, .. }
            | Error::Protocol { op, .. } => Some(op.end()),
            _ => None,
        }
    }

    /// A short stable name for reports and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::InvalidReference(_) => "invalid_reference",
            Error::ManifestNotFound { .. } => "manifest_not_found",
            Error::RepositoryNotFound { .. } => "repository_not_found",
            Error::BlobNotFound { .. } => "blob_not_found",
            Error::NoCredentials { .. } => "no_credentials",
            Error::Denied { .. } => "denied",
            Error::ImmutableTag { .. } => "immutable_tag",
            Error::DigestMismatch { .. } => "digest_mismatch",
            Error::RateLimited { .. } => "rate_limited",
            Error::QuotaExhausted { .. } => "quota_exhausted",
            Error::Transient { .. } => "transient",
            Error::Protocol { .. } => "protocol",
            Error::Manifest { .. } => "bad_manifest",
            Error::ManifestTooLarge { .. } => "manifest_too_large",
            Error::DeleteRefused { .. } => "delete_refused",
            Error::PruneRefused(_) => "prune_refused",
            Error::Credentials(_) => "credentials",
            Error::Aws { .. } => "aws",
            Error::Config(_) => "config",
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// A wait as people say it: `42s`, `17m`, `5h 12m`.
pub fn wait_words(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..=119 => format!("{s}s"),
        120..=5999 => format!("{}m", s.div_ceil(60)),
        _ if s % 3600 < 60 => format!("{}h", s / 3600),
        _ => format!("{}h {}m", s / 3600, (s % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(registry: &str) -> Location {
        Location {
            registry: registry.into(),
            repository: "app".into(),
        }
    }

    #[test]
    fn ecr_denials_name_the_missing_iam_action() {
        let e = Error::Denied {
            at: at("123456789012.dkr.ecr.eu-west-1.amazonaws.com"),
            op: Operation::StartUpload,
            message: "not authorized".into(),
        };
        let text = e.to_string();
        assert!(
            text.contains("push to 123456789012.dkr.ecr.eu-west-1.amazonaws.com/app"),
            "{text}"
        );
        assert!(text.contains("ecr:InitiateLayerUpload"), "{text}");
        assert!(!e.is_retryable());
    }

    #[test]
    fn only_transient_and_rate_limited_errors_are_retryable() {
        let cases: Vec<(Error, bool)> = vec![
            (
                Error::Transient {
                    at: at("r"),
                    op: Operation::ReadBlob,
                    detail: "reset".into(),
                },
                true,
            ),
            (
                Error::RateLimited {
                    at: at("r"),
                    retry_after: Some(Duration::from_secs(3)),
                },
                true,
            ),
            (
                Error::ImmutableTag {
                    at: at("r"),
                    tag: "1".into(),
                    existing: None,
                },
                false,
            ),
            (
                Error::ManifestNotFound {
                    at: at("r"),
                    reference: "x".into(),
                },
                false,
            ),
            (
                Error::NoCredentials {
                    at: at("r"),
                    op: Operation::ReadManifest,
                },
                false,
            ),
        ];
        for (e, retryable) in cases {
            assert_eq!(e.is_retryable(), retryable, "{e}");
        }
    }

    #[test]
    fn a_spent_quota_says_when_it_allows_more_and_is_not_retried_in_the_run() {
        let e = Error::QuotaExhausted {
            at: at("registry-1.docker.io"),
            limit: 100,
            window: Duration::from_secs(21600),
            resets_at: SystemTime::now() + Duration::from_secs(3 * 3600 + 125),
        };
        let t = e.to_string();
        assert!(t.contains("100 manifest reads per 6h"), "{t}");
        assert!(t.contains("(in 3h 2m)"), "{t}");
        assert!(t.contains(" GMT"), "{t}");
        assert_eq!(e.kind(), "quota_exhausted");
        assert!(!e.is_retryable());
        assert!(e.resets_at().is_some());
    }

    #[test]
    fn waits_read_as_people_say_them() {
        for (secs, words) in [(42, "42s"), (600, "10m"), (21600, "6h"), (18720, "5h 12m")] {
            assert_eq!(wait_words(Duration::from_secs(secs)), words);
        }
    }

    #[test]
    fn missing_credentials_message_says_what_to_do() {
        let e = Error::NoCredentials {
            at: at("registry.gitlab.com"),
            op: Operation::PushManifest,
        };
        let t = e.to_string();
        assert!(t.contains("no basic auth credentials"), "{t}");
        assert!(t.contains("docker login registry.gitlab.com"), "{t}");
        // The library is the Lambdas' too: flags are the CLI's to suggest.
        assert!(!t.contains("--"), "{t}");
        assert_eq!(e.end(), Some(End::Destination));
    }
}
