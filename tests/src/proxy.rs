//! A loopback HTTP proxy in front of a real registry that injects faults on request.
//!
//! Tests put it between ferry and a `docker-registry` to make the registry behave as a
//! production one sometimes does: throttle (`429` + `Retry-After`), expire tokens (`401`),
//! redirect blob downloads to storage on another host, refuse to overwrite an immutable tag
//! the way Amazon ECR does, or ignore blob mounts as ECR does unless they are enabled. Every
//! request is logged (method, path, whether it carried an `Authorization` header, when it
//! arrived) so a test can assert what ferry sent.
//!
//! Started with [`FaultProxy::start_with_referrers_api`], it also gives the registry behind
//! it the OCI 1.1 referrers API that `docker-registry` 2.8 lacks: manifests pushed through
//! it with a `subject` are indexed, answered with `OCI-Subject`, and listed at
//! `GET /v2/<name>/referrers/<digest>` (with `artifactType` filtering), as a registry that
//! implements the API does.
//!
//! Given a [`Production`], it also plays the registries users really meet: write rates,
//! a Docker Hub style pull quota, and distance ([`crate::production`]).
//!
//! The proxy forwards the client's `Host` header, so the URLs the registry builds (upload
//! `Location`s) point back at the proxy and every follow-up request passes through it too.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Router;
use bytes::Bytes;
use futures::StreamExt;

use crate::production::{Op, Production, Refused, Shaper, Verdict};

/// The request method type rules match on, re-exported so tests need not name axum.
pub use axum::http::Method as HttpMethod;

/// What the proxy saw of one request.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: Method,
    /// Path and query.
    pub path: String,
    pub authorization: Option<String>,
    pub at: Instant,
    /// The status the proxy answered with.
    pub status: u16,
}

type Predicate = Arc<dyn Fn(&Method, &str, &HeaderMap) -> bool + Send + Sync>;

/// What to do with a matching request.
#[derive(Clone)]
pub enum Action {
    /// Answer with this status, headers and body instead of forwarding.
    Respond {
        status: u16,
        headers: Vec<(String, String)>,
        body: String,
    },
    /// Answer `307` to the same path and query on `base` (e.g. `http://127.0.0.1:PORT`).
    RedirectTo(String),
    /// ECR's tag immutability: a manifest PUT to a tag that already exists upstream is
    /// answered `400 TAG_INVALID`, whatever digest it carries.
    ImmutableTags,
    /// Wait this long, then forward. A long delay is a registry that accepted the
    /// connection and never answered.
    Delay(Duration),
    /// Forward, pass on the response head and this many bytes of its body, then drop the
    /// connection: a reset in the middle of a download.
    CutResponse(usize),
    /// Read this many bytes of the request body, then drop the connection without an
    /// answer: a reset in the middle of an upload.
    CutRequest(usize),
    /// Forward, pass on the response head and this many bytes of its body, then send
    /// nothing more while keeping the connection open: a stalled download.
    StallResponse(usize),
    /// Forward without the `mount` and `from` query parameters: a registry that does not
    /// mount blobs (ECR unless its blob mounting is enabled) opens an upload session for
    /// every mount request, even for a blob the repository has.
    IgnoreMounts,
}

impl Action {
    /// Answer `status` with the distribution API's error document, as a registry does.
    pub fn registry_error(status: u16, code: &str, message: &str) -> Action {
        Action::Respond {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: serde_json::json!({"errors": [{"code": code, "message": message}]}).to_string(),
        }
    }

    /// The same answer with one more header (`Retry-After`, `WWW-Authenticate`).
    pub fn with_header(mut self, name: &str, value: &str) -> Action {
        if let Action::Respond { headers, .. } = &mut self {
            headers.push((name.into(), value.into()));
        }
        self
    }
}

struct Rule {
    matches: Predicate,
    action: Action,
    /// How many more requests this rule applies to; `None` is every one.
    remaining: Option<usize>,
}

struct Inner {
    upstream: String,
    rules: Mutex<Vec<Rule>>,
    seen: Mutex<Vec<Seen>>,
    http: reqwest::Client,
    /// (repository, subject digest) → descriptors of its referrers, when the proxy serves
    /// the referrers API.
    referrers: Option<Mutex<ReferrerIndex>>,
    /// Production behaviours, when given.
    shaper: Mutex<Option<Arc<Shaper>>>,
}

type ReferrerIndex = std::collections::HashMap<(String, String), Vec<serde_json::Value>>;

pub struct FaultProxy {
    pub addr: SocketAddr,
    inner: Arc<Inner>,
    _shutdown: tokio::sync::oneshot::Sender<()>,
}

