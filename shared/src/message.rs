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
//!
//! {"version": 1, "kind": "remove", "destination": "registry.gitlab.com/acme/app",
//!  "source": "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app",
//!  "tags": [{"tag": "1.3", "source_tag": "1.3", "why": "gone-from-source"}],
//!  "source_name": "platform-ecr", "reason": "schedule"}
//! ```
//!
//! A copy message pins the source digest the planner saw, so every destination receives
//! exactly the image that was planned, and names each destination with its tag. Decoding
//! checks the version first: a message from a newer planner is refused by name rather than
//! half-understood. Every decoding error is permanent — retrying cannot fix a message.

use serde::{Deserialize, Serialize};
use serde_with::{serde_as, DisplayFromStr};

use crate::config::CreateRepository;
use crate::copy::CopyRequest;
use crate::manifest::Platform;
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
    /// An ECR delete event.
    Delete,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Message {
    Copy(CopyJob),
    PlanRepository(RepositoryTask),
    Remove(RemoveJob),
}

/// References and platforms travel as text and are typed once, when the message is read: a
/// body naming an invalid one is refused at decode, naming it.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CopyJob {
    /// `registry/repository:tag@digest`.
    #[serde_as(as = "DisplayFromStr")]
    pub source: ImageRef,
    pub destinations: Vec<JobDestination>,
    /// `os/arch[/variant]` each.
    #[serde_as(as = "Vec<DisplayFromStr>")]
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub platforms: Vec<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    #[serde(default)]
    pub reason: Reason,
    /// A deep check: trust no destination tag, send whatever blob or child manifest is
    /// missing under it (see [`crate::copy::CopyRequest::repair`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repair: bool,
}

#[serde_as]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JobDestination {
    /// `registry/repository:tag`.
    #[serde_as(as = "DisplayFromStr")]
    pub reference: ImageRef,
    #[serde(default = "yes")]
    pub overwrite: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub create_repository: Option<CreateRepository>,
    /// Keep the image an overwrite replaces under a tag made from this template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<crate::backup::BackupTemplate>,
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
    /// A deep check: every image's jobs repair (see [`CopyJob::repair`]).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub repair: bool,
}

/// Remove tags from one repository of a destination that prunes: at least once, and
/// idempotent (a tag already gone is success). One message holds a repository's removals
/// of one plan (up to [`REMOVALS_PER_MESSAGE`]), so that tags sharing a manifest, removed
/// together, are known to be going together.
#[serde_as]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoveJob {
    /// `registry/repository` at the destination.
    #[serde_as(as = "DisplayFromStr")]
    pub destination: ImageRef,
    /// `registry/repository` at the source, whose tags these mirrored.
    #[serde_as(as = "DisplayFromStr")]
    pub source: ImageRef,
    pub tags: Vec<TagRemoval>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_name: Option<String>,
    #[serde(default)]
    pub reason: Reason,
}

/// Removals per message: a few hundred bytes each, well inside SQS's body limit.
pub const REMOVALS_PER_MESSAGE: usize = 500;

/// One destination tag to remove, and the source tag it mirrored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TagRemoval {
    pub tag: String,
    pub source_tag: String,
    pub why: RemovalReason,
}

impl RemoveJob {
    /// The destination reference of one of its tags.
    pub fn destination_tag(&self, removal: &TagRemoval) -> ImageRef {
        self.destination.with_tag(&removal.tag)
    }

    fn check(&self) -> Result<(), MessageError> {
        for (field, reference) in [("destination", &self.destination), ("source", &self.source)] {
            if reference.manifest_reference().is_some() {
                return Err(MessageError::Invalid {
                    field: field.into(),
                    problem: format!("{reference} must name a repository, without tag or digest"),
                });
            }
        }
        if self.tags.is_empty() {
            return Err(MessageError::Invalid {
                field: "tags".into(),
                problem: "empty".into(),
            });
        }
        for (i, t) in self.tags.iter().enumerate() {
            for (name, tag) in [("tag", &t.tag), ("source_tag", &t.source_tag)] {
                if !crate::reference::is_tag(tag) {
                    return Err(MessageError::Invalid {
                        field: format!("tags[{i}].{name}"),
                        problem: format!("{tag:?} is not a tag"),
                    });
                }
            }
        }
        Ok(())
    }
}

