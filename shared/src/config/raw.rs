//! The sync configuration as users write it (YAML or JSON). Every struct refuses unknown
//! fields, so a misspelt option is an error that names it instead of a silent default.
//! [`super`] turns this into the validated [`super::SyncConfig`].

use std::collections::BTreeMap;

use schemars::{json_schema, JsonSchema, Schema, SchemaGenerator};
use serde::Deserialize;

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: u32,
    #[serde(default)]
    pub defaults: RawDefaults,
    /// Registry host → where its credentials come from.
    #[serde(default)]
    pub credentials: BTreeMap<String, RawCredential>,
    /// Hosts reached over plain HTTP.
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Registry host → its known limits.
    #[serde(default)]
    pub registries: BTreeMap<String, RawRegistryLimits>,
    pub sources: Vec<RawSource>,
}

/// What a registry allows: `requests_per_second` by kind of request, `concurrency`, and
/// `bytes_per_second` (a number of bytes, or a string such as `50MiB` or `20MB`).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRegistryLimits {
    #[serde(default)]
    pub requests_per_second: BTreeMap<String, f64>,
    pub concurrency: Option<usize>,
    pub bytes_per_second: Option<RawBytes>,
}

/// A byte count: `52428800`, or `"50MiB"`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawBytes {
    Number(u64),
    Text(String),
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDefaults {
    pub account: Option<String>,
    pub region: Option<String>,
    pub overwrite: Option<bool>,
    #[serde(default)]
    pub platforms: Vec<String>,
    pub image_concurrency: Option<usize>,
    pub blob_concurrency: Option<usize>,
    pub mount_probe_max_bytes: Option<u64>,
    pub request_attempts: Option<usize>,
    pub read_timeout_seconds: Option<usize>,
    pub throttle_patience_seconds: Option<usize>,
    /// `all`, `none`, or kinds: `sig,sbom` or a list.
    pub referrers: Option<RawReferrers>,
    pub prune: Option<bool>,
    pub prune_max: Option<RawPruneMax>,
}

/// `prune_max: 20` or `prune_max: 50%`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawPruneMax {
    Count(u64),
    Text(String),
}

/// `referrers: all`, `referrers: sig,sbom` or `referrers: [sig, application/spdx+json]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RawReferrers {
    One(String),
    List(Vec<String>),
}

/// An entry of an `images:` list: `REF`, or `{image: REF, expires: DATE}`. Read by hand for
/// the same reason as [`RawCredential`].
#[derive(Debug, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub struct RawImage {
    pub image: String,
    pub expires: Option<String>,
}

impl TryFrom<serde_yaml_ng::Value> for RawImage {
    type Error = String;

    fn try_from(value: serde_yaml_ng::Value) -> Result<Self, Self::Error> {
        use serde_yaml_ng::Value;
        const EXPECTED: &str =
            "expected an image reference such as `docker.io/library/nginx:1.27`, or `{image: REF, expires: 2027-06-30}`";
        let text = |v: Option<&Value>| match v {
            Some(Value::String(s)) => Ok(Some(s.clone())),
            None => Ok(None),
            Some(_) => Err(EXPECTED.to_string()),
        };
        match &value {
            Value::String(s) => Ok(RawImage {
                image: s.clone(),
                expires: None,
            }),
            Value::Mapping(m) => {
                if let Some(unknown) = m
                    .keys()
                    .find(|k| !matches!(k.as_str(), Some("image" | "expires")))
                {
                    return Err(format!(
                        "unknown field `{}`: an image entry has `image` and `expires`",
                        unknown.as_str().unwrap_or("?")
                    ));
                }
                Ok(RawImage {
                    image: text(m.get("image"))?.ok_or_else(|| EXPECTED.to_string())?,
                    expires: text(m.get("expires"))?,
                })
            }
            _ => Err(EXPECTED.into()),
        }
    }
}

/// `ecr`, `anonymous`, or `{secret: ID}`. Read by hand: serde's enum forms would make users
/// write YAML tags (`!secret`), and an untagged enum's errors say nothing useful.
#[derive(Debug, Deserialize)]
#[serde(try_from = "serde_yaml_ng::Value")]
pub enum RawCredential {
    /// A Secrets Manager secret id or ARN.
    Secret(String),
    Ecr,
    Anonymous,
}

