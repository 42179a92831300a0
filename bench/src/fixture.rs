//! The benchmark's fixtures: images whose layers are real gzip'd tars of incompressible
//! bytes with correct `diff_ids`, so every contender (including a container engine that
//! unpacks them) handles them, pushed deterministically to the source registry.

use std::io::Write;

use ferry_testbed::fixtures::{
    random_bytes, sha256, Blob, Seeder, DOCKER_CONFIG, DOCKER_LAYER, DOCKER_MANIFEST,
};
use serde_json::json;

/// The shape of one fixture: `repositories × tags` images, each with a base layer shared
/// by every image, a layer per repository and a layer per tag.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Shape {
    pub name: String,
    pub repositories: usize,
    pub tags: usize,
    pub base_bytes: usize,
    pub repository_bytes: usize,
    pub tag_bytes: usize,
}

impl Shape {
    pub fn bulk(scale: f64) -> Shape {
        Shape::scaled("bulk", 8, 6, [32 << 20, 16 << 20, 4 << 20], scale)
    }

    pub fn many(scale: f64) -> Shape {
        Shape::scaled("many", 20, 25, [512 << 10, 200 << 10, 50 << 10], scale)
    }

    /// The many fixture, for the run at a distance.
    pub fn wan(scale: f64) -> Shape {
        Shape {
            name: "wan".into(),
            ..Shape::many(scale)
        }
    }

    fn scaled(
        name: &str,
        repositories: usize,
        tags: usize,
        sizes: [usize; 3],
        scale: f64,
    ) -> Shape {
        let s = |n: usize| ((n as f64 * scale) as usize).max(1024);
        let c = |n: usize| ((n as f64 * scale.sqrt()).round() as usize).max(2);
        Shape {
            name: name.into(),
            repositories: c(repositories),
            tags: c(tags),
            base_bytes: s(sizes[0]),
            repository_bytes: s(sizes[1]),
            tag_bytes: s(sizes[2]),
        }
    }

    pub fn repository(&self, r: usize) -> String {
        format!("{}-{r:02}", self.name)
    }

    pub fn tag(t: usize) -> String {
        format!("1.{t}")
    }
}

/// A layer: its compressed bytes and what a manifest and a config say of it.
pub struct Layer {
    pub gz: Vec<u8>,
    pub digest: String,
    pub diff_id: String,
}

impl Layer {
    /// A tar holding one file of `size` random bytes, gzip'd (fast: the bytes do not
    /// compress anyway).
    pub fn new(size: usize, seed: u64) -> Layer {
        let data = random_bytes(size, seed);
        let mut tar = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        header.set_mtime(0);
        header.set_cksum();
        tar.append_data(&mut header, format!("data/{seed}.bin"), data.as_slice())
            .expect("tar");
        let tar = tar.into_inner().expect("tar");
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).expect("gzip");
        let gz = gz.finish().expect("gzip");
        Layer {
            digest: sha256(&gz),
            diff_id: sha256(&tar),
            gz,
        }
    }

    fn blob(&self) -> Blob {
        Blob {
            media_type: DOCKER_LAYER.into(),
            digest: self.digest.clone(),
            size: self.gz.len() as u64,
        }
    }
}

/// What was pushed: every image's manifest digest, and the unique blobs (for the floor).
pub struct Seeded {
    pub images: Vec<Image>,
    pub unique_blobs: Vec<(String, Vec<u8>)>,
}

/// One seeded image: where it is and its manifest.
pub struct Image {
    pub repo: String,
    pub tag: String,
    pub digest: String,
    pub manifest: Vec<u8>,
}

impl Seeded {
    pub fn unique_bytes(&self) -> u64 {
        self.unique_blobs.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Manifests have to reach the destination too: every image's, once.
    pub fn manifest_bytes(&self) -> u64 {
        self.images.iter().map(|i| i.manifest.len() as u64).sum()
    }
}

/// Push `shape` to the registry behind `seeder`.
pub async fn seed(seeder: &Seeder, shape: &Shape) -> Seeded {
    let base = Layer::new(shape.base_bytes, 1);
    let mut unique_blobs = vec![(base.digest.clone(), base.gz.clone())];
    let mut images = Vec::new();
    for r in 0..shape.repositories {
        let repo = shape.repository(r);
        let per_repo = Layer::new(shape.repository_bytes, 1000 + r as u64);
        seeder.push_blob(&repo, DOCKER_LAYER, &base.gz).await;
        seeder.push_blob(&repo, DOCKER_LAYER, &per_repo.gz).await;
        unique_blobs.push((per_repo.digest.clone(), per_repo.gz.clone()));
        for t in 0..shape.tags {
            let per_tag = Layer::new(shape.tag_bytes, 100_000 + (r * 1000 + t) as u64);
            seeder.push_blob(&repo, DOCKER_LAYER, &per_tag.gz).await;
            let layers = [&base, &per_repo, &per_tag];
            let config = json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {"Cmd": ["/bin/true"]},
                "rootfs": {"type": "layers", "diff_ids": layers.iter().map(|l| &l.diff_id).collect::<Vec<_>>()},
                "history": layers.iter().map(|_| json!({"created_by": "ferry-bench"})).collect::<Vec<_>>(),
            })
            .to_string();
            let config_blob = seeder
                .push_blob(&repo, DOCKER_CONFIG, config.as_bytes())
                .await;
            unique_blobs.push((config_blob.digest.clone(), config.into_bytes()));
            unique_blobs.push((per_tag.digest.clone(), per_tag.gz.clone()));
            let layer_blobs: Vec<Blob> = layers.iter().map(|l| l.blob()).collect();
            let pushed = seeder
                .push_manifest_of(
                    &repo,
                    &Shape::tag(t),
                    DOCKER_MANIFEST,
                    &config_blob,
                    &layer_blobs,
                )
                .await;
            images.push(Image {
                repo: repo.clone(),
                tag: Shape::tag(t),
                digest: pushed.digest,
                manifest: pushed.raw,
            });
        }
    }
    Seeded {
        images,
        unique_blobs,
    }
}
