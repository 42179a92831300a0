//! The benchmark harness runs end to end at `--quick` size: every contender copies both
//! fixtures, ferry and skopeo copy the many fixture again at a distance, the planner's
//! throughput, a large layer's copy and a mirror's repair and prune are measured, and the
//! results are written. Timings are reported, never asserted.

use std::process::Command;

use ferry_testbed::cargo;

#[test]
fn the_harness_runs_every_contender_at_quick_size() {
    // The debug ferry of this build: the figures mean nothing here, the plumbing does.
    // Resolved for the whole workspace, as `cargo test --workspace` resolves it, so within
    // the suite this is a no-op (`-p ferry-cli` rebuilt the library with other features).
    let build = cargo::command()
        .args(["build", "--locked", "--workspace", "--bin", "ferry"])
        .output()
        .expect("cargo build");
    assert!(
        build.status.success(),
        "{}",
        String::from_utf8_lossy(&build.stderr)
    );
    let ferry = cargo::workspace().join("target/debug/ferry");
    let out_dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-bench"))
        .arg("--quick")
        .arg("--ferry")
        .arg(&ferry)
        .arg("--out")
        .arg(out_dir.path())
        .output()
        .expect("run ferry-bench");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out_dir.path().join("quick.json")).unwrap()).unwrap();
    let all = report["fixtures"].as_array().unwrap();
    let names: Vec<&str> = all
        .iter()
        .map(|f| f["shape"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["bulk", "many", "wan"]);
    let (fixtures, wan) = all.split_at(2);
    for fixture in fixtures {
        let contenders = fixture["contenders"].as_array().unwrap();
        let names: Vec<&str> = contenders
            .iter()
            .map(|c| c["contender"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["ferry", "skopeo", "pull-tag-push", "floor"]);
        for c in contenders {
            assert!(c["cold_seconds"].as_f64().unwrap() > 0.0, "{c}");
            let (sent, payload) = (
                c["bytes_uploaded"].as_u64().unwrap(),
                c["payload_uploaded"].as_u64().unwrap(),
            );
            assert!(payload > 0 && payload < sent, "{c}");
        }
        // ferry uploads each unique blob once (mounting shared ones) and each manifest once;
        // the floor uploads the blobs alone.
        let fixture_bytes = |key: &str| fixture[key].as_u64().unwrap();
        assert_eq!(
            contenders[0]["payload_uploaded"].as_u64().unwrap(),
            fixture_bytes("unique_bytes") + fixture_bytes("manifest_bytes"),
            "{}",
            contenders[0]
        );
        assert_eq!(
            contenders[3]["payload_uploaded"].as_u64().unwrap(),
            fixture_bytes("unique_bytes")
        );
        for c in contenders {
            // Every contender writes to the destination; every one but the floor reads the source.
            let cpu = c["registry_cpu_seconds"].as_array().unwrap();
            assert!(cpu[1].as_f64().unwrap() > 0.0, "{c}");
            if c["contender"] != "floor" {
                assert!(cpu[0].as_f64().unwrap() > 0.0, "{c}");
            }
        }
        assert_eq!(contenders[0]["digests_equal"], true, "ferry is byte-exact");
        assert_eq!(
            contenders[1]["digests_equal"], true,
            "skopeo --preserve-digests too"
        );
    }
    // Every no-op ran, the floor's too (its HEADs against a completed destination).
    for fixture in fixtures {
        let contenders = fixture["contenders"].as_array().unwrap();
        for c in contenders {
            assert!(c["noop_seconds"].as_f64().unwrap() > 0.0, "{c}");
        }
        // Requests are what the registries pay for. ferry's no-op asks the destination one
        // manifest HEAD per image and at most a tag list per repository (listed where a
        // repository has many tags), nothing more; cold, it asks less than skopeo, which
        // HEADs every blob of every image.
        let images = fixture["images"].as_u64().unwrap();
        let repositories = fixture["shape"]["repositories"].as_u64().unwrap();
        let requests = |c: &serde_json::Value, key: &str| c[key].as_u64().unwrap();
        let noop = requests(&contenders[0], "noop_requests");
        assert!(
            (images..=images + repositories).contains(&noop),
            "{}",
            contenders[0]
        );
        assert_eq!(requests(&contenders[3], "noop_requests"), images);
        assert!(
            requests(&contenders[0], "requests") < requests(&contenders[1], "requests"),
            "{contenders:?}"
        );
    }
    // At a distance: ferry and skopeo, both byte-exact, and the floor through the same
    // proxies, beside the floor the round trips allow.
    let wan = &wan[0];
    let contenders = wan["contenders"].as_array().unwrap();
    let names: Vec<&str> = contenders
        .iter()
        .map(|c| c["contender"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["ferry", "skopeo", "floor"]);
    for c in contenders {
        if c["contender"] != "floor" {
            assert_eq!(c["digests_equal"], true, "{c}");
        }
        assert!(c["noop_seconds"].as_f64().unwrap() > 0.0, "{c}");
    }
    // The measured floor uploads the blobs alone, and HEADs one manifest per image at each
    // end.
    assert_eq!(
        contenders[2]["payload_uploaded"].as_u64().unwrap(),
        wan["unique_bytes"].as_u64().unwrap()
    );
    assert_eq!(
        contenders[2]["noop_requests"], wan["images"],
        "{}",
        contenders[2]
    );
    // The floor: a handshake and the listings, then four round trips per image at ferry's
    // concurrency.
    let floor = &wan["latency_floor"];
    assert_eq!(floor["round_trip_ms"], 40, "{wan}");
    let images = wan["images"].as_u64().unwrap();
    let at_once = floor["image_concurrency"].as_u64().unwrap();
    let trips = 2 + 4 * images.div_ceil(at_once);
    let cold = floor["cold_seconds"].as_f64().unwrap();
    assert!((cold - trips as f64 * 0.040).abs() < 1e-9, "{floor}");

    let planner = &report["planner"];
    assert_eq!(planner["tags"], 500);
    assert_eq!(
        planner["messages"], 500,
        "one copy message per tag: {planner}"
    );
    let large = &report["large"];
    assert_eq!(large["layer_bytes"], 64u64 << 20);
    assert_eq!(large["digests_equal"], true, "{large}");
    assert!(large["peak_rss_kib"].as_u64().unwrap() > 0, "{large}");

    // Against production-shaped registries: nothing lost, the quota's windows used up.
    let throttled = &report["throttled"];
    assert_eq!(throttled["copied"], throttled["images"], "{throttled}");
    assert_eq!(throttled["exit_code"], 0, "{throttled}");
    let runs = report["quota"]["runs"].as_array().unwrap();
    let copied: Vec<u64> = runs.iter().map(|r| r["copied"].as_u64().unwrap()).collect();
    assert_eq!(copied, [12, 12, 6], "{runs:?}");
    assert_eq!(runs[0]["exit_code"], 1, "{runs:?}");
    assert_eq!(runs[2]["exit_code"], 0, "{runs:?}");

    // A mirror's upkeep: a sync leaves lost blobs lost; the repair sends exactly the lost
    // layers (no manifest, the tags were right) and leaves nothing broken; the prune leaves
    // no extra. (skopeo's outcome is reported, not asserted: it is skopeo's.)
    let mirror = &report["mirror"];
    let repair = mirror["repair"].as_array().unwrap();
    let what: Vec<&str> = repair.iter().map(|r| r["what"].as_str().unwrap()).collect();
    assert_eq!(
        what,
        ["ferry sync", "ferry verify --repair", "skopeo sync --all"]
    );
    assert_eq!(repair[0]["incomplete_after"], mirror["broken"], "{mirror}");
    assert_eq!(repair[1]["incomplete_after"], 0, "{mirror}");
    assert_eq!(repair[1]["bytes_sent"], mirror["lost_bytes"], "{mirror}");
    let prune = &mirror["prune"];
    assert_eq!(prune["extras_after"], 0, "{mirror}");
    assert_eq!(prune["incomplete_after"], 0, "{mirror}");

    let table = std::fs::read_to_string(out_dir.path().join("quick.md")).unwrap();
    assert!(table.contains("| ferry sync |"), "{table}");
    assert!(table.contains("Latency floor"), "{table}");
    assert!(table.contains("**throttled**"), "{table}");
    assert!(table.contains("**quota**"), "{table}");
    assert!(table.contains("**planner**"), "{table}");
    assert!(table.contains("**large**"), "{table}");
    assert!(table.contains("**mirror**"), "{table}");
}
