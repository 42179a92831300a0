//! [`RegistryClient`]: the distribution API calls ferry makes, with authentication, bounded
//! retries and error mapping applied uniformly.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use reqwest::header::{
    HeaderValue, ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, LINK, LOCATION,
    WWW_AUTHENTICATE,
};
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use url::Url;

use super::endpoint::Endpoints;
use super::pace::{Answer, Limits, RegistryPace, RequestKind};
use super::response::Failure;
use super::retry::RetryPolicy;
use super::session::{without_url, Scope, Session};
use crate::auth::{challenge, CredentialStore};
use crate::digest::Digest;
use crate::error::{Error, Location, Operation, Result};
use crate::manifest::{Manifest, MediaType, ACCEPT_MANIFESTS, MAX_MANIFEST_BYTES, OCI_INDEX};
use crate::reference::ImageRef;

const DIGEST_HEADER: &str = "docker-content-digest";

#[derive(Debug, Clone)]
pub struct RegistryOptions {
    pub endpoints: Endpoints,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// Longest silence while reading a response; a stalled blob download fails after this.
    pub read_timeout: Duration,
    pub user_agent: String,
    /// Known rates, concurrency and bandwidth per registry, and the fleet sharing them.
    pub limits: Limits,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            endpoints: Endpoints::new(),
            retry: RetryPolicy::default(),
            connect_timeout: Duration::from_secs(15),
            read_timeout: Duration::from_secs(60),
            user_agent: format!("ferry/{}", env!("CARGO_PKG_VERSION")),
            limits: Limits::default(),
        }
    }
}

/// What a DELETE of a manifest did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Deleted {
    Removed,
    /// Nothing was there (deleted before, or never pushed).
    AlreadyGone,
    /// The registry deletes manifests only by digest, which would take every tag of it.
    NotByTag,
}

/// What a manifest HEAD says about a tag or digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManifestHead {
    pub digest: Digest,
    pub media_type: Option<MediaType>,
}

impl ManifestHead {
    /// Whether the registry says this is an index (or Docker manifest list).
    pub fn is_index(&self) -> bool {
        self.media_type.as_ref().is_some_and(MediaType::is_index)
    }
}

/// A page of `tags/list` (`tags` is `null` in some registries' answer for no tags).
#[derive(serde::Deserialize)]
struct TagList {
    #[serde(default)]
    tags: Option<Vec<String>>,
}

/// The answer to starting an upload: either the registry mounted the blob from another
/// repository (nothing to send), or it opened an upload session at this URL.
#[derive(Debug, Clone)]
pub enum UploadStart {
    Mounted,
    Session(Url),
}

/// Who a request is for and what it needs: the registry, repository, token scopes and the
/// operation (for error messages and IAM hints).
struct Call<'a> {
    image: &'a ImageRef,
    scopes: Vec<Scope>,
    op: Operation,
    /// What the registry's pace counts it as.
    kind: RequestKind,
    reference: &'a str,
}

impl<'a> Call<'a> {
    /// A read of `image`'s repository.
    fn pull(image: &'a ImageRef, op: Operation, kind: RequestKind, reference: &'a str) -> Self {
        Call {
            image,
            scopes: vec![Scope::pull(image.repository())],
            op,
            kind,
            reference,
        }
    }

    /// A write to `image`'s repository.
    fn push(image: &'a ImageRef, op: Operation, kind: RequestKind, reference: &'a str) -> Self {
        Call {
            image,
            scopes: vec![Scope::push(image.repository())],
            op,
            kind,
            reference,
        }
    }

    fn location(&self) -> Location {
        Location {
            registry: self.image.registry().to_string(),
            repository: self.image.repository().to_string(),
        }
    }

    fn transient(&self, e: reqwest::Error) -> Error {
        Error::Transient {
            at: self.location(),
            op: self.op,
            detail: without_url(&e),
        }
    }
}

