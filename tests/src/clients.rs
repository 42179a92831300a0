//! Clients for the test bed's registries: a registry client, a copier and requests for
//! loopback registries over plain HTTP, as the integration tests use them.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use ferry::auth::{Credential, CredentialStore};
use ferry::copy::progress::Progress;
use ferry::copy::{Copier, CopyOptions, CopyRequest};
use ferry::reference::ImageRef;
use ferry::registry::{Endpoints, RegistryClient, RegistryOptions, RetryPolicy};
use ferry::report::ImageReport;

pub fn client_with(creds: &[(&str, Credential)]) -> Arc<RegistryClient> {
    client_with_attempts(creds, 2)
}

/// A client that tries each request up to `attempts` times, 10 ms apart at first.
pub fn client_with_attempts(creds: &[(&str, Credential)], attempts: u32) -> Arc<RegistryClient> {
    client_with_options(
        creds,
        RegistryOptions {
            retry: RetryPolicy {
                max_attempts: attempts,
                base_delay: std::time::Duration::from_millis(10),
                ..RetryPolicy::default()
            },
            ..RegistryOptions::default()
        },
    )
}

/// A client with these options, over plain HTTP to loopback.
pub fn client_with_options(
    creds: &[(&str, Credential)],
    options: RegistryOptions,
) -> Arc<RegistryClient> {
    let mut store = CredentialStore::anonymous();
    for (host, c) in creds {
        store.insert(host, c.clone());
    }
    let options = RegistryOptions {
        endpoints: Endpoints::new().insecure_loopback(true),
        ..options
    };
    Arc::new(RegistryClient::new(options, store).unwrap())
}

pub fn copier() -> Copier {
    Copier::new(client_with(&[]), CopyOptions::default())
}

pub fn image(s: &str) -> ImageRef {
    s.parse().unwrap()
}

pub fn request(src: &str, dsts: &[&str]) -> CopyRequest {
    CopyRequest::new(image(src), dsts.iter().map(|d| image(d)).collect())
}

/// Copy `src` to `dst` (full references) with `client` and default options.
pub async fn copy_one(client: Arc<RegistryClient>, src: &str, dst: &str) -> ImageReport {
    Copier::new(client, CopyOptions::default())
        .copy_image(&request(src, &[dst]))
        .await
}

/// Counts bytes read from sources.
#[derive(Default)]
pub struct ReadCounter(pub AtomicU64);

impl Progress for ReadCounter {
    fn advanced(&self, _source: &ImageRef, bytes: u64) {
        self.0.fetch_add(bytes, Ordering::Relaxed);
    }
}
