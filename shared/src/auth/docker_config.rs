//! The auth files users already have: docker's `config.json` (`$DOCKER_CONFIG` or
//! `~/.docker`) and containers' `auth.json` (`$REGISTRY_AUTH_FILE`, podman/skopeo/buildah).
//!
//! Both hold `auths` entries keyed by registry (sometimes as a URL, sometimes with a
//! repository path, which containers' format allows), with a base64 `auth` of `user:password`
//! or separate `username`/`password`. Docker's file may instead delegate to credential helpers
//! (`credsStore`, `credHelpers`): a `docker-credential-<name>` binary asked with `get`. A
//! helper that is not installed is skipped with a debug line, as docker would fail later
//! anyway and other sources may still have the credential.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use base64::Engine;
use serde::Deserialize;
use tokio::io::AsyncWriteExt;

use super::{normalize_host, Credential};
use crate::error::{Error, Result};

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Document {
    #[serde(default)]
    auths: HashMap<String, AuthEntry>,
    #[serde(default)]
    creds_store: Option<String>,
    #[serde(default)]
    cred_helpers: HashMap<String, String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuthEntry {
    #[serde(default)]
    auth: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    identitytoken: Option<String>,
}

/// One parsed auth file.
#[derive(Debug)]
pub struct AuthFile {
    path: PathBuf,
    doc: Document,
}

impl AuthFile {
    /// Parse the JSON text of a docker config or containers auth file. `origin` names it in
    /// errors (a path, or "secret <id>").
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let doc: Document = serde_json::from_str(text).map_err(|e| {
            Error::Credentials(format!(
                "{origin} is not a valid docker config / auth.json document ({e}); expected {{\"auths\": {{\"host\": {{\"auth\": \"<base64 user:password>\"}}}}}}"
            ))
        })?;
        Ok(AuthFile {
            path: PathBuf::from(origin),
            doc,
        })
    }

    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::Credentials(format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&path.display().to_string(), &text)
    }

    /// The files docker, podman and skopeo would read, in their precedence order; missing
    /// files are skipped, unreadable or malformed ones are errors (a silently ignored typo
    /// would show up much later as "access denied").
    pub fn load_default_locations() -> Result<Vec<Self>> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let mut candidates = Vec::new();
        if let Some(p) = std::env::var_os("REGISTRY_AUTH_FILE") {
            candidates.push(PathBuf::from(p));
        }
        if let Some(dir) = std::env::var_os("XDG_RUNTIME_DIR") {
            candidates.push(PathBuf::from(dir).join("containers/auth.json"));
        }
        match std::env::var_os("DOCKER_CONFIG") {
            Some(dir) => candidates.push(PathBuf::from(dir).join("config.json")),
            None => {
                if let Some(h) = &home {
                    candidates.push(h.join(".docker/config.json"));
                }
            }
        }
        if let Some(h) = &home {
            candidates.push(h.join(".config/containers/auth.json"));
        }
        candidates
            .into_iter()
            .filter(|p| p.is_file())
            .map(|p| Self::load(&p))
            .collect()
    }

    /// The credential this file holds for `host` (already normalized) and `repository`.
    pub async fn lookup(&self, host: &str, repository: &str) -> Result<Option<Credential>> {
        if let Some(helper) = self
            .doc
            .cred_helpers
            .iter()
            .find(|(k, _)| normalize_host(k) == host)
            .map(|(_, v)| v)
        {
            return run_helper(helper, host).await;
        }
        if let Some(entry) = self.best_entry(host, repository) {
            return entry_credential(entry, host, &self.path).map(Some);
        }
        if let Some(store) = &self.doc.creds_store {
            return run_helper(store, host).await;
        }
        Ok(None)
    }

    /// The entry for `host`, preferring the longest `host/path` prefix of `repository`
    /// (containers' auth.json may scope credentials to a namespace).
    fn best_entry(&self, host: &str, repository: &str) -> Option<&AuthEntry> {
        let full = format!("{host}/{repository}");
        self.doc
            .auths
            .iter()
            .filter_map(|(key, entry)| {
                let key = key
                    .trim_start_matches("https://")
                    .trim_start_matches("http://");
                let key = key
                    .trim_end_matches("/v1/")
                    .trim_end_matches("/v2/")
                    .trim_end_matches('/');
                let (key_host, key_path) = key.split_once('/').unwrap_or((key, ""));
                if normalize_host(key_host) != host {
                    return None;
                }
                if key_path.is_empty() {
                    return Some((0, entry));
                }
                let prefix = format!("{host}/{key_path}");
                (full == prefix || full.starts_with(&format!("{prefix}/")))
                    .then_some((prefix.len(), entry))
            })
            .max_by_key(|(len, _)| *len)
            .map(|(_, e)| e)
    }
}

