//! Removing from mirrors: the registry client's DELETE against a real docker-registry,
//! with deletes switched on and off.

use std::sync::Arc;

use ferry::error::Error;
use ferry::reference::ImageRef;
use ferry::registry::{Deleted, RegistryClient};
use ferry_testbed::clients::*;
use ferry_testbed::fixtures::{Pushed, Style};
use ferry_testbed::{Auth, DockerRegistry};

/// `registry` holding one image, `app:1`, and a client and reference to its repository.
async fn one_image(registry: &DockerRegistry) -> (Pushed, Arc<RegistryClient>, ImageRef) {
    let pushed = registry
        .seeder()
        .push_image("app", "1", Style::Oci, &[100], 1)
        .await;
    let repo = image(&format!("{}/app", registry.host()));
    (pushed, client_with(&[]), repo)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_manifest_is_deleted_by_digest_once_and_gone_after() {
    let registry = DockerRegistry::start(Auth::None);
    let (pushed, client, repo) = one_image(&registry).await;

    // distribution 2.x deletes only by digest: a tag DELETE says so instead of failing.
    assert_eq!(
        client.delete_manifest(&repo, "1").await.unwrap(),
        Deleted::NotByTag
    );
    assert!(client.head_manifest(&repo, "1").await.unwrap().is_some());

    let digest = pushed.digest.to_string();
    assert_eq!(
        client.delete_manifest(&repo, &digest).await.unwrap(),
        Deleted::Removed
    );
    assert!(client.head_manifest(&repo, "1").await.unwrap().is_none());
    // Replayed removals succeed: what is gone stays gone.
    assert_eq!(
        client.delete_manifest(&repo, &digest).await.unwrap(),
        Deleted::AlreadyGone
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_registry_with_deletes_switched_off_names_the_setting() {
    let registry = DockerRegistry::start_refusing_deletes(Auth::None);
    let (pushed, client, repo) = one_image(&registry).await;
    let e = client
        .delete_manifest(&repo, &pushed.digest.to_string())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::DeleteRefused { .. }), "{e:?}");
    assert_eq!(e.kind(), "delete_refused");
    assert!(e.to_string().contains("delete: enabled: true"), "{e}");
    assert!(!e.is_retryable());
    // Nothing was taken.
    assert!(client.head_manifest(&repo, "1").await.unwrap().is_some());
}
