use super::*;

const EXAMPLE: &str = r#"
version: 1
defaults:
  region: eu-west-1
  account: "210987654321"
credentials:
  registry.gitlab.com: {secret: ferry/gitlab}
  quay.io: anonymous
sources:
  - name: platform-ecr
    ecr:
      account: "123456789012"
      region: eu-west-1
      prefix: platform/
    filters:
      tags:
        exclude: ["sha256-.*"]
        newest: 20
    destinations:
      - target: registry.gitlab.com/acme/mirror/{repo}:{tag}
      - target: "{account}.dkr.ecr.{region}.amazonaws.com/proj:{repo_base}-{tag}"
        create_repository: {immutable: true, scan_on_push: true}
        overwrite: false
  - registry:
      host: 127.0.0.1:5000
      repositories: [proj]
    destinations:
      - target: registry.gitlab.com/acme/{repo}/{image}:{tag}
        split_tag: {prefixes: [api, worker]}
        platforms: [linux/amd64]
  - images: [docker.io/library/alpine:3.20, "nginx:1.27"]
    destinations:
      - target: "{account}.dkr.ecr.{region}.amazonaws.com/hub/{repo}"
"#;

#[test]
fn reads_a_full_example() {
    let c = SyncConfig::parse(EXAMPLE).unwrap();
    assert_eq!(c.sources.len(), 3);
    assert_eq!(c.sources[0].name, "platform-ecr");
    assert_eq!(c.sources[1].name, "127.0.0.1:5000-1");
    assert_eq!(
        c.credentials,
        [
            ("quay.io".to_string(), CredentialSpec::Anonymous),
            (
                "registry.gitlab.com".to_string(),
                CredentialSpec::Secret("ferry/gitlab".into())
            )
        ]
    );
    let ecr_dest = &c.sources[0].destinations[1];
    assert!(!ecr_dest.overwrite);
    assert_eq!(
        ecr_dest.create_repository,
        Some(CreateRepository {
            immutable: true,
            scan_on_push: true
        })
    );
    assert!(
        c.sources[0].destinations[0].overwrite,
        "mirrors follow their source by default"
    );
    assert_eq!(c.sources[1].destinations[0].platforms.len(), 1);
    match &c.sources[2].kind {
        SourceKind::Images(images) => {
            assert_eq!(images[1].image.to_string(), "docker.io/library/nginx:1.27")
        }
        other => panic!("{other:?}"),
    }
    let rendered = c.sources[0].destinations[1]
        .target
        .render(&c.vars(
            "123456789012.dkr.ecr.eu-west-1.amazonaws.com",
            "platform/api",
            "1.4",
        ))
        .unwrap()
        .unwrap();
    assert_eq!(
        rendered.to_string(),
        "210987654321.dkr.ecr.eu-west-1.amazonaws.com/proj:api-1.4"
    );
}

#[test]
fn split_targets_with_prefixes_may_create_ecr_repositories() {
    let c = SyncConfig::parse(
        r#"
version: 1
sources:
  - images: [quay.io/a/proj:api-1]
    destinations:
      - target: "{account}.dkr.ecr.{region}.amazonaws.com/{repo}/{image}"
        split_tag: {prefixes: [api, worker]}
        create_repository: {immutable: true}
"#,
    )
    .unwrap();
    assert!(c.sources[0].destinations[0].create_repository.is_some());
}

#[test]
fn json_works_too() {
    let c = SyncConfig::parse(
        r#"{"version": 1, "sources": [{"images": ["quay.io/a/b:1"], "destinations": [{"target": "reg.example.com/{repo}"}]}]}"#,
    )
    .unwrap();
    assert_eq!(c.sources.len(), 1);
}

