//! Sending messages to SQS without losing any: `SendMessageBatch` ten at a time, entries
//! SQS rejects are sent again with backoff, and whatever still fails is an error the caller
//! sees (the planner's invocation fails, so nothing is silently dropped).

use std::time::Duration;

use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use futures::{stream, StreamExt};

use crate::error::{Error, Result};

/// SQS takes at most ten entries per batch call.
const BATCH: usize = 10;
const ATTEMPTS: u32 = 5;
/// SendMessageBatch calls in flight at once.
const BATCHES_AT_ONCE: usize = 8;

#[derive(Clone)]
pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            url: url.into(),
        }
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// Send every body; returns how many were sent. Batches go out a few at a time: each
    /// SendMessageBatch is a round trip to SQS, and a large registry's thousands of
    /// messages sent one batch after another would spend the planner's time waiting.
    pub async fn send_all(&self, bodies: &[String]) -> Result<usize> {
        let sent: Vec<Result<()>> = stream::iter(bodies.chunks(BATCH))
            .map(|chunk| self.send_batch(chunk))
            .buffer_unordered(BATCHES_AT_ONCE)
            .collect()
            .await;
        sent.into_iter().collect::<Result<Vec<()>>>()?;
        Ok(bodies.len())
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<()> {
        // Entry ids are positions in this chunk, so a failed entry maps back to its body.
        let mut pending: Vec<usize> = (0..bodies.len()).collect();
        let mut last_error = String::new();
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let entries = pending
                .iter()
                .map(|&i| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(&bodies[i])
                        .build()
                        .expect("id and body are set")
                })
                .collect();
            let out = match self
                .client
                .send_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries))
                .send()
                .await
            {
                Ok(out) => out,
                Err(e) => {
                    let err = crate::aws::error("sqs:SendMessageBatch", &e);
                    if !err.is_retryable() {
                        return Err(err);
                    }
                    last_error = err.to_string();
                    continue;
                }
            };
            let failed: Vec<usize> = out
                .failed()
                .iter()
                .filter_map(|f| {
                    last_error = format!("{}: {}", f.code(), f.message().unwrap_or_default());
                    f.id().parse().ok()
                })
                .collect();
            if failed.is_empty() {
                return Ok(());
            }
            tracing::warn!(
                failed = failed.len(),
                attempt,
                "SQS refused some entries; sending them again"
            );
            pending = failed;
        }
        Err(Error::Aws {
            action: "sqs:SendMessageBatch",
            detail: format!(
                "{} messages still refused after {ATTEMPTS} attempts: {last_error}",
                pending.len()
            ),
            retryable: true,
        })
    }
}
