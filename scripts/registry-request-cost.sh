#!/usr/bin/env bash
# What one request costs docker-registry in CPU on this machine, by kind: the figure that
# bounds every contender of the benchmark on small images (README, "Benchmark").
#
# Starts a docker-registry on loopback with the benchmark's configuration (storage on
# tmpfs), pushes one small blob and one manifest, then sends each kind of request N times
# over one keep-alive connection (curl) and divides the registry's user+system CPU (from
# /proc) by N. Usage: scripts/registry-request-cost.sh [N] (default 300).
set -euo pipefail

n="${1:-300}"
command -v docker-registry >/dev/null || { echo "needs docker-registry (scripts/setup.sh installs it)" >&2; exit 1; }

storage_root=/dev/shm
[ -d "$storage_root" ] || storage_root="${TMPDIR:-/tmp}"
dir="$(mktemp -d "$storage_root/ferry-request-cost.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
cat >"$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/storage
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
  secret: registry-request-cost
EOF
docker-registry serve "$dir/config.yml" 2>"$dir/registry.log" &
pid=$!
# errexit holds inside the trap too: the killed registry's exit status must not stop it
# before the storage is removed.
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null || true; rm -rf "$dir"' EXIT
base="http://127.0.0.1:$port"
for _ in $(seq 50); do curl -sf "$base/v2/" -o /dev/null && break; sleep 0.1; done

cpu_ticks() { awk '{ print $14 + $15 }' "/proc/$pid/stat"; }
hz="$(getconf CLK_TCK)"

# One upload: POST for a session, PUT with the bytes. Prints the blob's digest.
upload() {
  local file="$1" digest location
  digest="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
  location="$(curl -sfi -X POST "$base/v2/cost/blobs/uploads/" | tr -d '\r' | awk 'tolower($1) == "location:" { print $2 }')"
  case "$location" in http*) ;; *) location="$base$location" ;; esac
  curl -sf -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$file" \
    "$location&digest=$digest" -o /dev/null
  echo "$digest"
}

head -c 51200 /dev/urandom >"$dir/layer"
layer="$(upload "$dir/layer")"
printf '{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[]}}' >"$dir/config.json"
config="$(upload "$dir/config.json")"
printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%d},"layers":[{"mediaType":"application/vnd.oci.image.layer.v1.tar+gzip","digest":"%s","size":51200}]}' \
  "$config" "$(stat -c %s "$dir/config.json")" "$layer" >"$dir/manifest.json"
curl -sf -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
  --data-binary "@$dir/manifest.json" "$base/v2/cost/manifests/1" -o /dev/null

# measure LABEL: reads curl options for N requests on stdin, prints ms of CPU per request.
measure() {
  local label="$1" before after
  cat >"$dir/requests"
  before="$(cpu_ticks)"
  curl -s -K "$dir/requests"
  after="$(cpu_ticks)"
  awk -v t="$((after - before))" -v hz="$hz" -v n="$n" -v l="$label" \
    'BEGIN { printf "%-40s %6.2f ms\n", l, t * 1000 / hz / n }'
}
repeat() { for i in $(seq "$n"); do printf "$1\n" "$i"; done; }

echo "docker-registry CPU per request, $n requests each, one keep-alive connection:"
repeat "url=$base/v2/\noutput=/dev/null" | measure "GET /v2/"
repeat "url=$base/v2/cost/manifests/1\nhead\noutput=/dev/null\nheader=Accept: application/vnd.oci.image.manifest.v1+json" |
  measure "HEAD manifest by tag"
repeat "url=$base/v2/cost/manifests/1\noutput=/dev/null\nheader=Accept: application/vnd.oci.image.manifest.v1+json" |
  measure "GET manifest by tag"
repeat "url=$base/v2/cost/blobs/$layer\nhead\noutput=/dev/null" | measure "HEAD blob (present)"
repeat "url=$base/v2/cost/blobs/sha256:%064d\nhead\noutput=/dev/null" | measure "HEAD blob (missing)"
repeat "url=$base/v2/cost/blobs/$layer\noutput=/dev/null" | measure "GET blob (50 KiB)"
repeat "url=$base/v2/cost/blobs/uploads/\nrequest=POST\noutput=/dev/null" | measure "POST upload session"
repeat "url=$base/v2/cost/manifests/t%d\nrequest=PUT\ndata-binary=@$dir/manifest.json\noutput=/dev/null\nheader=Content-Type: application/vnd.oci.image.manifest.v1+json" |
  measure "PUT manifest (a new tag)"

# An upload's two requests on one kept-alive connection (the PUT goes to the address the
# POST answers with, which curl cannot chain); each blob differs, so each is stored anew.
before="$(cpu_ticks)"
python3 - "$port" "$n" <<'PY'
import hashlib, http.client, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
conn = http.client.HTTPConnection("127.0.0.1", port)
for i in range(n):
    blob = b"cost-%08d" % i
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    conn.request("POST", "/v2/cost/blobs/uploads/", headers={"Content-Length": "0"})
    resp = conn.getresponse(); resp.read()
    location = resp.getheader("Location")
    if location.startswith("http"):
        location = "/" + location.split("/", 3)[3]
    sep = "&" if "?" in location else "?"
    conn.request("PUT", f"{location}{sep}digest={digest}", body=blob,
                 headers={"Content-Type": "application/octet-stream"})
    resp = conn.getresponse(); resp.read()
    assert resp.status == 201, resp.status
PY
after="$(cpu_ticks)"
awk -v t="$((after - before))" -v hz="$hz" -v n="$n" \
  'BEGIN { printf "%-40s %6.2f ms\n", "upload (POST + PUT)", t * 1000 / hz / n }'