/// Each mistake is reported at the field it is in, with a message that says what to do.
#[test]
fn errors_point_at_the_field() {
    let one = |body: &str| format!("version: 1\nsources:\n  - {body}\n");
    let dest = "destinations: [{target: \"reg.example.com/{repo}\"}]";
    let cases = [
        ("version: 2\nsources: []\n".to_string(), "version", "unsupported version 2"),
        (
            format!("version: 1\ndefaults: {{request_attempts: 0}}\nsources:\n  - images: [a/b:1]\n    {dest}\n"),
            "defaults.request_attempts",
            "must be at least 1",
        ),
        (
            format!("version: 1\ndefaults: {{referrers: signed}}\nsources:\n  - images: [a/b:1]\n    {dest}\n"),
            "defaults.referrers",
            "unknown referrer type \"signed\"",
        ),
        (
            format!("version: 1\ndefaults: {{referrers: []}}\nsources:\n  - images: [a/b:1]\n    {dest}\n"),
            "defaults.referrers",
            "write `none`",
        ),
        (
            one(&format!("images: [a/b:1]\n    {dest}\n    colour: blue")),
            "sources[0].colour",
            "unknown field `colour`",
        ),
        (
            one(&format!("images: [a/b:1]\n    registry: {{host: r.example.com}}\n    {dest}")),
            "sources[0]",
            "exactly one of ecr:, registry: or images:",
        ),
        (
            one(&format!("images: [a/b]\n    {dest}")),
            "sources[0].images[0]",
            "names no tag or digest",
        ),
        (
            one(&format!("images: [a/B:1]\n    {dest}")),
            "sources[0].images[0]",
            "",
        ),
        (
            one(&format!("images: [a/b:1]\n    filters: {{tags: {{include: [\"(\"]}}}}\n    {dest}")),
            "sources[0].filters.tags",
            "not a valid regular expression",
        ),
        (
            one(&format!("images: [a/b:1]\n    filters: {{tags: {{semver: \"~>1\"}}}}\n    {dest}")),
            "sources[0].filters.tags",
            "semver range",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"reg.example.com/{repository}\"}]"),
            "sources[0].destinations[0].target",
            "unknown placeholder {repository}",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"reg.example.com/{repo}\", create_repository: {}}]"),
            "sources[0].destinations[0].create_repository",
            "only ECR destinations",
        ),
        (
            one(&format!("ecr: {{account: \"1234\"}}\n    {dest}")),
            "sources[0].ecr.account",
            "12-digit",
        ),
        (
            one(&format!("images: [a/b:1]\n    {dest}\n    filters: {{tags: {{newest: 0}}}}")),
            "sources[0].filters.tags",
            "at least 1",
        ),
        (
            one("images: [a/b:1]\n    destinations: []"),
            "sources[0].destinations",
            "at least one destination",
        ),
        (
            format!("version: 1\ncredentials: {{quay.io: {{password: x}}}}\nsources:\n  - images: [a/b:1]\n    {dest}\n"),
            "credentials.quay.io",
            "expected `ecr`, `anonymous` or `{secret:",
        ),
        (
            format!("version: 1\ncredentials: {{quay.io: ecr}}\nsources:\n  - images: [a/b:1]\n    {dest}\n"),
            "credentials.quay.io",
            "only work for",
        ),
        (
            one(&format!("images: [a/b:1]\n    {dest}\n    filters: {{tags: {{platforms: []}}}}")),
            "sources[0].filters.tags.platforms",
            "unknown field `platforms`",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\", platforms: [linux]}]"),
            "sources[0].destinations[0].platforms[0]",
            "os/arch",
        ),
        (
            format!("version: 1\nsources:\n  - name: x\n    images: [a/b:1]\n    {dest}\n  - name: x\n    images: [a/b:2]\n    {dest}\n"),
            "sources[1].name",
            "unique",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}:latest\", prune: true}]"),
            "sources[0].destinations[0].prune",
            "does not carry the source tag ({tag})",
        ),
        (
            "version: 1\ndefaults: {prune: true}\nsources:\n  - images: [a/b:1]\n    destinations: [{target: \"r.example.com/x:latest\"}]\n".to_string(),
            "sources[0].destinations[0].target",
            "set prune: false here",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\", prune: true, prune_max: 150%}]"),
            "sources[0].destinations[0].prune_max",
            "0% to 100%",
        ),
        (
            format!("version: 1\ndefaults: {{prune_max: lots}}\nsources:\n  - images: [a/b:1]\n    {dest}\n"),
            "defaults.prune_max",
            "a percentage of the mirrored tags",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\", keep: [\"[\"]}]"),
            "sources[0].destinations[0].keep",
            "not a valid regular expression",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\", prune: yes please}]"),
            "sources[0].destinations[0].prune",
            "",
        ),
        (
            one("images: [a/b:1]\n    expires: 30/06/2027\n    destinations: [{target: \"r.example.com/{repo}\"}]"),
            "sources[0].expires",
            "write a date such as 2027-06-30",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\", expires: 2027-06-31}]"),
            "sources[0].destinations[0].expires",
            "RFC 3339",
        ),
        (
            one("images: [a/b:1, {image: a/c:1, expires: tomorrow}]\n    destinations: [{target: \"r.example.com/{repo}\"}]"),
            "sources[0].images[1].expires",
            "is not a date or time",
        ),
        (
            one("images: [{image: a/c:1, expiry: 2027-06-30}]\n    destinations: [{target: \"r.example.com/{repo}\"}]"),
            "sources[0].images[0]",
            "unknown field `expiry`",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\", backup: \"{tag}-old\"}]"),
            "sources[0].destinations[0].backup",
            "each would replace the last",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\", overwrite: false, backup: \"{tag}-{digest12}\"}]"),
            "sources[0].destinations[0].backup",
            "never overwrites (overwrite: false)",
        ),
        (
            one("images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}:{tag}-20240101\", backup: \"{tag}-{date}\"}]"),
            "sources[0].destinations[0].backup",
            "mirrored tags such as \"1.0-20240101\"",
        ),
    ];
    for (text, path, message) in cases {
        let e = SyncConfig::parse(&text).expect_err(&text);
        assert_eq!(e.path, path, "{text}\n=> {e}");
        assert!(e.message.contains(message), "{text}\n=> {e}");
    }
}

