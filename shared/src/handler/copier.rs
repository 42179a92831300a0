//! The copier function's handler: an SQS batch of copy messages in, a partial-batch
//! response out.
//!
//! Records are copied concurrently (bounded). What becomes of each one:
//! - copied, already up to date, or kept (overwrite off): deleted from the queue;
//! - a failure that may pass (network, throttling, 5xx): reported in `batchItemFailures`
//!   so SQS delivers it again, after a visibility timeout that grows with each receive;
//! - a failure that cannot pass (malformed message, immutable tag, source gone, access
//!   denied): sent straight to the dead-letter queue with its reason in message
//!   attributes, and deleted — retrying it would only burn time. If that send fails, the
//!   record is retried instead, so nothing is lost either way;
//! - a retryable failure on the queue's last allowed delivery: the same, with kind
//!   `retries_exhausted` and the last failure as the reason;
//! - an image that waits for a registry's spent pull quota (hours, where the visibility
//!   back-off is minutes): parked. It is sent again to the copy queue as a new message,
//!   delayed until the quota's window allows (SQS delays at most 15 minutes, so a longer
//!   wait takes several hops, each a message that a copier re-parks without asking any
//!   registry), and deleted. A new message starts with no receives: parking never counts
//!   towards the queue's `maxReceiveCount`, and never sends an image to the dead-letter
//!   queue. If the send fails, the record stays invisible for the wait instead (up to 12
//!   hours), which costs it one receive.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_sqs::types::MessageAttributeValue;
use futures::{stream, StreamExt};
use serde_json::Value;

use super::{batch_response, metrics, BatchOutcome};
use crate::copy::Copier;
use crate::error::{Error, Result};
use crate::jobs::{JobError, JobRunner};
use crate::message::Message;
use crate::report::{ImageReport, RunReport, Status};
use crate::service::Services;

pub struct CopierHandler {
    pub services: Services,
    pub jobs: JobRunner,
    pub sqs: aws_sdk_sqs::Client,
    /// The work queue's URL, to lengthen the visibility timeout of retried records.
    pub queue_url: Option<String>,
    pub dead_letter_url: Option<String>,
    /// Records of one batch copied at the same time.
    pub concurrency: usize,
    /// The work queue's `maxReceiveCount`. On the last delivery a retryable failure goes to
    /// the dead-letter queue with its reason, rather than being moved there by SQS's redrive
    /// with no word of what went wrong.
    pub max_receives: Option<u32>,
    /// Print CloudWatch metrics (EMF) on stdout after each batch; off where stdout is for
    /// people (the demo).
    pub emit_metrics: bool,
}

/// The message attribute a parked job carries: when (seconds since the Unix epoch) it may
/// be tried again.
pub const PARKED_UNTIL: &str = "ferry-parked-until";

/// The longest delay SQS gives a message it is sent.
const MAX_DELAY: Duration = Duration::from_secs(900);
/// The longest visibility timeout SQS allows.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

/// One SQS record, as the handler needs it.
#[derive(Debug, Clone)]
pub struct Record {
    pub message_id: String,
    pub body: String,
    pub receipt_handle: String,
    pub receive_count: u32,
    /// For a parked job, when it may be tried again.
    pub parked_until: Option<SystemTime>,
}

enum Outcome {
    Done(Vec<ImageReport>),
    Retry(String),
    /// Waits for a spent pull quota until then.
    Park {
        until: SystemTime,
        reason: String,
    },
    Permanent {
        kind: String,
        reason: String,
    },
}

impl CopierHandler {
    pub fn new(
        services: Services,
        copier: Copier,
        sqs: aws_sdk_sqs::Client,
        queue_url: Option<String>,
        dead_letter_url: Option<String>,
    ) -> Self {
        let jobs = JobRunner::new(copier, services.aws.clone());
        CopierHandler {
            services,
            jobs,
            sqs,
            queue_url,
            dead_letter_url,
            concurrency: 4,
            max_receives: None,
            emit_metrics: true,
        }
    }

