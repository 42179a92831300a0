//! The dead-letter queue, read and requeued by hand (`ferry dead-letters`): what failed for
//! good, grouped by the `ferry-error-kind` the functions attach, and sent back to the queue
//! it came from once its cause is fixed.
//!
//! Reading does not consume: every message received is made visible again before the
//! listing returns (kept hidden only while the queue is paged through, so that no message
//! is counted twice). Requeueing sends a copy to its queue first and deletes the dead
//! letter after, so a failure between the two leaves a duplicate, never a loss; a requeued
//! job that is already done is a no-op for the copier.

use std::collections::BTreeMap;
use std::time::Duration;

use aws_sdk_sqs::types::{
    ChangeMessageVisibilityBatchRequestEntry, DeleteMessageBatchRequestEntry,
};
use serde::Serialize;

use crate::batch::{ERROR, ERROR_KIND};
use crate::error::{Error, Result};
use crate::message::Message;
use crate::queue::SqsQueue;

/// How long a received dead letter stays hidden while the rest of the queue is read: long
/// enough to page through a large queue, short enough that a reader killed midway hides
/// nothing for long.
const HIDDEN_WHILE_READING: Duration = Duration::from_secs(120);

/// The kind of a dead letter without ferry's attributes: one the queue's redrive policy
/// moved after its last receive.
pub const MOVED_BY_REDRIVE: &str = "moved_by_redrive";

#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    /// `ferry-error-kind`, or [`MOVED_BY_REDRIVE`].
    pub kind: String,
    /// `ferry-error`: why it failed.
    pub reason: String,
    /// What it asked for: the copy's source image, the repository a planning task plans,
    /// the destination a removal prunes; empty for a body that is no ferry message.
    pub subject: String,
    /// Which queue it goes back to, by message kind.
    #[serde(skip)]
    pub returns_to: Option<Home>,
    #[serde(skip)]
    pub body: String,
    #[serde(skip)]
    receipt: String,
}

/// The queue a dead letter came from, by what it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// Copy and removal messages.
    Copy,
    /// Planning tasks.
    Plan,
}

/// One kind of failure: how many, and one reason as an example.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KindSummary {
    pub kind: String,
    pub count: usize,
    pub example: String,
}

/// Dead letters by kind, most numerous first (then by name).
pub fn summarize(letters: &[DeadLetter]) -> Vec<KindSummary> {
    let mut kinds: BTreeMap<&str, KindSummary> = BTreeMap::new();
    for letter in letters {
        kinds
            .entry(&letter.kind)
            .or_insert_with(|| KindSummary {
                kind: letter.kind.clone(),
                count: 0,
                example: letter.reason.clone(),
            })
            .count += 1;
    }
    let mut summary: Vec<KindSummary> = kinds.into_values().collect();
    summary.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.kind.cmp(&b.kind)));
    summary
}

/// What a body asks for, and where it goes back to.
fn describe(body: &str) -> (String, Option<Home>) {
    match Message::decode(body) {
        Ok(Message::Copy(job)) => (job.source.to_string(), Some(Home::Copy)),
        Ok(Message::Remove(job)) => (format!("remove from {}", job.destination), Some(Home::Copy)),
        Ok(Message::PlanRepository(task)) => (
            format!("plan {} of source {}", task.repository, task.source_name),
            Some(Home::Plan),
        ),
        Err(_) => (String::new(), None),
    }
}

pub struct DeadLetterQueue {
    sqs: aws_sdk_sqs::Client,
    url: String,
}

impl DeadLetterQueue {
    pub fn new(sqs: aws_sdk_sqs::Client, url: impl Into<String>) -> Self {
        DeadLetterQueue {
            sqs,
            url: url.into(),
        }
    }

    /// Every dead letter now in the queue (up to `limit`), left in the queue: each is hidden
    /// while the queue is paged through, and made visible again before this returns.
    pub async fn read(&self, limit: usize) -> Result<Vec<DeadLetter>> {
        let mut letters: Vec<DeadLetter> = Vec::new();
        let read = self.receive_all(limit, &mut letters).await;
        let released = self.release(&letters).await;
        read?;
        released?;
        Ok(letters)
    }

    async fn receive_all(&self, limit: usize, letters: &mut Vec<DeadLetter>) -> Result<()> {
        while letters.len() < limit {
            let answer = self
                .sqs
                .receive_message()
                .queue_url(&self.url)
                .max_number_of_messages((limit - letters.len()).min(10) as i32)
                .visibility_timeout(HIDDEN_WHILE_READING.as_secs() as i32)
                .message_attribute_names("All")
                // A short wait: an almost empty queue answers empty now and then otherwise.
                .wait_time_seconds(1)
                .send()
                .await
                .map_err(|e| crate::aws::error("sqs:ReceiveMessage", &e))?;
            let received = answer.messages();
            if received.is_empty() {
                return Ok(());
            }
            for m in received {
                let attribute = |name: &str| {
                    m.message_attributes()
                        .and_then(|a| a.get(name))
                        .and_then(|v| v.string_value())
                        .map(str::to_string)
                };
                let body = m.body().unwrap_or_default().to_string();
                let (subject, returns_to) = describe(&body);
                letters.push(DeadLetter {
                    message_id: m.message_id().unwrap_or_default().to_string(),
                    kind: attribute(ERROR_KIND).unwrap_or_else(|| MOVED_BY_REDRIVE.into()),
                    reason: attribute(ERROR).unwrap_or_else(|| {
                        "no reason attached: the queue's redrive policy moved it after its last delivery (a function that timed out or crashed)".into()
                    }),
                    subject,
                    returns_to,
                    body,
                    receipt: m.receipt_handle().unwrap_or_default().to_string(),
                });
            }
        }
        Ok(())
    }

