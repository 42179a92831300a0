#!/usr/bin/env bash
# Installs what ferry's demo and tests need on a fresh Debian machine: the CNCF
# distribution registry (Debian package docker-registry) and moto_server (PyPI
# moto[server]) for the AWS APIs. Safe to run again; installs only what is missing.
set -euo pipefail
need=()
[ -x /usr/bin/docker-registry ] || need+=(docker-registry)
if [ ${#need[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  echo "installing ${need[*]} (apt)" >&2
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need[@]}" >/dev/null
fi
command -v python3 >/dev/null || { echo "python3 is required for moto_server" >&2; exit 1; }
if ! command -v moto_server >/dev/null || ! command -v cfn-lint >/dev/null; then
  echo "installing moto[server] and cfn-lint (pip)" >&2
  python3 -m pip install -q 'moto[server]>=5.1,<6' 'cfn-lint>=1,<2'
  if command -v pyenv >/dev/null; then pyenv rehash; fi
  hash -r
fi
command -v moto_server >/dev/null || { echo "moto_server is not on PATH after pip install" >&2; exit 1; }
command -v cargo >/dev/null || { echo "cargo is required (https://rustup.rs)" >&2; exit 1; }
