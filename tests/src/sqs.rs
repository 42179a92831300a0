//! Playing Lambda's SQS event source mapping against moto: receive a batch, hand it to a
//! function as the `{"Records": [...]}` event Lambda would deliver, and delete the records
//! the function did not report in `batchItemFailures`.

use std::collections::HashMap;

use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use serde_json::{json, Value};

static DELETES: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Create a standard queue and return its URL.
pub async fn create_queue(sqs: &aws_sdk_sqs::Client, name: &str) -> String {
    sqs.create_queue()
        .queue_name(name)
        .send()
        .await
        .expect("create queue")
        .queue_url()
        .expect("queue url")
        .to_string()
}

/// One received batch: the Lambda event and each record's receipt handle, in order.
pub struct Batch {
    pub event: Value,
    pub handles: Vec<String>,
}

impl Batch {
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    pub fn records(&self) -> &[Value] {
        self.event["Records"].as_array().map_or(&[], Vec::as_slice)
    }

    /// The batch read as dead letters: each record's `ferry-error-kind` and `ferry-error`,
    /// sorted. A record without them fails the test: every dead letter carries its reason.
    pub fn dead_letters(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self.records().iter().map(dead_letter).collect();
        all.sort();
        all
    }

    /// Each record's message id with its receipt handle, in order.
    pub fn ids_and_handles(&self) -> impl Iterator<Item = (&str, &str)> {
        self.records()
            .iter()
            .zip(&self.handles)
            .map(|(record, handle)| {
                (
                    record["messageId"].as_str().expect("messageId"),
                    handle.as_str(),
                )
            })
    }
}

/// A dead letter's kind and reason (its `ferry-error-kind` and `ferry-error` attributes).
pub fn dead_letter(record: &Value) -> (String, String) {
    let attribute = |name: &str| {
        record["messageAttributes"][name]["stringValue"]
            .as_str()
            .unwrap_or_else(|| panic!("dead letter without {name}: {record}"))
            .to_string()
    };
    (
        attribute(ferry::batch::ERROR_KIND),
        attribute(ferry::batch::ERROR),
    )
}

/// Send `body` to the queue at `url`.
pub async fn send(sqs: &aws_sdk_sqs::Client, url: &str, body: &str) {
    sqs.send_message()
        .queue_url(url)
        .message_body(body)
        .send()
        .await
        .expect("send a message");
}

/// Receive up to ten messages, with their attributes, as an SQS event for Lambda.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Batch {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .message_system_attribute_names(MessageSystemAttributeName::ApproximateReceiveCount)
        .send()
        .await
        .expect("receive messages");
    let mut records = Vec::new();
    let mut handles = Vec::new();
    for m in out.messages() {
        // As Lambda hands them over: name → {stringValue, dataType}.
        let attributes: Option<HashMap<String, Value>> = m.message_attributes().map(|a| {
            a.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        json!({"stringValue": v.string_value(), "dataType": v.data_type()}),
                    )
                })
                .collect()
        });
        records.push(json!({
            "messageId": m.message_id(),
            "receiptHandle": m.receipt_handle(),
            "body": m.body(),
            "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": m
                .attributes()
                .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                .map_or("1", String::as_str)},
            "messageAttributes": attributes,
        }));
        handles.push(m.receipt_handle().expect("receipt handle").to_string());
    }
    Batch {
        event: json!({ "Records": records }),
        handles,
    }
}

/// The message ids a function's response asks SQS to redeliver.
pub fn failures(response: &Value) -> Vec<String> {
    response["batchItemFailures"]
        .as_array()
        .unwrap_or_else(|| panic!("no batchItemFailures in {response}"))
        .iter()
        .map(|f| {
            f["itemIdentifier"]
                .as_str()
                .expect("itemIdentifier")
                .to_string()
        })
        .collect()
}

/// Delete the records of `batch` that `response` did not report as failed, in one
/// `DeleteMessageBatch` as the event source mapping does; returns the failed ids.
pub async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    batch: &Batch,
    response: &Value,
) -> Vec<String> {
    let failed = failures(response);
    let entries: Vec<DeleteMessageBatchRequestEntry> = batch
        .ids_and_handles()
        .enumerate()
        .filter(|(_, (id, _))| !failed.iter().any(|f| f == id))
        .map(|(i, (_, handle))| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(handle)
                .build()
                .expect("id and handle are set")
        })
        .collect();
    if !entries.is_empty() {
        // moto deletes by rebuilding the queue's message list without the deleted ones, so
        // two deletes at once can each restore what the other removed. Real SQS has no
        // such race; here, one delete at a time.
        let _one_at_a_time = DELETES.lock().await;
        let out = sqs
            .delete_message_batch()
            .queue_url(url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("delete messages");
        assert!(
            out.failed().is_empty(),
            "deletes failed: {:?}",
            out.failed()
        );
    }
    failed
}

/// Make the records of `batch` named in `failed` visible again at once, as if their
/// backoff had already passed, so a test sees SQS's redeliveries without waiting for them.
pub async fn release(sqs: &aws_sdk_sqs::Client, url: &str, batch: &Batch, failed: &[String]) {
    for (id, handle) in batch.ids_and_handles() {
        if failed.iter().any(|f| f == id) {
            sqs.change_message_visibility()
                .queue_url(url)
                .receipt_handle(handle)
                .visibility_timeout(0)
                .send()
                .await
                .expect("change visibility");
        }
    }
}
