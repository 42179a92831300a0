//! The events the planner Lambda is invoked with, told apart by shape:
//!
//! 1. a manual invoke: `{"action": "sync", "sources": ["name", …], "dry_run": true,
//!    "repair": true}`;
//! 2. an EventBridge schedule: `"source": "aws.events", "detail-type": "Scheduled Event"`;
//! 3. an EventBridge ECR image action: `"source": "aws.ecr", "detail-type": "ECR Image
//!    Action"` with `result: SUCCESS` and `action-type` `PUSH` or `DELETE` (a failed action
//!    is ignored, by name);
//! 4. an SQS batch of planning tasks (`"Records"` from `aws:sqs`), the planner's own
//!    fan-out for large registries.
//!
//! Anything else is refused with an error that says what ferry expected. Pure code.

use serde::Deserialize;
use serde_json::Value;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PlannerEvent {
    Manual(ManualSync),
    Scheduled,
    EcrPush(EcrImage),
    /// An image or tag deleted from ECR: mirrors that prune follow.
    EcrDelete(EcrImage),
    /// An ECR event ferry has nothing to do for (a failed push or delete).
    Ignored(String),
    /// SQS records from the planning queue.
    Tasks(Vec<crate::batch::Record>),
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct ManualSync {
    pub action: String,
    /// Only these configured sources (by name); all when absent.
    #[serde(default)]
    pub sources: Option<Vec<String>>,
    /// Return the plan instead of sending it.
    #[serde(default)]
    pub dry_run: bool,
    /// A deep check: a job for every image, whatever its destination tags say, that sends
    /// whatever blob or child manifest is missing under them (and prunes nothing).
    #[serde(default)]
    pub repair: bool,
}

/// The image an ECR image action names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EcrImage {
    pub account: String,
    pub region: String,
    pub repository: String,
    /// Absent for an image pushed or deleted by digest alone.
    pub tag: Option<String>,
    pub digest: String,
}

impl EcrImage {
    /// `registry/repository:tag`, or `@digest` when untagged, for messages.
    pub fn reference(&self) -> String {
        match &self.tag {
            Some(tag) => format!("{}/{}:{tag}", self.host(), self.repository),
            None => format!("{}/{}@{}", self.host(), self.repository, self.digest),
        }
    }

