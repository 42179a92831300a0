//! Turning AWS SDK errors into one line a user can act on.
//!
//! The SDK's full error context runs to dozens of lines (every credential provider it
//! tried, nested debug output). Users need the service's own code and message, or for a
//! client-side failure the first line of what went wrong; with no credentials at all, what
//! to set.

use std::collections::HashMap;
use std::error::Error as StdError;

use aws_sdk_ecr::config::http::HttpResponse;
use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use tokio::sync::Mutex;

use crate::error::Error;

/// AWS configuration loaded once, and ECR clients per region built from it (ECR registries
/// of several regions may be synced in one run).
pub struct AwsClients {
    base: tokio::sync::OnceCell<aws_config::SdkConfig>,
    ecr: Mutex<HashMap<String, aws_sdk_ecr::Client>>,
}

impl Default for AwsClients {
    fn default() -> Self {
        Self::from_environment()
    }
}

impl AwsClients {
    /// Load the standard configuration (credential chain, `AWS_REGION`,
    /// `AWS_ENDPOINT_URL`) on first use.
    pub fn from_environment() -> Self {
        AwsClients {
            base: tokio::sync::OnceCell::new(),
            ecr: Mutex::new(HashMap::new()),
        }
    }

    pub fn from_config(config: aws_config::SdkConfig) -> Self {
        AwsClients {
            base: tokio::sync::OnceCell::new_with(Some(config)),
            ecr: Mutex::new(HashMap::new()),
        }
    }

    pub async fn config(&self) -> &aws_config::SdkConfig {
        self.base
            .get_or_init(|| aws_config::load_defaults(aws_config::BehaviorVersion::latest()))
            .await
    }

    /// An SQS client in the configured region.
    pub async fn sqs(&self) -> aws_sdk_sqs::Client {
        aws_sdk_sqs::Client::new(self.config().await)
    }

    /// An ECR client for `region`.
    pub async fn ecr(&self, region: &str) -> aws_sdk_ecr::Client {
        let mut clients = self.ecr.lock().await;
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let config = aws_sdk_ecr::config::Builder::from(self.config().await)
            .region(aws_config::Region::new(region.to_string()))
            .build();
        let client = aws_sdk_ecr::Client::from_conf(config);
        clients.insert(region.to_string(), client.clone());
        client
    }
}

/// An [`Error::Aws`] for a failed call, retryable when AWS throttled or failed on its side
/// (by its error code, or a 429 or 5xx answer without one) or the request never got an
/// answer.
pub fn error<E>(action: &'static str, e: &SdkError<E, HttpResponse>) -> Error
where
    E: ProvideErrorMetadata + StdError + 'static,
{
    let retryable = match e {
        SdkError::ServiceError(s) => {
            let status = s.raw().status().as_u16();
            status == 429
                || status >= 500
                || s.err().code().is_some_and(|c| {
                    c.contains("Throttl")
                        || c.contains("TooManyRequests")
                        || c.contains("ServiceUnavailable")
                        || c.contains("InternalFailure")
                        || c.contains("InternalService")
                        || c.contains("ServerException")
                })
        }
        SdkError::TimeoutError(_) | SdkError::ResponseError(_) => true,
        SdkError::DispatchFailure(d) => !d.is_user(),
        _ => false,
    };
    let detail = describe(e);
    Error::Aws {
        action,
        retryable: retryable && detail != NO_CREDENTIALS,
        detail,
    }
}

const NO_CREDENTIALS: &str = "no AWS credentials found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, choose a profile with AWS_PROFILE, or run with an IAM role";
const MAX_LEN: usize = 300;

/// One line describing an SDK failure, without request ids or provider-chain dumps.
pub fn describe<E, R>(error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + StdError + 'static,
    R: std::fmt::Debug,
{
    if let Some(service) = error.as_service_error() {
        return match (service.code(), service.message()) {
            (Some(code), Some(message)) => format!("{code}: {message}"),
            (Some(code), None) => code.to_string(),
            _ => first_line(&DisplayErrorContext(error).to_string()),
        };
    }
    let full = DisplayErrorContext(error).to_string();
    if full.contains("no credentials found") || full.contains("CredentialsNotLoaded") {
        return NO_CREDENTIALS.to_string();
    }
    first_line(&full)
}

fn first_line(text: &str) -> String {
    let line = text.lines().next().unwrap_or_default().trim();
    match line.char_indices().nth(MAX_LEN) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_context_is_cut_to_its_first_line() {
        assert_eq!(
            first_line("dispatch failure: io\n  more\n  more"),
            "dispatch failure: io"
        );
        let long = "x".repeat(400);
        assert_eq!(first_line(&long).chars().count(), MAX_LEN + 1);
    }
}
