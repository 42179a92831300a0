//! One way to handle an SQS batch, for both functions: the copier's copy jobs and the
//! planner's repository tasks.
//!
//! A function triggered by SQS gets records, does each one's work (several at once), and
//! answers which to deliver again (`ReportBatchItemFailures`). What becomes of a record
//! depends only on how its work ended, its [`Disposition`]:
//! - done: deleted from the queue;
//! - a failure that may pass (network, throttling, 5xx): delivered again, after a
//!   visibility timeout that grows with each receive, so a registry that is down is not
//!   hammered;
//! - a failure that cannot pass (malformed message, immutable tag, source gone, access
//!   denied): sent straight to the dead-letter queue with its reason in message attributes
//!   ([`ERROR_KIND`], [`ERROR`]), and deleted; retrying it would only burn time. If that
//!   send fails, the record is delivered again instead, so nothing is lost either way;
//! - a failure that may pass, on the queue's last allowed delivery: the same, with kind
//!   `retries_exhausted` and the last failure as the reason, rather than being moved by
//!   SQS's redrive with no word of what went wrong;
//! - work that waits for a registry's spent pull quota (hours, where the visibility back-off
//!   is minutes): parked. The record is sent again to its queue as a new message, delayed
//!   until the quota's window allows (SQS delays at most 15 minutes, so a longer wait takes
//!   several hops, each a message the function parks again without asking any registry),
//!   and deleted. A new message starts with no receives: parking never counts towards the
//!   queue's `maxReceiveCount`, and never sends anything to the dead-letter queue. If the
//!   send fails, the record stays invisible for the wait instead (up to 12 hours), which
//!   costs it one receive.

use std::future::Future;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_lambda_events::event::sqs::SqsEvent;
use aws_sdk_sqs::types::MessageAttributeValue;
use futures::{stream, StreamExt};
use serde_json::{json, Value};

use crate::error::Error;

/// Dead-letter message attributes: the failure's stable kind, its reason, and the id of
/// the message that failed.
pub const ERROR_KIND: &str = "ferry-error-kind";
pub const ERROR: &str = "ferry-error";
pub const MESSAGE_ID: &str = "ferry-message-id";
/// The attribute a parked message carries: when (seconds since the Unix epoch) it may be
/// tried again.
pub const PARKED_UNTIL: &str = "ferry-parked-until";

/// The kind of a record whose body is not a message this queue takes.
pub const BAD_MESSAGE: &str = "bad_message";
/// The kind of a record that failed retryably on its last allowed delivery.
pub const RETRIES_EXHAUSTED: &str = "retries_exhausted";

/// The longest delay SQS gives a message it is sent.
const MAX_DELAY: Duration = Duration::from_secs(900);
/// The longest visibility timeout SQS allows.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);
/// SQS caps a message with its attributes at 256 KiB; reasons are short, but a
/// pathological one is cut rather than making the dead-letter send fail.
const MAX_REASON_CHARS: usize = 4000;

/// One SQS record, as the handlers need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub message_id: String,
    pub body: String,
    pub receipt_handle: String,
    /// Deliveries so far, this one included.
    pub receive_count: u32,
    /// For a parked message, when it may be tried again.
    pub parked_until: Option<SystemTime>,
}

/// The records of an SQS event, or why `event` is not one. `function` names the function
/// for the error ("the copier").
pub fn records(event: &Value, function: &str) -> Result<Vec<Record>, String> {
    let parsed: SqsEvent = serde_json::from_value(event.clone())
        .map_err(|e| format!("{function} takes SQS events ({{\"Records\": [...]}}): {e}"))?;
    parsed
        .records
        .into_iter()
        .enumerate()
        .map(|(i, m)| {
            if m.event_source.as_deref() != Some("aws:sqs") {
                return Err(format!(
                    "Records[{i}] comes from {:?}, not aws:sqs; only its queue may trigger {function}",
                    m.event_source.as_deref().unwrap_or("nowhere")
                ));
            }
            Ok(Record {
                message_id: m.message_id.unwrap_or_default(),
                body: m.body.unwrap_or_default(),
                receipt_handle: m.receipt_handle.unwrap_or_default(),
                receive_count: m
                    .attributes
                    .get("ApproximateReceiveCount")
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1),
                parked_until: m
                    .message_attributes
                    .get(PARKED_UNTIL)
                    .and_then(|a| a.string_value.as_deref())
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            })
        })
        .collect()
}

