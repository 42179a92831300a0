//! The two functions' handlers, with their dependencies passed in so tests call them
//! against real local servers; the Lambda `main.rs` files only build these and run them.

pub mod copier;
pub mod metrics;
pub mod planner;

use serde_json::{json, Value};

/// What became of one SQS record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Delete it from the queue (done, or handed to the dead-letter queue).
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
}