/// Why a mirrored tag is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RemovalReason {
    /// The source no longer has the tag. Asked again just before removing: a tag pushed
    /// again since planning (or since its delete event) is kept.
    GoneFromSource,
    /// The mapping's `expires` time has passed; the source may still have the tag.
    Expired,
}

impl RemovalReason {
    /// As `ferry plan` shows it.
    pub fn describe(self) -> &'static str {
        match self {
            RemovalReason::GoneFromSource => "gone from source",
            RemovalReason::Expired => "expired",
        }
    }
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
        // Each kind is read on its own, so that a bad value is named by its path
        // (`destinations[0].reference`); serde loses the path inside a tagged enum.
        fn read<T: serde::de::DeserializeOwned>(
            value: serde_json::Value,
        ) -> Result<T, MessageError> {
            serde_path_to_error::deserialize(value).map_err(|e| {
                let field = e.path().to_string();
                let problem = e.into_inner().to_string();
                match field.as_str() {
                    "" | "." => MessageError::Malformed(problem),
                    _ => MessageError::Invalid { field, problem },
                }
            })
        }
        let kind = object.remove("kind");
        let message = match kind.as_ref().and_then(|k| k.as_str()) {
            Some("copy") => Message::Copy(read(value)?),
            Some("plan-repository") => Message::PlanRepository(read(value)?),
            Some("remove") => Message::Remove(read(value)?),
            Some(other) => {
                return Err(MessageError::Malformed(format!(
                "unknown message kind {other:?}: this ferry reads \"copy\", \"plan-repository\" and \"remove\""
            )))
            }
            None => return Err(MessageError::Malformed("no \"kind\" field".into())),
        };
        match &message {
            Message::Copy(job) => {
                job.request()?;
            }
            Message::Remove(job) => job.check()?,
            Message::PlanRepository(_) => {}
        }
        Ok(message)
    }
}

impl CopyJob {
    /// The copy engine's request: references parsed and checked.
    pub fn request(&self) -> Result<CopyRequest, MessageError> {
        let source = self.source.clone();
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
        let destinations = self
            .destinations
            .iter()
            .map(|d| d.reference.clone())
            .collect();
        let mut request = CopyRequest::new(source, destinations);
        request.platforms = self.platforms.clone();
        request.repair = self.repair;
        Ok(request)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job() -> Message {
        Message::Copy(CopyJob {
            source: "123456789012.dkr.ecr.eu-west-1.amazonaws.com/app:1.4@sha256:0000000000000000000000000000000000000000000000000000000000000000".parse().unwrap(),
            destinations: vec![JobDestination {
                reference: "registry.gitlab.com/acme/app:1.4".parse().unwrap(),
                overwrite: false,
                create_repository: None,
                backup: None,
            }],
            platforms: vec!["linux/amd64".parse().unwrap()],
            source_name: Some("ecr".into()),
            reason: Reason::Push,
            repair: false,
        })
    }

    #[test]
    fn round_trips_with_a_version() {
        let m = job();
        let body = m.encode();
        assert!(body.starts_with(r#"{"version":1,"kind":"copy""#), "{body}");
        assert_eq!(Message::decode(&body).unwrap(), m);
        // What only some jobs carry travels only when set, and comes back.
        assert!(
            !body.contains("repair") && !body.contains("backup"),
            "{body}"
        );
        let Message::Copy(mut deep) = job() else {
            unreachable!()
        };
        deep.repair = true;
        deep.destinations[0].backup = Some("{tag}-{digest12}".parse().unwrap());
        let deep = Message::Copy(deep);
        assert_eq!(Message::decode(&deep.encode()).unwrap(), deep);
        let task = Message::PlanRepository(RepositoryTask {
            source_name: "ecr".into(),
            repository: "team/app".into(),
            reason: Reason::Schedule,
            dry_run: false,
            repair: false,
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
            (r#"{"version":1,"kind":"delete"}"#.into(), "unknown message kind \"delete\""),
            (
                r#"{"version":1,"kind":"copy","source":"a/b:1","destinations":[{"reference":"c/d:1","backup":"{tag}"}]}"#.into(),
                "same name",
            ),
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
                r#"{"version":1,"kind":"copy","source":"a/b:1","destinations":[{"reference":"c/d:1"},{"reference":"Not A Ref"}]}"#.into(),
                "field destinations[1].reference: invalid image reference",
            ),
            (
                r#"{"version":1,"kind":"copy","source":"a/b:1","destinations":[{"reference":"c/d:1"}],"platforms":["linux"]}"#.into(),
                "field platforms[0]",
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
