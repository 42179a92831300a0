#!/usr/bin/env bash
# The local end-to-end demo (no AWS account): moto_server plays ECR, SQS and Secrets
# Manager, docker-registry processes play ECR's registry and GitLab's; the planner and copier
# Lambda handlers migrate ECR to "GitLab" through SQS, an ECR push event syncs one more
# image, and the ferry CLI verifies the mirror. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p ferry-cli --bin ferry --example demo
FERRY_BIN="$PWD/target/release/ferry" target/release/examples/demo