    /// Handle an SQS event (`{"Records": [...]}`); returns `{"batchItemFailures": [...]}`.
    pub async fn handle(&self, event: Value) -> Result<Value> {
        let records = parse_records(&event)?;
        let started = std::time::Instant::now();
        self.jobs.copier().begin_batch();
        let results: Vec<(String, BatchOutcome, Vec<ImageReport>)> = stream::iter(records)
            .map(|record| async move {
                let (outcome, reports) = self.record(&record).await;
                (record.message_id, outcome, reports)
            })
            .buffer_unordered(self.concurrency.max(1))
            .collect()
            .await;
        let mut outcomes = Vec::new();
        let mut images = Vec::new();
        for (id, outcome, reports) in results {
            outcomes.push((id, outcome));
            images.extend(reports);
        }
        let report = RunReport::from_images(images, started.elapsed().as_millis() as u64);
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        if self.emit_metrics {
            // EMF must be a line of its own on stdout, not inside a tracing record.
            println!("{}", metrics::copier_metrics(&report, now));
        }
        Ok(batch_response(&outcomes))
    }

    async fn record(&self, record: &Record) -> (BatchOutcome, Vec<ImageReport>) {
        // A parked job delivered before its time (a wait longer than one delay) goes back
        // to wait the rest, without a registry request.
        if let Some(until) = record.parked_until {
            if until > SystemTime::now() + Duration::from_secs(1) {
                return (self.park(record, until).await, Vec::new());
            }
        }
        match self.process(&record.body).await {
            Outcome::Done(reports) => {
                for r in &reports {
                    tracing::info!(message_id = %record.message_id, source = %r.source, status = ?r.status, bytes = r.stats.bytes_uploaded, duration_ms = r.duration_ms, "image done");
                }
                (BatchOutcome::Done, reports)
            }
            Outcome::Retry(reason) if self.is_last_delivery(record) => {
                let reason = format!(
                    "gave up after {} deliveries; the last failure: {reason}",
                    record.receive_count
                );
                self.give_up(record, "retries_exhausted", &reason).await
            }
            Outcome::Retry(reason) => {
                tracing::warn!(message_id = %record.message_id, receive_count = record.receive_count, %reason, "copy failed; SQS will deliver it again");
                self.back_off(record).await;
                (BatchOutcome::Retry, Vec::new())
            }
            Outcome::Park { until, reason } => {
                tracing::warn!(message_id = %record.message_id, %reason, parked_until = %httpdate::fmt_http_date(until), "waiting for a pull quota; parked");
                (self.park(record, until).await, Vec::new())
            }
            Outcome::Permanent { kind, reason } => self.give_up(record, &kind, &reason).await,
        }
    }