/// Headers that describe one hop's connection, not the message.
const HOP_BY_HOP: [&str; 6] = [
    "connection",
    "keep-alive",
    "transfer-encoding",
    "te",
    "upgrade",
    "proxy-connection",
];

impl FaultProxy {
    /// Start on a free loopback port, forwarding to `upstream` (`http://127.0.0.1:PORT`).
    pub async fn start(upstream: &str) -> FaultProxy {
        Self::start_inner(upstream, false).await
    }

    /// Start in front of `upstream`, serving the referrers API for it.
    pub async fn start_with_referrers_api(upstream: &str) -> FaultProxy {
        Self::start_inner(upstream, true).await
    }

    async fn start_inner(upstream: &str, referrers_api: bool) -> FaultProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().unwrap();
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            rules: Mutex::new(Vec::new()),
            seen: Mutex::new(Vec::new()),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            referrers: referrers_api.then(Default::default),
            shaper: Mutex::new(None),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let (tx, rx) = tokio::sync::oneshot::channel();
        crate::serve(listener, app, rx);
        FaultProxy {
            addr,
            inner,
            _shutdown: tx,
        }
    }

    /// `127.0.0.1:PORT`, the proxy's name in image references.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Apply `action` to the next `times` requests (all, if `None`) for which `matches`
    /// holds. Rules are tried in the order they were added; the first that matches wins.
    pub fn rule(
        &self,
        matches: impl Fn(&Method, &str, &HeaderMap) -> bool + Send + Sync + 'static,
        action: Action,
        times: Option<usize>,
    ) {
        self.inner.rules.lock().unwrap().push(Rule {
            matches: Arc::new(matches),
            action,
            remaining: times,
        });
    }

    /// Behave as a production registry does from now on (replacing earlier behaviours and
    /// their counts).
    pub fn production(&self, settings: Production) {
        *self.inner.shaper.lock().unwrap() = Some(Arc::new(Shaper::new(settings)));
    }

    /// What the production behaviours refused so far.
    pub fn refused(&self) -> Refused {
        self.inner
            .shaper
            .lock()
            .unwrap()
            .as_ref()
            .map(|s| s.refused())
            .unwrap_or_default()
    }

    /// Every request so far, in arrival order.
    pub fn seen(&self) -> Vec<Seen> {
        self.inner.seen.lock().unwrap().clone()
    }
}

/// A predicate for `method` requests whose path contains `fragment`.
pub fn on(
    method: Method,
    fragment: &'static str,
) -> impl Fn(&Method, &str, &HeaderMap) -> bool + Send + Sync + 'static {
    move |m, path, _| *m == method && path.contains(fragment)
}

impl Inner {
    fn take_action(&self, method: &Method, path: &str, headers: &HeaderMap) -> Option<Action> {
        let mut rules = self.rules.lock().unwrap();
        for rule in rules.iter_mut() {
            if rule.remaining == Some(0) || !(rule.matches)(method, path, headers) {
                continue;
            }
            if let Some(n) = rule.remaining.as_mut() {
                *n -= 1;
            }
            return Some(rule.action.clone());
        }
        None
    }

    fn record(&self, method: Method, path: String, headers: &HeaderMap, at: Instant, status: u16) {
        self.seen.lock().unwrap().push(Seen {
            method,
            path,
            authorization: headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .map(str::to_string),
            at,
            status,
        });
    }
}

