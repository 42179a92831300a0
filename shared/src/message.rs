//! The messages the planner puts on SQS: versioned JSON, one image per copy message.
//!
//! ```json
//! {"version": 1, "kind": "copy",
//!  "source": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4@sha256:…",
//!  "destinations": [{"reference": "registry.gitlab.com/acme/app:1.4", "overwrite": true}],
//!  "platforms": [], "source_name": "platform-ecr", "reason": "schedule"}
//!
//! {"version": 1, "kind": "plan-repository", "source_name": "platform-ecr",
//!  "repository": "team/app", "reason": "schedule"}
//! ```
//!
//! A copy message pins the source digest the planner saw, so every destination receives
//! exactly the image that was planned, and names each destination with its tag. Decoding
//! checks the version first: a message from a newer planner is refused by name rather than
//! half-understood. Every decoding error is permanent — retrying cannot fix a message.

use serde::{Deserialize, Serialize};

use crate::config::CreateRepository;
use crate::copy::CopyRequest;
use crate::reference::ImageRef;

pub const VERSION: u64 = 1;
/// SQS refuses bodies over 256 KiB; a copy message is a few hundred bytes, so anything near
/// the limit is not ours.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("message body is {0} bytes, over the {MAX_BODY_BYTES}-byte limit")]
    TooLarge(usize),
    #[error("message body is not a ferry message: {0}")]
    Malformed(String),
    #[error("message version {0} is not supported by this ferry (it reads version {VERSION}); deploy the same ferry version for planner and copier")]
    UnknownVersion(u64),
    #[error("message field {field}: {problem}")]
    Invalid { field: String, problem: String },
}

/// Why an image was planned, for logs and metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Reason {
    #[default]
    Manual,
    Schedule,
    Push,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Message {
    Copy(CopyJob),
    PlanRepository(RepositoryTask),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyJob {
    /// `registry/repository:tag@digest`.
    pub source: String,
    pub destinations: Vec<JobDestination>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    #[serde(default)]
    pub reason: Reason,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDestination {
    /// `registry/repository:tag`.
    pub reference: String,
    #[serde(default = "yes")]
    pub overwrite: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_repository: Option<CreateRepository>,
}

fn yes() -> bool {
    true
}

/// Plan one repository of a configured source (the planner's fan-out for big registries).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RepositoryTask {
    pub source_name: String,
    pub repository: String,
    #[serde(default)]
    pub reason: Reason,
    #[serde(default)]
    pub dry_run: bool,
}

#[derive(Serialize)]
struct Envelope<'a> {
    version: u64,
    #[serde(flatten)]
    message: &'a Message,
}

impl Message {
    pub fn encode(&self) -> String {
        serde_json::to_string(&Envelope {
            version: VERSION,
            message: self,
        })
        .expect("messages serialize")
    }

    pub fn decode(body: &str) -> Result<Message, MessageError> {
        if body.len() > MAX_BODY_BYTES {
            return Err(MessageError::TooLarge(body.len()));
        }
        let mut value: serde_json::Value =
            serde_json::from_str(body).map_err(|e| MessageError::Malformed(e.to_string()))?;
        let object = value
            .as_object_mut()
            .ok_or_else(|| MessageError::Malformed("expected a JSON object".into()))?;
        match object.remove("version").map(|v| v.as_u64()) {
            Some(Some(VERSION)) => {}
            Some(Some(v)) => return Err(MessageError::UnknownVersion(v)),
            Some(None) => {
                return Err(MessageError::Malformed(
                    "\"version\" must be a positive integer".into(),
                ))
            }
            None => return Err(MessageError::Malformed("no \"version\" field".into())),
        }
        let message: Message =
            serde_json::from_value(value).map_err(|e| MessageError::Malformed(e.to_string()))?;
        if let Message::Copy(job) = &message {
            job.request()?;
        }
        Ok(message)
    }
}

