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
use crate::error::{Error, Result};

/// Refresh this long before ECR says a token expires, so a copy that starts with a token
/// never finishes with an expired one.
const REFRESH_MARGIN: Duration = Duration::from_secs(15 * 60);
/// A token whose expiry is already inside the margin (clock skew, emulators) is still reused
/// for this long instead of being fetched for every request.
const MIN_REUSE: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EcrHost {
    pub account: String,
    pub region: String,
}

impl EcrHost {
    /// Recognize an ECR registry host (including FIPS and China partitions).
    pub fn parse(host: &str) -> Option<EcrHost> {
        let host = host.split(':').next()?;
        let labels: Vec<&str> = host.split('.').collect();
        let (account, rest) = labels.split_first()?;
        if account.len() != 12 || !account.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        match rest {
            ["dkr", ecr, region, "amazonaws", "com"]
            | ["dkr", ecr, region, "amazonaws", "com", "cn"]
                if (*ecr == "ecr" || *ecr == "ecr-fips") && !region.is_empty() =>
            {
                Some(EcrHost {
                    account: account.to_string(),
                    region: region.to_string(),
                })
            }
            _ => None,
        }
    }
}

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
            .map_err(|e| {
                Error::Credentials(format!(
                    "ECR GetAuthorizationToken for {}.dkr.ecr.{} failed ({}); the AWS identity needs ecr:GetAuthorizationToken",
                    host.account,
                    host.region,
                    crate::aws::describe(&e)
                ))
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

    #[test]
    fn recognizes_ecr_hosts_only() {
        let cases = [
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
                Some(("123456789012", "eu-west-1")),
            ),
            (
                "123456789012.dkr.ecr-fips.us-east-1.amazonaws.com",
                Some(("123456789012", "us-east-1")),
            ),
            (
                "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn",
                Some(("123456789012", "cn-north-1")),
            ),
            ("12345.dkr.ecr.eu-west-1.amazonaws.com", None),
            ("public.ecr.aws", None),
            ("registry.gitlab.com", None),
            (
                "123456789012.dkr.ecr.eu-west-1.amazonaws.com.evil.com",
                None,
            ),
        ];
        for (host, expected) in cases {
            let got = EcrHost::parse(host);
            assert_eq!(
                got.as_ref()
                    .map(|h| (h.account.as_str(), h.region.as_str())),
                expected,
                "{host}"
            );
        }
    }
}
