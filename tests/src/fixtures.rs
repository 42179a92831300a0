//! Seeding registries with test images over the distribution API (no Docker engine here):
//! raw blobs and manifest bytes, exactly as the test wrote them, so a test can compare what a
//! copy produced byte for byte.

use std::sync::Arc;

use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE};
use serde_json::{json, Value};
use sha2::{Digest as _, Sha256};

use crate::token::TokenServer;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const ACCEPT_ALL: &str = "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json";

pub enum SeedAuth {
    None,
    Header(String),
    Token(Arc<TokenServer>),
}

/// A blob as a manifest describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blob {
    pub media_type: String,
    pub digest: String,
    pub size: u64,
}

impl Blob {
    pub fn descriptor(&self) -> Value {
        json!({"mediaType": self.media_type, "digest": self.digest, "size": self.size})
    }
}

/// A manifest that was pushed: its exact bytes and digest.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub raw: Vec<u8>,
    pub digest: String,
    pub media_type: String,
    pub blobs: Vec<Blob>,
}

impl Pushed {
    pub fn descriptor(&self, platform: Option<Value>) -> Value {
        let mut d =
            json!({"mediaType": self.media_type, "digest": self.digest, "size": self.raw.len()});
        if let Some(p) = platform {
            d["platform"] = p;
        }
        d
    }
}

pub fn sha256(data: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(data)))
}

/// Deterministic incompressible bytes (splitmix64), so fixtures are reproducible.
pub fn random_bytes(size: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(size);
    let mut state = seed.wrapping_add(0x9E37_79B9_7F4A_7C15);
    while out.len() < size {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let take = (size - out.len()).min(8);
        out.extend_from_slice(&z.to_le_bytes()[..take]);
    }
    out
}

pub struct Seeder {
    http: reqwest::Client,
    base: String,
    auth: SeedAuth,
}

impl Seeder {
    pub fn new(base: String, auth: SeedAuth) -> Self {
        Seeder {
            http: reqwest::Client::new(),
            base,
            auth,
        }
    }

    fn authed(&self, req: reqwest::RequestBuilder, repo: &str) -> reqwest::RequestBuilder {
        match &self.auth {
            SeedAuth::None => req,
            SeedAuth::Header(h) => req.header(AUTHORIZATION, h),
            SeedAuth::Token(server) => req.header(
                AUTHORIZATION,
                format!("Bearer {}", server.token_for(&[repo])),
            ),
        }
    }

    async fn start_upload(&self, repo: &str) -> String {
        let resp = self
            .authed(
                self.http
                    .post(format!("{}/v2/{repo}/blobs/uploads/", self.base)),
                repo,
            )
            .header(CONTENT_LENGTH, "0")
            .send()
            .await
            .expect("POST upload");
        assert_eq!(
            resp.status().as_u16(),
            202,
            "start upload: {}",
            resp.text().await.unwrap_or_default()
        );
        let location = resp.headers()["location"].to_str().unwrap().to_string();
        if location.starts_with("http") {
            location
        } else {
            format!("{}{location}", self.base)
        }
    }

    fn with_digest(location: &str, digest: &str) -> String {
        format!(
            "{location}{}digest={digest}",
            if location.contains('?') { '&' } else { '?' }
        )
    }

