#!/usr/bin/env bash
# The whole test suite: unit tests and integration tests against real docker-registry
# processes on loopback ports. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo test --workspace --all-targets --locked
