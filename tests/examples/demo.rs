//! The README's demo: two local registries, a source seeded like a real platform's ECR
//! repository (multi-arch image, tag-prefixed images in one repository, a signature tag), and
//! the `ferry` CLI copying it all, then showing that a re-run is a no-op.

use std::process::Command;

use ferry_testbed::fixtures::{platform, Style, OCI_INDEX};
use ferry_testbed::{Auth, DockerRegistry};

#[tokio::main]
async fn main() {
    let ferry = std::env::var("FERRY_BIN").unwrap_or_else(|_| "target/release/ferry".into());
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    println!(
        "source registry:      {} (docker-registry, loopback)",
        src.url()
    );
    println!(
        "destination registry: {} (docker-registry, loopback)\n",
        dst.url()
    );

    let s = src.seeder();
    let amd = s
        .push_image("proj", "api-1.4-amd64", Style::Oci, &[3 << 20, 1 << 20], 1)
        .await;
    let arm = s
        .push_image("proj", "api-1.4-arm64", Style::Oci, &[3 << 20, 1 << 20], 2)
        .await;
    let index = s
        .push_index(
            "proj",
            "api-1.4",
            OCI_INDEX,
            &[
                amd.descriptor(Some(platform("linux", "amd64"))),
                arm.descriptor(Some(platform("linux", "arm64"))),
            ],
        )
        .await;
    for (i, tag) in ["worker-1.4", "worker-1.5", "web-2.0"].iter().enumerate() {
        s.push_image(
            "proj",
            tag,
            Style::Docker,
            &[2 << 20, 512 << 10],
            10 + i as u64,
        )
        .await;
    }
    let sig_tag = format!("{}.sig", index.digest.replace(':', "-"));
    s.push_image("proj", &sig_tag, Style::Oci, &[300], 99).await;
    println!(
        "seeded {}/proj with tags: {}\n",
        src.host(),
        s.tags("proj").await.join(", ")
    );

    let step = |title: &str, args: &[String]| {
        println!("$ ferry {}", args.join(" "));
        let status = Command::new(&ferry)
            .args(args)
            .status()
            .expect("run ferry (build it first: cargo build --release -p ferry-cli)");
        println!("({title}: exit {})\n", status.code().unwrap_or(-1));
    };
    let from = format!("{}/proj", src.host());
    let to = format!("{}/mirror/proj", dst.host());
    step(
        "first copy",
        &[
            "copy".into(),
            "--insecure-loopback".into(),
            "--all-tags".into(),
            from.clone(),
            to.clone(),
        ],
    );
    step(
        "re-run: nothing to do",
        &[
            "copy".into(),
            "--insecure-loopback".into(),
            "--all-tags".into(),
            from.clone(),
            to.clone(),
        ],
    );
    step(
        "one platform only",
        &[
            "copy".into(),
            "--insecure-loopback".into(),
            "--platform".into(),
            "linux/arm64".into(),
            format!("{from}:api-1.4"),
            format!("{}/arm-only/proj", dst.host()),
        ],
    );
    let (_, _, copied) = dst
        .seeder()
        .manifest("mirror/proj", "api-1.4")
        .await
        .expect("copied");
    println!("api-1.4 digest at the source:      {}", index.digest);
    println!(
        "api-1.4 digest at the destination: {copied}  (byte-exact: {})",
        copied == index.digest
    );
    println!("\nTry next: ferry copy --help; the registries stop when this demo exits.");
}
