//! Registry credentials kept in AWS Secrets Manager, as the functions read them.
//!
//! A secret holds either `{"username": "…", "password": "…"}` or a docker `config.json`
//! document with `auths` (what `docker login` writes, so an existing file can be stored as
//! it is). Values are cached for a TTL, so warm Lambda invocations do not call Secrets
//! Manager per image, and a rotated secret is picked up within the TTL.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use super::docker_config::AuthFile;
use super::{Credential, Secret};
use crate::error::{Error, Result};

pub const DEFAULT_TTL: Duration = Duration::from_secs(15 * 60);

pub struct SecretsManagerSource {
    client: aws_sdk_secretsmanager::Client,
    ttl: Duration,
    cache: Mutex<HashMap<String, (Instant, Secret)>>,
}

impl SecretsManagerSource {
    pub fn new(client: aws_sdk_secretsmanager::Client, ttl: Duration) -> Self {
        SecretsManagerSource {
            client,
            ttl,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// The secret's string value, from cache while fresh.
    pub async fn value(&self, secret_id: &str) -> Result<Secret> {
        let mut cache = self.cache.lock().await;
        if let Some((at, value)) = cache.get(secret_id) {
            if at.elapsed() < self.ttl {
                return Ok(value.clone());
            }
        }
        let out = self
            .client
            .get_secret_value()
            .secret_id(secret_id)
            .send()
            .await
            .map_err(|e| {
                let mut err = crate::aws::error("secretsmanager:GetSecretValue", &e);
                if let Error::Aws { detail, .. } = &mut err {
                    *detail = format!("secret {secret_id}: {detail}");
                }
                err
            })?;
        let value = Secret::new(out.secret_string().ok_or_else(|| {
            Error::Credentials(format!(
                "secret {secret_id} has no string value (binary secrets are not read)"
            ))
        })?);
        cache.insert(secret_id.to_string(), (Instant::now(), value.clone()));
        Ok(value)
    }

    /// Drop the cached value of `secret_id`, after a registry rejected what it held (the
    /// secret may have been rotated since it was read).
    pub async fn forget(&self, secret_id: &str) {
        self.cache.lock().await.remove(secret_id);
    }

    /// The credential for registry `host` in secret `secret_id`.
    pub async fn credential(
        &self,
        secret_id: &str,
        host: &str,
        repository: &str,
    ) -> Result<Credential> {
        let value = self.value(secret_id).await?;
        parse_secret(secret_id, value.expose(), host, repository).await
    }
}

/// Read a secret's value; errors name the secret, never its content.
pub async fn parse_secret(
    secret_id: &str,
    text: &str,
    host: &str,
    repository: &str,
) -> Result<Credential> {
    let malformed = || {
        Error::Credentials(format!(
            "secret {secret_id} is neither {{\"username\",\"password\"}} JSON nor a docker config.json with \"auths\""
        ))
    };
    let json: serde_json::Value = serde_json::from_str(text).map_err(|_| malformed())?;
    if let (Some(user), Some(pass)) = (
        json.get("username").and_then(|v| v.as_str()),
        json.get("password").and_then(|v| v.as_str()),
    ) {
        return Ok(Credential::basic(user, pass));
    }
    if json.get("auths").is_some() {
        let file =
            AuthFile::parse(&format!("secret {secret_id}"), text).map_err(|_| malformed())?;
        return file.lookup(host, repository).await?.ok_or_else(|| {
            Error::Credentials(format!(
                "secret {secret_id} has no entry for {host} in its auths"
            ))
        });
    }
    Err(malformed())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_both_secret_shapes() {
        assert_eq!(
            parse_secret(
                "s",
                r#"{"username":"u","password":"p"}"#,
                "r.example.com",
                "a"
            )
            .await
            .unwrap(),
            Credential::basic("u", "p")
        );
        let config = r#"{"auths":{"r.example.com":{"auth":"dTpwOnE="}}}"#;
        assert_eq!(
            parse_secret("s", config, "r.example.com", "a")
                .await
                .unwrap(),
            Credential::basic("u", "p:q")
        );
        let e = parse_secret("s", config, "other.example.com", "a")
            .await
            .unwrap_err();
        assert!(
            e.to_string().contains("no entry for other.example.com"),
            "{e}"
        );
    }

    #[tokio::test]
    async fn malformed_secrets_are_named_without_their_content() {
        for text in ["hunter2", r#"{"user":"u","pass":"hunter2"}"#] {
            let e = parse_secret("ferry/gitlab", text, "r", "a")
                .await
                .unwrap_err();
            let message = e.to_string();
            assert!(message.contains("ferry/gitlab"), "{message}");
            assert!(!message.contains("hunter2"), "{message}");
        }
    }
}