async fn handle(State(inner): State<Arc<Inner>>, request: Request) -> Response {
    let at = Instant::now();
    let method = request.method().clone();
    let path = request
        .uri()
        .path_and_query()
        .map(|p| p.to_string())
        .unwrap_or_default();
    let headers = request.headers().clone();
    let shaper = inner.shaper.lock().unwrap().clone();
    let mut added = Vec::new();
    if let Some(shaper) = shaper {
        let peer = request
            .extensions()
            .get::<axum::extract::ConnectInfo<SocketAddr>>()
            .map(|c| c.0);
        tokio::time::sleep(shaper.delay(peer)).await;
        match shaper.judge(Op::of(&method, &path)) {
            Verdict::Forward(extra) => added = extra,
            Verdict::Refuse {
                headers: extra,
                body,
            } => {
                // Read what the client sends first: a refusal before an upload's body is
                // read reaches the client as a reset, not as the answer.
                let _ = axum::body::to_bytes(request.into_body(), usize::MAX).await;
                let mut response = (StatusCode::TOO_MANY_REQUESTS, body).into_response();
                add_headers(&mut response, &extra);
                response
                    .headers_mut()
                    .insert("content-type", HeaderValue::from_static("application/json"));
                inner.record(method, path, &headers, at, 429);
                return response;
            }
        }
    }
    let action = inner.take_action(&method, &path, &headers);
    let mut response = match action {
        Some(Action::Respond {
            status,
            headers: extra,
            body,
        }) => {
            let mut response = (StatusCode::from_u16(status).unwrap(), body).into_response();
            add_headers(&mut response, &extra);
            response
        }
        Some(Action::RedirectTo(base)) => {
            let mut response = StatusCode::TEMPORARY_REDIRECT.into_response();
            response.headers_mut().insert(
                "location",
                HeaderValue::try_from(format!("{base}{path}")).unwrap(),
            );
            response
        }
        Some(Action::ImmutableTags) if method == Method::PUT => {
            match immutable_conflict(&inner, &path, &headers).await {
                Some(response) => response,
                None => forward(&inner, request).await,
            }
        }
        Some(Action::ImmutableTags) => forward(&inner, request).await,
        Some(Action::IgnoreMounts) => {
            let (mut parts, body) = request.into_parts();
            let kept: Vec<&str> = parts
                .uri
                .query()
                .unwrap_or_default()
                .split('&')
                .filter(|kv| !kv.starts_with("mount=") && !kv.starts_with("from="))
                .filter(|kv| !kv.is_empty())
                .collect();
            let stripped = match kept.is_empty() {
                true => parts.uri.path().to_string(),
                false => format!("{}?{}", parts.uri.path(), kept.join("&")),
            };
            parts.uri = stripped.parse().expect("a path and query");
            forward(&inner, Request::from_parts(parts, body)).await
        }
        Some(Action::Delay(d)) => {
            tokio::time::sleep(d).await;
            forward(&inner, request).await
        }
        Some(Action::CutResponse(after)) => {
            let response = forward(&inner, request).await;
            truncate(response, after, Ending::Reset)
        }
        Some(Action::StallResponse(after)) => {
            let response = forward(&inner, request).await;
            truncate(response, after, Ending::Stall)
        }
        Some(Action::CutRequest(after)) => {
            let mut body = request.into_body().into_data_stream();
            let mut read = 0;
            while read < after {
                match body.next().await {
                    Some(Ok(chunk)) => read += chunk.len(),
                    _ => break,
                }
            }
            // A body that fails before its first byte makes hyper close the connection
            // with the head still unsent: the client sees a reset, not a status.
            let reset = futures::stream::once(async { Err::<Bytes, _>(injected_reset()) });
            Response::builder()
                .status(StatusCode::CREATED)
                .body(Body::from_stream(reset))
                .unwrap()
        }
        None if inner.referrers.is_some() => referrers_api(&inner, request).await,
        None => forward(&inner, request).await,
    };
    add_headers(&mut response, &added);
    inner.record(method, path, &headers, at, response.status().as_u16());
    response
}

fn add_headers(response: &mut Response, headers: &[(String, String)]) {
    for (k, v) in headers {
        response.headers_mut().insert(
            HeaderName::try_from(k.as_str()).unwrap(),
            HeaderValue::try_from(v.as_str()).unwrap(),
        );
    }
}

