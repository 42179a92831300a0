//! Bounded retries with exponential backoff and full jitter, honouring `Retry-After`.
//!
//! Only errors [`Error::is_retryable`] says are transient are retried; the decision lives
//! there, not here.

use std::future::Future;
use std::time::Duration;

use rand::Rng;

use crate::error::{Error, Result};

/// Longest `Retry-After` ferry will honour before giving up on that attempt budget; a
/// registry asking for more is effectively down for this run.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);

#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Attempts in total, including the first (1 = no retry).
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
        }
    }
}

impl RetryPolicy {
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            ..Default::default()
        }
    }

    /// The pause before attempt `attempt + 1` (0-based) after `error`.
    pub fn delay(&self, attempt: u32, error: &Error) -> Duration {
        if let Some(asked) = error.retry_after() {
            return asked.min(MAX_RETRY_AFTER);
        }
        let exp = self
            .base_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_delay);
        // Full jitter: spreads out many copiers that failed together.
        let jittered =
            rand::rng().random_range(exp.as_millis() as u64 / 2..=exp.as_millis() as u64);
        Duration::from_millis(jittered)
    }

    /// Run `op` until it succeeds, fails permanently, or the attempts run out.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempt = 0;
        loop {
            match op().await {
                Ok(v) => return Ok(v),
                Err(e) if e.is_retryable() && attempt + 1 < self.max_attempts => {
                    let pause = self.delay(attempt, &e);
                    tracing::warn!(%what, attempt = attempt + 1, error = %e, pause_ms = pause.as_millis() as u64, "retrying");
                    tokio::time::sleep(pause).await;
                    attempt += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{Location, Operation};
    use std::sync::atomic::{AtomicU32, Ordering};

    fn transient() -> Error {
        Error::Transient {
            at: Location {
                registry: "r".into(),
                repository: "a".into(),
            },
            op: Operation::ReadBlob,
            detail: "reset".into(),
        }
    }

    #[tokio::test]
    async fn retries_transient_errors_up_to_the_limit() {
        let policy = RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let r: Result<()> = policy
            .run("x", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(transient())
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        let calls = AtomicU32::new(0);
        let r: Result<()> = policy
            .run("x", || async {
                calls.fetch_add(1, Ordering::SeqCst);
                Err(Error::Config("bad".into()))
            })
            .await;
        assert!(r.is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn backoff_grows_is_capped_and_honours_retry_after() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(1),
        };
        let e = transient();
        assert!(p.delay(0, &e) <= Duration::from_millis(100));
        assert!(p.delay(3, &e) >= Duration::from_millis(400));
        assert!(p.delay(9, &e) <= Duration::from_secs(1));
        let limited = Error::RateLimited {
            at: Location {
                registry: "r".into(),
                repository: "a".into(),
            },
            retry_after: Some(Duration::from_secs(7)),
        };
        assert_eq!(p.delay(0, &limited), Duration::from_secs(7));
    }
}
