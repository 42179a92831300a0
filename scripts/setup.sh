#!/usr/bin/env bash
# Installs what ferry's demo and tests need on a fresh Debian machine: the CNCF
# distribution registry (Debian package docker-registry), moto_server (PyPI
# moto[server]) for the AWS APIs, cfn-lint for the SAM template, and cargo-lambda with
# its zig linker (PyPI cargo-lambda, ziglang) to build and run the Lambda binaries; and
# for the benchmark (whose --quick run is part of the tests) skopeo, podman and GNU time.
# Safe to run again; installs only what is missing.
set -euo pipefail
need=()
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
command -v skopeo >/dev/null || need+=(skopeo)
command -v podman >/dev/null || need+=(podman)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${need[*]} (apt)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is required for moto_server" >&2; exit 1; }
if ! command -v moto_server >/dev/null || ! command -v cfn-lint >/dev/null \
  || ! command -v cargo-lambda >/dev/null || ! python3 -c 'import ziglang, jsonschema, yaml' 2>/dev/null; then
  # jsonschema and PyYAML: the test that validates the documented configurations against
  # `ferry config schema` with an independent validator.
  echo "installing moto[server], cfn-lint, cargo-lambda, ziglang, jsonschema and PyYAML (pip)" >&2
  python3 -m pip install -q 'moto[server]>=5.1,<6' 'cfn-lint>=1,<2' \
    'cargo-lambda>=1.8,<2' 'ziglang>=0.13,<0.15' 'jsonschema>=4.18,<5' 'PyYAML>=6,<7'
  if command -v pyenv >/dev/null; then pyenv rehash; fi
  hash -r
fi
for tool in moto_server cfn-lint cargo-lambda; do
  command -v "$tool" >/dev/null || { echo "$tool is not on PATH after pip install" >&2; exit 1; }
done
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
