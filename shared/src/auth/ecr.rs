//! Amazon ECR: registry hosts `<account>.dkr.ecr.<region>.amazonaws.com` take HTTP basic
//! auth with user `AWS` and a password from `GetAuthorizationToken`, valid for 12 hours.
//!
//! The provider loads AWS configuration (the standard credential chain, and
//! `AWS_ENDPOINT_URL` for a local endpoint) once per region, and caches each token until
//! shortly before it expires, so warm Lambda invocations and long syncs ask ECR once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use base64::Engine;
use tokio::sync::Mutex;

use super::Credential;
use crate::aws::AwsClients;
pub use crate::ecr_host::EcrHost;
use crate::error::{Error, Result};

/// Refresh this long before ECR says a token expires, so a copy that starts with a token
/// never finishes with an expired one.
const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// A token whose expiry is already inside the margin (clock skew, emulators) is still reused
/// for this long instead of being fetched for every request.
const MIN_REUSE: Duration = Duration::from_secs(60);

struct Cached {
    credential: Credential,
    reuse_until: SystemTime,
}

/// Fetches and caches ECR authorization tokens.
pub struct EcrTokenProvider {
    aws: Arc<AwsClients>,
    tokens: Mutex<HashMap<EcrHost, Cached>>,
}

impl Default for EcrTokenProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl EcrTokenProvider {
    /// A provider that loads the AWS configuration from the environment on first use.
    pub fn new() -> Self {
        Self::with_clients(Arc::new(AwsClients::from_environment()))
    }

    /// A provider on AWS clients the caller already has (a Lambda's, or a test's pointing
    /// at a local endpoint). The region is taken from each registry host.
    pub fn with_clients(aws: Arc<AwsClients>) -> Self {
        EcrTokenProvider {
            aws,
            tokens: Mutex::new(HashMap::new()),
        }
    }

    /// Forget the token for `host` after the registry refused `rejected`. A token cached
    /// since (by a concurrent request that saw the same refusal) is kept, so a burst of
    /// 401s costs one `GetAuthorizationToken`, not one each.
    pub async fn invalidate(&self, host: &EcrHost, rejected: &Credential) {
        let mut tokens = self.tokens.lock().await;
        if tokens.get(host).is_some_and(|c| &c.credential == rejected) {
            tokens.remove(host);
        }
    }

    /// The basic-auth credential for `host`, from cache when still fresh.
    pub async fn credential(&self, host: &EcrHost) -> Result<Credential> {
        let mut tokens = self.tokens.lock().await;
        if let Some(c) = tokens.get(host) {
            if SystemTime::now() < c.reuse_until {
                return Ok(c.credential.clone());
            }
        }
        let client = self.aws.ecr(&host.region).await;
        let out = client
            // No registryIds: the parameter is deprecated, and a token serves every registry
            // the identity may access.
            .get_authorization_token()
            .send()
            .await
            .map_err(|e| match crate::aws::error("ECR GetAuthorizationToken", &e) {
                // A throttled, failing or unreachable ECR answers later; only a refusal is
                // about the identity, and no retry mends that.
                again @ Error::Aws {
                    retryable: true, ..
                } => again,
                _ => Error::Credentials(format!(
                    "ECR GetAuthorizationToken for {host} failed ({}); the AWS identity needs ecr:GetAuthorizationToken",
                    crate::aws::describe(&e)
                )),
            })?;
        let data = out
            .authorization_data()
            .first()
            .ok_or_else(|| Error::Credentials("ECR returned no authorization data".into()))?;
        let decoded = data
            .authorization_token()
            .and_then(|t| base64::engine::general_purpose::STANDARD.decode(t).ok())
            .and_then(|b| String::from_utf8(b).ok())
            .ok_or_else(|| {
                Error::Credentials("ECR returned a malformed authorization token".into())
            })?;
        let credential = Credential::from_user_colon_password(&decoded).map_err(|_| {
            Error::Credentials("ECR returned a malformed authorization token".into())
        })?;
        let now = SystemTime::now();
        let expires = data
            .expires_at()
            .and_then(|t| SystemTime::try_from(*t).ok())
            .unwrap_or(now + Duration::from_secs(12 * 3600));
        let reuse_until = expires
            .checked_sub(REFRESH_MARGIN)
            .filter(|t| *t > now + MIN_REUSE)
            .unwrap_or(now + MIN_REUSE);
        tokens.insert(
            host.clone(),
            Cached {
                credential: credential.clone(),
                reuse_until,
            },
        );
        Ok(credential)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// An ECR endpoint on loopback that answers every request with `status` and `body`, the
    /// way ECR's JSON protocol words its errors.
    async fn ecr_answering(status: &'static str, body: &'static str) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut buf = [0u8; 4096];
                    // The whole request: its head, then as many bytes as it says it has.
                    loop {
                        let n = conn.read(&mut buf).await.unwrap_or(0);
                        if n == 0 {
                            return;
                        }
                        request.extend_from_slice(&buf[..n]);
                        let text = String::from_utf8_lossy(&request).to_lowercase();
                        if let Some(end) = text.find("\r\n\r\n") {
                            let length = text
                                .lines()
                                .find_map(|l| l.strip_prefix("content-length:"))
                                .and_then(|v| v.trim().parse::<usize>().ok())
                                .unwrap_or(0);
                            if request.len() >= end + 4 + length {
                                break;
                            }
                        }
                    }
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = conn.write_all(answer.as_bytes()).await;
                });
            }
        });
        url
    }

    fn provider(endpoint: &str) -> EcrTokenProvider {
        let config = aws_config::SdkConfig::builder()
            .endpoint_url(endpoint)
            .region(aws_config::Region::new("eu-west-1"))
            .credentials_provider(aws_sdk_ecr::config::SharedCredentialsProvider::new(
                aws_sdk_ecr::config::Credentials::new(
                    "AKIDTEST",
                    "not-a-secret",
                    None,
                    None,
                    "test",
                ),
            ))
            // The SDK's own retries would only slow the test; ferry's retry is what is tested.
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .behavior_version(aws_config::BehaviorVersion::latest())
            .build();
        EcrTokenProvider::with_clients(Arc::new(AwsClients::from_config(config)))
    }

    #[tokio::test]
    async fn a_throttled_or_failing_token_request_is_retried_and_a_denial_is_not() {
        let host = EcrHost::new("123456789012", "eu-west-1");
        let cases = [
            (
                "400 Bad Request",
                r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#,
                true,
            ),
            ("503 Service Unavailable", "", true),
            ("500 Internal Server Error", "{}", true),
            (
                "400 Bad Request",
                r#"{"__type":"AccessDeniedException","message":"not authorized to perform: ecr:GetAuthorizationToken"}"#,
                false,
            ),
        ];
        for (status, body, retryable) in cases {
            let endpoint = ecr_answering(status, body).await;
            let err = provider(&endpoint).credential(&host).await.unwrap_err();
            assert_eq!(err.is_retryable(), retryable, "{status} {body}: {err}");
            if !retryable {
                assert_eq!(err.kind(), "credentials", "{err}");
                assert!(
                    err.to_string().contains("ecr:GetAuthorizationToken"),
                    "{err}"
                );
            }
        }
    }

    #[tokio::test]
    async fn an_unreachable_ecr_is_retried() {
        // A port nothing listens on: the request never gets an answer.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let err = provider(&endpoint)
            .credential(&EcrHost::new("123456789012", "eu-west-1"))
            .await
            .unwrap_err();
        assert!(err.is_retryable(), "{err}");
    }
}
