//! Turning a registry's non-success response into an [`Error`] a caller can act on.
//!
//! Registries answer with the distribution error document
//! (`{"errors":[{"code":"DENIED","message":"…"}]}`), sometimes with an HTML page from a proxy
//! in front of them; both become one line of text with the status.

use std::time::Duration;

use reqwest::header::RETRY_AFTER;
use reqwest::{Response, StatusCode};
use serde::Deserialize;

use crate::error::{Error, Location, Operation};

/// Read at most this much of an error body: enough for any error document, bounded against
/// a proxy that streams something large.
const MAX_ERROR_BODY: usize = 64 * 1024;

#[derive(Deserialize, Default)]
struct ErrorDoc {
    #[serde(default)]
    errors: Vec<ErrorEntry>,
}

#[derive(Deserialize, Default)]
struct ErrorEntry {
    #[serde(default)]
    code: String,
    #[serde(default)]
    message: String,
}

pub(crate) struct Failure {
    pub status: StatusCode,
    pub code: String,
    pub message: String,
    pub retry_after: Option<Duration>,
}

impl Failure {
    pub async fn read(resp: Response) -> Failure {
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let is_html = resp
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.contains("html"));
        let body = read_limited(resp).await;
        let doc: ErrorDoc = serde_json::from_slice(&body).unwrap_or_default();
        let (code, message) = match doc.errors.first() {
            Some(e) => (e.code.clone(), e.message.clone()),
            None if is_html || body.trim_ascii_start().starts_with(b"<") => {
                (String::new(), "the registry (or a proxy in front of it) answered with an HTML page instead of an API response".into())
            }
            None => {
                let text = String::from_utf8_lossy(&body);
                (String::new(), text.chars().take(300).collect::<String>().trim().to_string())
            }
        };
        Failure {
            status,
            code,
            message,
            retry_after,
        }
    }

    fn summary(&self) -> String {
        match (self.code.is_empty(), self.message.is_empty()) {
            (true, true) => format!("HTTP {}", self.status),
            (true, false) => format!("HTTP {}: {}", self.status, self.message),
            (false, true) => format!("HTTP {} {}", self.status, self.code),
            (false, false) => format!("HTTP {} {}: {}", self.status, self.code, self.message),
        }
    }

    /// The error for this failure of `op` at `at`. `reference` names the manifest or tag
    /// involved; `anonymous` says whether the request carried no credential.
    pub fn into_error(
        self,
        at: Location,
        op: Operation,
        reference: &str,
        anonymous: bool,
    ) -> Error {
        let status = self.status.as_u16();
        let lower = self.message.to_ascii_lowercase();
        match status {
            401 if anonymous => Error::NoCredentials { at, op },
            401 | 403 => Error::Denied {
                at,
                op,
                message: self.summary(),
            },
            404 if op == Operation::ReadManifest => Error::ManifestNotFound {
                at,
                reference: reference.to_string(),
            },
            405 if op == Operation::DeleteManifest => Error::DeleteRefused {
                at,
                reference: reference.to_string(),
            },
            404 if op == Operation::ReadBlob => Error::BlobNotFound {
                at,
                digest: reference
                    .parse()
                    .unwrap_or_else(|_| crate::digest::Digest::sha256_of(b"")),
            },
            404 if self.code == "NAME_UNKNOWN" || lower.contains("does not exist") => {
                Error::RepositoryNotFound { at, op }
            }
            400 | 409 | 412
                if op == Operation::PushManifest
                    && (self.code == "TAG_INVALID" || status == 412 || status == 409)
                    && (lower.contains("immutable") || lower.contains("cannot be overwritten")) =>
            {
                Error::ImmutableTag {
                    at,
                    tag: reference.to_string(),
                    existing: None,
                }
            }
            // The registry hashed what it received and it was not what we announced: the bytes
            // were damaged on the way, so sending them again can help.
            400 if self.code == "DIGEST_INVALID" || self.code == "BLOB_UPLOAD_INVALID" => {
                Error::Transient {
                    at,
                    op,
                    detail: self.summary(),
                }
            }
            // The registry forgot the upload session (restarted, expired it, or a load
            // balancer sent the request to a node that never saw it): start the blob over.
            404 if op == Operation::UploadBlob || self.code == "BLOB_UPLOAD_UNKNOWN" => {
                Error::Transient {
                    at,
                    op,
                    detail: format!(
                        "the registry dropped the upload session ({})",
                        self.summary()
                    ),
                }
            }
            429 => Error::RateLimited {
                at,
                retry_after: self.retry_after,
            },
            // Storage behind a registry (S3) asking for fewer requests: load, not a fault.
            503 if self.code.eq_ignore_ascii_case("SlowDown") || lower.contains("slow down") => {
                Error::RateLimited {
                    at,
                    retry_after: self.retry_after,
                }
            }
            408 | 500..=599 => Error::Transient {
                at,
                op,
                detail: self.summary(),
            },
            _ => Error::Protocol {
                at,
                op,
                detail: self.summary(),
            },
        }
    }
}

