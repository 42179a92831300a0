//! How planning asks the registries, counted at a proxy in front of each: a destination
//! repository's tags are listed once instead of a HEAD per tag, and a plan made for a copy in
//! the same process (`ferry sync`) reads the manifests it will copy instead of a HEAD now and
//! a GET later. The copy then trusts what planning found.

use ferry::aws::AwsClients;
use ferry::config::SyncConfig;
use ferry::copy::{Copier, CopyOptions};
use ferry::message::Reason;
use ferry::plan::{Plan, PlanOptions, Planner};
use ferry::reference::ImageRef;
use ferry::report::Status;
use ferry_testbed::fixtures::{Pushed, Style};
use ferry_testbed::proxy::{FaultProxy, HttpMethod, Seen};
use ferry_testbed::{Auth, DockerRegistry};

use ferry_testbed::clients::client_with;

const TAGS: usize = 10;

struct Setup {
    _src: DockerRegistry,
    _dst: DockerRegistry,
    src_proxy: FaultProxy,
    dst_proxy: FaultProxy,
    config: SyncConfig,
    pushed: Vec<(String, Pushed)>,
}

/// `app` with ten tags at the source; at the destination three of them are current and one
/// (`v3`) holds another image.
async fn setup(tags: usize) -> Setup {
    let src = DockerRegistry::start(Auth::None);
    let dst = DockerRegistry::start(Auth::None);
    let mut pushed = Vec::new();
    for i in 0..tags {
        let tag = format!("v{i}");
        let p = src
            .seeder()
            .push_image("app", &tag, Style::Oci, &[300, 200], i as u64)
            .await;
        if i < 3 {
            dst.seeder()
                .push_image("app", &tag, Style::Oci, &[300, 200], i as u64)
                .await;
        }
        pushed.push((tag, p));
    }
    if tags > 3 {
        dst.seeder()
            .push_image("app", "v3", Style::Oci, &[100], 99)
            .await;
    }
    let src_proxy = FaultProxy::start(&src.url()).await;
    let dst_proxy = FaultProxy::start(&dst.url()).await;
    let config = SyncConfig::parse(&format!(
        "version: 1\nsources:\n  - registry: {{host: \"{}\", repositories: [app]}}\n    destinations: [{{target: \"{}/{{repo}}\"}}]\n",
        src_proxy.host(),
        dst_proxy.host()
    ))
    .unwrap();
    Setup {
        _src: src,
        _dst: dst,
        src_proxy,
        dst_proxy,
        config,
        pushed,
    }
}

async fn plan(setup: &Setup, prefetch: bool) -> Plan {
    let client = client_with(&[]);
    let aws = AwsClients::from_environment();
    let options = PlanOptions {
        prefetch_manifests: prefetch,
        ..PlanOptions::default()
    };
    Planner::new(&setup.config, &client, &aws, options)
        .plan_source(&setup.config.sources[0], Reason::Manual)
        .await
        .unwrap()
}

fn count(seen: &[Seen], method: HttpMethod, fragment: &str) -> usize {
    seen.iter()
        .filter(|s| s.method == method && s.path.contains(fragment))
        .count()
}

fn tag_of(job_source: &ImageRef) -> &str {
    job_source.tag().unwrap()
}

