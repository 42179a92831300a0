#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against real docker-registry
# processes and moto_server on loopback ports. Installs what it needs first. The Lambda
# release build comes first so the test that runs the built binaries finds them ready
# instead of compiling them while the other tests run.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo lambda build --release --locked
cargo test --workspace --all-targets --locked
