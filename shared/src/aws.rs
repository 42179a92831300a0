//! Turning AWS SDK errors into one line a user can act on.
//!
//! The SDK's full error context runs to dozens of lines (every credential provider it
//! tried, nested debug output). Users need the service's own code and message, or for a
//! client-side failure the first line of what went wrong; with no credentials at all, what
//! to set.

use std::error::Error as StdError;

use aws_sdk_ecr::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

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
