#!/usr/bin/env bash
# The benchmark: ferry against skopeo sync, a podman pull/tag/push loop and the upload
# floor on the same fixtures. Installs what it needs, builds ferry in release mode, and
# writes bench/results/latest.{json,md} (quick.{json,md} with --quick).
#   scripts/bench.sh            # full sizes, 3 runs each: about 40 minutes, 20 of them
#                               # moto enqueueing 10,000 planned tags (--planner-tags 2000: ~6)
#                               # and 14 skopeo at 40 ms in the wan fixture (one run there)
#   scripts/bench.sh --quick    # small sizes, 1 run: about two minutes
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh   # docker-registry, skopeo, podman, GNU time, moto_server
cargo build --release --locked -p ferry-cli -p ferry-bench
exec target/release/ferry-bench "$@"
