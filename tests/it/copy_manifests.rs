//! Every manifest kind copies byte-exact: the destination serves the source's bytes under
//! the source's digest, and has every blob and child manifest they reference.

use ferry::report::Status;
use ferry_testbed::clients::*;
use ferry_testbed::fixtures::{
    self, platform, Style, DOCKER_LIST, OCI_INDEX, OCI_LAYER, OCI_MANIFEST,
};
use ferry_testbed::{Auth, DockerRegistry, Seeder};
use serde_json::json;

async fn assert_same_manifest(
    src: &Seeder,
    dst: &Seeder,
    src_repo: &str,
    dst_repo: &str,
    reference: &str,
) -> Vec<u8> {
    let (sraw, sct, sdig) = src
        .manifest(src_repo, reference)
        .await
        .expect("source manifest");
    let (draw, dct, ddig) = dst
        .manifest(dst_repo, reference)
        .await
        .expect("destination manifest");
    assert_eq!(draw, sraw, "manifest bytes differ for {reference}");
    assert_eq!(ddig, sdig, "digest differs for {reference}");
    assert_eq!(dct, sct, "content type differs for {reference}");
    draw
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_docker_schema2_and_oci_images_byte_exact() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let docker = s
        .push_image("team/app", "docker", Style::Docker, &[1000, 2000], 1)
        .await;
    let oci = s
        .push_image("team/app", "oci", Style::Oci, &[3000], 2)
        .await;

    let copier = copier();
    for tag in ["docker", "oci"] {
        let report = copier
            .copy_image(&request(
                &format!("{}/team/app:{tag}", src.host()),
                &[&format!("{}/mirror/app", dst.host())],
            ))
            .await;
        assert_eq!(report.status, Status::Copied, "{report:?}");
        assert_same_manifest(&s, &d, "team/app", "mirror/app", tag).await;
    }
    for blob in docker.blobs.iter().chain(&oci.blobs) {
        assert!(
            d.blob_exists("mirror/app", &blob.digest).await,
            "missing {}",
            blob.digest
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_non_canonical_json_without_media_type_field_and_zero_layers() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let config = s
        .push_blob(
            "app",
            fixtures::OCI_CONFIG,
            b"{\"os\":\"linux\",\"architecture\":\"arm64\"}",
        )
        .await;
    // Odd key order, extra whitespace and no mediaType field: re-serializing would change
    // the digest, so this proves the bytes are passed through.
    let raw = format!(
        "{{\n   \"layers\" : [],\n\t\"config\": {{\"size\": {}, \"digest\": \"{}\", \"mediaType\": \"{}\"}},   \"schemaVersion\":2,\"annotations\":{{\"z\":\"1\",\"a\":\"2\"}}}}\n\n",
        config.size, config.digest, config.media_type
    );
    s.push_manifest("app", "zero", OCI_MANIFEST, raw.as_bytes())
        .await;

    let report = copier()
        .copy_image(&request(
            &format!("{}/app:zero", src.host()),
            &[&format!("{}/app", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let copied = assert_same_manifest(&s, &d, "app", "app", "zero").await;
    assert_eq!(copied, raw.as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_multi_arch_index_with_attestations_and_nested_index() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let amd = s
        .push_image("multi", "amd64-only", Style::Oci, &[1500, 700], 10)
        .await;
    let arm = s
        .push_image("multi", "arm64-only", Style::Oci, &[1500, 900], 11)
        .await;
    // A buildx-style attestation manifest: unknown/unknown platform, in-toto layer.
    let att_cfg = s.push_blob("multi", fixtures::OCI_CONFIG, b"{}").await;
    let att_layer = s
        .push_blob(
            "multi",
            "application/vnd.in-toto+json",
            br#"{"predicateType":"https://spdx.dev/Document"}"#,
        )
        .await;
    let att = s
        .push_manifest_of(
            "multi",
            &att_cfg.digest.replace(':', "-"),
            OCI_MANIFEST,
            &att_cfg,
            &[att_layer],
        )
        .await;
    let mut att_desc = att.descriptor(Some(platform("unknown", "unknown")));
    att_desc["annotations"] = json!({"vnd.docker.reference.type": "attestation-manifest", "vnd.docker.reference.digest": amd.digest});
    let index = s
        .push_index(
            "multi",
            "1.0",
            OCI_INDEX,
            &[
                amd.descriptor(Some(platform("linux", "amd64"))),
                arm.descriptor(Some(platform("linux", "arm64"))),
                att_desc,
            ],
        )
        .await;
    // An index whose child is itself an index.
    let nested = s
        .push_index("multi", "nested", OCI_INDEX, &[index.descriptor(None)])
        .await;

    let report = copier()
        .copy_image(&request(
            &format!("{}/multi:nested", src.host()),
            &[&format!("{}/multi", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_same_manifest(&s, &d, "multi", "multi", "nested").await;
    for child in [&index, &amd, &arm, &att] {
        assert_same_manifest(&s, &d, "multi", "multi", &child.digest).await;
    }
    assert_eq!(
        report.stats.manifests_pushed, 5,
        "four children then the root"
    );
    assert_eq!(report.digest.as_deref(), Some(nested.digest.as_str()));
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_docker_manifest_list() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let a = s.push_image("list", "a", Style::Docker, &[100], 20).await;
    let b = s.push_image("list", "b", Style::Docker, &[200], 21).await;
    let list = s
        .push_index(
            "list",
            "v1",
            DOCKER_LIST,
            &[
                a.descriptor(Some(platform("linux", "amd64"))),
                b.descriptor(Some(platform("linux", "s390x"))),
            ],
        )
        .await;
    let report = copier()
        .copy_image(&request(
            &format!("{}/list:v1", src.host()),
            &[&format!("{}/list:renamed", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let (raw, ct, digest) = d.manifest("list", "renamed").await.unwrap();
    assert_eq!(
        (raw, ct.as_str(), digest),
        (list.raw.clone(), DOCKER_LIST, list.digest.clone())
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn copies_artifacts_with_any_media_type_and_signature_tags() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let chart_cfg = s
        .push_blob(
            "charts/web",
            "application/vnd.cncf.helm.config.v1+json",
            br#"{"name":"web","version":"1.2.3"}"#,
        )
        .await;
    let chart = s
        .push_blob(
            "charts/web",
            "application/vnd.cncf.helm.chart.content.v1.tar+gzip",
            &fixtures::random_bytes(4096, 30),
        )
        .await;
    let helm = s
        .push_manifest_of("charts/web", "1.2.3", OCI_MANIFEST, &chart_cfg, &[chart])
        .await;
    // A cosign-style signature stored under the sha256-<hex>.sig tag.
    let sig_cfg = s.push_blob("charts/web", fixtures::OCI_CONFIG, b"{}").await;
    let sig = s
        .push_blob(
            "charts/web",
            "application/vnd.dev.cosign.simplesigning.v1+json",
            br#"{"critical":{}}"#,
        )
        .await;
    let sig_tag = format!("{}.sig", helm.digest.replace(':', "-"));
    s.push_manifest_of("charts/web", &sig_tag, OCI_MANIFEST, &sig_cfg, &[sig])
        .await;

    // The signature follows the chart; copied by its own tag, it is already there.
    let copier = copier();
    for (tag, status) in [
        ("1.2.3", Status::Copied),
        (sig_tag.as_str(), Status::UpToDate),
    ] {
        let report = copier
            .copy_image(&request(
                &format!("{}/charts/web:{tag}", src.host()),
                &[&format!("{}/charts/web", dst.host())],
            ))
            .await;
        assert_eq!(report.status, status, "{report:?}");
        assert_same_manifest(&s, &d, "charts/web", "charts/web", &sig_tag).await;
        assert_same_manifest(&s, &d, "charts/web", "charts/web", "1.2.3").await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn foreign_layers_the_source_does_not_serve_are_skipped() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let config = s
        .push_blob("win", fixtures::DOCKER_CONFIG, br#"{"os":"windows"}"#)
        .await;
    let layer = s
        .push_blob(
            "win",
            fixtures::DOCKER_LAYER,
            &fixtures::random_bytes(500, 40),
        )
        .await;
    let foreign_data = fixtures::random_bytes(300, 41);
    let raw = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": fixtures::DOCKER_MANIFEST,
        "config": config.descriptor(),
        "layers": [
            {"mediaType": "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip", "digest": fixtures::sha256(&foreign_data), "size": 300, "urls": ["https://mcr.microsoft.com/v2/windows/blobs/x"]},
            layer.descriptor()
        ]
    }))
    .unwrap();
    s.push_manifest("win", "ltsc", fixtures::DOCKER_MANIFEST, &raw)
        .await;
    let report = copier()
        .copy_image(&request(
            &format!("{}/win:ltsc", src.host()),
            &[&format!("{}/win", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    assert_eq!(
        report.stats.blobs_uploaded, 2,
        "config and the distributable layer only"
    );
    assert_same_manifest(&s, &d, "win", "win", "ltsc").await;
    assert!(!d.blob_exists("win", &fixtures::sha256(&foreign_data)).await);
}

#[tokio::test(flavor = "multi_thread")]
async fn platform_filter_copies_only_the_chosen_platform() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let amd = s.push_image("p", "a", Style::Oci, &[100], 50).await;
    let arm = s.push_image("p", "b", Style::Oci, &[200], 51).await;
    s.push_index(
        "p",
        "multi",
        OCI_INDEX,
        &[
            amd.descriptor(Some(platform("linux", "amd64"))),
            arm.descriptor(Some(platform("linux", "arm64"))),
        ],
    )
    .await;
    let copier = ferry::copy::Copier::new(
        client_with(&[]),
        ferry::copy::CopyOptions {
            platforms: vec!["linux/arm64".parse().unwrap()],
            ..Default::default()
        },
    );
    let report = copier
        .copy_image(&request(
            &format!("{}/p:multi", src.host()),
            &[&format!("{}/p", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let (raw, _, digest) = dst.seeder().manifest("p", "multi").await.unwrap();
    assert_eq!(
        (raw, digest),
        (arm.raw.clone(), arm.digest.clone()),
        "the tag holds the arm64 manifest itself"
    );
    assert!(
        !dst.seeder().blob_exists("p", &amd.blobs[1].digest).await,
        "amd64 layer not copied"
    );

    let none = ferry::copy::Copier::new(
        client_with(&[]),
        ferry::copy::CopyOptions {
            platforms: vec!["windows/amd64".parse().unwrap()],
            ..Default::default()
        },
    );
    let report = none
        .copy_image(&request(
            &format!("{}/p:multi", src.host()),
            &[&format!("{}/p:other", dst.host())],
        ))
        .await;
    assert_eq!(report.status, Status::Failed);
    assert!(
        report
            .first_error()
            .unwrap()
            .message
            .contains("linux/amd64, linux/arm64"),
        "{report:?}"
    );
    let _ = OCI_LAYER;
}
