//! A token server for docker-registry's `auth.token` mode: it checks HTTP basic credentials
//! and issues ES256 JWTs signed by a throwaway certificate the registry trusts.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use base64::Engine;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

pub const SERVICE: &str = "ferry-test-registry";
pub const ISSUER: &str = "ferry-test-issuer";

pub struct TokenServer {
    pub addr: SocketAddr,
    pub cert_pem: String,
    key: EncodingKey,
    cert_der_b64: String,
    username: String,
    password: String,
    /// Token requests served (successful or not).
    pub requests: AtomicU64,
    /// Requests that carried credentials.
    pub authenticated_requests: AtomicU64,
    lifetime_secs: u64,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

impl TokenServer {
    /// Start on a free loopback port inside the current tokio runtime.
    pub async fn start(username: &str, password: &str) -> Arc<TokenServer> {
        let key_pair = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["ferry-test-token-issuer".to_string()])
            .expect("params");
        let cert = params.self_signed(&key_pair).expect("cert");
        let key = EncodingKey::from_ec_pem(key_pair.serialize_pem().as_bytes()).expect("ec key");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let server = Arc::new(TokenServer {
            addr,
            cert_pem: cert.pem(),
            key,
            cert_der_b64: base64::engine::general_purpose::STANDARD.encode(cert.der()),
            username: username.into(),
            password: password.into(),
            requests: AtomicU64::new(0),
            authenticated_requests: AtomicU64::new(0),
            lifetime_secs: 300,
            _shutdown: tx,
        });
        let app = Router::new()
            .route("/token", get(issue))
            .with_state(server.clone());
        crate::serve(listener, app, rx);
        server
    }

    pub fn realm(&self) -> String {
        format!("http://{}/token", self.addr)
    }

    fn sign(&self, access: Vec<serde_json::Value>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        let mut header = Header::new(Algorithm::ES256);
        // distribution 2.8 verifies the signing certificate against its rootcertbundle.
        header.x5c = Some(vec![self.cert_der_b64.clone()]);
        let claims = json!({
            "iss": ISSUER, "sub": "ferry-test", "aud": SERVICE,
            "exp": now + self.lifetime_secs, "nbf": now - 10, "iat": now,
            "jti": format!("{now}-{}", next_id()),
            "access": access,
        });
        jsonwebtoken::encode(&header, &claims, &self.key).expect("sign")
    }

    /// A token granting pull and push on `repositories`.
    pub fn token_for(&self, repositories: &[&str]) -> String {
        let access = repositories
            .iter()
            .map(
                |r| json!({"type": "repository", "name": r, "actions": ["pull", "push", "delete"]}),
            )
            .collect();
        self.sign(access)
    }
}

fn next_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    COUNTER.fetch_add(1, Ordering::Relaxed)
}

async fn issue(
    State(server): State<Arc<TokenServer>>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> axum::response::Response {
    server.requests.fetch_add(1, Ordering::Relaxed);
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD
            .encode(format!("{}:{}", server.username, server.password))
    );
    match headers.get("authorization").and_then(|v| v.to_str().ok()) {
        Some(h) if h == expected => {
            server
                .authenticated_requests
                .fetch_add(1, Ordering::Relaxed);
        }
        Some(_) => return (StatusCode::UNAUTHORIZED, "bad credentials").into_response(),
        None => return (StatusCode::UNAUTHORIZED, "credentials required").into_response(),
    }
    let mut access = Vec::new();
    let query = query.unwrap_or_default();
    for (key, scope) in url::form_urlencoded::parse(query.as_bytes()) {
        if key != "scope" {
            continue;
        }
        let parts: Vec<&str> = scope.splitn(3, ':').collect();
        if let [kind, name, actions] = parts.as_slice() {
            access.push(json!({"type": kind, "name": name, "actions": actions.split(',').collect::<Vec<_>>()}));
        }
    }
    let token = server.sign(access);
    Json(json!({"token": token, "access_token": token, "expires_in": server.lifetime_secs}))
        .into_response()
}