fn entry_credential(entry: &AuthEntry, host: &str, file: &Path) -> Result<Credential> {
    if entry
        .identitytoken
        .as_deref()
        .is_some_and(|t| !t.is_empty())
    {
        return Err(Error::Credentials(format!(
            "{} holds an OAuth identity token for {host}; ferry needs a username and password (or token) instead: pass --src-creds/--dest-creds",
            file.display()
        )));
    }
    if let (Some(u), Some(p)) = (&entry.username, &entry.password) {
        return Ok(Credential::basic(u, p));
    }
    let encoded = entry.auth.as_deref().unwrap_or_default();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(encoded.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| {
            Error::Credentials(format!(
                "the \"auth\" entry for {host} in {} is not base64 of user:password",
                file.display()
            ))
        })?;
    Credential::from_user_colon_password(&decoded).map_err(|_| {
        Error::Credentials(format!(
            "the \"auth\" entry for {host} in {} does not decode to user:password",
            file.display()
        ))
    })
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperReply {
    username: String,
    secret: String,
}

/// Ask `docker-credential-<helper>` for `host`'s credential, as docker does.
async fn run_helper(helper: &str, host: &str) -> Result<Option<Credential>> {
    let program = format!("docker-credential-{helper}");
    let child = tokio::process::Command::new(&program)
        .arg("get")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            tracing::debug!(%program, "credential helper not installed; skipping");
            return Ok(None);
        }
        Err(e) => return Err(Error::Credentials(format!("cannot run {program}: {e}"))),
    };
    let server = if host == "docker.io" {
        "https://index.docker.io/v1/"
    } else {
        host
    };
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(server.as_bytes())
            .await
            .map_err(|e| Error::Credentials(format!("{program}: {e}")))?;
    }
    let out = child
        .wait_with_output()
        .await
        .map_err(|e| Error::Credentials(format!("{program}: {e}")))?;
    if !out.status.success() {
        // Helpers exit non-zero with "credentials not found" for unknown hosts.
        tracing::debug!(%program, %host, "credential helper has no credential for this host");
        return Ok(None);
    }
    let reply: HelperReply = serde_json::from_slice(&out.stdout).map_err(|_| {
        Error::Credentials(format!(
            "{program} get returned something other than {{\"Username\",\"Secret\"}} JSON"
        ))
    })?;
    Ok(Some(Credential::basic(reply.username, reply.secret)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &str) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    #[tokio::test]
    async fn finds_entries_by_host_url_and_path() {
        let text = format!(
            r#"{{"auths":{{
                "https://index.docker.io/v1/":{{"auth":"{}"}},
                "registry.example.com":{{"auth":"{}"}},
                "registry.example.com/team":{{"username":"team","password":"tp"}},
                "http://127.0.0.1:5000":{{"auth":"{}"}}
            }}}}"#,
            b64("hub:hp"),
            b64("any:ap"),
            b64("local:lp:with:colons")
        );
        let f = AuthFile::parse("config.json", &text).unwrap();
        let cases = [
            (
                "docker.io",
                "library/alpine",
                Some(Credential::basic("hub", "hp")),
            ),
            (
                "registry.example.com",
                "other/app",
                Some(Credential::basic("any", "ap")),
            ),
            (
                "registry.example.com",
                "team/app",
                Some(Credential::basic("team", "tp")),
            ),
            (
                "registry.example.com",
                "teamx/app",
                Some(Credential::basic("any", "ap")),
            ),
            (
                "127.0.0.1:5000",
                "app",
                Some(Credential::basic("local", "lp:with:colons")),
            ),
            ("quay.io", "app", None),
        ];
        for (host, repo, expected) in cases {
            assert_eq!(
                f.lookup(host, repo).await.unwrap(),
                expected,
                "{host}/{repo}"
            );
        }
    }

    #[tokio::test]
    async fn malformed_files_and_entries_are_clear_errors() {
        let err = AuthFile::parse("cfg.json", "{not json")
            .unwrap_err()
            .to_string();
        assert!(err.contains("cfg.json"), "{err}");
        let f = AuthFile::parse("cfg.json", r#"{"auths":{"r.io":{"auth":"!!!"}}}"#).unwrap();
        let err = f.lookup("r.io", "a").await.unwrap_err().to_string();
        assert!(err.contains("not base64"), "{err}");
    }

    #[tokio::test]
    async fn a_missing_credential_helper_is_skipped() {
        let f = AuthFile::parse(
            "c",
            r#"{"credHelpers":{"r.io":"ferry-test-no-such-helper"}}"#,
        )
        .unwrap();
        assert_eq!(f.lookup("r.io", "a").await.unwrap(), None);
    }
}