    /// Have `record` delivered again once `until` has come, as a new message (see the
    /// module comment); failing that, by hiding this one until then.
    async fn park(&self, record: &Record, until: SystemTime) -> BatchOutcome {
        let wait = until.duration_since(SystemTime::now()).unwrap_or_default();
        let Some(url) = &self.queue_url else {
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

    fn is_last_delivery(&self, record: &Record) -> bool {
        self.max_receives
            .is_some_and(|max| record.receive_count >= max)
    }

    /// Send `record` to the dead-letter queue with its reason and drop it from the work
    /// queue; if that send fails, leave it to SQS (redelivery, then redrive).
    async fn give_up(
        &self,
        record: &Record,
        kind: &str,
        reason: &str,
    ) -> (BatchOutcome, Vec<ImageReport>) {
        tracing::error!(message_id = %record.message_id, %kind, %reason, "copy cannot succeed; sending to the dead-letter queue");
        match self.dead_letter(record, kind, reason).await {
            Ok(()) => (BatchOutcome::Done, Vec::new()),
            Err(e) => {
                tracing::error!(message_id = %record.message_id, error = %e, "dead-letter send failed; leaving the message for redrive");
                (BatchOutcome::Retry, Vec::new())
            }
        }
    }

    async fn process(&self, body: &str) -> Outcome {
        let job = match Message::decode(body) {
            Ok(Message::Copy(job)) => job,
            Ok(Message::PlanRepository(_)) => {
                return Outcome::Permanent {
                    kind: "bad_message".into(),
                    reason: "a planning task reached the copy queue; point the planner's trigger at the planning queue".into(),
                }
            }
            Err(e) => {
                return Outcome::Permanent {
                    kind: "bad_message".into(),
                    reason: e.to_string(),
                }
            }
        };
        let reports = match self.jobs.run(&job).await {
            Ok(reports) => reports,
            Err(JobError::Invalid(e)) => {
                return Outcome::Permanent {
                    kind: "bad_message".into(),
                    reason: e.to_string(),
                }
            }
            Err(JobError::Prepare(e)) => return failure(&e),
        };
        let failed: Vec<&ImageReport> = reports
            .iter()
            .filter(|r| r.status == Status::Failed)
            .collect();
        if failed.is_empty() {
            return Outcome::Done(reports);
        }
        let reason = failed
            .iter()
            .filter_map(|r| r.first_error().map(|e| e.message.clone()))
            .collect::<Vec<_>>()
            .join("; ");
        if failed.iter().all(|r| r.retryable()) {
            Outcome::Retry(reason)
        } else if let Some(until) = parked_until(&failed) {
            Outcome::Park { until, reason }
        } else {
            let kind = failed
                .iter()
                .find_map(|r| r.first_error().filter(|e| !e.retryable).map(|e| e.kind))
                .unwrap_or("failed")
                .to_string();
            Outcome::Permanent { kind, reason }
        }
    }

    /// Lengthen a retried record's visibility timeout with each receive (30 s, 60 s, … up
    /// to 15 min) so a registry that is down is not hammered. Best effort: without it SQS
    /// still redelivers after the queue's own timeout.
    async fn back_off(&self, record: &Record) {
        self.hide(record, backoff_for(record.receive_count)).await;
    }

    /// Keep `record` invisible for `wait`, best effort.
    async fn hide(&self, record: &Record, wait: Duration) {
        let Some(url) = &self.queue_url else { return };
        let seconds = wait.as_secs();
        if let Err(e) = self
            .sqs
            .change_message_visibility()
            .queue_url(url)
            .receipt_handle(&record.receipt_handle)
            .visibility_timeout(seconds as i32)
            .send()
            .await
        {
            tracing::debug!(error = %crate::aws::describe(&e), "could not change visibility");
        }
    }

    async fn dead_letter(&self, record: &Record, kind: &str, reason: &str) -> Result<()> {
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
        // SQS caps attribute values with the message at 256 KiB; reasons are short, but a
        // pathological one is cut rather than making the send fail.
        let reason: String = reason.chars().take(4000).collect();
        self.sqs
            .send_message()
            .queue_url(url)
            .message_body(&record.body)
            .message_attributes("ferry-error-kind", text(kind))
            .message_attributes("ferry-error", text(&reason))
            .message_attributes("ferry-message-id", text(&record.message_id))
            .send()
            .await
            .map_err(|e| crate::aws::error("sqs:SendMessage", &e))?;
        Ok(())
    }
}

/// When every failed image can be tried again once the pull quotas they wait for allow, and
/// at least one waits for one: the latest reset.
fn parked_until(failed: &[&ImageReport]) -> Option<SystemTime> {
    let mut latest = None;
    for r in failed {
        match r.waits_for_quota() {
            Some(q) => latest = latest.max(Some(q.resets_at)),
            None if r.retryable() => {}
            None => return None,
        }
    }
    latest.map(|at| UNIX_EPOCH + Duration::from_secs(at))
}

fn failure(e: &Error) -> Outcome {
    if e.is_retryable() {
        Outcome::Retry(e.to_string())
    } else {
        Outcome::Permanent {
            kind: e.kind().to_string(),
            reason: e.to_string(),
        }
    }
}

/// The records of an SQS event.
pub fn parse_records(event: &Value) -> Result<Vec<Record>> {
    let records = event
        .get("Records")
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Error::Config(
                "the copier takes SQS events ({\"Records\": [...]}); invoke the planner for everything else".into(),
            )
        })?;
    records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let text = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_string);
            if text("eventSource").as_deref() != Some("aws:sqs") {
                return Err(Error::Config(format!("Records[{i}] is not an SQS record")));
            }
            Ok(Record {
                message_id: text("messageId").unwrap_or_default(),
                body: text("body").unwrap_or_default(),
                receipt_handle: text("receiptHandle").unwrap_or_default(),
                receive_count: r
                    .pointer("/attributes/ApproximateReceiveCount")
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(1),
                parked_until: r
                    .pointer(&format!("/messageAttributes/{PARKED_UNTIL}/stringValue"))
                    .and_then(Value::as_str)
                    .and_then(|s| s.parse::<u64>().ok())
                    .map(|s| UNIX_EPOCH + Duration::from_secs(s)),
            })
        })
        .collect()
}

/// How long a record that failed on its `receive_count`-th delivery stays invisible.
pub fn backoff_for(receive_count: u32) -> Duration {
    Duration::from_secs((30u64 << receive_count.saturating_sub(1).min(5)).min(900))
}