#[test]
fn destinations_prune_only_when_asked_within_a_bound() {
    let c = SyncConfig::parse(
        r#"
version: 1
defaults: {prune_max: 10}
sources:
  - images: [a/b:1]
    destinations:
      - target: r.example.com/{repo}
      - target: m.example.com/{repo}
        prune: true
        keep: ["release-.*"]
      - target: n.example.com/{repo}
        prune: true
        prune_max: 25%
"#,
    )
    .unwrap();
    let d = &c.sources[0].destinations;
    assert!(
        !d[0].prune,
        "a destination is not a mirror unless it says so"
    );
    assert!(d[1].prune && d[2].prune);
    assert_eq!(d[1].prune_max, PruneMax::Count(10), "from the defaults");
    assert_eq!(d[2].prune_max, PruneMax::Percent(25));
    assert!(d[1].keep[0].is_match("release-1"));
    assert!(!d[1].keep[0].is_match("pre-release-1"), "whole names only");
    let default = SyncConfig::parse(
        "version: 1\ndefaults: {prune: true}\nsources:\n  - images: [a/b:1]\n    destinations: [{target: \"r.example.com/{repo}\"}]\n",
    )
    .unwrap();
    let d = &default.sources[0].destinations[0];
    assert!(d.prune);
    assert_eq!(d.prune_max, PruneMax::Percent(50));
}

#[test]
fn sources_destinations_and_listed_images_may_expire() {
    let c = SyncConfig::parse(
        r#"
version: 1
sources:
  - images:
      - docker.io/library/nginx:1.27
      - {image: "docker.io/library/nginx:1.26", expires: 2027-06-30}
    expires: "2027-12-31T18:00:00+01:00"
    destinations:
      - target: r.example.com/{repo}
        expires: 2027-03-01
"#,
    )
    .unwrap();
    let s = &c.sources[0];
    let SourceKind::Images(images) = &s.kind else {
        panic!("images")
    };
    assert_eq!(images[0].expires, None);
    assert_eq!(images[1].image.tag(), Some("1.26"));
    assert_eq!(images[1].expires.unwrap().to_string(), "2027-06-30");
    assert_eq!(s.expires.unwrap().to_string(), "2027-12-31T17:00:00Z");
    assert_eq!(s.destinations[0].expires.unwrap().to_string(), "2027-03-01");
    let d = &s.destinations[0];
    assert!(!s.lapsed(d, "2027-03-01T23:59:59Z".parse().unwrap()));
    assert!(s.lapsed(d, "2027-03-02T00:00:00Z".parse().unwrap()));
}

#[test]
fn home_account_and_region_fill_only_what_the_file_leaves_out() {
    let c = SyncConfig::parse(EXAMPLE)
        .unwrap()
        .with_home(Some("999999999999".into()), Some("us-west-2".into()));
    assert_eq!(c.defaults.account.as_deref(), Some("210987654321"));
    assert_eq!(c.defaults.region.as_deref(), Some("eu-west-1"));
}

#[test]
fn referrers_default_to_all_and_take_a_word_or_a_list() {
    let with = |line: &str| {
        SyncConfig::parse(&format!(
            "version: 1\n{line}sources:\n  - images: [a/b:1]\n    destinations: [{{target: \"r.example.com/{{repo}}\"}}]\n"
        ))
        .unwrap()
        .defaults
        .referrers
    };
    assert_eq!(with(""), Selection::All);
    assert_eq!(with("defaults: {referrers: none}\n"), Selection::None);
    let listed = with("defaults: {referrers: [sig, application/spdx+json]}\n");
    assert_eq!(listed, "sig,application/spdx+json".parse().unwrap());
    assert_eq!(
        with("defaults: {referrers: \"sig,sbom\"}\n").to_string(),
        "sig,sbom"
    );
}