impl CopyJob {
    /// The copy engine's request: references parsed and checked.
    pub fn request(&self) -> Result<CopyRequest, MessageError> {
        let source: ImageRef = self.source.parse().map_err(|e| MessageError::Invalid {
            field: "source".into(),
            problem: format!("{e}"),
        })?;
        if source.manifest_reference().is_none() {
            return Err(MessageError::Invalid {
                field: "source".into(),
                problem: format!("{} names no tag or digest", self.source),
            });
        }
        if self.destinations.is_empty() {
            return Err(MessageError::Invalid {
                field: "destinations".into(),
                problem: "empty".into(),
            });
        }
        let mut destinations = Vec::new();
        for (i, d) in self.destinations.iter().enumerate() {
            let r: ImageRef = d.reference.parse().map_err(|e| MessageError::Invalid {
                field: format!("destinations[{i}].reference"),
                problem: format!("{e}"),
            })?;
            if r.tag().is_none() && source.tag().is_none() && source.digest().is_none() {
                return Err(MessageError::Invalid {
                    field: format!("destinations[{i}].reference"),
                    problem: "names no tag".into(),
                });
            }
            destinations.push(r);
        }
        let mut request = CopyRequest::new(source, destinations);
        for (i, p) in self.platforms.iter().enumerate() {
            request
                .platforms
                .push(p.parse().map_err(|e| MessageError::Invalid {
                    field: format!("platforms[{i}]"),
                    problem: e,
                })?);
        }
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Message {
        Message::Copy(CopyJob {
            source: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4@sha256:0000000000000000000000000000000000000000000000000000000000000000".into(),
            destinations: vec![JobDestination {
                reference: "registry.gitlab.com/acme/app:1.4".into(),
                overwrite: false,
                create_repository: None,
            }],
            platforms: vec!["linux/amd64".into()],
            source_name: Some("ecr".into()),
            reason: Reason::Push,
        })
    }

    #[test]
    fn round_trips_with_a_version() {
        let m = job();
        let body = m.encode();
        assert!(body.starts_with(r#"{"version":1,"kind":"copy""#), "{body}");
        assert_eq!(Message::decode(&body).unwrap(), m);
        let task = Message::PlanRepository(RepositoryTask {
            source_name: "ecr".into(),
            repository: "team/app".into(),
            reason: Reason::Schedule,
            dry_run: false,
        });
        assert_eq!(Message::decode(&task.encode()).unwrap(), task);
    }

    #[test]
    fn bad_bodies_are_named() {
        let cases: Vec<(String, &str)> = vec![
            ("not json".into(), "not a ferry message"),
            ("[1]".into(), "expected a JSON object"),
            (r#"{"kind":"copy"}"#.into(), "no \"version\""),
            (r#"{"version":"1","kind":"copy"}"#.into(), "positive integer"),
            (r#"{"version":7,"kind":"copy"}"#.into(), "version 7 is not supported"),
            (r#"{"version":1,"kind":"delete"}"#.into(), "unknown variant `delete`"),
            (
                r#"{"version":1,"kind":"copy","source":"a/b:1","destinations":[{"reference":"c/d:1"}],"extra":1}"#.into(),
                "unknown field `extra`",
            ),
            (
                r#"{"version":1,"kind":"copy","source":"../../etc/passwd:1","destinations":[{"reference":"c/d:1"}]}"#.into(),
                "field source",
            ),
            (
                r#"{"version":1,"kind":"copy","source":"a/b:1","destinations":[]}"#.into(),
                "field destinations: empty",
            ),
            (
                format!(r#"{{"version":1,"kind":"copy","source":"a/b:{}","destinations":[{{"reference":"c/d:1"}}]}}"#, "t".repeat(200)),
                "field source",
            ),
            (" ".repeat(MAX_BODY_BYTES + 1), "over the"),
        ];
        for (body, expected) in cases {
            let e = Message::decode(&body).unwrap_err();
            assert!(e.to_string().contains(expected), "{body:.80} => {e}");
        }
    }
}