pub struct RegistryClient {
    http: reqwest::Client,
    options: RegistryOptions,
    credentials: CredentialStore,
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl RegistryClient {
    pub fn new(options: RegistryOptions, credentials: CredentialStore) -> Result<Self> {
        let http = reqwest::Client::builder()
            .user_agent(options.user_agent.clone())
            .connect_timeout(options.connect_timeout)
            .read_timeout(options.read_timeout)
            .tcp_nodelay(true)
            .pool_max_idle_per_host(64)
            // reqwest strips Authorization when a redirect leaves the host (presigned
            // storage URLs); that default is what keeps credentials on their registry.
            .redirect(reqwest::redirect::Policy::limited(5))
            .build()
            .map_err(|e| Error::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(RegistryClient {
            http,
            options,
            credentials,
            sessions: Mutex::new(HashMap::new()),
        })
    }

    pub fn retry_policy(&self) -> RetryPolicy {
        self.options.retry
    }

    /// Whether two references are served by the same registry endpoint (so blobs can be
    /// mounted across their repositories).
    pub fn same_registry(&self, a: &ImageRef, b: &ImageRef) -> bool {
        self.options.endpoints.base_url(a.registry())
            == self.options.endpoints.base_url(b.registry())
    }

    fn session(&self, registry: &str) -> Arc<Session> {
        let mut sessions = self.sessions.lock().expect("session map poisoned");
        sessions
            .entry(registry.to_string())
            .or_insert_with(|| {
                Arc::new(Session::new(
                    registry.to_string(),
                    self.options.endpoints.base_url(registry),
                    &self.options.limits.for_host(registry),
                ))
            })
            .clone()
    }

    /// The pace of `registry`'s requests and transfers, shared by every image.
    pub fn pace(&self, registry: &str) -> Arc<RegistryPace> {
        self.session(registry).pace.clone()
    }

    /// Whether `registry` has said it counts manifest reads against a pull quota, so that
    /// a read that is not needed now is better left to whoever must make it.
    pub fn meters_pulls(&self, registry: &str) -> bool {
        self.session(registry).quota.meters()
    }

    /// Send a request built by `build`, authenticating as the registry asks. A 401 teaches
    /// the session the scheme (or that its token expired) and the request is sent once more,
    /// if `replayable`; a 401 to basic credentials renews them from their source once (an
    /// expired ECR token, a rotated secret). Each request waits for the registry's pace
    /// first. Returns the response whatever its status, and whether it went out without
    /// credentials, except a throttle (`429`, `503 Slow Down`) or a refusal for the pull
    /// quota, which come back as their errors ([`Error::RateLimited`],
    /// [`Error::QuotaExhausted`]) once the pace has learnt from them.
    async fn send(
        &self,
        call: &Call<'_>,
        replayable: bool,
        mut build: impl FnMut(&reqwest::Client, &Url) -> RequestBuilder,
    ) -> Result<(Response, bool)> {
        let session = self.session(call.image.registry());
        let mut credential = session
            .credential(&self.credentials, call.image.repository())
            .await?;
        let mut auth = session
            .authorization(&self.http, &credential, &call.scopes, false)
            .await?;
        let (mut learned, mut renewed) = (false, false);
        loop {
            let mut req = build(&self.http, &session.base);
            if let Some(h) = &auth {
                req = req.header(AUTHORIZATION, h.clone());
            }
            let ticket = session.pace.admit(call.kind).await;
            let resp = req.send().await.map_err(|e| call.transient(e))?;
            let status = resp.status();
            if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE
            {
                return Err(self
                    .refused(call, &session, ticket, resp, credential.is_anonymous())
                    .await);
            }
            ticket.settle(match status.is_server_error() {
                true => Answer::Other,
                false => Answer::Done,
            });
            if status != StatusCode::UNAUTHORIZED {
                return Ok((resp, credential.is_anonymous()));
            }
            if auth.is_some() && session.is_basic().await && !credential.is_anonymous() {
                // The basic credential we sent was refused. The same answer from its source
                // means it is simply wrong, and the 401 stands.
                if renewed {
                    return Ok((resp, false));
                }
                renewed = true;
                session.forget_credential(&credential).await;
                self.credentials
                    .forget(call.image.registry(), &credential)
                    .await;
                let fresh = session
                    .credential(&self.credentials, call.image.repository())
                    .await?;
                if fresh == credential {
                    return Ok((resp, false));
                }
                tracing::info!(registry = %call.image.registry(), "credential refused; retrying with a renewed one");
                credential = fresh;
            } else {
                if learned {
                    return Ok((resp, credential.is_anonymous()));
                }
                learned = true;
                let challenge = resp
                    .headers()
                    .get(WWW_AUTHENTICATE)
                    .and_then(|v| v.to_str().ok())
                    .and_then(challenge::parse);
                if !session.learn(challenge, &self.options.endpoints).await? {
                    return Ok((resp, credential.is_anonymous()));
                }
            }
            auth = session
                .authorization(&self.http, &credential, &call.scopes, true)
                .await?;
            if auth.is_none() {
                return Ok((resp, credential.is_anonymous()));
            }
            if !replayable {
                // The body is gone; the fresh credential is cached for the caller's retry.
                return Err(Error::Transient {
                    at: call.location(),
                    op: call.op,
                    detail: "authorization expired during the upload; retrying with a new one"
                        .into(),
                });
            }
        }
    }

    /// The error for a `429` or `503`, told to the registry's pace (a throttle) or its
    /// quota (a manifest GET refused for the pull quota).
    async fn refused(
        &self,
        call: &Call<'_>,
        session: &Session,
        ticket: super::pace::Ticket,
        resp: Response,
        anonymous: bool,
    ) -> Error {
        let headers = resp.headers().clone();
        let failure = Failure::read(resp).await;
        if call.kind == RequestKind::ManifestGet && failure.status == StatusCode::TOO_MANY_REQUESTS
        {
            if let Some(spent) = session.quota.refused(&headers, &failure.message) {
                ticket.settle(Answer::Other);
                tracing::warn!(registry = %call.image.registry(), limit = spent.limit, "pull quota spent; no more manifest reads from this registry until it resets");
                return quota_error(call.location(), spent);
            }
        }
        let error = failure.into_error(call.location(), call.op, call.reference, anonymous);
        ticket.settle(match &error {
            Error::RateLimited { retry_after, .. } => Answer::Throttled(*retry_after),
            _ => Answer::Other,
        });
        error
    }

    async fn fail(&self, call: &Call<'_>, resp: Response, anonymous: bool) -> Error {
        Failure::read(resp)
            .await
            .into_error(call.location(), call.op, call.reference, anonymous)
    }

    fn url(base: &Url, image: &ImageRef, tail: &str) -> Url {
        base.join(&format!("v2/{}/{tail}", image.repository()))
            .expect("repository names are URL-safe")
    }

    /// HEAD a manifest: its digest, or `None` when the tag or digest does not exist.
    pub async fn head_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
    ) -> Result<Option<ManifestHead>> {
        let call = Call::pull(
            image,
            Operation::ReadManifest,
            RequestKind::ManifestHead,
            reference,
        );
        self.options
            .retry
            .run("HEAD manifest", || async {
                let sent_at = std::time::Instant::now();
                let (resp, anon) = self
                    .send(&call, true, |http, base| {
                        http.head(Self::url(base, image, &format!("manifests/{reference}")))
                            .header(ACCEPT, ACCEPT_MANIFESTS)
                    })
                    .await?;
                if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
                    // HEADs are free where GETs are counted, and say how many are left.
                    self.session(image.registry())
                        .quota
                        .observe(resp.headers(), false, sent_at);
                }
                if resp.status() == StatusCode::NOT_FOUND {
                    return Ok(None);
                }
                if !resp.status().is_success() {
                    return Err(self.fail(&call, resp, anon).await);
                }
                let media_type =
                    header_str(&resp, CONTENT_TYPE.as_str()).map(|m| MediaType::new(&m));
                match header_str(&resp, DIGEST_HEADER).and_then(|d| d.parse::<Digest>().ok()) {
                    Some(digest) => Ok(Some(ManifestHead { digest, media_type })),
                    // Some registries omit the digest on HEAD; only a GET can tell.
                    None => {
                        let get = Call::pull(
                            image,
                            Operation::ReadManifest,
                            RequestKind::ManifestGet,
                            reference,
                        );
                        let m = self.get_manifest_once(&get).await?;
                        Ok(Some(ManifestHead {
                            digest: m.digest,
                            media_type: Some(m.media_type),
                        }))
                    }
                }
            })
            .await
    }