/// How one record's work ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disposition {
    Done,
    /// May pass: deliver it again.
    Retry {
        reason: String,
    },
    /// Waits for a spent pull quota until then.
    Park {
        until: SystemTime,
        reason: String,
    },
    /// Cannot pass: to the dead-letter queue with this kind and reason.
    Permanent {
        kind: String,
        reason: String,
    },
}

impl Disposition {
    /// The one classification of an error: retryable errors are tried again, a spent
    /// quota parks, everything else is permanent under the error's own kind.
    pub fn of(e: &Error) -> Disposition {
        if e.is_retryable() {
            Disposition::Retry {
                reason: e.to_string(),
            }
        } else if let Some(until) = e.resets_at() {
            Disposition::Park {
                until,
                reason: e.to_string(),
            }
        } else {
            Disposition::Permanent {
                kind: e.kind().to_string(),
                reason: e.to_string(),
            }
        }
    }

    /// A body that is not a message this queue takes.
    pub fn bad_message(reason: impl Into<String>) -> Disposition {
        Disposition::Permanent {
            kind: BAD_MESSAGE.into(),
            reason: reason.into(),
        }
    }
}

/// What SQS is told of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Delete it from the queue (done, parked as a new message, or dead-lettered).
    Done,
    /// Leave it for SQS to deliver again.
    Retry,
}

/// The partial-batch response (`ReportBatchItemFailures`): only the records to retry.
pub fn batch_response(outcomes: &[(String, BatchOutcome)]) -> Value {
    let failures: Vec<Value> = outcomes
        .iter()
        .filter(|(_, o)| *o == BatchOutcome::Retry)
        .map(|(id, _)| json!({"itemIdentifier": id}))
        .collect();
    json!({ "batchItemFailures": failures })
}

/// The queue a function's records come from, and where the ones that cannot succeed go.
#[derive(Clone)]
pub struct BatchQueue {
    pub sqs: aws_sdk_sqs::Client,
    /// The queue's URL: to lengthen the visibility of retried records, and to park.
    pub url: Option<String>,
    pub dead_letter_url: Option<String>,
    /// The queue's `maxReceiveCount`, so the last delivery is known.
    pub max_receives: Option<u32>,
}

impl BatchQueue {
    /// Do `work` for every record, `concurrency` at once, settle each by its disposition,
    /// and return the batch response with what each work returned, in no set order.
    pub async fn handle<T, F, Fut>(
        &self,
        records: Vec<Record>,
        concurrency: usize,
        work: F,
    ) -> (Value, Vec<T>)
    where
        F: Fn(Record) -> Fut,
        Fut: Future<Output = (Disposition, T)>,
    {
        let work = &work;
        let settled: Vec<(String, BatchOutcome, T)> = stream::iter(records)
            .map(|record| async move {
                let id = record.message_id.clone();
                let (disposition, out) = work(record.clone()).await;
                (id, self.settle(&record, disposition).await, out)
            })
            .buffer_unordered(concurrency.max(1))
            .collect()
            .await;
        let mut outcomes = Vec::with_capacity(settled.len());
        let mut outs = Vec::with_capacity(settled.len());
        for (id, outcome, out) in settled {
            outcomes.push((id, outcome));
            outs.push(out);
        }
        (batch_response(&outcomes), outs)
    }