async fn read_limited(mut resp: Response) -> Vec<u8> {
    let mut body = Vec::new();
    while let Ok(Some(chunk)) = resp.chunk().await {
        body.extend_from_slice(&chunk[..chunk.len().min(MAX_ERROR_BODY - body.len())]);
        if body.len() >= MAX_ERROR_BODY {
            break;
        }
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(status: u16, code: &str, message: &str) -> Failure {
        Failure {
            status: StatusCode::from_u16(status).unwrap(),
            code: code.into(),
            message: message.into(),
            retry_after: Some(Duration::from_secs(2)),
        }
    }

    fn at() -> Location {
        Location {
            registry: "123456789012.dkr.ecr.us-east-1.amazonaws.com".into(),
            repository: "proj".into(),
        }
    }

    #[test]
    fn maps_statuses_to_actionable_errors() {
        let cases: Vec<(Failure, Operation, bool, &str)> = vec![
            (failure(401, "UNAUTHORIZED", ""), Operation::ReadManifest, true, "no_credentials"),
            (failure(401, "UNAUTHORIZED", ""), Operation::ReadManifest, false, "denied"),
            (failure(403, "DENIED", "not authorized"), Operation::StartUpload, false, "denied"),
            (failure(404, "MANIFEST_UNKNOWN", ""), Operation::ReadManifest, false, "manifest_not_found"),
            (failure(404, "BLOB_UNKNOWN", ""), Operation::ReadBlob, false, "blob_not_found"),
            (failure(400, "TAG_INVALID", "The image tag 'api-1.4' already exists in the 'proj' repository and cannot be overwritten because the repository is immutable."), Operation::PushManifest, false, "immutable_tag"),
            (failure(412, "", "configured as immutable"), Operation::PushManifest, false, "immutable_tag"),
            (failure(400, "TAG_INVALID", "bad tag"), Operation::PushManifest, false, "protocol"),
            (failure(429, "TOOMANYREQUESTS", ""), Operation::ReadManifest, false, "rate_limited"),
            (failure(503, "", ""), Operation::ReadBlob, false, "transient"),
            (failure(503, "SlowDown", "Please reduce your request rate."), Operation::UploadBlob, false, "rate_limited"),
            (failure(503, "", "Slow Down"), Operation::ReadBlob, false, "rate_limited"),
            (failure(400, "DIGEST_INVALID", ""), Operation::UploadBlob, false, "transient"),
            (failure(404, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry"), Operation::UploadBlob, false, "transient"),
            (failure(404, "", ""), Operation::UploadBlob, false, "transient"),
            (failure(404, "NAME_UNKNOWN", "repository does not exist"), Operation::StartUpload, false, "repository_not_found"),
            (failure(404, "NAME_UNKNOWN", "repository name not known to registry"), Operation::ListTags, false, "repository_not_found"),
        ];
        for (f, op, anonymous, kind) in cases {
            let text = f.summary();
            let e = f.into_error(at(), op, "api-1.4", anonymous);
            assert_eq!(e.kind(), kind, "{text} → {e}");
        }
    }

    #[test]
    fn missing_repository_says_how_to_create_it_on_ecr() {
        let e =
            failure(404, "NAME_UNKNOWN", "").into_error(at(), Operation::StartUpload, "", false);
        assert!(
            e.to_string()
                .contains("aws ecr create-repository --repository-name proj"),
            "{e}"
        );
    }

    #[test]
    fn rate_limit_keeps_retry_after() {
        let e = failure(429, "", "").into_error(at(), Operation::ReadManifest, "", false);
        assert_eq!(e.retry_after(), Some(Duration::from_secs(2)));
    }
}