#[tokio::test]
async fn one_listing_answers_for_missing_tags_and_sync_plans_read_what_they_copy() {
    let setup = setup(TAGS).await;
    let plan = plan(&setup, true).await;

    assert_eq!(plan.up_to_date.len(), 3, "{plan:?}");
    assert_eq!(plan.jobs.len(), TAGS - 3);
    for job in &plan.jobs {
        let tag = tag_of(&job.source);
        let expected = &setup.pushed.iter().find(|(t, _)| t == tag).unwrap().1;
        assert_eq!(
            job.source.digest().map(|d| d.to_string()),
            Some(expected.digest.clone()),
            "{}",
            job.source
        );
        let absent = tag != "v3";
        assert_eq!(job.hints.destinations_absent, absent, "{tag}");
        // Read only for images no destination has: a different image under the tag was
        // found with a HEAD, and so was the source's digest.
        let manifest = job.hints.manifest.as_ref();
        assert_eq!(manifest.is_some(), absent, "{tag}");
        if let Some(m) = manifest {
            assert_eq!(m.digest.as_str(), expected.digest);
            assert_eq!(&m.raw[..], &expected.raw[..]);
        }
    }

    let dst = setup.dst_proxy.seen();
    assert_eq!(count(&dst, HttpMethod::GET, "/v2/app/tags/list"), 1);
    // HEADs only for the four tags the listing showed.
    assert_eq!(count(&dst, HttpMethod::HEAD, "/manifests/"), 4, "{dst:#?}");
    let src = setup.src_proxy.seen();
    assert_eq!(count(&src, HttpMethod::GET, "/manifests/"), 6, "{src:#?}");
    assert_eq!(count(&src, HttpMethod::HEAD, "/manifests/"), 4, "{src:#?}");
    // One source listing serves the tags and the up-to-date images' signature check.
    assert_eq!(count(&src, HttpMethod::GET, "/tags/list"), 1, "{src:#?}");

    // The copy trusts the plan: no manifest HEAD at the destination, no second read of a
    // manifest at the source, and every image arrives exact.
    let before_dst = setup.dst_proxy.seen().len();
    let before_src = setup.src_proxy.seen().len();
    let copier = Copier::new(client_with(&[]), CopyOptions::default());
    for job in &plan.jobs {
        let report = copier.copy_image(&job.request().unwrap()).await;
        assert_eq!(report.status, Status::Copied, "{report:?}");
    }
    let dst = &setup.dst_proxy.seen()[before_dst..];
    let src = &setup.src_proxy.seen()[before_src..];
    assert_eq!(
        count(dst, HttpMethod::HEAD, "/manifests/"),
        1,
        "only v3, which the listing showed, is asked again: {dst:#?}"
    );
    assert_eq!(
        count(src, HttpMethod::GET, "/manifests/"),
        1,
        "only v3's manifest is read by the copy: {src:#?}"
    );
    for (tag, pushed) in &setup.pushed {
        let (raw, _, _) = setup
            ._dst
            .seeder()
            .manifest("app", tag)
            .await
            .expect("copied");
        assert_eq!(raw, pushed.raw, "{tag}");
    }
}

#[tokio::test]
async fn plans_for_a_queue_head_the_source_and_carry_no_manifests() {
    let setup = setup(TAGS).await;
    let plan = plan(&setup, false).await;
    assert_eq!(plan.jobs.len(), TAGS - 3);
    assert!(plan.jobs.iter().all(|j| j.hints.manifest.is_none()));
    let src = setup.src_proxy.seen();
    assert_eq!(count(&src, HttpMethod::GET, "/manifests/"), 0, "{src:#?}");
    assert_eq!(count(&src, HttpMethod::HEAD, "/manifests/"), TAGS);
    // What planning learned stays in this process.
    let body =
        serde_json::to_string(&ferry::message::Message::Copy(plan.jobs[0].job.clone())).unwrap();
    assert!(!body.contains("hints"), "{body}");
    assert!(!body.contains("manifest\""), "{body}");
}

#[tokio::test]
async fn a_few_tags_are_asked_for_one_by_one() {
    let setup = setup(4).await;
    let plan = plan(&setup, true).await;
    assert_eq!(plan.up_to_date.len(), 3);
    assert_eq!(plan.jobs.len(), 1);
    assert!(!plan.jobs[0].hints.destinations_absent);
    let dst = setup.dst_proxy.seen();
    assert_eq!(count(&dst, HttpMethod::GET, "tags/list"), 0, "{dst:#?}");
    assert_eq!(count(&dst, HttpMethod::HEAD, "/manifests/"), 4);
}