    /// What to tell SQS of `record`, having done what its disposition asks.
    pub async fn settle(&self, record: &Record, disposition: Disposition) -> BatchOutcome {
        let id = &record.message_id;
        match disposition {
            Disposition::Done => BatchOutcome::Done,
            Disposition::Retry { reason } if self.is_last_delivery(record) => {
                let reason = format!(
                    "gave up after {} deliveries; the last failure: {reason}",
                    record.receive_count
                );
                self.give_up(record, RETRIES_EXHAUSTED, &reason).await
            }
            Disposition::Retry { reason } => {
                tracing::warn!(message_id = %id, receive_count = record.receive_count, %reason, "failed; SQS will deliver it again");
                self.hide(record, backoff_for(record.receive_count)).await;
                BatchOutcome::Retry
            }
            Disposition::Park { until, reason } => {
                tracing::warn!(message_id = %id, %reason, parked_until = %httpdate::fmt_http_date(until), "waiting for a pull quota; parked");
                self.park(record, until).await
            }
            Disposition::Permanent { kind, reason } => self.give_up(record, &kind, &reason).await,
        }
    }

    fn is_last_delivery(&self, record: &Record) -> bool {
        self.max_receives
            .is_some_and(|max| record.receive_count >= max)
    }

    /// Have `record` delivered again once `until` has come, as a new message (see the
    /// module comment); failing that, by hiding this one until then.
    async fn park(&self, record: &Record, until: SystemTime) -> BatchOutcome {
        let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
        let Some(url) = &self.url else {
            return BatchOutcome::Retry;
        };
        let epoch = until
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            .to_string();
        let attribute = MessageAttributeValue::builder()
            .data_type("Number")
            .string_value(epoch)
            .build()
            .expect("type and value are set");
        let sent = self
            .sqs
            .send_message()
            .queue_url(url)
            .message_body(&record.body)
            .delay_seconds(wait.min(MAX_DELAY).as_secs() as i32)
            .message_attributes(PARKED_UNTIL, attribute)
            .send()
            .await;
        match sent {
            Ok(_) => BatchOutcome::Done,
            Err(e) => {
                tracing::warn!(message_id = %record.message_id, error = %crate::aws::describe(&e), "could not park by sending again; hiding the message for the wait instead");
                self.hide(record, wait.min(MAX_VISIBILITY)).await;
                BatchOutcome::Retry
            }
        }
    }

    /// Send `record` to the dead-letter queue with its reason and drop it from the queue;
    /// if that send fails, leave it to SQS (redelivery, then redrive).
    async fn give_up(&self, record: &Record, kind: &str, reason: &str) -> BatchOutcome {
        tracing::error!(message_id = %record.message_id, %kind, %reason, "cannot succeed; sending to the dead-letter queue");
        match self.dead_letter(record, kind, reason).await {
            Ok(()) => BatchOutcome::Done,
            Err(e) => {
                tracing::error!(message_id = %record.message_id, error = %e, "dead-letter send failed; leaving the message for redrive");
                BatchOutcome::Retry
            }
        }
    }

    async fn dead_letter(&self, record: &Record, kind: &str, reason: &str) -> Result<(), Error> {
        let url = self.dead_letter_url.as_ref().ok_or_else(|| Error::Config(
            "no dead-letter queue configured (FERRY_DEAD_LETTER_QUEUE_URL); the queue's redrive policy will move the message after its retries".into(),
        ))?;
        let text = |v: &str| {
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(v)
                .build()
                .expect("type and value are set")
        };
        let reason: String = reason.chars().take(MAX_REASON_CHARS).collect();
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(&record.body)
            .message_attributes(ERROR_KIND, text(kind))
            .message_attributes(ERROR, text(&reason))
            .message_attributes(MESSAGE_ID, text(&record.message_id))
            .send()
            .await
            .map_err(|e| crate::aws::error("sqs:SendMessage", &e))?;
        Ok(())
    }