    /// Make `letters` visible again at once.
    async fn release(&self, letters: &[DeadLetter]) -> Result<()> {
        for chunk in letters.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, l)| {
                ChangeMessageVisibilityBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&l.receipt)
                    .visibility_timeout(0)
                    .build()
                    .expect("id and receipt are set")
            });
            self.sqs
                .change_message_visibility_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|e| crate::aws::error("sqs:ChangeMessageVisibilityBatch", &e))?;
        }
        Ok(())
    }

    /// Send the dead letters `wanted` picks back to their queues (copy and removal
    /// messages to `copy`, planning tasks to `plan`), then delete them here. Returns those
    /// requeued; the rest stay where they are. A body that is no ferry message has no
    /// queue to go back to and stays too.
    pub async fn requeue(
        &self,
        limit: usize,
        wanted: impl Fn(&DeadLetter) -> bool,
        copy: &SqsQueue,
        plan: Option<&SqsQueue>,
    ) -> Result<Vec<DeadLetter>> {
        let mut letters: Vec<DeadLetter> = Vec::new();
        let read = self.receive_all(limit, &mut letters).await;
        let (going, staying): (Vec<DeadLetter>, Vec<DeadLetter>) = letters
            .into_iter()
            .partition(|l| wanted(l) && l.returns_to.is_some());
        let mut moved = Vec::new();
        let mut failed = None;
        for (home, queue) in [(Home::Copy, Some(copy)), (Home::Plan, plan)] {
            let these: Vec<&DeadLetter> = going
                .iter()
                .filter(|l| l.returns_to == Some(home))
                .collect();
            if these.is_empty() {
                continue;
            }
            let Some(queue) = queue else {
                failed.get_or_insert(Error::Config(format!(
                    "{} planning tasks are dead-lettered, and no planning queue was given to send them back to (--plan-queue)",
                    these.len()
                )));
                continue;
            };
            let bodies: Vec<String> = these.iter().map(|l| l.body.clone()).collect();
            match queue.send_all(&bodies).await {
                Ok(_) => match self.delete(&these).await {
                    Ok(()) => moved.extend(these.into_iter().cloned()),
                    Err(e) => {
                        failed.get_or_insert(e);
                    }
                },
                Err(e) => {
                    failed.get_or_insert(e);
                }
            }
        }
        // Whatever was not moved is visible again at once.
        let left: Vec<DeadLetter> = staying
            .into_iter()
            .chain(
                going
                    .into_iter()
                    .filter(|l| !moved.iter().any(|m| m.message_id == l.message_id)),
            )
            .collect();
        let released = self.release(&left).await;
        read?;
        if let Some(e) = failed {
            return Err(e);
        }
        released?;
        Ok(moved)
    }

    async fn delete(&self, letters: &[&DeadLetter]) -> Result<()> {
        for chunk in letters.chunks(10) {
            let entries = chunk.iter().enumerate().map(|(i, l)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(&l.receipt)
                    .build()
                    .expect("id and receipt are set")
            });
            let answer = self
                .sqs
                .delete_message_batch()
                .queue_url(&self.url)
                .set_entries(Some(entries.collect()))
                .send()
                .await
                .map_err(|e| crate::aws::error("sqs:DeleteMessageBatch", &e))?;
            if let Some(f) = answer.failed().first() {
                return Err(Error::Aws {
                    action: "sqs:DeleteMessageBatch",
                    detail: format!(
                        "{} dead letters were requeued but not deleted ({}); they will be copied twice, which is harmless",
                        answer.failed().len(),
                        f.message().unwrap_or("no reason given")
                    ),
                    retryable: false,
                });
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(kind: &str, reason: &str) -> DeadLetter {
        DeadLetter {
            message_id: format!("{kind}-{reason}"),
            kind: kind.into(),
            reason: reason.into(),
            subject: String::new(),
            returns_to: Some(Home::Copy),
            body: String::new(),
            receipt: String::new(),
        }
    }

    #[test]
    fn kinds_are_counted_with_their_first_reason_as_the_example() {
        let letters = [
            letter("retries_exhausted", "registry.example answered 503"),
            letter("denied", "push to app denied"),
            letter("retries_exhausted", "connection reset"),
            letter("bad_message", "not a ferry message"),
        ];
        assert_eq!(
            summarize(&letters),
            [
                KindSummary {
                    kind: "retries_exhausted".into(),
                    count: 2,
                    example: "registry.example answered 503".into()
                },
                KindSummary {
                    kind: "bad_message".into(),
                    count: 1,
                    example: "not a ferry message".into()
                },
                KindSummary {
                    kind: "denied".into(),
                    count: 1,
                    example: "push to app denied".into()
                },
            ]
        );
    }

    #[test]
    fn a_body_says_where_it_goes_back_to() {
        let copy = r#"{"version":1,"kind":"copy","source":"src.example/app:1@sha256:0000000000000000000000000000000000000000000000000000000000000000","destinations":[{"reference":"dst.example/app:1"}]}"#;
        let task =
            r#"{"version":1,"kind":"plan-repository","source_name":"s","repository":"team/app"}"#;
        assert_eq!(describe(copy).1, Some(Home::Copy));
        assert!(describe(copy).0.starts_with("src.example/app:1@sha256:"));
        assert_eq!(
            describe(task),
            ("plan team/app of source s".to_string(), Some(Home::Plan))
        );
        assert_eq!(describe("{}"), (String::new(), None));
    }
}