#[tokio::test]
async fn a_tag_a_head_finds_missing_is_read_once_and_not_asked_again_by_the_copy() {
    // Five tags, too few to list: v4 is at no destination.
    let setup = setup(5).await;
    let plan = plan(&setup, true).await;
    assert_eq!(plan.up_to_date.len(), 3, "{plan:?}");
    let v4 = plan
        .jobs
        .iter()
        .find(|j| tag_of(&j.source) == "v4")
        .expect("v4 planned");
    assert!(v4.hints.destinations_absent, "{v4:?}");
    let pushed = &setup.pushed[4].1;
    assert_eq!(
        v4.hints.manifest.as_ref().map(|m| m.raw.to_vec()),
        Some(pushed.raw.clone()),
        "read while planning"
    );
    let dst = setup.dst_proxy.seen();
    assert_eq!(count(&dst, HttpMethod::GET, "tags/list"), 0, "{dst:#?}");
    assert_eq!(count(&dst, HttpMethod::HEAD, "/manifests/"), 5, "{dst:#?}");
    let src = setup.src_proxy.seen();
    assert_eq!(
        count(&src, HttpMethod::HEAD, "/manifests/v4"),
        0,
        "{src:#?}"
    );
    assert_eq!(count(&src, HttpMethod::GET, "/manifests/v4"), 1, "{src:#?}");

    let (before_dst, before_src) = (dst.len(), src.len());
    let report = Copier::new(client_with(&[]), CopyOptions::default())
        .copy_image(&v4.request().unwrap())
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let dst = &setup.dst_proxy.seen()[before_dst..];
    let src = &setup.src_proxy.seen()[before_src..];
    assert_eq!(count(dst, HttpMethod::HEAD, "/manifests/"), 0, "{dst:#?}");
    assert_eq!(count(src, HttpMethod::GET, "/manifests/"), 0, "{src:#?}");
    let (raw, _, _) = setup._dst.seeder().manifest("app", "v4").await.unwrap();
    assert_eq!(raw, pushed.raw);
}

#[tokio::test]
async fn a_copy_that_may_not_overwrite_asks_the_destination_anyway() {
    let setup = setup(TAGS).await;
    let plan = plan(&setup, true).await;
    let job = plan
        .jobs
        .iter()
        .find(|j| j.hints.destinations_absent)
        .unwrap();
    let mut request = job.request().unwrap();
    request.overwrite = false;
    let before = setup.dst_proxy.seen().len();
    let report = Copier::new(client_with(&[]), CopyOptions::default())
        .copy_image(&request)
        .await;
    assert_eq!(report.status, Status::Copied, "{report:?}");
    let dst = &setup.dst_proxy.seen()[before..];
    assert_eq!(count(dst, HttpMethod::HEAD, "/manifests/"), 1, "{dst:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_tag_the_destination_listing_holds_is_headed_at_both_ends_at_once() {
    let s = setup(TAGS).await;
    // Both registries answer manifest HEADs slowly, as distant ones do.
    const SLOW: std::time::Duration = std::time::Duration::from_millis(400);
    for proxy in [&s.src_proxy, &s.dst_proxy] {
        proxy.rule(
            ferry_testbed::proxy::on(HttpMethod::HEAD, "/manifests/"),
            ferry_testbed::proxy::Action::Delay(SLOW),
            None,
        );
    }
    plan(&s, false).await;
    // v0 is listed at the destination: its source HEAD went out before the destination's
    // was answered, not one round trip after.
    let first = |proxy: &FaultProxy| {
        proxy
            .seen()
            .into_iter()
            .find(|r| r.method == HttpMethod::HEAD && r.path.ends_with("/manifests/v0"))
            .expect("v0 headed")
            .at
    };
    let (at_source, at_destination) = (first(&s.src_proxy), first(&s.dst_proxy));
    let apart = at_source
        .checked_duration_since(at_destination)
        .unwrap_or_default();
    assert!(apart < SLOW, "source asked {apart:?} after the destination");
}