    /// Keep `record` invisible for `wait`, best effort: without it SQS still delivers it
    /// again after the queue's own timeout.
    async fn hide(&self, record: &Record, wait: Duration) {
        let Some(url) = &self.url else { return };
        if let Err(e) = self
            .sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&record.receipt_handle)
            .visibility_timeout(wait.as_secs() as i32)
            .send()
            .await
        {
            tracing::warn!(message_id = %record.message_id, error = %crate::aws::describe(&e), "could not lengthen the visibility timeout");
        }
    }
}

/// How long a record that failed on its `receive_count`-th delivery stays invisible:
/// 30 s, 60 s, … up to 15 min.
pub fn backoff_for(receive_count: u32) -> Duration {
    Duration::from_secs((30u64 << receive_count.saturating_sub(1).min(5)).min(900))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_retries_are_reported() {
        let out = batch_response(&[
            ("a".into(), BatchOutcome::Done),
            ("b".into(), BatchOutcome::Retry),
        ]);
        assert_eq!(out, json!({"batchItemFailures": [{"itemIdentifier": "b"}]}));
    }

    #[test]
    fn records_are_read_with_their_receive_count_and_parking() {
        let event = json!({"Records": [
            {"messageId": "m1", "receiptHandle": "h1", "body": "{}", "eventSource": "aws:sqs",
             "attributes": {"ApproximateReceiveCount": "3"},
             "messageAttributes": {PARKED_UNTIL: {"stringValue": "1800000000", "dataType": "Number"}}},
            {"messageId": "m2", "receiptHandle": "h2", "body": "x", "eventSource": "aws:sqs"}
        ]});
        let got = records(&event, "the copier").unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(
            (got[0].message_id.as_str(), got[0].receive_count),
            ("m1", 3)
        );
        assert_eq!(
            got[0].parked_until,
            Some(UNIX_EPOCH + Duration::from_secs(1_800_000_000))
        );
        assert_eq!((got[1].receive_count, got[1].parked_until), (1, None));
    }

    #[test]
    fn what_is_not_an_sqs_event_is_named() {
        let cases = [
            (json!({"action": "sync"}), "takes SQS events"),
            (json!({"Records": "no"}), "takes SQS events"),
            (
                json!({"Records": [{"eventSource": "aws:s3", "body": "x"}]}),
                "Records[0] comes from \"aws:s3\"",
            ),
        ];
        for (event, says) in cases {
            let e = records(&event, "the copier").unwrap_err();
            assert!(e.contains(says), "{event}: {e}");
        }
    }

    #[test]
    fn errors_are_classified_once() {
        use crate::error::{Location, Operation};
        let at = Location {
            registry: "r".into(),
            repository: "app".into(),
        };
        let until = SystemTime::now() + Duration::from_secs(3600);
        let cases = [
            (
                Error::Transient {
                    at: at.clone(),
                    op: Operation::ReadBlob,
                    detail: "reset".into(),
                },
                "retry",
            ),
            (
                Error::QuotaExhausted {
                    at: at.clone(),
                    limit: 100,
                    window: Duration::from_secs(21600),
                    resets_at: until,
                },
                "park",
            ),
            (
                Error::Denied {
                    at: at.clone(),
                    op: Operation::PushManifest,
                    message: "no".into(),
                },
                "denied",
            ),
            (Error::Config("bad".into()), "config"),
        ];
        for (e, expected) in cases {
            let got = match Disposition::of(&e) {
                Disposition::Retry { .. } => "retry".to_string(),
                Disposition::Park { until: u, .. } => {
                    assert_eq!(u, until);
                    "park".to_string()
                }
                Disposition::Permanent { kind, .. } => kind,
                Disposition::Done => "done".to_string(),
            };
            assert_eq!(got, expected, "{e}");
        }
    }

    #[test]
    fn backoff_grows_to_fifteen_minutes() {
        let secs: Vec<u64> = (1..=8).map(|n| backoff_for(n).as_secs()).collect();
        assert_eq!(secs, [30, 60, 120, 240, 480, 900, 900, 900]);
    }
}
