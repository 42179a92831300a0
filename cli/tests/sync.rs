//! `ferry plan`, `ferry sync` and `ferry verify` end to end: the binary, a configuration
//! file, and real docker-registry processes.

use std::path::Path;
use std::process::{Command, Output, Stdio};

use base64::Engine as _;
use ferry_testbed::fixtures::{platform, Pushed, Style, OCI_INDEX};
use ferry_testbed::proxy::{on, Action, FaultProxy, HttpMethod};
use ferry_testbed::{Auth, DockerRegistry};
use serde_json::Value;

fn ferry(home: &Path) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_ferry"));
    // The test's own docker config, never the user's.
    c.env("HOME", home)
        .env("DOCKER_CONFIG", home)
        .env_remove("REGISTRY_AUTH_FILE")
        .env_remove("RUST_LOG")
        .env_remove("FERRY_CONFIG_FILE")
        .stdin(Stdio::null());
    c
}

/// Write `yaml` as the configuration in `home`: a ferry command with the given arguments
/// that uses it, over plain HTTP to the loopback registries.
fn configured<'a>(home: &'a Path, yaml: &str) -> impl Fn(&[&str]) -> Command + 'a {
    let config = home.join("ferry.yaml");
    std::fs::write(&config, yaml).unwrap();
    move |args| {
        let mut c = ferry(home);
        c.args(args)
            .arg("--config")
            .arg(&config)
            .arg("--insecure-loopback");
        c
    }
}

async fn run(mut cmd: Command) -> Output {
    tokio::task::spawn_blocking(move || cmd.output().expect("run ferry"))
        .await
        .unwrap()
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A platform team's registry: one repository per project, images told apart by tag
/// prefix, one of them multi-arch; and an ordinary repository.
struct Fixture {
    src: DockerRegistry,
    dst: DockerRegistry,
    home: tempfile::TempDir,
    config: std::path::PathBuf,
    /// (source repo, tag, pushed, destination repo, destination tag)
    images: Vec<(String, String, Pushed, String, String)>,
}

async fn fixture() -> Fixture {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::Basic {
        username: "mirror".into(),
        password: "s3cret-pw".into(),
    });
    let s = src.seeder();
    let mut images = Vec::new();
    for (tag, seed) in [("api-1.4", 1), ("api-1.5", 2), ("worker-1.4", 3)] {
        let p = s
            .push_image("proj", tag, Style::Docker, &[1200, 300], seed)
            .await;
        let (image, version) = tag.split_once('-').unwrap();
        images.push((
            "proj".into(),
            tag.into(),
            p,
            format!("group/proj/{image}"),
            version.into(),
        ));
    }
    let amd = s.push_image("app", "amd", Style::Oci, &[900], 10).await;
    let arm = s.push_image("app", "arm", Style::Oci, &[800], 11).await;
    let index = s
        .push_index(
            "app",
            "2.0",
            OCI_INDEX,
            &[
                amd.descriptor(Some(platform("linux", "amd64"))),
                arm.descriptor(Some(platform("linux", "arm64"))),
            ],
        )
        .await;
    images.push((
        "app".into(),
        "2.0".into(),
        index,
        "group/app".into(),
        "2.0".into(),
    ));
    let p = s.push_image("app", "1.0", Style::Oci, &[700], 12).await;
    images.push((
        "app".into(),
        "1.0".into(),
        p,
        "group/app".into(),
        "1.0".into(),
    ));

    let home = tempfile::tempdir().unwrap();
    let auth = base64::engine::general_purpose::STANDARD.encode("mirror:s3cret-pw");
    std::fs::write(
        home.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, dst.host()),
    )
    .unwrap();
    let config = home.path().join("ferry.yaml");
    write_config(&config, &src.host(), &dst.host());
    Fixture {
        src,
        dst,
        home,
        config,
        images,
    }
}

fn write_config(path: &Path, src: &str, dst: &str) {
    std::fs::write(
        path,
        format!(
            r#"version: 1
sources:
  - name: projects
    registry: {{host: "{src}", repositories: [proj]}}
    destinations:
      - target: "{dst}/group/{{repo}}/{{image}}:{{tag}}"
        split_tag: {{separator: "-", prefixes: [api, worker]}}
  - name: apps
    registry: {{host: "{src}", repositories: [app]}}
    filters:
      tags: {{include: ["[0-9].*"]}}
    destinations:
      - target: "{dst}/group/{{repo}}:{{tag}}"
"#
        ),
    )
    .unwrap();
}

impl Fixture {
    fn ferry(&self, args: &[&str]) -> Command {
        let mut c = ferry(self.home.path());
        c.args(args)
            .arg("--config")
            .arg(&self.config)
            .arg("--insecure-loopback");
        c
    }

