//! Bounded retries with exponential backoff and full jitter, honouring `Retry-After`.
//!
//! Only errors [`Error::is_retryable`] says are transient are retried; the decision lives
//! there, not here. A throttled request ([`Error::RateLimited`]) is a registry that is
//! answering, only not as fast as asked: its retries do not count against the attempts,
//! and the wait before each is the registry's pace ([`super::pace`]), which every request
//! of that kind shares. They end once one request has been throttled for the policy's
//! `throttle_patience` without a break.

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
    /// How long one request may go on being throttled before it fails `rate_limited`.
    pub throttle_patience: Duration,
}

/// Where a request stands in its retries.
#[derive(Debug, Default)]
pub struct Attempts {
    /// Tries that failed for reasons other than throttling.
    failed: u32,
    /// Since when every answer has been a throttle.
    throttled_since: Option<std::time::Instant>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(20),
            throttle_patience: Duration::from_secs(300),
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

    /// Whether to try again after `error`, and after what pause; `None` to give up.
    pub fn again(&self, attempts: &mut Attempts, error: &Error) -> Option<Duration> {
        if !error.is_retryable() {
            return None;
        }
        if matches!(error, Error::RateLimited { .. }) {
            let since = *attempts
                .throttled_since
                .get_or_insert_with(std::time::Instant::now);
            // The registry's pace (cut by this refusal) spaces the next try; a Retry-After
            // it sent is kept there too.
            return (since.elapsed() < self.throttle_patience).then_some(Duration::ZERO);
        }
        attempts.throttled_since = None;
        attempts.failed += 1;
        (attempts.failed < self.max_attempts).then(|| self.delay(attempts.failed - 1, error))
    }

    /// Run `op` until it succeeds, fails permanently, or the attempts run out.
    pub async fn run<T, F, Fut>(&self, what: &str, mut op: F) -> Result<T>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T>>,
    {
        let mut attempts = Attempts::default();
        loop {
            let e = match op().await {
                Ok(v) => return Ok(v),
                Err(e) => e,
            };
            let Some(pause) = self.again(&mut attempts, &e) else {
                return Err(e);
            };
            if !pause.is_zero() {
                tracing::warn!(%what, attempt = attempts.failed, error = %e, pause_ms = pause.as_millis() as u64, "retrying");
                tokio::time::sleep(pause).await;
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
            ..RetryPolicy::default()
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

    fn throttled() -> Error {
        Error::RateLimited {
            at: Location {
                registry: "r".into(),
                repository: "a".into(),
            },
            retry_after: None,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn throttles_do_not_count_against_the_attempts() {
        let policy = RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        let calls = AtomicU32::new(0);
        // Twenty throttles, one transient failure, then success: two attempts suffice.
        let r: Result<u32> = policy
            .run("x", || async {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                match n {
                    0..20 => Err(throttled()),
                    20 => Err(transient()),
                    n => Ok(n),
                }
            })
            .await;
        assert_eq!(r.unwrap(), 21);
    }

    #[test]
    fn a_request_throttled_past_its_patience_gives_up() {
        let policy = RetryPolicy {
            throttle_patience: Duration::from_millis(30),
            ..RetryPolicy::default()
        };
        let mut attempts = Attempts::default();
        assert_eq!(
            policy.again(&mut attempts, &throttled()),
            Some(Duration::ZERO)
        );
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(policy.again(&mut attempts, &throttled()), None);
        // Any other answer in between starts the patience over.
        let mut attempts = Attempts::default();
        policy.again(&mut attempts, &throttled());
        std::thread::sleep(Duration::from_millis(40));
        assert!(policy.again(&mut attempts, &transient()).is_some());
        assert_eq!(
            policy.again(&mut attempts, &throttled()),
            Some(Duration::ZERO)
        );
    }

    #[tokio::test]
    async fn permanent_errors_are_not_retried() {
        let policy = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
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
            ..RetryPolicy::default()
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
