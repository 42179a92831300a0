//! Playing Lambda's SQS event source mapping against moto: receive a batch, hand it to a
//! function as the `{"Records": [...]}` event Lambda would deliver, and delete the records
//! the function did not report in `batchItemFailures`.

use std::collections::HashMap;

use serde_json::{json, Value};

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
}

/// Receive up to ten messages, with their attributes, as an SQS event for Lambda.
pub async fn receive(sqs: &aws_sdk_sqs::Client, url: &str) -> Batch {
    let out = sqs
        .receive_message()
        .queue_url(url)
        .max_number_of_messages(10)
        .message_attribute_names("All")
        .send()
        .await
        .expect("receive messages");
    let mut records = Vec::new();
    let mut handles = Vec::new();
    for m in out.messages() {
        let attributes: Option<HashMap<String, String>> = m.message_attributes().map(|a| {
            a.iter()
                .map(|(k, v)| (k.clone(), v.string_value().unwrap_or_default().to_string()))
                .collect()
        });
        records.push(json!({
            "messageId": m.message_id(),
            "receiptHandle": m.receipt_handle(),
            "body": m.body(),
            "eventSource": "aws:sqs",
            "attributes": {"ApproximateReceiveCount": "1"},
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

/// Delete the records of `batch` that `response` did not report as failed, as the event
/// source mapping does; returns the failed ids.
pub async fn settle(
    sqs: &aws_sdk_sqs::Client,
    url: &str,
    batch: &Batch,
    response: &Value,
) -> Vec<String> {
    let failed = failures(response);
    for (record, handle) in batch.records().iter().zip(&batch.handles) {
        let id = record["messageId"].as_str().expect("messageId");
        if !failed.iter().any(|f| f == id) {
            sqs.delete_message()
                .queue_url(url)
                .receipt_handle(handle)
                .send()
                .await
                .expect("delete message");
        }
    }
    failed
}