#[test]
fn copy_settings_come_from_defaults_over_the_engines_own() {
    let base = "version: 1\nsources: [{images: [alpine:3.20], destinations: [{target: \"r.example/{repo}\"}]}]\n";
    let engine = crate::copy::CopyOptions::default();
    let plain = SyncConfig::parse(base).unwrap().defaults.copy_options();
    assert_eq!(
        (
            plain.image_concurrency,
            plain.blob_concurrency,
            plain.mount_probe_max_bytes
        ),
        (
            engine.image_concurrency,
            engine.blob_concurrency,
            engine.mount_probe_max_bytes
        )
    );
    let tuned = SyncConfig::parse(&format!(
        "{base}defaults: {{image_concurrency: 9, blob_concurrency: 3, mount_probe_max_bytes: 0}}\n"
    ))
    .unwrap()
    .defaults
    .copy_options();
    assert_eq!(
        (
            tuned.image_concurrency,
            tuned.blob_concurrency,
            tuned.mount_probe_max_bytes
        ),
        (9, 3, 0)
    );
}

#[test]
fn registry_limits_parse_with_units() {
    let c = SyncConfig::parse(
        r#"
version: 1
defaults:
  throttle_patience_seconds: 60
registries:
  registry-1.docker.io:
    requests_per_second: {manifest_get: 0.5}
  "123456789012.dkr.ecr.eu-west-1.amazonaws.com":
    requests_per_second: {manifest_put: 8, upload_start: 50}
    concurrency: 32
    bytes_per_second: 50MiB
  127.0.0.1:5000:
    bytes_per_second: 2000000
sources:
  - images: [alpine:3.20]
    destinations: [{target: "127.0.0.1:5000/alpine"}]
"#,
    )
    .unwrap();
    assert_eq!(c.defaults.throttle_patience_seconds, Some(60));
    let ecr = &c.registries["123456789012.dkr.ecr.eu-west-1.amazonaws.com"];
    assert_eq!(
        ecr.requests_per_second.get(&RequestKind::ManifestPut),
        Some(&8.0)
    );
    assert_eq!(ecr.concurrency, Some(32));
    assert_eq!(ecr.bytes_per_second, Some(50 * 1024 * 1024));
    assert_eq!(
        c.registries["127.0.0.1:5000"].bytes_per_second,
        Some(2_000_000)
    );
    assert_eq!(
        // Docker Hub's hosts are one registry, as in credentials.
        c.registries["docker.io"].requests_per_second[&RequestKind::ManifestGet],
        0.5
    );
}

#[test]
fn bad_registry_limits_name_the_field() {
    let cases = [
        (
            "r.io: {requests_per_second: {manifest_puts: 5}}",
            "registries.r.io.requests_per_second.manifest_puts",
            "one of manifest_head, manifest_get, manifest_put",
        ),
        (
            "r.io: {requests_per_second: {manifest_put: 0}}",
            "registries.r.io.requests_per_second.manifest_put",
            "above 0",
        ),
        (
            "r.io: {bytes_per_second: 50 parsecs}",
            "registries.r.io.bytes_per_second",
            "50MiB",
        ),
        (
            "r.io: {bytes_per_second: 10}",
            "registries.r.io.bytes_per_second",
            "too little",
        ),
        (
            "r.io: {concurrency: 0}",
            "registries.r.io.concurrency",
            "at least 1",
        ),
        (
            "r.io: {rate: 5}",
            "registries.r.io.rate",
            "unknown field `rate`",
        ),
        (
            "r.io/app: {concurrency: 2}",
            "registries.r.io/app",
            "registry host",
        ),
    ];
    for (yaml, path, words) in cases {
        let text = format!(
            "version: 1\nregistries:\n  {yaml}\nsources:\n  - images: [alpine:3.20]\n    destinations: [{{target: \"127.0.0.1:5000/alpine\"}}]\n"
        );
        let e = SyncConfig::parse(&text).unwrap_err();
        assert_eq!(e.path, path, "{yaml}: {e}");
        assert!(e.to_string().contains(words), "{yaml}: {e}");
    }
}

#[test]
fn the_readme_example_is_a_valid_configuration() {
    let readme = include_str!("../../../README.md");
    let section = &readme[readme.find("### Configuration").expect("section")..];
    let start = section.find("```yaml\n").expect("a yaml block") + "```yaml\n".len();
    let yaml = &section[start..start + section[start..].find("```").expect("closed")];
    let c = SyncConfig::parse(yaml).unwrap_or_else(|e| panic!("README example: {e}"));
    assert_eq!(c.sources.len(), 3);
    assert_eq!(c.registries["docker.io"].concurrency, Some(8));
}
