//! How the copy engine meets a registry that misbehaves the way production ones do: a
//! fault-injecting proxy sits in front of a real docker-registry and throttles, expires
//! tokens, redirects downloads to another host, or refuses to overwrite immutable tags.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use axum::http::Method;
use ferry::auth::Credential;
use ferry::registry::{Limits, RegistryLimits, RegistryOptions, RetryPolicy};
use ferry::report::Status;
use ferry_testbed::clients::*;
use ferry_testbed::fixtures::Style;
use ferry_testbed::proxy::{on, Action, FaultProxy};
use ferry_testbed::token::TokenServer;
use ferry_testbed::{Auth, DockerRegistry};

#[tokio::test(flavor = "multi_thread")]
async fn rate_limited_requests_wait_for_retry_after() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[300], 1)
        .await;
    let proxy = FaultProxy::start(&src.url()).await;
    proxy.rule(
        on(Method::HEAD, "/manifests/"),
        Action::registry_error(429, "TOOMANYREQUESTS", "slow down").with_header("Retry-After", "1"),
        Some(2),
    );
    let report = copy_one(
        client_with_attempts(&[], 4),
        &format!("{}/app:1", proxy.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_eq!(report.digest.as_deref(), Some(pushed.digest.as_str()));

    // Each retry came no sooner than the registry asked.
    let heads: Vec<_> = proxy
        .seen()
        .into_iter()
        .filter(|s| s.method == Method::HEAD && s.path.contains("/manifests/"))
        .collect();
    assert_eq!(
        heads.iter().map(|s| s.status).collect::<Vec<_>>(),
        [429, 429, 200]
    );
    for pair in heads.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_that_throttles_past_the_patience_fails_the_image_as_rate_limited() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    src.seeder()
        .push_image("app", "1", Style::Oci, &[300], 1)
        .await;
    let proxy = FaultProxy::start(&src.url()).await;
    proxy.rule(
        on(Method::HEAD, "/manifests/"),
        Action::registry_error(429, "TOOMANYREQUESTS", "Rate exceeded"),
        None,
    );
    let patience = Duration::from_secs(2);
    let client = client_with_options(
        &[],
        RegistryOptions {
            retry: RetryPolicy {
                max_attempts: 2,
                throttle_patience: patience,
                ..RetryPolicy::default()
            },
            ..RegistryOptions::default()
        },
    );
    let started = Instant::now();
    let report = copy_one(
        client,
        &format!("{}/app:1", proxy.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    assert_eq!(report.status, Status::Failed);
    let error = report.first_error().unwrap();
    assert_eq!(error.kind, "rate_limited", "{error:?}");
    assert!(error.retryable);
    // Throttles are not failed attempts: more tries than the two attempts allow, each
    // slower than the last, until one request has been throttled for its patience.
    let tries = proxy.seen();
    assert!((3..=4).contains(&tries.len()), "{tries:#?}");
    for pair in tries.windows(3) {
        assert!(
            pair[2].at - pair[1].at > pair[1].at - pair[0].at,
            "{tries:#?}"
        );
    }
    assert!(started.elapsed() >= patience);
    assert!(dst.seeder().tags("app").await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bandwidth_cap_holds_a_large_blob_near_its_rate() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let size = 6 << 20;
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[size], 7)
        .await;
    let cap = 2 << 20;
    let limits = Limits {
        registries: [(
            dst.host(),
            RegistryLimits {
                bytes_per_second: Some(cap),
                ..RegistryLimits::default()
            },
        )]
        .into(),
        ..Limits::default()
    };
    let client = client_with_options(
        &[],
        RegistryOptions {
            limits,
            ..RegistryOptions::default()
        },
    );
    let started = Instant::now();
    let report = copy_one(
        client,
        &format!("{}/app:1", src.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    let took = started.elapsed();
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_eq!(report.digest.as_deref(), Some(pushed.digest.as_str()));
    // 6 MiB at 2 MiB/s, the first second's worth at once: about 2 s. Uncapped, loopback
    // moves it in a fraction of that.
    assert!(took >= Duration::from_millis(1800), "took {took:?}");
    assert!(took < Duration::from_secs(20), "took {took:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_bearer_token_is_replaced_and_the_copy_completes() {
    let tokens = TokenServer::start("ci", "s3cret").await;
    let dst = DockerRegistry::start(Auth::Token(tokens.clone()));
    let src = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Docker, &[1000, 2000], 7)
        .await;
    let proxy = FaultProxy::start(&dst.url()).await;
    // The registry stops accepting the token it issued, once for a blob upload (whose
    // streamed body cannot be replayed) and once for the manifest PUT (which can).
    let expired = format!(
        r#"Bearer realm="{}",service="{}",scope="repository:mirror/app:pull,push",error="invalid_token""#,
        tokens.realm(),
        ferry_testbed::token::SERVICE
    );
    for (method, fragment) in [
        (Method::PUT, "/blobs/uploads/"),
        (Method::PUT, "/manifests/"),
    ] {
        proxy.rule(
            move |m, path, headers| {
                *m == method
                    && path.contains(fragment)
                    && headers
                        .get("authorization")
                        .is_some_and(|h| h.as_bytes().starts_with(b"Bearer "))
            },
            Action::registry_error(401, "UNAUTHORIZED", "token expired")
                .with_header("WWW-Authenticate", &expired),
            Some(1),
        );
    }
    let report = copy_one(
        client_with_attempts(&[(&proxy.host(), Credential::basic("ci", "s3cret"))], 3),
        &format!("{}/app:1", src.host()),
        &format!("{}/mirror/app:1", proxy.host()),
    )
    .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let (raw, _, digest) = dst.seeder().manifest("mirror/app", "1").await.unwrap();
    assert_eq!(digest, pushed.digest);
    assert_eq!(raw, pushed.raw);
    // Two tokens at the start (pull for the HEAD, pull+push for the upload), and one more
    // after each rejection.
    assert_eq!(tokens.authenticated_requests.load(Ordering::Relaxed), 4);
    let rejected = proxy.seen().iter().filter(|s| s.status == 401).count();
    assert!(rejected >= 2, "both injected rejections were hit");
}

#[tokio::test(flavor = "multi_thread")]
async fn immutable_tag_conflict_is_a_permanent_failure_and_keeps_the_old_image() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let new = src
        .seeder()
        .push_image("app", "1.4", Style::Oci, &[500], 1)
        .await;
    let old = dst
        .seeder()
        .push_image("app", "1.4", Style::Oci, &[500], 2)
        .await;
    let proxy = FaultProxy::start(&dst.url()).await;
    proxy.rule(|_, _, _| true, Action::ImmutableTags, None);

    // Retries are allowed, but a conflict must not use them.
    let report = copy_one(
        client_with_attempts(&[], 4),
        &format!("{}/app:1.4", src.host()),
        &format!("{}/app:1.4", proxy.host()),
    )
    .await;
    assert_eq!(report.status, Status::Failed);
    let error = report.first_error().unwrap();
    assert_eq!(error.kind, "immutable_tag", "{error:?}");
    assert!(!error.retryable);
    assert!(error.message.contains("1.4"), "{}", error.message);
    let manifest_puts = proxy
        .seen()
        .iter()
        .filter(|s| s.method == Method::PUT && s.path.contains("/manifests/"))
        .count();
    assert_eq!(manifest_puts, 1);
    let (_, _, digest) = dst.seeder().manifest("app", "1.4").await.unwrap();
    assert_eq!(digest, old.digest, "the existing tag is untouched");

    // The same image under an immutable tag is simply up to date: no PUT at all.
    let same = copy_one(
        client_with(&[]),
        &format!("{}/app:1.4", proxy.host()),
        &format!("{}/app:1.4", proxy.host()),
    )
    .await;
    assert_eq!(same.status, Status::UpToDate);
    assert_ne!(new.digest, old.digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn redirected_blob_downloads_carry_no_credentials() {
    let registry = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let pushed = registry
        .seeder()
        .push_image("app", "1", Style::Oci, &[4000, 5000], 3)
        .await;
    // "storage" is another host serving the blobs, like the presigned S3 URLs ECR and
    // Docker Hub redirect to; the front proxy is the registry, and wants basic auth.
    let storage = FaultProxy::start(&registry.url()).await;
    let front = FaultProxy::start(&registry.url()).await;
    front.rule(
        |_, _, headers| !headers.contains_key("authorization"),
        Action::Respond {
            status: 401,
            headers: vec![(
                "WWW-Authenticate".into(),
                r#"Basic realm="registry""#.into(),
            )],
            body: String::new(),
        },
        None,
    );
    front.rule(
        on(Method::GET, "/blobs/sha256:"),
        Action::RedirectTo(storage.url()),
        None,
    );
    let report = copy_one(
        client_with(&[(&front.host(), Credential::basic("reader", "top-secret"))]),
        &format!("{}/app:1", front.host()),
        &format!("{}/app:1", dst.host()),
    )
    .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_eq!(report.digest.as_deref(), Some(pushed.digest.as_str()));

    let downloads = storage.seen();
    assert_eq!(downloads.len(), pushed.blobs.len(), "{downloads:?}");
    assert!(
        downloads.iter().all(|s| s.authorization.is_none()),
        "credentials leaked to the storage host: {downloads:?}"
    );
    assert!(front.seen().iter().any(|s| s
        .authorization
        .as_deref()
        .is_some_and(|a| a.starts_with("Basic "))));
}

#[tokio::test(flavor = "multi_thread")]
async fn an_expired_ecr_token_is_renewed_and_the_copy_completes() {
    use base64::Engine;
    use ferry::auth::ecr::EcrTokenProvider;
    use ferry::auth::CredentialStore;
    use ferry::aws::AwsClients;
    use ferry::registry::{Endpoints, RegistryClient, RegistryOptions};
    use ferry_testbed::moto::{MotoServer, REGION};
    use std::sync::atomic::AtomicUsize;
    use std::sync::Arc;

    let moto = MotoServer::start();
    let ecr = MotoServer::ecr_registry();
    let src = DockerRegistry::start(Auth::None);
    let pushed = src
        .seeder()
        .push_image("app", "1", Style::Oci, &[800, 1600], 3)
        .await;

    // ECR's API behind a proxy that counts token requests and answers the first with a
    // token the registry no longer accepts (as after its 12 hours), claiming hours to live.
    let aws = FaultProxy::start(&moto.endpoint()).await;
    let token_requests = Arc::new(AtomicUsize::new(0));
    let is_token_request = |headers: &axum::http::HeaderMap| {
        headers
            .get("x-amz-target")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.ends_with("GetAuthorizationToken"))
    };
    let counter = token_requests.clone();
    aws.rule(
        move |_, _, headers| {
            if is_token_request(headers) {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            false
        },
        Action::Delay(Duration::ZERO),
        None,
    );
    let stale = base64::engine::general_purpose::STANDARD.encode("AWS:token-from-yesterday");
    let in_six_hours = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 6 * 3600;
    aws.rule(
        move |_, _, headers| is_token_request(headers),
        Action::Respond {
            status: 200,
            headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
            body: serde_json::json!({"authorizationData": [{
                "authorizationToken": stale,
                "expiresAt": in_six_hours,
                "proxyEndpoint": format!("https://{}", MotoServer::ecr_host(REGION)),
            }]})
            .to_string(),
        },
        Some(1),
    );

    let sdk = MotoServer::sdk_config_at(&aws.url()).await;
    let mut store = CredentialStore::anonymous();
    store.set_ecr(Some(Arc::new(EcrTokenProvider::with_clients(Arc::new(
        AwsClients::from_config(sdk),
    )))));
    let ecr_host = MotoServer::ecr_host(REGION);
    let options = RegistryOptions {
        endpoints: Endpoints::new()
            .insecure_loopback(true)
            .route(&ecr_host, &ecr.url())
            .unwrap(),
        ..RegistryOptions::default()
    };
    let client = Arc::new(RegistryClient::new(options, store).unwrap());
    let report = copy_one(
        client,
        &format!("{}/app:1", src.host()),
        &format!("{ecr_host}/mirror/app:1"),
    )
    .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let (raw, _, digest) = ecr.seeder().manifest("mirror/app", "1").await.unwrap();
    assert_eq!((raw, digest), (pushed.raw, pushed.digest));
    // One token that was refused, one that worked; not one per request.
    assert_eq!(token_requests.load(Ordering::SeqCst), 2);
}
