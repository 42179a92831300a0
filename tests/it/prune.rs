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

/// `BatchDeleteImage` on moto's ECR: the ECR half of the remover, which never touches the
/// registry data plane. Tags are put with `PutImage`, as a push would leave them.
#[tokio::test(flavor = "multi_thread")]
async fn an_ecr_mirror_is_untagged_with_batch_delete_image_and_loses_the_signatures_of_what_goes() {
    use ferry::aws::AwsClients;
    use ferry::message::{Reason, RemovalReason, RemoveJob, TagRemoval};
    use ferry::referrers::tags::cosign_tag;
    use ferry::referrers::CosignSuffix;
    use ferry::remove::{Outcome, Remover};
    use ferry_testbed::moto::{MotoServer, REGION};

    let moto = MotoServer::start();
    let ecr = aws_sdk_ecr::Client::new(&moto.sdk_config().await);
    ecr.create_repository()
        .repository_name("mirror/app")
        .send()
        .await
        .unwrap();
    // The source: a registry holding only 4.0 of the tags removed below.
    let src = DockerRegistry::start(Auth::None);
    let seeder = src.seeder();
    let shared = seeder
        .push_image("scratch", "a", Style::Oci, &[10], 1)
        .await;
    let lone = seeder
        .push_image("scratch", "b", Style::Oci, &[10], 2)
        .await;
    let back = seeder.push_image("app", "4.0", Style::Oci, &[10], 3).await;
    let sig = seeder
        .push_cosign_artifact("scratch", &lone.digest, "sig", 4)
        .await;
    let lone_digest: ferry::digest::Digest = lone.digest.parse().unwrap();
    let sig_tag = cosign_tag(&lone_digest, CosignSuffix::Sig);
    let put = |tag: String, p: &Pushed| {
        let ecr = ecr.clone();
        let (raw, digest) = (String::from_utf8(p.raw.clone()).unwrap(), p.digest.clone());
        async move {
            ecr.put_image()
                .repository_name("mirror/app")
                .image_tag(tag)
                .image_manifest(raw)
                .image_digest(digest)
                .send()
                .await
                .unwrap();
        }
    };
    put("1.0".into(), &shared).await;
    put("1.1".into(), &shared).await;
    put("2.0".into(), &lone).await;
    put(sig_tag.clone(), &sig).await;
    put("4.0".into(), &back).await;

    let host = MotoServer::ecr_host(REGION);
    let gone = |tag: &str| TagRemoval {
        tag: tag.into(),
        source_tag: tag.into(),
        why: RemovalReason::GoneFromSource,
    };
    let job = RemoveJob {
        destination: image(&format!("{host}/mirror/app")),
        source: image(&format!("{}/app", src.host())),
        tags: ["1.0", "2.0", "4.0", "9.9"].map(gone).to_vec(),
        source_name: None,
        reason: Reason::Manual,
    };
    let registry = client_with(&[]);
    let aws = AwsClients::from_config(moto.sdk_config().await);
    let reports = Remover::new(&registry, &aws).remove(&job).await;
    let outcomes: Vec<(&str, &Outcome, &[String])> = reports
        .iter()
        .map(|r| {
            let tag = r.destination.rsplit(':').next().unwrap();
            (tag, &r.outcome, r.artifacts.as_slice())
        })
        .collect();
    let sig_ref = format!("{host}/mirror/app:{sig_tag}");
    assert_eq!(
        outcomes,
        [
            // Untagged only: 1.1 still names the manifest, so nothing goes with it.
            ("1.0", &Outcome::Removed, &[][..]),
            ("2.0", &Outcome::Removed, &[sig_ref][..]),
            ("4.0", &Outcome::BackAtSource, &[][..]),
            ("9.9", &Outcome::AlreadyGone, &[][..]),
        ]
    );

    let mut left: Vec<String> = ecr
        .list_images()
        .repository_name("mirror/app")
        .send()
        .await
        .unwrap()
        .image_ids()
        .iter()
        .filter_map(|id| id.image_tag().map(str::to_string))
        .collect();
    left.sort();
    assert_eq!(left, ["1.1", "4.0"]);

    // Replayed, the same removal finds everything gone and still succeeds.
    let reports = Remover::new(&registry, &aws).remove(&job).await;
    assert!(reports.iter().all(|r| r.failed().is_none()), "{reports:?}");
    assert!(
        reports
            .iter()
            .all(|r| matches!(r.outcome, Outcome::AlreadyGone | Outcome::BackAtSource)),
        "{reports:?}"
    );
}

/// Without `ecr:BatchDeleteImage` (a repository the template's PrunedRepositoryArns does
/// not list), the removal fails for good, naming the permission and where to grant it.
#[tokio::test(flavor = "multi_thread")]
async fn an_ecr_mirror_without_the_delete_permission_names_it_and_removes_nothing() {
    use ferry::aws::AwsClients;
    use ferry::message::{Reason, RemovalReason, RemoveJob, TagRemoval};
    use ferry::remove::{disposition, Remover};
    use ferry_testbed::moto::{MotoServer, REGION};
    use ferry_testbed::proxy::{Action, FaultProxy};

    let moto = MotoServer::start();
    // IAM in front of moto: BatchDeleteImage is denied, as AWS answers it.
    let iam = FaultProxy::start(&moto.endpoint()).await;
    iam.rule(
        |_, _, headers| {
            headers
                .get("x-amz-target")
                .and_then(|v| v.to_str().ok())
                .is_some_and(|t| t.ends_with(".BatchDeleteImage"))
        },
        Action::Respond {
            status: 400,
            headers: vec![("content-type".into(), "application/x-amz-json-1.1".into())],
            body: r#"{"__type":"AccessDeniedException","message":"User: arn:aws:sts::123456789012:assumed-role/ferry-copier/x is not authorized to perform: ecr:BatchDeleteImage on resource: arn:aws:ecr:us-east-1:123456789012:repository/mirror/app because no identity-based policy allows the ecr:BatchDeleteImage action"}"#.into(),
        },
        None,
    );
    let src = DockerRegistry::start(Auth::None);
    let job = RemoveJob {
        destination: image(&format!("{}/mirror/app", MotoServer::ecr_host(REGION))),
        source: image(&format!("{}/app", src.host())),
        tags: vec![TagRemoval {
            tag: "1.0".into(),
            source_tag: "1.0".into(),
            why: RemovalReason::GoneFromSource,
        }],
        source_name: None,
        reason: Reason::Manual,
    };
    let aws = AwsClients::from_config(MotoServer::sdk_config_at(&iam.url()).await);
    let registry = client_with(&[]);
    let reports = Remover::new(&registry, &aws).remove(&job).await;
    let error = reports[0].failed().expect("the removal failed");
    assert!(!error.retryable, "{error:?}");
    assert!(
        error
            .message
            .contains("not authorized to perform: ecr:BatchDeleteImage")
            && error.message.contains("PrunedRepositoryArns"),
        "{}",
        error.message
    );
    // To the dead-letter queue with that reason, not retried.
    match disposition(&reports) {
        ferry::batch::Disposition::Permanent { reason, .. } => {
            assert!(reason.contains("ecr:BatchDeleteImage"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}
