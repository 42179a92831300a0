#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against real docker-registry
# processes and moto_server on loopback ports. Installs what it needs first. The Lambda
# functions are built first so the test that runs the built binaries finds them ready
# instead of compiling them while the other tests run. It builds just the two functions (a
# bare `cargo lambda build` builds every binary of the workspace) and in the debug profile:
# from scratch on 2 cores the release build took 13 minutes, the debug one 5; what the test
# checks (cargo-lambda's cross-linked bootstrap, the runtime API, the environment) does not
# depend on optimization. Deploying builds with --release (README, template.yaml).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo lambda build --locked -p ferry-planner -p ferry-copier
cargo test --workspace --all-targets --locked
