//! The README's first command must work: build the demo example, run it against the
//! `ferry` binary under test, and check its story ends the way it says.

use std::path::PathBuf;
use std::process::Command;

use ferry_testbed::cargo;

/// Build the demo the way `scripts/demo.sh` does (in this test's profile) and return its
/// path. `cargo test --all-targets` compiles examples as test harnesses under hashed names,
/// so the runnable example is built here rather than assumed to exist.
fn demo_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>");
    let mut build = cargo::command();
    build.args(["build", "--locked", "-p", "ferry-cli", "--example", "demo"]);
    if profile_dir
        .file_name()
        .is_some_and(|name| name == "release")
    {
        build.arg("--release");
    }
    let out = build.output().expect("run cargo build --example demo");
    assert!(
        out.status.success(),
        "cargo build --example demo failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let demo = profile_dir.join("examples").join("demo");
    assert!(demo.exists(), "{} was not built", demo.display());
    demo
}

#[test]
fn the_demo_migrates_verifies_and_says_what_ran_where() {
    let out = Command::new(demo_binary())
        .env("FERRY_BIN", env!("CARGO_BIN_EXE_ferry"))
        .env_remove("RUST_LOG")
        .output()
        .expect("run the demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for expected in [
        "3 repositories listed, 3 planning tasks sent",
        "copier, triggered by the copy queue: 2 invocation(s), 16 record(s), 0 asked for a retry",
        "acme/proj/api:{1.4,1.5}",
        "acme/tools:{1.0.14,1.0.15,1.0.16,1.0.17,1.0.18,1.0.19,1.0.20,1.0.21,1.0.22,1.0.23}",
        "planner (EventBridge ECR Image Action): 1 copy message(s) sent",
        "verified 17 destinations: 17 ok",
        "what ran where",
        "try next",
    ] {
        assert!(stdout.contains(expected), "{expected:?} not in:\n{stdout}");
    }
    // The copies are byte-exact: the two digest lines agree.
    let digests: Vec<&str> = stdout
        .lines()
        .filter(|l| l.contains("web:2.1 in "))
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with("sha256:")))
        .collect();
    assert_eq!(digests.len(), 2, "{stdout}");
    assert_eq!(digests[0], digests[1]);
    assert!(!stdout.contains("demo-gitlab-token") && !stderr.contains("demo-gitlab-token"));
}