/// The referrers API over the registry: list referrers, index manifests pushed with a
/// subject, forward everything else.
async fn referrers_api(inner: &Inner, request: Request) -> Response {
    let index = inner.referrers.as_ref().expect("referrers API on");
    let path = request.uri().path().to_string();
    let Some((name, rest)) = path.strip_prefix("/v2/").and_then(|p| {
        p.split_once("/referrers/")
            .map(|(n, d)| (n, ("referrers", d)))
            .or_else(|| {
                p.split_once("/manifests/")
                    .map(|(n, r)| (n, ("manifests", r)))
            })
    }) else {
        return forward(inner, request).await;
    };
    let (name, (kind, reference)) = (name.to_string(), rest);
    let reference = reference.to_string();
    if kind == "referrers" && request.method() == Method::GET {
        let wanted = request.uri().query().and_then(|q| {
            q.split('&')
                .find_map(|kv| kv.strip_prefix("artifactType="))
                .map(|t| t.replace("%2B", "+").replace("%2F", "/"))
        });
        let entries: Vec<serde_json::Value> = index
            .lock()
            .unwrap()
            .get(&(name, reference))
            .cloned()
            .unwrap_or_default()
            .into_iter()
            .filter(|e| wanted.as_deref().is_none_or(|t| e["artifactType"] == t))
            .collect();
        let body = serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        let mut response = (StatusCode::OK, body.to_string()).into_response();
        let headers = response.headers_mut();
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/vnd.oci.image.index.v1+json"),
        );
        if wanted.is_some() {
            headers.insert(
                "oci-filters-applied",
                HeaderValue::from_static("artifactType"),
            );
        }
        return response;
    }
    if kind != "manifests" || request.method() != Method::PUT {
        return forward(inner, request).await;
    }
    let (parts, body) = request.into_parts();
    let raw = axum::body::to_bytes(body, 4 << 20)
        .await
        .unwrap_or_default();
    let media_type = parts
        .headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    let doc: serde_json::Value = serde_json::from_slice(&raw).unwrap_or_default();
    let mut response = forward(inner, Request::from_parts(parts, Body::from(raw.clone()))).await;
    let Some(subject) = doc["subject"]["digest"].as_str() else {
        return response;
    };
    if response.status().is_success() {
        let artifact_type = doc
            .get("artifactType")
            .or_else(|| doc.get("config").and_then(|c| c.get("mediaType")))
            .cloned()
            .unwrap_or_default();
        let mut entry = serde_json::json!({
            "mediaType": media_type,
            "digest": format!("sha256:{}", hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&raw))),
            "size": raw.len(),
            "artifactType": artifact_type,
        });
        if let Some(a) = doc.get("annotations") {
            entry["annotations"] = a.clone();
        }
        let mut index = index.lock().unwrap();
        let list = index.entry((name, subject.to_string())).or_default();
        if !list.iter().any(|e| e["digest"] == entry["digest"]) {
            list.push(entry);
        }
        response
            .headers_mut()
            .insert("oci-subject", HeaderValue::try_from(subject).unwrap());
    }
    response
}

enum Ending {
    Reset,
    Stall,
}

fn injected_reset() -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::ConnectionReset, "injected reset")
}

/// `response` with its body cut after `after` bytes, ending as `ending` says.
fn truncate(response: Response, after: usize, ending: Ending) -> Response {
    let (parts, body) = response.into_parts();
    let head = body.into_data_stream().scan(after, |left, chunk| {
        let item = match chunk {
            Ok(_) if *left == 0 => None,
            Ok(mut chunk) => {
                chunk.truncate(*left);
                *left -= chunk.len();
                Some(Ok(chunk))
            }
            Err(e) => Some(Err(std::io::Error::other(e))),
        };
        futures::future::ready(item)
    });
    let tail = futures::stream::once(async move {
        match ending {
            Ending::Reset => Err(injected_reset()),
            Ending::Stall => futures::future::pending().await,
        }
    });
    Response::from_parts(parts, Body::from_stream(head.chain(tail)))
}

/// ECR's answer to overwriting a tag of an immutable repository, if `path` is a manifest PUT
/// by tag and the tag exists upstream.
async fn immutable_conflict(inner: &Inner, path: &str, headers: &HeaderMap) -> Option<Response> {
    let (name, reference) = path.strip_prefix("/v2/")?.split_once("/manifests/")?;
    if reference.starts_with("sha256:") {
        return None;
    }
    let mut head = inner
        .http
        .head(format!("{}{path}", inner.upstream))
        .header(
            "accept",
            "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json",
        );
    if let Some(auth) = headers.get("authorization") {
        head = head.header("authorization", auth);
    }
    let exists = head.send().await.ok()?.status().is_success();
    if !exists {
        return None;
    }
    let body = serde_json::json!({"errors": [{
        "code": "TAG_INVALID",
        "message": format!("The image tag '{reference}' already exists in the '{name}' repository and cannot be overwritten because the repository is immutable."),
    }]});
    Some((StatusCode::BAD_REQUEST, body.to_string()).into_response())
}

async fn forward(inner: &Inner, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str())
        .unwrap_or("/");
    let mut outgoing = inner
        .http
        .request(parts.method.clone(), format!("{}{path}", inner.upstream));
    // Stream a body only when there is one, so a GET is not sent chunked.
    let has_body = parts.headers.contains_key("content-length")
        || parts.headers.contains_key("transfer-encoding");
    if has_body {
        outgoing = outgoing.body(reqwest::Body::wrap_stream(body.into_data_stream()));
    }
    for (name, value) in parts.headers.iter() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            outgoing = outgoing.header(name, value);
        }
    }
    let upstream = match outgoing.send().await {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_GATEWAY, e.to_string()).into_response(),
    };
    let mut response = Response::builder().status(upstream.status().as_u16());
    for (name, value) in upstream.headers() {
        if !HOP_BY_HOP.contains(&name.as_str()) {
            response = response.header(name, value);
        }
    }
    response
        .body(Body::from_stream(upstream.bytes_stream()))
        .unwrap()
}
