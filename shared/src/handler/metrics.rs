//! CloudWatch metrics in Embedded Metric Format: one JSON line on stdout per invocation,
//! which CloudWatch Logs turns into metrics with no API calls and no extra permissions.

use serde_json::{json, Value};

use crate::report::RunReport;

pub const NAMESPACE: &str = "ferry";

/// The EMF document for a copier invocation.
pub fn copier_metrics(report: &RunReport, timestamp_ms: u64) -> Value {
    json!({
        "_aws": {
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [["Function"]],
                "Metrics": [
                    {"Name": "ImagesCopied", "Unit": "Count"},
                    {"Name": "ImagesUpToDate", "Unit": "Count"},
                    {"Name": "ImagesKept", "Unit": "Count"},
                    {"Name": "ImagesFailed", "Unit": "Count"},
                    {"Name": "BytesUploaded", "Unit": "Bytes"},
                    {"Name": "Duration", "Unit": "Milliseconds"},
                ],
            }],
        },
        "Function": "copier",
        "ImagesCopied": report.copied,
        "ImagesUpToDate": report.up_to_date,
        "ImagesKept": report.kept,
        "ImagesFailed": report.failed,
        "BytesUploaded": report.bytes_uploaded,
        "Duration": report.duration_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_declared_metric_has_a_value() {
        let report = RunReport {
            copied: 2,
            failed: 1,
            bytes_uploaded: 4096,
            ..RunReport::default()
        };
        let doc = copier_metrics(&report, 1);
        for m in doc["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
        {
            let name = m["Name"].as_str().unwrap();
            assert!(doc[name].is_u64(), "{name} has no value");
        }
        assert_eq!(doc["ImagesCopied"], 2);
        assert_eq!(doc["BytesUploaded"], 4096);
    }
}