    pub async fn push_blob(&self, repo: &str, media_type: &str, data: &[u8]) -> Blob {
        let digest = sha256(data);
        let location = self.start_upload(repo).await;
        let resp = self
            .authed(self.http.put(Self::with_digest(&location, &digest)), repo)
            .header(CONTENT_TYPE, "application/octet-stream")
            .body(data.to_vec())
            .send()
            .await
            .expect("PUT blob");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "push blob: {}",
            resp.text().await.unwrap_or_default()
        );
        Blob {
            media_type: media_type.into(),
            digest,
            size: data.len() as u64,
        }
    }

    /// Push `size` deterministic bytes without holding them: one pass to hash, one to send.
    pub async fn push_large_blob(&self, repo: &str, size: u64, seed: u64) -> Blob {
        const CHUNK: u64 = 1 << 20;
        let chunk_of = move |i: u64| random_bytes(CHUNK.min(size - i * CHUNK) as usize, seed ^ i);
        let chunks = size.div_ceil(CHUNK);
        let mut hasher = Sha256::new();
        for i in 0..chunks {
            hasher.update(chunk_of(i));
        }
        let digest = format!("sha256:{}", hex::encode(hasher.finalize()));
        let location = self.start_upload(repo).await;
        let body = reqwest::Body::wrap_stream(futures::stream::iter(
            (0..chunks).map(move |i| Ok::<_, std::io::Error>(bytes::Bytes::from(chunk_of(i)))),
        ));
        let resp = self
            .authed(self.http.put(Self::with_digest(&location, &digest)), repo)
            .header(CONTENT_TYPE, "application/octet-stream")
            .header(CONTENT_LENGTH, size)
            .body(body)
            .send()
            .await
            .expect("PUT large blob");
        assert_eq!(
            resp.status().as_u16(),
            201,
            "push large blob: {}",
            resp.text().await.unwrap_or_default()
        );
        Blob {
            media_type: OCI_LAYER.into(),
            digest,
            size,
        }
    }

    pub async fn push_manifest(
        &self,
        repo: &str,
        reference: &str,
        media_type: &str,
        raw: &[u8],
    ) -> String {
        let resp = self
            .authed(
                self.http
                    .put(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
                repo,
            )
            .header(CONTENT_TYPE, media_type)
            .body(raw.to_vec())
            .send()
            .await
            .expect("PUT manifest");
        let status = resp.status().as_u16();
        assert_eq!(
            status,
            201,
            "push manifest {repo}:{reference}: {}",
            resp.text().await.unwrap_or_default()
        );
        sha256(raw)
    }

    /// The exact bytes, content type and digest header the registry serves for a manifest.
    pub async fn manifest(&self, repo: &str, reference: &str) -> Option<(Vec<u8>, String, String)> {
        let resp = self
            .authed(
                self.http
                    .get(format!("{}/v2/{repo}/manifests/{reference}", self.base)),
                repo,
            )
            .header(ACCEPT, ACCEPT_ALL)
            .send()
            .await
            .expect("GET manifest");
        if resp.status().as_u16() == 404 {
            return None;
        }
        assert!(
            resp.status().is_success(),
            "GET manifest {repo}:{reference}: {}",
            resp.status()
        );
        let ct = resp
            .headers()
            .get(CONTENT_TYPE)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        let digest = resp
            .headers()
            .get("docker-content-digest")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default();
        Some((resp.bytes().await.unwrap().to_vec(), ct, digest))
    }

    pub async fn blob_exists(&self, repo: &str, digest: &str) -> bool {
        let resp = self
            .authed(
                self.http
                    .head(format!("{}/v2/{repo}/blobs/{digest}", self.base)),
                repo,
            )
            .send()
            .await
            .expect("HEAD blob");
        resp.status().is_success()
    }

    /// Unlink a blob from a repository (the registry must have deletes enabled, as the test
    /// bed's do): what a broken or half-cleaned-up mirror looks like.
    pub async fn delete_blob(&self, repo: &str, digest: &str) {
        self.delete(repo, &format!("blobs/{digest}")).await;
    }

    /// Delete a manifest by digest, with every tag pointing at it: an image gone from a
    /// source (deletes enabled, as the test bed's registries have them).
    pub async fn delete_manifest(&self, repo: &str, digest: &str) {
        self.delete(repo, &format!("manifests/{digest}")).await;
    }

    async fn delete(&self, repo: &str, path: &str) {
        let resp = self
            .authed(
                self.http.delete(format!("{}/v2/{repo}/{path}", self.base)),
                repo,
            )
            .send()
            .await
            .expect("DELETE");
        assert!(
            resp.status().is_success(),
            "DELETE {repo}/{path}: {}",
            resp.status()
        );
    }

    pub async fn tags(&self, repo: &str) -> Vec<String> {
        let resp = self
            .authed(
                self.http.get(format!("{}/v2/{repo}/tags/list", self.base)),
                repo,
            )
            .send()
            .await
            .expect("GET tags");
        if !resp.status().is_success() {
            return Vec::new();
        }
        let v: Value = resp.json().await.unwrap();
        let mut tags: Vec<String> = v["tags"]
            .as_array()
            .map(|a| a.iter().map(|t| t.as_str().unwrap().to_string()).collect())
            .unwrap_or_default();
        tags.sort();
        tags
    }

    /// An image manifest over freshly pushed config and layers of the given sizes.
    pub async fn push_image(
        &self,
        repo: &str,
        tag: &str,
        style: Style,
        layer_sizes: &[usize],
        seed: u64,
    ) -> Pushed {
        let (mt, config_mt, layer_mt) = match style {
            Style::Oci => (OCI_MANIFEST, OCI_CONFIG, OCI_LAYER),
            Style::Docker => (DOCKER_MANIFEST, DOCKER_CONFIG, DOCKER_LAYER),
        };
        let config = json!({"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}, "seed": seed});
        let config = self
            .push_blob(repo, config_mt, config.to_string().as_bytes())
            .await;
        let mut layers = Vec::new();
        for (i, size) in layer_sizes.iter().enumerate() {
            layers.push(
                self.push_blob(repo, layer_mt, &random_bytes(*size, seed * 1000 + i as u64))
                    .await,
            );
        }
        self.push_manifest_of(repo, tag, mt, &config, &layers).await
    }

    pub async fn push_manifest_of(
        &self,
        repo: &str,
        tag: &str,
        media_type: &str,
        config: &Blob,
        layers: &[Blob],
    ) -> Pushed {
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": media_type,
            "config": config.descriptor(),
            "layers": layers.iter().map(Blob::descriptor).collect::<Vec<_>>(),
        });
        let raw = serde_json::to_vec_pretty(&doc).unwrap();
        let digest = self.push_manifest(repo, tag, media_type, &raw).await;
        let mut blobs = vec![config.clone()];
        blobs.extend(layers.iter().cloned());
        Pushed {
            raw,
            digest,
            media_type: media_type.into(),
            blobs,
        }
    }

    /// A cosign-style artifact of `subject` under its tag `sha256-<hex>.<suffix>` (`sig`,
    /// `att`, `sbom`): an OCI manifest over a small payload layer, as cosign pushes them.
    pub async fn push_cosign_artifact(
        &self,
        repo: &str,
        subject: &str,
        suffix: &str,
        seed: u64,
    ) -> Pushed {
        let layer_type = match suffix {
            "sig" => "application/vnd.dev.cosign.simplesigning.v1+json",
            "att" => "application/vnd.dsse.envelope.v1+json",
            _ => "text/spdx",
        };
        let config = self
            .push_blob(
                repo,
                OCI_CONFIG,
                json!({"architecture": "", "os": "", "seed": seed})
                    .to_string()
                    .as_bytes(),
            )
            .await;
        let payload =
            json!({"critical": {"image": {"docker-manifest-digest": subject}}, "seed": seed});
        let layer = self
            .push_blob(repo, layer_type, payload.to_string().as_bytes())
            .await;
        let mut layer_descriptor = layer.descriptor();
        layer_descriptor["annotations"] =
            json!({"dev.cosignproject.cosign/signature": format!("MEUCIQ{seed}")});
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer_descriptor],
        });
        let raw = serde_json::to_vec(&doc).unwrap();
        let tag = format!("{}.{suffix}", subject.replace(':', "-"));
        let digest = self.push_manifest(repo, &tag, OCI_MANIFEST, &raw).await;
        Pushed {
            raw,
            digest,
            media_type: OCI_MANIFEST.into(),
            blobs: vec![config, layer],
        }
    }

    /// An OCI 1.1 referrer of `subject`: a manifest with `artifactType`, the empty config,
    /// one payload blob and `subject`, pushed by digest (so found only as a referrer).
    pub async fn push_referrer(
        &self,
        repo: &str,
        subject: &Pushed,
        artifact_type: &str,
        seed: u64,
    ) -> Pushed {
        let empty = self
            .push_blob(repo, "application/vnd.oci.empty.v1+json", b"{}")
            .await;
        let payload = self
            .push_blob(
                repo,
                artifact_type,
                json!({"spdxVersion": "SPDX-2.3", "seed": seed})
                    .to_string()
                    .as_bytes(),
            )
            .await;
        let doc = json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": artifact_type,
            "config": empty.descriptor(),
            "layers": [payload.descriptor()],
            "subject": subject.descriptor(None),
            "annotations": {"org.opencontainers.image.created": "2026-11-29T00:00:00Z"},
        });
        let raw = serde_json::to_vec(&doc).unwrap();
        let digest = sha256(&raw);
        self.push_manifest(repo, &digest, OCI_MANIFEST, &raw).await;
        Pushed {
            raw,
            digest,
            media_type: OCI_MANIFEST.into(),
            blobs: vec![empty, payload],
        }
    }

    /// List `referrers` (with their artifact types) in `subject`'s fallback index
    /// (`sha256-<hex>`), appending to what is there, as clients do on registries without
    /// the referrers API.
    pub async fn add_to_fallback_index(
        &self,
        repo: &str,
        subject: &str,
        referrers: &[(&Pushed, &str)],
    ) -> Pushed {
        let tag = subject.replace(':', "-");
        let mut entries: Vec<Value> = match self.manifest(repo, &tag).await {
            Some((raw, _, _)) => serde_json::from_slice::<Value>(&raw).unwrap()["manifests"]
                .as_array()
                .cloned()
                .unwrap_or_default(),
            None => Vec::new(),
        };
        for (pushed, artifact_type) in referrers {
            let mut d = pushed.descriptor(None);
            d["artifactType"] = json!(artifact_type);
            entries.push(d);
        }
        self.push_index(repo, &tag, OCI_INDEX, &entries).await
    }

    /// A referrer of `subject` listed the way a registry without the referrers API lists
    /// it: pushed ([`Self::push_referrer`]) and added to the subject's fallback index.
    pub async fn push_listed_referrer(
        &self,
        repo: &str,
        subject: &Pushed,
        artifact_type: &str,
        seed: u64,
    ) -> Pushed {
        let referrer = self.push_referrer(repo, subject, artifact_type, seed).await;
        self.add_to_fallback_index(repo, &subject.digest, &[(&referrer, artifact_type)])
            .await;
        referrer
    }

    /// An index (or manifest list) over already pushed manifests.
    pub async fn push_index(
        &self,
        repo: &str,
        tag: &str,
        media_type: &str,
        entries: &[Value],
    ) -> Pushed {
        let doc = json!({"schemaVersion": 2, "mediaType": media_type, "manifests": entries});
        let raw = serde_json::to_vec(&doc).unwrap();
        let digest = self.push_manifest(repo, tag, media_type, &raw).await;
        Pushed {
            raw,
            digest,
            media_type: media_type.into(),
            blobs: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Style {
    Oci,
    Docker,
}

pub fn platform(os: &str, arch: &str) -> Value {
    json!({"os": os, "architecture": arch})
}