    /// The registry the image was pushed to.
    pub fn host(&self) -> crate::ecr_host::EcrHost {
        crate::ecr_host::EcrHost::new(&self.account, &self.region)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EventError(pub String);

impl PlannerEvent {
    pub fn kind(&self) -> &'static str {
        match self {
            PlannerEvent::Manual(_) => "manual",
            PlannerEvent::Scheduled => "schedule",
            PlannerEvent::EcrPush(_) => "ecr-push",
            PlannerEvent::EcrDelete(_) => "ecr-delete",
            PlannerEvent::Ignored(_) => "ignored",
            PlannerEvent::Tasks(_) => "sqs-tasks",
        }
    }

    pub fn parse(event: &Value) -> Result<PlannerEvent, EventError> {
        let object = event.as_object().ok_or_else(|| {
            EventError(format!(
                "expected a JSON object event, got {}",
                type_name(event)
            ))
        })?;
        if object.contains_key("Records") {
            return crate::batch::records(event, "the planner")
                .map(PlannerEvent::Tasks)
                .map_err(EventError);
        }
        let source = object.get("source").and_then(Value::as_str);
        let detail_type = object.get("detail-type").and_then(Value::as_str);
        match (source, detail_type) {
            (Some("aws.events"), Some("Scheduled Event")) => return Ok(PlannerEvent::Scheduled),
            (Some("aws.scheduler"), _) => return Ok(PlannerEvent::Scheduled),
            (Some("aws.ecr"), Some("ECR Image Action")) => return parse_ecr(object),
            (Some(s), Some(d)) => {
                return Err(EventError(format!(
                    "EventBridge event {d:?} from {s:?} is not one ferry handles; route only ECR Image Action and Scheduled Event to the planner"
                )))
            }
            _ => {}
        }
        if object.contains_key("action") {
            let manual: ManualSync = serde_json::from_value(event.clone())
                .map_err(|e| EventError(format!("manual invoke: {e}; expected {{\"action\": \"sync\", \"sources\": [..], \"dry_run\": false}}")))?;
            if manual.action != "sync" {
                return Err(EventError(format!(
                    "manual invoke: unknown action {:?}; the only action is \"sync\"",
                    manual.action
                )));
            }
            return Ok(PlannerEvent::Manual(manual));
        }
        let mut keys: Vec<&str> = object.keys().map(String::as_str).collect();
        keys.sort();
        Err(EventError(format!(
            "unrecognized event with fields {keys:?}: invoke with {{\"action\": \"sync\"}}, an EventBridge schedule, an ECR Image Action event, or SQS planning tasks"
        )))
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn parse_ecr(object: &serde_json::Map<String, Value>) -> Result<PlannerEvent, EventError> {
    let detail = object
        .get("detail")
        .and_then(Value::as_object)
        .ok_or_else(|| EventError("ECR Image Action event without a detail object".into()))?;
    let field = |name: &str| detail.get(name).and_then(Value::as_str);
    let action = field("action-type").unwrap_or_default();
    let result = field("result").unwrap_or_default();
    if !matches!(action, "PUSH" | "DELETE") || result != "SUCCESS" {
        return Ok(PlannerEvent::Ignored(format!(
            "ECR {action} {result} for {}",
            field("repository-name").unwrap_or("?")
        )));
    }
    let need = |v: Option<&str>, name: &str| {
        v.filter(|s| !s.is_empty())
            .map(str::to_string)
            .ok_or_else(|| EventError(format!("ECR Image Action event without {name}")))
    };
    let image = EcrImage {
        account: need(object.get("account").and_then(Value::as_str), "account")?,
        region: need(object.get("region").and_then(Value::as_str), "region")?,
        repository: need(field("repository-name"), "detail.repository-name")?,
        tag: field("image-tag")
            .filter(|t| !t.is_empty())
            .map(str::to_string),
        digest: need(field("image-digest"), "detail.image-digest")?,
    };
    Ok(match action {
        "PUSH" => PlannerEvent::EcrPush(image),
        _ => PlannerEvent::EcrDelete(image),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn push(action: &str, result: &str) -> Value {
        json!({
            "version": "0", "id": "e1", "detail-type": "ECR Image Action", "source": "aws.ecr",
            "account": "123456789012", "time": "2026-11-24T10:00:00Z", "region": "eu-west-1",
            "resources": [],
            "detail": {"result": result, "repository-name": "team/app", "image-digest": "sha256:ab",
                        "action-type": action, "image-tag": "1.4"}
        })
    }

    #[test]
    fn tells_the_shapes_apart() {
        assert_eq!(
            PlannerEvent::parse(&json!({"action": "sync", "dry_run": true})).unwrap(),
            PlannerEvent::Manual(ManualSync {
                action: "sync".into(),
                sources: None,
                dry_run: true,
                repair: false,
            })
        );
        let schedule = json!({"version": "0", "detail-type": "Scheduled Event", "source": "aws.events",
                              "account": "123456789012", "region": "eu-west-1", "detail": {}});
        assert_eq!(
            PlannerEvent::parse(&schedule).unwrap(),
            PlannerEvent::Scheduled
        );
        assert_eq!(
            PlannerEvent::parse(&push("PUSH", "SUCCESS")).unwrap(),
            PlannerEvent::EcrPush(EcrImage {
                account: "123456789012".into(),
                region: "eu-west-1".into(),
                repository: "team/app".into(),
                tag: Some("1.4".into()),
                digest: "sha256:ab".into(),
            })
        );
        let PlannerEvent::EcrDelete(deleted) =
            PlannerEvent::parse(&push("DELETE", "SUCCESS")).unwrap()
        else {
            panic!("not a delete");
        };
        assert_eq!(deleted.tag.as_deref(), Some("1.4"));
        let mut untagged = push("DELETE", "SUCCESS");
        untagged["detail"]
            .as_object_mut()
            .unwrap()
            .remove("image-tag");
        let PlannerEvent::EcrDelete(deleted) = PlannerEvent::parse(&untagged).unwrap() else {
            panic!("not a delete");
        };
        assert_eq!((deleted.tag, deleted.digest.as_str()), (None, "sha256:ab"));
        assert!(matches!(
            PlannerEvent::parse(&push("DELETE", "FAILURE")).unwrap(),
            PlannerEvent::Ignored(_)
        ));
        assert!(matches!(
            PlannerEvent::parse(&push("PUSH", "FAILURE")).unwrap(),
            PlannerEvent::Ignored(_)
        ));
        let sqs = json!({"Records": [{"messageId": "m1", "body": "{}", "eventSource": "aws:sqs"}]});
        let PlannerEvent::Tasks(records) = PlannerEvent::parse(&sqs).unwrap() else {
            panic!("not tasks");
        };
        assert_eq!(
            records
                .iter()
                .map(|r| (r.message_id.as_str(), r.body.as_str()))
                .collect::<Vec<_>>(),
            [("m1", "{}")]
        );
    }

    #[test]
    fn refuses_what_it_does_not_know_and_says_what_it_expected() {
        let cases = [
            (json!("sync"), "expected a JSON object"),
            (json!({"action": "delete"}), "unknown action \"delete\""),
            (
                json!({"action": "sync", "force": true}),
                "unknown field `force`",
            ),
            (
                json!({"hello": 1}),
                "unrecognized event with fields [\"hello\"]",
            ),
            (
                json!({"source": "aws.s3", "detail-type": "Object Created"}),
                "not one ferry handles",
            ),
            (
                json!({"Records": [{"eventSource": "aws:sns"}]}),
                "not aws:sqs",
            ),
        ];
        for (event, expected) in cases {
            let e = PlannerEvent::parse(&event).unwrap_err();
            assert!(e.0.contains(expected), "{event} => {e}");
        }
    }
}