impl TryFrom<serde_yaml_ng::Value> for RawCredential {
    type Error = String;

    fn try_from(value: serde_yaml_ng::Value) -> Result<Self, Self::Error> {
        use serde_yaml_ng::Value;
        const EXPECTED: &str = "expected `ecr`, `anonymous` or `{secret: SECRET_ID_OR_ARN}`";
        match &value {
            Value::String(s) if s == "ecr" => Ok(RawCredential::Ecr),
            Value::String(s) if s == "anonymous" => Ok(RawCredential::Anonymous),
            Value::Mapping(m) if m.len() == 1 => match m.get("secret") {
                Some(Value::String(id)) => Ok(RawCredential::Secret(id.clone())),
                _ => Err(EXPECTED.into()),
            },
            _ => Err(EXPECTED.into()),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub name: Option<String>,
    pub ecr: Option<RawEcr>,
    pub registry: Option<RawRegistry>,
    pub images: Option<Vec<RawImage>>,
    #[serde(default)]
    pub filters: RawFilters,
    pub expires: Option<String>,
    pub destinations: Vec<RawDestination>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEcr {
    pub account: Option<String>,
    pub region: Option<String>,
    pub repositories: Option<Vec<String>>,
    pub prefix: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRegistry {
    pub host: String,
    pub repositories: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawFilters {
    #[serde(default)]
    pub repositories: RawPatterns,
    #[serde(default)]
    pub tags: RawTags,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPatterns {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTags {
    #[serde(default)]
    pub include: Vec<String>,
    #[serde(default)]
    pub exclude: Vec<String>,
    pub semver: Option<String>,
    pub newest: Option<usize>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDestination {
    pub target: String,
    pub split_tag: Option<RawSplitTag>,
    pub create_repository: Option<RawCreateRepository>,
    pub overwrite: Option<bool>,
    pub platforms: Option<Vec<String>>,
    pub prune: Option<bool>,
    pub prune_max: Option<RawPruneMax>,
    pub keep: Option<Vec<String>>,
    pub expires: Option<String>,
    pub backup: Option<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSplitTag {
    #[serde(default = "dash")]
    pub separator: String,
    #[serde(default)]
    pub prefixes: Vec<String>,
}

fn dash() -> String {
    "-".into()
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCreateRepository {
    #[serde(default)]
    pub immutable: bool,
    #[serde(default)]
    pub scan_on_push: bool,
}

impl JsonSchema for RawCredential {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Credential".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "Where a registry's credentials come from: `ecr` (a token from ECR's GetAuthorizationToken), `anonymous`, or `{secret: SECRET_ID_OR_ARN}` (Secrets Manager: {\"username\", \"password\"} or a docker config.json).",
            "oneOf": [
                {"const": "ecr"},
                {"const": "anonymous"},
                {
                    "type": "object",
                    "properties": {"secret": {"type": "string", "description": "A Secrets Manager secret id or ARN."}},
                    "required": ["secret"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

impl JsonSchema for RawImage {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "ListedImage".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "description": "An image to copy: `REF` (with a tag or digest), or `{image: REF, expires: DATE}`.",
            "oneOf": [
                {"type": "string"},
                {
                    "type": "object",
                    "properties": {
                        "image": {"type": "string"},
                        "expires": {"type": "string", "description": "A date (2027-06-30: through the end of that day, UTC) or an RFC 3339 time; after it the image is not copied."}
                    },
                    "required": ["image"],
                    "additionalProperties": false
                }
            ]
        })
    }
}

/// The configuration's JSON Schema (draft 2020-12), from the types above: what `ferry
/// config schema` prints, for editors and CI. The parser checks more than a schema can
/// (templates, patterns, dates); `ferry config check` runs it.
pub fn schema() -> serde_json::Value {
    let mut schema = schemars::schema_for!(RawConfig);
    schema.insert("title".into(), "ferry sync configuration".into());
    schema.to_value()
}
