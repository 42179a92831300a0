//! Where credentials come from and which registry they belong to.
//!
//! A [`CredentialStore`] answers one question: "what credential do I present to registry
//! host H?". It consults, in order: credentials given explicitly for that host (flags,
//! environment, config), Amazon ECR's `GetAuthorizationToken` for ECR hosts, the docker and
//! containers auth files, and finally anonymous access. Credentials are keyed by host, so a
//! credential can only ever be presented to the registry it was given for.
//!
//! Secrets are wrapped in [`Secret`], whose `Debug` and `Display` print `***`, so neither a
//! log line nor an error can show one.

pub mod challenge;
pub mod docker_config;
pub mod ecr;
pub mod secrets_manager;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};

/// A secret string whose formatting never reveals it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself: call only where it is put on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// What to present to a registry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    Anonymous,
    Basic { username: String, password: Secret },
}

impl Credential {
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credential::Basic {
            username: username.into(),
            password: Secret::new(password),
        }
    }

    /// Parse `USER:PASSWORD` as given on the command line or in an environment variable.
    pub fn from_user_colon_password(text: &str) -> Result<Self> {
        match text.split_once(':') {
            Some((user, pass)) if !user.is_empty() => Ok(Credential::basic(user, pass)),
            _ => Err(Error::Credentials(
                "credentials must be USER:PASSWORD (the password may contain ':')".into(),
            )),
        }
    }

    pub fn is_anonymous(&self) -> bool {
        matches!(self, Credential::Anonymous)
    }
}

/// Looks up the credential for a registry host.
pub struct CredentialStore {
    explicit: HashMap<String, Credential>,
    /// Registry host → Secrets Manager secret id.
    secrets: HashMap<String, String>,
    secrets_source: Option<Arc<secrets_manager::SecretsManagerSource>>,
    files: Vec<docker_config::AuthFile>,
    ecr: Option<Arc<ecr::EcrTokenProvider>>,
}

impl CredentialStore {
    /// A store with no credentials at all: everything is anonymous.
    pub fn anonymous() -> Self {
        CredentialStore {
            explicit: HashMap::new(),
            secrets: HashMap::new(),
            secrets_source: None,
            files: Vec::new(),
            ecr: None,
        }
    }

    /// A store that reads the user's docker/containers auth files and asks ECR for tokens.
    pub fn from_environment() -> Result<Self> {
        Ok(CredentialStore {
            files: docker_config::AuthFile::load_default_locations()?,
            ecr: Some(Arc::new(ecr::EcrTokenProvider::new())),
            ..Self::anonymous()
        })
    }

    /// Use `credential` for `registry` ahead of every other source.
    pub fn insert(&mut self, registry: &str, credential: Credential) {
        self.explicit.insert(normalize_host(registry), credential);
    }

    /// Read `registry`'s credentials from Secrets Manager secret `secret_id`.
    pub fn insert_secret(&mut self, registry: &str, secret_id: &str) {
        self.secrets
            .insert(normalize_host(registry), secret_id.to_string());
    }

    pub fn set_secrets_source(&mut self, source: Arc<secrets_manager::SecretsManagerSource>) {
        self.secrets_source = Some(source);
    }

    pub fn add_file(&mut self, file: docker_config::AuthFile) {
        self.files.insert(0, file);
    }

    pub fn set_ecr(&mut self, provider: Option<Arc<ecr::EcrTokenProvider>>) {
        self.ecr = provider;
    }

    /// The credential for `registry` (a registry name as written in references, e.g.
    /// `docker.io` or `127.0.0.1:5000`) and, for files that key by path, `repository`.
    pub async fn lookup(&self, registry: &str, repository: &str) -> Result<Credential> {
        let host = normalize_host(registry);
        if let Some(c) = self.explicit.get(&host) {
            return Ok(c.clone());
        }
        if let Some(secret_id) = self.secrets.get(&host) {
            let source = self.secrets_source.as_ref().ok_or_else(|| {
                Error::Credentials(format!(
                    "credentials for {host} are in secret {secret_id}, but Secrets Manager is not available here"
                ))
            })?;
            return source.credential(secret_id, &host, repository).await;
        }
        if let (Some(provider), Some(ecr_host)) = (&self.ecr, ecr::EcrHost::parse(&host)) {
            match provider.credential(&ecr_host).await {
                Ok(c) => return Ok(c),
                Err(e) => {
                    // Fall back to a `docker login` the user may have done, but say why.
                    if let Some(c) = self.lookup_files(&host, repository).await? {
                        tracing::warn!(registry = %host, error = %e, "ECR token unavailable; using the docker config's credentials");
                        return Ok(c);
                    }
                    return Err(e);
                }
            }
        }
        Ok(self
            .lookup_files(&host, repository)
            .await?
            .unwrap_or(Credential::Anonymous))
    }

    /// Forget any cached credential for `registry` after the registry rejected it, so the
    /// next lookup asks its source again: a new ECR token (the old one expired), or the
    /// secret's current value (it was rotated). Explicit and file credentials have nothing
    /// cached to forget.
    pub async fn forget(&self, registry: &str, rejected: &Credential) {
        let host = normalize_host(registry);
        if self.explicit.contains_key(&host) {
            return;
        }
        if let (Some(secret_id), Some(source)) = (self.secrets.get(&host), &self.secrets_source) {
            source.forget(secret_id).await;
        } else if let (Some(provider), Some(ecr_host)) = (&self.ecr, ecr::EcrHost::parse(&host)) {
            provider.invalidate(&ecr_host, rejected).await;
        }
    }

    async fn lookup_files(&self, host: &str, repository: &str) -> Result<Option<Credential>> {
        for file in &self.files {
            if let Some(c) = file.lookup(host, repository).await? {
                return Ok(Some(c));
            }
        }
        Ok(None)
    }
}

/// Docker Hub goes by several names in auth files; everything else is its host.
pub fn normalize_host(registry: &str) -> String {
    let host = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    match host.as_str() {
        "index.docker.io" | "registry-1.docker.io" | "registry.hub.docker.com" => {
            "docker.io".into()
        }
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let c = Credential::basic("alice", "hunter2");
        assert!(!format!("{c:?}").contains("hunter2"));
        assert_eq!(Secret::new("x").to_string(), "***");
    }

    #[test]
    fn parses_user_colon_password() {
        assert_eq!(
            Credential::from_user_colon_password("u:p:q").unwrap(),
            Credential::basic("u", "p:q")
        );
        assert!(Credential::from_user_colon_password("nouser").is_err());
        assert!(Credential::from_user_colon_password(":p").is_err());
    }

    #[tokio::test]
    async fn explicit_credentials_are_bound_to_their_host() {
        let mut store = CredentialStore::anonymous();
        store.insert("src.example.com", Credential::basic("u", "p"));
        assert_eq!(
            store.lookup("src.example.com", "a").await.unwrap(),
            Credential::basic("u", "p")
        );
        assert!(store
            .lookup("dst.example.com", "a")
            .await
            .unwrap()
            .is_anonymous());
        store.insert("https://index.docker.io/v1/", Credential::basic("d", "h"));
        assert_eq!(
            store.lookup("docker.io", "library/alpine").await.unwrap(),
            Credential::basic("d", "h")
        );
    }
}
