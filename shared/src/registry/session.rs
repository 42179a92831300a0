//! Per-registry authentication state: which scheme the registry asked for, and the bearer
//! tokens fetched for each scope set, cached until they expire.
//!
//! A session starts knowing nothing; the first 401's `WWW-Authenticate` teaches it the scheme
//! (and, for bearer, the token realm). A later 401 on a request that carried a token means
//! the token expired or lacked scope: the token is fetched again, once.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine;
use reqwest::header::HeaderValue;
use serde::Deserialize;
use tokio::sync::Mutex;
use url::Url;

use crate::auth::challenge::Challenge;
use crate::auth::{Credential, Secret};
use crate::error::{Error, Result};

/// Tokens without `expires_in` live 60 s per the distribution token spec.
const DEFAULT_TOKEN_LIFETIME: Duration = Duration::from_secs(60);
/// Drop a token this long before it expires so an in-flight request does not carry a
/// token that dies on the way.
const TOKEN_EXPIRY_MARGIN: Duration = Duration::from_secs(10);
/// Credentials are looked up again after this long (ECR tokens and helpers rotate).
const CREDENTIAL_TTL: Duration = Duration::from_secs(10 * 60);

/// A token scope, e.g. `repository:team/app:pull,push`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Scope(pub String);

impl Scope {
    pub fn pull(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull"))
    }
    pub fn push(repository: &str) -> Scope {
        Scope(format!("repository:{repository}:pull,push"))
    }
    pub fn catalog() -> Scope {
        Scope("registry:catalog:*".into())
    }
}

#[derive(Debug, Clone)]
enum Scheme {
    Unknown,
    Basic,
    Bearer { realm: Url, service: Option<String> },
}

struct CachedToken {
    token: Secret,
    valid_until: Instant,
}

pub(crate) struct Session {
    pub registry: String,
    pub base: Url,
    scheme: Mutex<Scheme>,
    credential: Mutex<Option<(Credential, Instant)>>,
    tokens: Mutex<HashMap<Vec<Scope>, CachedToken>>,
    /// How fast requests may go to this registry ([`super::pace`]).
    pub pace: std::sync::Arc<super::pace::RegistryPace>,
    /// What the registry said of its pull quota ([`super::quota`]).
    pub quota: super::quota::Quota,
}

#[derive(Deserialize)]
struct TokenReply {
    #[serde(default)]
    token: Option<String>,
    #[serde(default)]
    access_token: Option<String>,
    #[serde(default)]
    expires_in: Option<u64>,
}

impl Session {
    pub fn new(registry: String, base: Url, limits: &super::pace::RegistryLimits) -> Self {
        Session {
            registry,
            base,
            scheme: Mutex::new(Scheme::Unknown),
            credential: Mutex::new(None),
            tokens: Mutex::new(HashMap::new()),
            pace: super::pace::RegistryPace::new(limits),
            quota: super::quota::Quota::default(),
        }
    }

    pub async fn credential(
        &self,
        store: &crate::auth::CredentialStore,
        repository: &str,
    ) -> Result<Credential> {
        let mut slot = self.credential.lock().await;
        if let Some((c, at)) = slot.as_ref() {
            if at.elapsed() < CREDENTIAL_TTL {
                return Ok(c.clone());
            }
        }
        let c = store.lookup(&self.registry, repository).await?;
        *slot = Some((c.clone(), Instant::now()));
        Ok(c)
    }

    /// Drop the cached credential, if it is still the `rejected` one, so the next request
    /// looks it up again.
    pub async fn forget_credential(&self, rejected: &Credential) {
        let mut slot = self.credential.lock().await;
        if slot.as_ref().is_some_and(|(c, _)| c == rejected) {
            *slot = None;
        }
    }

    /// Whether requests already carry HTTP basic credentials (so a 401 means they were
    /// rejected, not that the registry wants some).
    pub async fn is_basic(&self) -> bool {
        matches!(*self.scheme.lock().await, Scheme::Basic)
    }

    /// Record what a 401 asked for. Returns false when the challenge is not one ferry can
    /// answer.
    pub async fn learn(
        &self,
        challenge: Option<Challenge>,
        endpoints: &super::endpoint::Endpoints,
    ) -> Result<bool> {
        let mut scheme = self.scheme.lock().await;
        match challenge {
            Some(Challenge::Basic) => *scheme = Scheme::Basic,
            Some(Challenge::Bearer { realm, service, .. }) => {
                let realm = Url::parse(&realm).map_err(|_| {
                    Error::Credentials(format!(
                        "{} sent a token realm that is not a URL: {realm:?}",
                        self.registry
                    ))
                })?;
                if !endpoints.http_allowed_for(&realm) {
                    return Err(Error::Credentials(format!(
                        "{} asks for credentials to be sent over plain HTTP to {}; refusing. If that is intended, name the host with --insecure-registry",
                        self.registry,
                        realm.host_str().unwrap_or_default()
                    )));
                }
                *scheme = Scheme::Bearer { realm, service };
                self.tokens.lock().await.clear();
            }
            None => return Ok(false),
        }
        Ok(true)
    }

