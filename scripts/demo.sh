#!/usr/bin/env bash
# A local end-to-end demo on the embedded default (no AWS account): starts two registries,
# seeds realistic images and copies them with the ferry CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p ferry-cli --locked
FERRY_BIN="$PWD/target/release/ferry" cargo run --release -q -p ferry-testbed --example demo --locked