    /// GET a manifest's exact bytes, verified against the digest asked for (or the one the
    /// registry reports).
    pub async fn get_manifest(&self, image: &ImageRef, reference: &str) -> Result<Manifest> {
        let call = Call::pull(
            image,
            Operation::ReadManifest,
            RequestKind::ManifestGet,
            reference,
        );
        self.options
            .retry
            .run("GET manifest", || self.get_manifest_once(&call))
            .await
    }

    async fn get_manifest_once(&self, call: &Call<'_>) -> Result<Manifest> {
        let image = call.image;
        let reference = call.reference;
        let session = self.session(image.registry());
        // Held until the answer says what is left of the quota.
        let _permit = session
            .quota
            .admit_get()
            .await
            .map_err(|spent| quota_error(call.location(), spent))?;
        let sent_at = std::time::Instant::now();
        let (mut resp, anon) = self
            .send(call, true, |http, base| {
                http.get(Self::url(base, image, &format!("manifests/{reference}")))
                    .header(ACCEPT, ACCEPT_MANIFESTS)
            })
            .await?;
        if resp.status().is_success() || resp.status() == StatusCode::NOT_FOUND {
            session.quota.observe(resp.headers(), true, sent_at);
        }
        if !resp.status().is_success() {
            return Err(self.fail(call, resp, anon).await);
        }
        let content_type = header_str(&resp, CONTENT_TYPE.as_str());
        let header_digest = header_str(&resp, DIGEST_HEADER);
        let too_large = || Error::ManifestTooLarge {
            at: call.location(),
            limit: MAX_MANIFEST_BYTES,
        };
        if resp
            .content_length()
            .is_some_and(|n| n > MAX_MANIFEST_BYTES as u64)
        {
            return Err(too_large());
        }
        let mut raw = BytesMut::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| call.transient(e))? {
            if raw.len() + chunk.len() > MAX_MANIFEST_BYTES {
                return Err(too_large());
            }
            raw.extend_from_slice(&chunk);
        }
        let raw: Bytes = raw.freeze();
        // The digest to hold the bytes to: the one asked for, else the registry's claim,
        // else what they hash to.
        let expected = match reference.parse::<Digest>() {
            Ok(d) => Some(d),
            Err(_) => header_digest.as_deref().and_then(|d| d.parse().ok()),
        };
        let digest = match expected {
            Some(d) if d.matches(&raw) => d,
            Some(d) => {
                return Err(Error::DigestMismatch {
                    at: call.location(),
                    what: format!("manifest {reference}"),
                    actual: Digest::sha256_of(&raw).to_string(),
                    expected: d,
                })
            }
            None => Digest::sha256_of(&raw),
        };
        Manifest::parse(raw, digest, content_type.as_deref()).map_err(|source| Error::Manifest {
            at: call.location(),
            source,
        })
    }

    /// PUT a manifest's exact bytes under `reference` (a tag or its digest). Returns the
    /// digest the registry stored, which must be the manifest's own.
    pub async fn put_manifest(
        &self,
        image: &ImageRef,
        reference: &str,
        manifest: &Manifest,
    ) -> Result<()> {
        let call = Call::push(
            image,
            Operation::PushManifest,
            RequestKind::ManifestPut,
            reference,
        );
        self.options
            .retry
            .run("PUT manifest", || async {
                let (resp, anon) = self
                    .send(&call, true, |http, base| {
                        http.put(Self::url(base, image, &format!("manifests/{reference}")))
                            .header(CONTENT_TYPE, manifest.media_type.as_str())
                            .body(manifest.raw.clone())
                    })
                    .await?;
                if !resp.status().is_success() {
                    return Err(self.fail(&call, resp, anon).await);
                }
                if let Some(stored) = header_str(&resp, DIGEST_HEADER) {
                    if stored != manifest.digest.as_str() {
                        return Err(Error::DigestMismatch {
                            at: call.location(),
                            what: format!("pushed manifest {reference}"),
                            expected: manifest.digest.clone(),
                            actual: stored,
                        });
                    }
                }
                Ok(())
            })
            .await
    }

    /// DELETE a manifest by tag or digest. Deleting by digest removes every tag that points
    /// at it; deleting by tag removes only that tag, where the registry can (the OCI spec
    /// allows it; distribution 2.x answers `DIGEST_INVALID`, which comes back as
    /// [`Deleted::NotByTag`]). What is already gone is success: removals are retried and
    /// replayed.
    pub async fn delete_manifest(&self, image: &ImageRef, reference: &str) -> Result<Deleted> {
        // Paced with the manifest writes: a delete changes tags as a PUT does.
        let call = Call::push(
            image,
            Operation::DeleteManifest,
            RequestKind::ManifestPut,
            reference,
        );
        let by_tag = !reference.contains(':');
        self.options
            .retry
            .run("DELETE manifest", || async {
                let (resp, anon) = self
                    .send(&call, true, |http, base| {
                        http.delete(Self::url(base, image, &format!("manifests/{reference}")))
                    })
                    .await?;
                match resp.status() {
                    s if s.is_success() => Ok(Deleted::Removed),
                    StatusCode::NOT_FOUND => Ok(Deleted::AlreadyGone),
                    StatusCode::BAD_REQUEST if by_tag => {
                        let failure = Failure::read(resp).await;
                        match failure.code.as_str() {
                            "DIGEST_INVALID" | "UNSUPPORTED" => Ok(Deleted::NotByTag),
                            _ => Err(failure.into_error(call.location(), call.op, reference, anon)),
                        }
                    }
                    _ => Err(self.fail(&call, resp, anon).await),
                }
            })
            .await
    }

    /// Whether the repository has the blob.
    pub async fn blob_exists(&self, image: &ImageRef, digest: &Digest) -> Result<bool> {
        let reference = digest.as_str();
        let call = Call::pull(
            image,
            Operation::CheckBlob,
            RequestKind::BlobHead,
            reference,
        );
        self.options
            .retry
            .run("HEAD blob", || async {
                let (resp, anon) = self
                    .send(&call, true, |http, base| {
                        http.head(Self::url(base, image, &format!("blobs/{reference}")))
                    })
                    .await?;
                match resp.status() {
                    s if s.is_success() => Ok(true),
                    StatusCode::NOT_FOUND => Ok(false),
                    _ => Err(self.fail(&call, resp, anon).await),
                }
            })
            .await
    }

    /// Start streaming a blob. The caller reads the body (and retries on failure: a stream
    /// cannot be resumed here).
    pub async fn get_blob(&self, image: &ImageRef, digest: &Digest) -> Result<Response> {
        let reference = digest.as_str();
        let call = Call::pull(image, Operation::ReadBlob, RequestKind::BlobGet, reference);
        let (resp, anon) = self
            .send(&call, true, |http, base| {
                http.get(Self::url(base, image, &format!("blobs/{reference}")))
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.fail(&call, resp, anon).await);
        }
        Ok(resp)
    }

    /// Open an upload session in `image`'s repository, first asking the registry to mount
    /// `mount.1` from repository `mount.0` when given.
    pub async fn start_upload(
        &self,
        image: &ImageRef,
        mount: Option<(&str, &Digest)>,
    ) -> Result<UploadStart> {
        let mut scopes = vec![Scope::push(image.repository())];
        // A push scope covers pulling its own repository (a mount probe names it as `from`).
        if let Some((from, _)) = mount.filter(|(from, _)| *from != image.repository()) {
            scopes.push(Scope::pull(from));
        }
        let op = if mount.is_some() {
            Operation::MountBlob
        } else {
            Operation::StartUpload
        };
        let call = Call {
            image,
            scopes,
            op,
            kind: RequestKind::UploadStart,
            reference: "",
        };
        self.options
            .retry
            .run("start upload", || async {
                let (resp, anon) = self
                    .send(&call, true, |http, base| {
                        let mut url = Self::url(base, image, "blobs/uploads/");
                        if let Some((from, digest)) = mount {
                            url.query_pairs_mut()
                                .append_pair("mount", digest.as_str())
                                .append_pair("from", from);
                        }
                        http.request(Method::POST, url).header(CONTENT_LENGTH, "0")
                    })
                    .await?;
                let status = resp.status();
                if status == StatusCode::CREATED && mount.is_some() {
                    return Ok(UploadStart::Mounted);
                }
                if status != StatusCode::ACCEPTED {
                    return Err(self.fail(&call, resp, anon).await);
                }
                let location =
                    header_str(&resp, LOCATION.as_str()).ok_or_else(|| Error::Protocol {
                        at: call.location(),
                        op: call.op,
                        detail: "upload started without a Location header".into(),
                    })?;
                let session = self.session(image.registry());
                let url = session.base.join(&location).map_err(|_| Error::Protocol {
                    at: call.location(),
                    op: call.op,
                    detail: "upload Location is not a URL".into(),
                })?;
                Ok(UploadStart::Session(url))
            })
            .await
    }

    /// Finish an upload session with the whole blob in one streamed PUT. Not retried here:
    /// the body is a stream; the caller restarts the blob.
    pub async fn finish_upload(
        &self,
        image: &ImageRef,
        session_url: &Url,
        digest: &Digest,
        size: u64,
        body: reqwest::Body,
    ) -> Result<()> {
        let call = Call::push(
            image,
            Operation::UploadBlob,
            RequestKind::UploadFinish,
            digest.as_str(),
        );
        let mut url = session_url.clone();
        url.query_pairs_mut().append_pair("digest", digest.as_str());
        let mut body = Some(body);
        let (resp, anon) = self
            .send(&call, false, |http, _| {
                http.put(url.clone())
                    .header(CONTENT_TYPE, "application/octet-stream")
                    .header(CONTENT_LENGTH, HeaderValue::from(size))
                    .body(
                        body.take()
                            .unwrap_or_else(|| reqwest::Body::from(Vec::new())),
                    )
            })
            .await?;
        if resp.status() != StatusCode::CREATED && !resp.status().is_success() {
            return Err(self.fail(&call, resp, anon).await);
        }
        Ok(())
    }

    /// The referrers of `subject` from the OCI 1.1 referrers API, each entry as the registry
    /// wrote it, or `None` when the registry does not offer the API (it answers 404 where a
    /// registry with the API must answer a list, even an empty one). `artifact_type` asks
    /// the registry to filter; callers filter again, since registries may ignore it.
    pub async fn referrers(
        &self,
        image: &ImageRef,
        subject: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<Option<Vec<serde_json::Value>>> {
        let call = Call::pull(
            image,
            Operation::ListReferrers,
            RequestKind::List,
            subject.as_str(),
        );
        let mut path = format!("v2/{}/referrers/{subject}", image.repository());
        if let Some(t) = artifact_type {
            path.push_str("?artifactType=");
            path.push_str(&url::form_urlencoded::byte_serialize(t.as_bytes()).collect::<String>());
        }
        let mut all = Vec::new();
        let mut next = Some(path);
        while let Some(path) = next.take() {
            let (resp, anon) = self
                .options
                .retry
                .run("referrers list", || {
                    self.send(&call, true, |http, base| {
                        http.get(base.join(&path).expect("relative path"))
                            .header(ACCEPT, OCI_INDEX)
                    })
                })
                .await?;
            match resp.status() {
                StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
                    let body = resp.text().await.unwrap_or_default();
                    // A registry with the API that lacks the repository says so by code.
                    if body.contains("NAME_UNKNOWN") {
                        return Ok(Some(all));
                    }
                    return Ok(None);
                }
                s if !s.is_success() => return Err(self.fail(&call, resp, anon).await),
                _ => {}
            }
            next = header_str(&resp, LINK.as_str()).and_then(|l| parse_next_link(&l));
            let body = resp.bytes().await.map_err(|e| call.transient(e))?;
            let entries =
                crate::referrers::tags::entries(&body).map_err(|detail| Error::Protocol {
                    at: call.location(),
                    op: call.op,
                    detail: format!("referrers list is not an index: {detail}"),
                })?;
            all.extend(entries);
        }
        Ok(Some(all))
    }

    /// Every tag of `image`'s repository, following `Link` pagination.
    pub async fn list_tags(&self, image: &ImageRef) -> Result<Vec<String>> {
        let call = Call::pull(image, Operation::ListTags, RequestKind::List, "tags/list");
        let first = format!("v2/{}/tags/list?n=1000", image.repository());
        self.list_pages(&call, first, "tag list", |page: TagList| {
            page.tags.unwrap_or_default()
        })
        .await
    }

    /// Whether `image`'s repository holds any tag, from one page of at most one tag (the full
    /// list may take many pages). A repository that does not exist holds none.
    pub async fn has_tags(&self, image: &ImageRef) -> Result<bool> {
        let call = Call::pull(image, Operation::ListTags, RequestKind::List, "tags/list");
        let path = format!("v2/{}/tags/list?n=1", image.repository());
        match self.fetch_page::<TagList>(&call, &path, "tag list").await {
            Ok((page, _)) => Ok(page.tags.is_some_and(|t| !t.is_empty())),
            Err(Error::RepositoryNotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Every repository of `registry`, from `/v2/_catalog` (paginated). Registries that do
    /// not offer the catalog (Docker Hub, ECR's data plane) answer an error that says so;
    /// list the repositories in the config for those.
    pub async fn catalog(&self, registry: &str) -> Result<Vec<String>> {
        #[derive(serde::Deserialize)]
        struct Catalog {
            #[serde(default)]
            repositories: Option<Vec<String>>,
        }
        // The call needs an image for its registry and credentials; no repository name is
        // sent, and the token scope is the catalog's own.
        let anchor =
            ImageRef::new(registry, "catalog", None, None).map_err(Error::InvalidReference)?;
        let call = Call {
            image: &anchor,
            scopes: vec![Scope::catalog()],
            op: Operation::ListRepositories,
            kind: RequestKind::List,
            reference: "_catalog",
        };
        self.list_pages(
            &call,
            "v2/_catalog?n=1000".into(),
            "catalog",
            |page: Catalog| page.repositories.unwrap_or_default(),
        )
        .await
    }

    /// GET `first` and every page its `Link: <…>; rel="next"` headers lead to.
    async fn list_pages<P: serde::de::DeserializeOwned>(
        &self,
        call: &Call<'_>,
        first: String,
        what: &str,
        items: impl Fn(P) -> Vec<String>,
    ) -> Result<Vec<String>> {
        let mut all = Vec::new();
        let mut next = Some(first);
        while let Some(path) = next.take() {
            let (page, following) = self.fetch_page(call, &path, what).await?;
            next = following;
            all.extend(items(page));
        }
        Ok(all)
    }

    /// One page of a listing at `path`, and the path of the next one if its `Link` header
    /// names one. A 404 is [`Error::RepositoryNotFound`]: a listing has nothing else to miss.
    async fn fetch_page<P: serde::de::DeserializeOwned>(
        &self,
        call: &Call<'_>,
        path: &str,
        what: &str,
    ) -> Result<(P, Option<String>)> {
        let (resp, anon) = self
            .options
            .retry
            .run(what, || {
                self.send(call, true, |http, base| {
                    http.get(base.join(path).expect("relative path"))
                })
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            return Err(Error::RepositoryNotFound {
                at: call.location(),
                op: call.op,
            });
        }
        if !resp.status().is_success() {
            return Err(self.fail(call, resp, anon).await);
        }
        let next = header_str(&resp, LINK.as_str()).and_then(|l| parse_next_link(&l));
        let page: P = resp.json().await.map_err(|e| Error::Protocol {
            at: call.location(),
            op: call.op,
            detail: format!("{what} is not JSON: {}", without_url(&e)),
        })?;
        Ok((page, next))
    }
}

fn quota_error(at: Location, spent: super::quota::Spent) -> Error {
    Error::QuotaExhausted {
        at,
        limit: spent.limit,
        window: spent.window,
        resets_at: spent.resets_at,
    }
}

fn header_str(resp: &Response, name: &str) -> Option<String> {
    resp.headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// `<…/tags/list?n=1000&last=x>; rel="next"` → the path-and-query to fetch next.
fn parse_next_link(link: &str) -> Option<String> {
    link.split(',')
        .find(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
        .and_then(|part| {
            let target = part
                .split(';')
                .next()?
                .trim()
                .trim_start_matches('<')
                .trim_end_matches('>');
            let path = match Url::parse(target) {
                Ok(u) => format!(
                    "{}{}",
                    u.path(),
                    u.query().map(|q| format!("?{q}")).unwrap_or_default()
                ),
                Err(_) => target.to_string(),
            };
            Some(path.trim_start_matches('/').to_string())
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_pagination_links() {
        assert_eq!(
            parse_next_link(r#"</v2/app/tags/list?n=2&last=b>; rel="next""#).as_deref(),
            Some("v2/app/tags/list?n=2&last=b")
        );
        assert_eq!(
            parse_next_link(r#"<https://r.io/v2/app/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("v2/app/tags/list?last=b&n=2")
        );
        assert_eq!(parse_next_link(r#"</x>; rel="prev""#), None);
    }
}