    /// The `Authorization` header for a request needing `scopes`, or `None` when the
    /// registry has not asked for authentication. `fresh` skips the token cache.
    pub async fn authorization(
        &self,
        http: &reqwest::Client,
        credential: &Credential,
        scopes: &[Scope],
        fresh: bool,
    ) -> Result<Option<HeaderValue>> {
        let scheme = self.scheme.lock().await.clone();
        match scheme {
            Scheme::Unknown => Ok(None),
            Scheme::Basic => Ok(basic_header(credential)),
            Scheme::Bearer { realm, service } => {
                let mut key = scopes.to_vec();
                key.sort();
                let mut tokens = self.tokens.lock().await;
                if !fresh {
                    if let Some(t) = tokens.get(&key) {
                        if Instant::now() < t.valid_until {
                            return Ok(Some(bearer_header(&t.token)));
                        }
                    }
                }
                let token = self
                    .fetch_token(http, credential, &realm, service.as_deref(), &key)
                    .await?;
                let header = bearer_header(&token.token);
                tokens.insert(key, token);
                Ok(Some(header))
            }
        }
    }

    async fn fetch_token(
        &self,
        http: &reqwest::Client,
        credential: &Credential,
        realm: &Url,
        service: Option<&str>,
        scopes: &[Scope],
    ) -> Result<CachedToken> {
        let mut url = realm.clone();
        {
            let mut q = url.query_pairs_mut();
            if let Some(s) = service {
                q.append_pair("service", s);
            }
            for s in scopes {
                q.append_pair("scope", &s.0);
            }
        }
        let mut req = http.get(url);
        if let Some(h) = basic_header(credential) {
            req = req.header(reqwest::header::AUTHORIZATION, h);
        }
        let started = Instant::now();
        let resp = req.send().await.map_err(|e| Error::Transient {
            at: self.location(),
            op: crate::error::Operation::ReadManifest,
            detail: format!(
                "token request to {} failed: {}",
                realm.host_str().unwrap_or_default(),
                without_url(&e)
            ),
        })?;
        let status = resp.status();
        if status.is_server_error() || status.as_u16() == 429 {
            return Err(Error::Transient {
                at: self.location(),
                op: crate::error::Operation::ReadManifest,
                detail: format!("token service answered {status}"),
            });
        }
        if !status.is_success() {
            return Err(if credential.is_anonymous() {
                Error::NoCredentials {
                    at: self.location(),
                    op: crate::error::Operation::ReadManifest,
                }
            } else {
                Error::Credentials(format!(
                    "the token service of {} rejected the credentials ({status}); check the username and password",
                    self.registry
                ))
            });
        }
        let reply: TokenReply = resp.json().await.map_err(|_| {
            Error::Credentials(format!(
                "the token service of {} answered with something that is not a token",
                self.registry
            ))
        })?;
        let token = reply
            .token
            .or(reply.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::Credentials(format!(
                    "the token service of {} returned no token",
                    self.registry
                ))
            })?;
        let lifetime = reply
            .expires_in
            .map(Duration::from_secs)
            .unwrap_or(DEFAULT_TOKEN_LIFETIME);
        let valid_until = started
            + lifetime
                .saturating_sub(TOKEN_EXPIRY_MARGIN)
                .max(Duration::from_secs(1));
        Ok(CachedToken {
            token: Secret::new(token),
            valid_until,
        })
    }

    fn location(&self) -> crate::error::Location {
        crate::error::Location {
            registry: self.registry.clone(),
            repository: String::new(),
        }
    }
}

fn basic_header(credential: &Credential) -> Option<HeaderValue> {
    match credential {
        Credential::Anonymous => None,
        Credential::Basic { username, password } => {
            let raw = format!("{username}:{}", password.expose());
            let mut v = HeaderValue::from_str(&format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(raw)
            ))
            .ok()?;
            v.set_sensitive(true);
            Some(v)
        }
    }
}

fn bearer_header(token: &Secret) -> HeaderValue {
    let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
        .unwrap_or_else(|_| HeaderValue::from_static("Bearer invalid"));
    v.set_sensitive(true);
    v
}

/// reqwest errors print the URL, which for a token realm carries no secret, but for
/// presigned storage URLs would; describe the failure without it.
pub(crate) fn without_url(e: &reqwest::Error) -> String {
    use std::error::Error as _;
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    if let Some(url) = e.url() {
        let short = format!(
            "{}://{}/…",
            url.scheme(),
            url.host_str().unwrap_or_default()
        );
        text = text.replace(url.as_str(), &short);
    }
    text
}