    async fn assert_copied(&self) {
        for (repo, tag, pushed, dst_repo, dst_tag) in &self.images {
            let (raw, _, digest) = self
                .dst
                .seeder()
                .manifest(dst_repo, dst_tag)
                .await
                .unwrap_or_else(|| panic!("{repo}:{tag} is not at {dst_repo}:{dst_tag}"));
            assert_eq!(digest, pushed.digest, "{repo}:{tag}");
            assert_eq!(raw, pushed.raw, "{repo}:{tag}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn plan_then_sync_then_verify_a_platform_registry() {
    let f = fixture().await;

    let out = run(f.ferry(&["plan", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).expect("plan JSON when piped");
    let jobs = plan["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), f.images.len(), "{plan}");
    let mut targets: Vec<&str> = jobs
        .iter()
        .map(|j| j["destinations"][0]["reference"].as_str().unwrap())
        .collect();
    targets.sort_unstable();
    let dst = f.dst.host();
    assert_eq!(
        targets,
        [
            format!("{dst}/group/app:1.0"),
            format!("{dst}/group/app:2.0"),
            format!("{dst}/group/proj/api:1.4"),
            format!("{dst}/group/proj/api:1.5"),
            format!("{dst}/group/proj/worker:1.4"),
        ]
    );
    assert_eq!(plan["skipped"].as_array().unwrap().len(), 0);

    let out = run(f.ferry(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("5 copied, 0 up to date"), "{}", text(&out));
    assert!(!text(&out).contains("s3cret-pw"));
    f.assert_copied().await;

    // A second sync finds everything current at planning time.
    let out = run(f.ferry(&["sync", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        (report["copied"].as_u64(), report["up_to_date"].as_u64()),
        (Some(0), Some(5)),
        "{report}"
    );

    let out = run(f.ferry(&["verify"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verified 5 destinations: 5 ok"),
        "{}",
        text(&out)
    );

    // Break the mirror two ways: a layer of worker:1.4 vanishes from the destination, and
    // app:1.0 moves at the source.
    let (_, _, worker, _, _) = f.images.iter().find(|i| i.1 == "worker-1.4").unwrap();
    let layer = worker.blobs[1].digest.clone();
    f.dst
        .seeder()
        .delete_blob("group/proj/worker", &layer)
        .await;
    let moved = f
        .src
        .seeder()
        .push_image("app", "1.0", Style::Oci, &[650], 99)
        .await;

    let out = run(f.ferry(&["verify", "--json"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], 3, "{report}");
    let verdicts = report["verdicts"].as_array().unwrap();
    let of = |reference: String| {
        verdicts
            .iter()
            .find(|v| v["destination"] == reference.as_str())
            .unwrap_or_else(|| panic!("no verdict for {reference}: {report}"))
    };
    let incomplete = of(format!("{dst}/group/proj/worker:1.4"));
    assert_eq!(incomplete["state"], "incomplete");
    assert_eq!(incomplete["absent"][0], format!("blob {layer}"));
    let different = of(format!("{dst}/group/app:1.0"));
    assert_eq!(different["state"], "different");
    assert_eq!(different["expected"], moved.digest.as_str());

    // The human form names both problems.
    let out = run(f.ferry(&["verify"])).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains(&format!(
            "INCOMPLETE  {dst}/group/proj/worker:1.4 lacks blob {layer}"
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("DIFFERENT   {dst}/group/app:1.0")),
        "{stdout}"
    );

    // SRC DST pairs, without a configuration: every tag of the repository.
    let mut pairs = ferry(f.home.path());
    pairs.args([
        "verify",
        "--insecure-loopback",
        &format!("{}/proj", f.src.host()),
        &format!("{dst}/group/proj/api"),
    ]);
    let out = run(pairs).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Only what was copied under the source's own tag names could match; nothing was.
    assert!(
        stdout.contains("verified 3 destinations: 0 ok, 3 missing"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_sync_that_fails_part_way_is_finished_by_running_it_again() {
    let f = fixture().await;
    // The destination refuses one manifest push, once.
    let proxy = FaultProxy::start(&f.dst.url()).await;
    proxy.rule(
        on(HttpMethod::PUT, "/group/proj/worker/manifests/"),
        Action::registry_error(403, "DENIED", "requested access to the resource is denied"),
        Some(1),
    );
    write_config(&f.config, &f.src.host(), &proxy.host());
    let auth = base64::engine::general_purpose::STANDARD.encode("mirror:s3cret-pw");
    std::fs::write(
        f.home.path().join("config.json"),
        format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, proxy.host()),
    )
    .unwrap();

    let out = run(f.ferry(&["sync"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("4 copied, 0 up to date, 1 failed"),
        "{stderr}"
    );
    assert!(stderr.contains("FAILED"), "{stderr}");
    assert!(stderr.contains("re-run the same command"), "{stderr}");
    assert!(
        f.dst
            .seeder()
            .manifest("group/proj/worker", "1.4")
            .await
            .is_none(),
        "the refused tag must not exist"
    );

    let out = run(f.ferry(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 copied, 4 up to date, 0 failed"),
        "{stderr}"
    );
    f.assert_copied().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn config_commands_explain_what_is_missing() {
    let home = tempfile::tempdir().unwrap();
    let mut c = ferry(home.path());
    c.args(["sync"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --config FILE"));

    let bad = home.path().join("bad.yaml");
    std::fs::write(
        &bad,
        "version: 1\nsources:\n  - registry: {host: r.example}\n    destinations: [{target: \"d.example/{repository}\"}]\n",
    )
    .unwrap();
    let mut c = ferry(home.path());
    c.args(["plan", "--config"]).arg(&bad);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("sources[0].destinations[0].target"),
        "{stderr}"
    );
    assert!(stderr.contains("{repository}"), "{stderr}");

    let mut c = ferry(home.path());
    c.args(["verify", "a.example/x:1"]);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stderr).contains("come in pairs"));
}

#[tokio::test(flavor = "multi_thread")]
async fn signatures_and_sboms_are_synced_and_verified_with_their_images() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let s = src.seeder();
    let image = s.push_image("app", "1.0", Style::Oci, &[700], 1).await;
    let sig = s.push_cosign_artifact("app", &image.digest, "sig", 2).await;
    let sbom = s
        .push_listed_referrer("app", &image, "application/spdx+json", 3)
        .await;
    let home = tempfile::tempdir().unwrap();
    let ferry_with = configured(
        home.path(),
        &format!(
            "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\"}}]\n",
            src.host(),
            dst.host()
        ),
    );
    let sig_tag = format!("{}.sig", image.digest.replace(':', "-"));

    // Without them, verify says what the mirror lacks, per image.
    let out = run(ferry_with(&["sync", "--referrers", "none"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let out = run(ferry_with(&["verify"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let line = stdout
        .lines()
        .find(|l| l.starts_with("ARTIFACTS"))
        .unwrap_or_else(|| panic!("{}", text(&out)));
    assert!(line.contains(&format!("sig tag {sig_tag}")), "{line}");
    assert!(
        line.contains(&format!("referrer {} (application/spdx+json)", sbom.digest)),
        "{line}"
    );
    assert!(
        stdout.contains("1 lacking signatures or referrers"),
        "{stdout}"
    );
    let out = run(ferry_with(&["verify", "--referrers", "none"])).await;
    assert!(out.status.success(), "{}", text(&out));

    // A re-sync of the current image brings them.
    let out = run(ferry_with(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let d = dst.seeder();
    assert_eq!(
        d.manifest("mirror/app", &sig_tag).await.map(|m| m.0),
        Some(sig.raw)
    );
    assert_eq!(
        d.manifest("mirror/app", &sbom.digest).await.map(|m| m.0),
        Some(sbom.raw)
    );
    let out = run(ferry_with(&["verify"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("verified 1 destinations: 1 ok"),
        "{}",
        text(&out)
    );
    // The artifact tags were never planned as images of their own.
    let out = run(ferry_with(&["plan", "--json", "--no-check"])).await;
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["jobs"].as_array().unwrap().len(), 1, "{plan}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sync_copies_a_planned_repository_while_the_next_is_still_planned() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let first = src
        .seeder()
        .push_image("first", "1", Style::Oci, &[1000], 61)
        .await;
    src.seeder()
        .push_image("second", "1", Style::Oci, &[1000], 62)
        .await;
    let src_proxy = FaultProxy::start(&src.url()).await;
    let dst_proxy = FaultProxy::start(&dst.url()).await;
    // Listing the second repository takes a while, as a large repository's does.
    const SLOW: std::time::Duration = std::time::Duration::from_secs(3);
    src_proxy.rule(
        on(HttpMethod::GET, "/v2/second/tags/list"),
        Action::Delay(SLOW),
        None,
    );
    let home = tempfile::tempdir().unwrap();
    let ferry_with = configured(
        home.path(),
        &format!(
            "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [first, second]}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
            src_proxy.host(),
            dst_proxy.host()
        ),
    );
    let out = run(ferry_with(&["sync", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["copied"].as_u64(), Some(2), "{report}");

    let listed = src_proxy
        .seen()
        .into_iter()
        .find(|s| s.path.starts_with("/v2/second/tags/list"))
        .expect("second repository listed");
    let pushed = dst_proxy
        .seen()
        .into_iter()
        .find(|s| s.method == HttpMethod::PUT && s.path.starts_with("/v2/first/manifests/"))
        .expect("first image pushed");
    assert!(
        pushed.at < listed.at + SLOW,
        "the first repository's image should be pushed before the second's listing is answered \
         ({SLOW:?} after it was asked), not {:?} after it was asked",
        pushed.at - listed.at
    );
    let (raw, _, _) = dst.seeder().manifest("first", "1").await.unwrap();
    assert_eq!(raw, first.raw);
    // Each source repository is listed once: the copy's search for signatures uses the
    // listing planning read.
    let seen = src_proxy.seen();
    for repository in ["first", "second"] {
        let listings = seen
            .iter()
            .filter(|s| s.path.starts_with(&format!("/v2/{repository}/tags/list")))
            .count();
        assert_eq!(listings, 1, "{repository}: {seen:#?}");
    }
}

/// `count` small single-platform images, spread over repositories `r0`, `r1`, `r2`.
async fn small_images(src: &DockerRegistry, count: usize) -> Vec<(String, String, Pushed)> {
    let mut images = Vec::new();
    for i in 0..count {
        let (repo, tag) = (format!("r{}", i % 3), format!("1.{i}"));
        let pushed = src
            .seeder()
            .push_image(&repo, &tag, Style::Oci, &[400], 300 + i as u64)
            .await;
        images.push((repo, tag, pushed));
    }
    images
}

/// A configuration that mirrors repositories r0–r2 of `src` to `dst`.
fn mirror_config(src: &str, dst: &str) -> String {
    format!(
        "version: 1\nsources:\n  - registry: {{host: \"{src}\", repositories: [r0, r1, r2]}}\n    destinations: [{{target: \"{dst}/{{repo}}\"}}]\n"
    )
}

async fn assert_mirrored(dst: &DockerRegistry, images: &[(String, String, Pushed)]) {
    for (repo, tag, pushed) in images {
        let (raw, _, digest) = dst
            .seeder()
            .manifest(repo, tag)
            .await
            .unwrap_or_else(|| panic!("{repo}:{tag} was not copied"));
        assert_eq!((raw, digest), (pushed.raw.clone(), pushed.digest.clone()));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_destination_that_caps_writes_slows_the_sync_down_and_loses_no_image() {
    use ferry_testbed::production::{Op, Production};
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let images = small_images(&src, 30).await;
    let dst_proxy = FaultProxy::start(&dst.url()).await;
    // ECR's shape, scaled down: few manifest PUTs a second, more upload starts, and 429
    // without Retry-After past either.
    dst_proxy.production(
        Production::default()
            .rate(Op::ManifestPut, 5.0)
            .rate(Op::UploadStart, 20.0),
    );
    let home = tempfile::tempdir().unwrap();
    let ferry_with = configured(home.path(), &mirror_config(&src.host(), &dst_proxy.host()));
    // 16 images at once, so that what is in flight when the unknown upload limit is first
    // met (the cost the last assertion bounds) does not depend on the default.
    let out = run(ferry_with(&["sync", "--json", "--image-concurrency", "16"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["copied"].as_u64(), Some(30), "{report}");
    assert_mirrored(&dst, &images).await;
    // The pace learnt the limits from the first refusals instead of meeting them again
    // and again (unpaced, most of the PUTs are refused). What learning costs: the PUTs in
    // flight when the limit is first met (more on a loaded machine, where they bunch up
    // behind slow answers), and one or two each time the rate grows back to the limit, as
    // additive increase means it to.
    let refused = dst_proxy.refused();
    let puts = dst_proxy
        .seen()
        .iter()
        .filter(|s| s.method == HttpMethod::PUT && s.path.contains("/manifests/"))
        .count();
    assert!(
        refused.of(Op::ManifestPut) <= 10,
        "{refused:?} of {puts} manifest PUTs"
    );
    // An unknown limit costs at most what was in flight when it was first met: up to 16
    // images' first blobs at once, 20 of them within the limit's first second.
    assert!(refused.of(Op::UploadStart) <= 16, "{refused:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_spent_pull_quota_waits_for_its_window_and_the_next_windows_finish_the_job() {
    use ferry_testbed::production::Production;
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let images = small_images(&src, 30).await;
    let src_proxy = FaultProxy::start(&src.url()).await;
    const WINDOW: std::time::Duration = std::time::Duration::from_secs(4);
    src_proxy.production(Production::default().pull_quota(12, WINDOW));
    let home = tempfile::tempdir().unwrap();
    let ferry_with = configured(home.path(), &mirror_config(&src_proxy.host(), &dst.host()));

    // First window: as many images as the quota allows; the rest wait for it.
    let out = run(ferry_with(&["sync", "--json"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["copied"].as_u64(), Some(12), "{report}");
    assert_eq!(report["failed"].as_u64(), Some(18), "{report}");
    let waiting = &report["waiting_for_quota"][0];
    assert_eq!(waiting["registry"], src_proxy.host().as_str(), "{report}");
    assert_eq!(waiting["images"].as_u64(), Some(18), "{report}");
    assert_eq!(waiting["limit"].as_u64(), Some(12), "{report}");
    let failure = report["images"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["status"] == "failed")
        .unwrap();
    assert_eq!(failure["error"]["kind"], "quota_exhausted", "{failure}");
    let refused_first = src_proxy.refused().quota;
    assert!(refused_first <= 4, "{refused_first} GETs refused");

    // Second window: twelve more, and the summary says what waits and until when.
    tokio::time::sleep(WINDOW + std::time::Duration::from_millis(300)).await;
    let out = run(ferry_with(&["sync"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("12 copied, 12 up to date"),
        "{}",
        text(&out)
    );
    assert!(
        stderr.contains(&format!(
            "6 images wait for the pull quota of {} (12 manifest reads per 4s)",
            src_proxy.host()
        )),
        "{}",
        text(&out)
    );
    assert!(!stderr.contains("planning"), "{}", text(&out));

    // Third: the last six.
    tokio::time::sleep(WINDOW + std::time::Duration::from_millis(300)).await;
    let out = run(ferry_with(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_mirrored(&dst, &images).await;
    let refused = src_proxy.refused().quota;
    assert!(refused <= 12, "{refused} GETs refused over three runs");
    // A plan spends none of the quota.
    let gets_before = manifest_gets(&src_proxy);
    let out = run(ferry_with(&["plan", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        manifest_gets(&src_proxy),
        gets_before,
        "plan sent manifest GETs"
    );
}

fn manifest_gets(proxy: &FaultProxy) -> usize {
    proxy
        .seen()
        .iter()
        .filter(|s| s.method == HttpMethod::GET && s.path.contains("/manifests/"))
        .count()
}

/// A mirror kept in step: tags gone from the source go from the destination, within the
/// domain the mapping and filters make, and nothing else does.
#[tokio::test(flavor = "multi_thread")]
async fn a_pruning_mirror_loses_what_the_source_lost_and_nothing_outside_its_domain() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let mut pushed = std::collections::BTreeMap::new();
    for (i, tag) in ["1.0", "1.1", "2.0", "3.0"].into_iter().enumerate() {
        let p = s
            .push_image("app", tag, Style::Oci, &[300], 700 + i as u64)
            .await;
        pushed.insert(tag, p);
    }
    // 1.1 is signed; its signature follows it to the mirror.
    s.push_cosign_artifact("app", &pushed["1.1"].digest, "sig", 9)
        .await;
    let home = tempfile::tempdir().unwrap();
    let yaml = format!(
        r#"version: 1
sources:
  - registry: {{host: "{src}", repositories: [app]}}
    filters: {{tags: {{include: ['\d+\.\d+']}}}}
    destinations:
      - target: "{dst}/mirror/{{repo}}"
        prune: true
        keep: ['9\..*']
"#,
        src = src.host(),
        dst = dst.host()
    );
    let ferry_with = configured(home.path(), &yaml);
    let out = run(ferry_with(&["sync", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let sig_tag = format!("{}.sig", pushed["1.1"].digest.replace(':', "-"));
    assert!(d.manifest("mirror/app", &sig_tag).await.is_some());

    // At the mirror, by hand: a tag the filters reject, one `keep` protects, one in the
    // domain the source never had, one in the domain sharing 3.0's manifest; and another
    // repository of the destination.
    let by_hand = |tag: &'static str, image: &'static str| {
        let (d, p) = (&d, &pushed[image]);
        async move {
            d.push_manifest("mirror/app", tag, &p.media_type, &p.raw)
                .await
        }
    };
    by_hand("hand-pushed", "1.0").await;
    by_hand("9.9", "1.0").await;
    d.push_image("mirror/app", "7.7", Style::Oci, &[100], 6)
        .await;
    by_hand("3.1", "3.0").await;
    d.push_image("mirror/other", "1.0", Style::Oci, &[100], 5)
        .await;
    // The source loses 1.1.
    s.delete_manifest("app", &pushed["1.1"].digest).await;

    // The plan shows the removals and makes none.
    let out = run(ferry_with(&["plan", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let planned: Vec<&str> = plan["removals"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["tags"].as_array().unwrap())
        .map(|t| t["tag"].as_str().unwrap())
        .collect();
    assert_eq!(planned, ["1.1", "3.1", "7.7"], "{plan}");
    assert!(
        d.manifest("mirror/app", "1.1").await.is_some(),
        "plan removed nothing"
    );

    let out = run(ferry_with(&["sync", "--json"])).await;
    // 3.1 cannot go alone (this registry deletes whole manifests, and 3.0 shares it): the
    // run says so, and that is not a failure.
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let outcomes: std::collections::BTreeMap<String, String> = report["removals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let tag = r["destination"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap();
            (tag.to_string(), r["outcome"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(outcomes["1.1"], "removed", "{report}");
    assert_eq!(
        report["removals"][0]["artifacts"][0],
        format!("{}/mirror/app:{sig_tag}", dst.host()),
        "{report}"
    );
    assert_eq!(outcomes["7.7"], "removed", "{report}");
    assert_eq!(outcomes["3.1"], "shares_manifest", "{report}");
    let mut left = d.tags("mirror/app").await;
    left.sort();
    assert_eq!(left, ["1.0", "2.0", "3.0", "3.1", "9.9", "hand-pushed"]);
    assert!(
        d.manifest("mirror/app", &sig_tag).await.is_none(),
        "the signature went with its image"
    );
    assert_eq!(d.tags("mirror/other").await, ["1.0"]);
    // What stays is byte-exact.
    for tag in ["1.0", "2.0", "3.0"] {
        let (raw, _, digest) = d.manifest("mirror/app", tag).await.unwrap();
        assert_eq!(
            (raw, digest),
            (pushed[tag].raw.clone(), pushed[tag].digest.clone())
        );
    }
}

/// A source that suddenly lists almost nothing (an outage, a mistyped filter) must not
/// empty its mirror.
#[tokio::test(flavor = "multi_thread")]
async fn a_prune_past_its_bound_removes_nothing_and_fails_loudly() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let mut digests = Vec::new();
    for i in 0..4 {
        let p = s
            .push_image("app", &format!("1.{i}"), Style::Oci, &[100], 800 + i)
            .await;
        digests.push(p.digest);
    }
    let home = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/{{repo}}\", prune: true}}]\n",
        src.host(),
        dst.host()
    );
    let ferry_with = configured(home.path(), &yaml);
    assert!(run(ferry_with(&["sync"])).await.status.success());
    for digest in &digests[..3] {
        s.delete_manifest("app", digest).await;
    }
    let out = run(ferry_with(&["plan"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("would remove 3 of the 4 tags it mirrors, more than prune_max (50%)"),
        "{stderr}"
    );
    let out = run(ferry_with(&["sync"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert_eq!(d.tags("app").await, ["1.0", "1.1", "1.2", "1.3"]);
}

/// A date `days` from today (UTC), as a configuration writes it.
fn date_in(days: i64) -> String {
    let today = jiff::tz::TimeZone::UTC
        .to_datetime(jiff::Timestamp::now())
        .date();
    today
        .checked_add(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}

/// Expiry: a destination whose date has passed gets nothing more, and a pruning one loses
/// what it mirrored; one about to expire is warned about and still served.
#[tokio::test(flavor = "multi_thread")]
async fn an_expired_mapping_stops_copying_and_a_pruning_one_is_emptied() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    for i in 0..2 {
        s.push_image("app", &format!("1.{i}"), Style::Oci, &[100], 700 + i)
            .await;
    }
    let config = |old_expires: &str| {
        format!(
            "version: 1\nsources:\n  - name: local\n    registry: {{host: \"{0}\", repositories: [app]}}\n    destinations:\n      - {{target: \"{1}/live/{{repo}}\", expires: \"{2}\"}}\n      - {{target: \"{1}/old/{{repo}}\", prune: true, expires: \"{old_expires}\"}}\n",
            src.host(),
            dst.host(),
            date_in(5),
        )
    };
    let home = tempfile::tempdir().unwrap();
    let out = run(configured(home.path(), &config(&date_in(30)))(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.tags("old/app").await, ["1.0", "1.1"]);

    // The old destination's date has passed (yesterday); the source gains a tag.
    s.push_image("app", "1.2", Style::Oci, &[100], 702).await;
    let ferry_with = configured(home.path(), &config(&date_in(-1)));
    let out = run(ferry_with(&["plan"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let plan: Value = serde_json::from_slice(&out.stdout).unwrap();
    let expired: Vec<&Value> = plan["expiry"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|n| n["expired"] == true)
        .collect();
    assert_eq!(expired.len(), 1, "{plan}");
    assert!(expired[0]["mapping"].as_str().unwrap().contains("/old/"));
    let removals = &plan["removals"][0];
    assert!(removals["destination"]
        .as_str()
        .unwrap()
        .ends_with("/old/app"));
    assert!(removals["tags"]
        .as_array()
        .unwrap()
        .iter()
        .all(|t| t["why"] == "expired"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: destination") && stderr.contains("expires in 5 days"),
        "the live destination expires soon: {stderr}"
    );
    assert_eq!(
        d.tags("old/app").await,
        ["1.0", "1.1"],
        "plan removes nothing"
    );

    let out = run(ferry_with(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.tags("live/app").await, ["1.0", "1.1", "1.2"]);
    assert!(
        d.tags("old/app").await.is_empty(),
        "the expired mirror is emptied and gets no 1.2"
    );
}

/// Verify checks both ways: a tag a destination holds in its domain that the source lacks
/// is EXTRA and fails verify unless allowed; outside the domain it is no concern.
#[tokio::test(flavor = "multi_thread")]
async fn verify_lists_extra_tags_in_the_domain_and_fails_on_them_unless_allowed() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    for (i, tag) in ["1.0", "1.1"].into_iter().enumerate() {
        s.push_image("app", tag, Style::Oci, &[100], 600 + i as u64)
            .await;
    }
    let home = tempfile::tempdir().unwrap();
    // Not a pruned mirror: verify reports extras whether or not the destination prunes.
    let yaml = format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    filters: {{tags: {{include: ['\\d+\\.\\d+']}}}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\", keep: ['9\\..*']}}]\n",
        src.host(),
        dst.host()
    );
    let ferry_with = configured(home.path(), &yaml);
    assert!(run(ferry_with(&["sync"])).await.status.success());
    let out = run(ferry_with(&["verify"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(String::from_utf8_lossy(&out.stdout).contains("; 0 extra"));

    // At the mirror: one in the domain the source lacks (2.0), one the filters reject, one
    // `keep` protects.
    for (tag, seed) in [("2.0", 610), ("hand-pushed", 611), ("9.9", 612)] {
        d.push_image("mirror/app", tag, Style::Oci, &[100], seed)
            .await;
    }
    let out = run(ferry_with(&["verify"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let extra: Vec<&str> = stdout.lines().filter(|l| l.starts_with("EXTRA")).collect();
    assert_eq!(extra.len(), 1, "{stdout}");
    assert!(
        extra[0].contains("/mirror/app:2.0 (the source has no ") && extra[0].ends_with("/app:2.0)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("2 ok, 0 missing") && stdout.contains("; 1 extra"),
        "{stdout}"
    );

    let out = run(ferry_with(&["verify", "--allow-extra", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["extra"], 1, "{report}");
    assert_eq!(
        report["extras"][0]["destination"],
        format!("{}/mirror/app:2.0", dst.host())
    );

    // SRC DST repository pairs: every tag of DST that SRC lacks is extra.
    let mut pairs = ferry(home.path());
    pairs.args([
        "verify",
        "--insecure-loopback",
        &format!("{}/app", src.host()),
        &format!("{}/mirror/app", dst.host()),
    ]);
    let out = run(pairs).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("EXTRA")).count(),
        3,
        "{stdout}"
    );
}

/// A mirror broken behind ferry's back (a layer blob lost, a platform manifest of an index
/// deleted, a tag moved at the source) looks up to date to a re-sync, which compares only
/// tags; `verify --repair` sends exactly what is missing and checks again.
#[tokio::test(flavor = "multi_thread")]
async fn verify_repair_restores_a_lost_blob_and_a_deleted_child_manifest() {
    let f = fixture().await;
    assert!(run(f.ferry(&["sync"])).await.status.success());
    let (_, _, worker, _, _) = f.images.iter().find(|i| i.1 == "worker-1.4").unwrap();
    let layer = &worker.blobs[1];
    let d = f.dst.seeder();
    d.delete_blob("group/proj/worker", &layer.digest).await;
    let (_, _, index, _, _) = f.images.iter().find(|i| i.1 == "2.0").unwrap();
    let index_doc: Value = serde_json::from_slice(&index.raw).unwrap();
    let child = index_doc["manifests"][1]["digest"]
        .as_str()
        .unwrap()
        .to_string();
    d.delete_manifest("group/app", &child).await;
    assert!(d.manifest("group/app", &child).await.is_none());
    let moved = f
        .src
        .seeder()
        .push_image("app", "1.0", Style::Oci, &[650], 98)
        .await;

    // A re-sync sees matching tags for the broken two and copies only the moved tag.
    let out = run(f.ferry(&["sync", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let synced: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(synced["copied"], 1, "{synced}");
    let out = run(f.ferry(&["verify"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("3 ok, 0 missing, 0 different, 2 incomplete"),
        "{}",
        text(&out)
    );

    let out = run(f.ferry(&["verify", "--repair", "--json"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["ok"], 5, "{report}");
    let before = report["repair"]["before"].as_array().unwrap();
    assert_eq!(
        before.iter().filter(|v| v["state"] == "incomplete").count(),
        2,
        "{report}"
    );
    let images = report["repair"]["images"].as_array().unwrap();
    assert_eq!(
        images.len(),
        2,
        "only the broken images are copied: {report}"
    );
    let of = |source: &str| {
        images
            .iter()
            .find(|i| i["source"].as_str().unwrap().contains(source))
            .unwrap_or_else(|| panic!("{source}: {report}"))
    };
    let worker_copy = of("proj:worker-1.4");
    assert_eq!(worker_copy["status"], "copied");
    // Only the lost layer crossed again, not the whole image.
    assert_eq!(worker_copy["blobs_uploaded"], 1, "{worker_copy}");
    assert_eq!(worker_copy["bytes_uploaded"], layer.size, "{worker_copy}");
    let app_copy = of("app:2.0");
    assert_eq!(app_copy["manifests_pushed"], 1, "the one child: {app_copy}");
    assert_eq!(app_copy["blobs_uploaded"], 0, "{app_copy}");
    assert!(d.manifest("group/app", &child).await.is_some());
    let (_, _, digest) = d.manifest("group/app", "1.0").await.unwrap();
    assert_eq!(digest, moved.digest);

    // Nothing left to repair: a second run copies nothing and passes.
    let out = run(f.ferry(&["verify", "--repair"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("repairing"), "{stderr}");
}

/// A destination with `backup:` keeps the image a moved tag held, under a tag of its own,
/// before moving it; backups are outside the mirror's domain, so neither prune nor verify
/// treats them as the source's.
#[tokio::test(flavor = "multi_thread")]
async fn a_moved_tag_keeps_the_image_it_held_under_its_backup_tag() {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let (s, d) = (src.seeder(), dst.seeder());
    let first = s.push_image("app", "1.0", Style::Oci, &[300], 501).await;
    s.push_image("app", "2.0", Style::Oci, &[300], 502).await;
    let home = tempfile::tempdir().unwrap();
    let yaml = format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/mirror/{{repo}}\", prune: true, backup: \"{{tag}}-{{digest12}}\"}}]\n",
        src.host(),
        dst.host()
    );
    let ferry_with = configured(home.path(), &yaml);
    assert!(run(ferry_with(&["sync"])).await.status.success());

    // A bad upstream push moves 1.0.
    let second = s.push_image("app", "1.0", Style::Oci, &[300], 503).await;
    let out = run(ferry_with(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let backup_tag = format!("1.0-{}", &first.digest["sha256:".len()..][..12]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("kept as {}/mirror/app:{backup_tag}", dst.host())),
        "{stderr}"
    );
    let (_, _, now) = d.manifest("mirror/app", "1.0").await.unwrap();
    assert_eq!(now, second.digest);
    let (raw, _, kept) = d.manifest("mirror/app", &backup_tag).await.unwrap();
    assert_eq!(kept, first.digest, "the previous image, byte for byte");
    assert_eq!(raw, first.raw);

    // The backup is not the source's: a pruning sync leaves it, verify calls nothing extra.
    let out = run(ferry_with(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(d.tags("mirror/app").await, ["1.0", &backup_tag, "2.0"]);
    let out = run(ferry_with(&["verify"])).await;
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("2 ok")
            && String::from_utf8_lossy(&out.stdout).contains("; 0 extra")
    );

    // Without its backup the tag does not move: the destination refuses the backup's
    // PUT once, the image stays as it was, and the next run does both.
    let proxy = FaultProxy::start(&dst.url()).await;
    proxy.rule(
        on(HttpMethod::PUT, "/mirror/app/manifests/1.0-"),
        Action::registry_error(403, "DENIED", "requested access to the resource is denied"),
        Some(1),
    );
    let third = s.push_image("app", "1.0", Style::Oci, &[300], 504).await;
    let through_proxy = configured(home.path(), &yaml.replace(&dst.host(), &proxy.host()));
    let out = run(through_proxy(&["sync"])).await;
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let (_, _, held) = d.manifest("mirror/app", "1.0").await.unwrap();
    assert_eq!(held, second.digest, "not moved without its backup");
    let out = run(through_proxy(&["sync"])).await;
    assert!(out.status.success(), "{}", text(&out));
    let (_, _, held) = d.manifest("mirror/app", "1.0").await.unwrap();
    assert_eq!(held, third.digest);
    let second_backup = format!("1.0-{}", &second.digest["sha256:".len()..][..12]);
    let (_, _, kept) = d.manifest("mirror/app", &second_backup).await.unwrap();
    assert_eq!(kept, second.digest);
}

/// The schema `ferry config schema` prints accepts every configuration the README shows
/// and refuses unknown fields, checked by an independent validator (Python's jsonschema,
/// which the README's test command installs); `ferry config check` explains a valid file
/// and names the field of a bad one.
#[tokio::test(flavor = "multi_thread")]
async fn the_config_schema_validates_the_documented_examples_and_check_explains_them() {
    let home = tempfile::tempdir().unwrap();
    let mut c = ferry(home.path());
    c.args(["config", "schema"]);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out));
    let schema = home.path().join("schema.json");
    std::fs::write(&schema, &out.stdout).unwrap();

    // Every ```yaml block of the README that is a configuration.
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let examples: Vec<&str> = readme
        .split("```yaml\n")
        .skip(1)
        .filter_map(|b| b.split("```").next())
        .filter(|b| b.starts_with("version: 1"))
        .collect();
    assert!(!examples.is_empty());
    let mut files = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        let path = home.path().join(format!("readme-{i}.yaml"));
        std::fs::write(&path, example).unwrap();
        files.push((path, true));
    }
    let extra = [
        // A misspelt field, at the top, in a destination, in an image entry.
        ("version: 1\nsource: []\n", false),
        ("version: 1\nsources:\n  - images: [a/b:1]\n    destinations: [{target: \"r.example/{repo}\", prun: true}]\n", false),
        ("version: 1\nsources:\n  - images: [{image: a/b:1, expiry: 2027-06-30}]\n    destinations: [{target: \"r.example/{repo}\"}]\n", false),
        ("version: 1\ncredentials: {r.example: {secrets: x}}\nsources: []\n", false),
        // What a schema can say is fine.
        ("version: 1\ncredentials: {r.example: {secret: x}, q.example: ecr}\nsources:\n  - images: [a/b:1, {image: a/c:2, expires: 2027-06-30}]\n    destinations: [{target: \"r.example/{repo}\", prune_max: 50%, backup: \"{tag}-{date}\"}]\n", true),
    ];
    for (i, (text, _)) in extra.iter().enumerate() {
        let path = home.path().join(format!("case-{i}.yaml"));
        std::fs::write(&path, text).unwrap();
        files.push((path, extra[i].1));
    }
    let script = r#"
import json, sys, yaml, jsonschema
# ferry reads YAML 1.2, where 2027-06-30 is a string; PyYAML's 1.1 would make it a date.
class Loader(yaml.SafeLoader):
    pass
Loader.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:timestamp"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
schema = json.load(open(sys.argv[1]))
jsonschema.Draft202012Validator.check_schema(schema)
validator = jsonschema.Draft202012Validator(schema)
for path in sys.argv[2:]:
    errors = [e.message for e in validator.iter_errors(yaml.load(open(path), Loader=Loader))]
    print(path, "valid" if not errors else "invalid: " + "; ".join(errors))
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&schema)
        .args(files.iter().map(|(p, _)| p))
        .output()
        .expect("python3 with jsonschema and PyYAML (scripts/setup.sh installs them)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let verdicts = String::from_utf8_lossy(&out.stdout);
    for ((path, valid), line) in files.iter().zip(verdicts.lines()) {
        assert!(line.starts_with(&path.display().to_string()), "{line}");
        assert_eq!(line.ends_with(" valid"), *valid, "{line}");
    }
    assert!(verdicts.contains("'prun' was unexpected"), "{verdicts}");

    // check: the README's example explained, a bad file named by its field.
    let mut c = ferry(home.path());
    c.args(["config", "check"]).arg(&files[0].0);
    let out = run(c).await;
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.starts_with("valid: 3 sources"), "{stdout}");
    assert!(
        stdout.contains("every repository under platform/"),
        "{stdout}"
    );
    assert!(stdout.contains("prunes (at most 50% a run)"), "{stdout}");
    let mut c = ferry(home.path());
    c.args(["config", "check"])
        .arg(&files[examples.len() + 1].0);
    let out = run(c).await;
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sources[0].destinations[0]"),
        "{}",
        text(&out)
    );
}
