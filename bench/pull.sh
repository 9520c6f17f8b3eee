#!/usr/bin/env bash
# Pull benchmark of large:latest (6 gzip layers, ~410 MiB unpacked, ~9,800
# files) from the plain fixture registry on loopback. Contenders run
# alternated in one run so machine noise hits them alike:
#   curl          every blob to disk, in parallel: the transfer floor
#   curl|tar      curl | gzip -dc | tar -x per layer, layers in parallel: the
#                 pull-and-unpack floor (the "floor" of the shared PEERS notes)
#   skopeo        skopeo copy into an empty oci: layout (download + verify, no unpack)
#   skopeo+umoci  skopeo copy, then umoci unpack (download, verify, unpack)
#   berth         berth --root EMPTY pull: download, verify digests and diff_ids,
#                 unpack every layer into its snapshot, in one streaming pass
# Usage: bench/pull.sh   (N=5 iterations; BERTH=path/to/berth to override)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-5}"
BERTH="${BERTH:-$PWD/target/x86_64-unknown-linux-gnu/release/berth}"
REG=127.0.0.1:5500
IMAGE=large:latest

bash fixture/registry.sh up
[ -x "$BERTH" ] || cargo build --release -p berth
tmp=$(mktemp -d /var/tmp/berth-bench-pull.XXXX)
trap 'rm -rf "$tmp"' EXIT

source bench/lib.sh

accept="application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.manifest.v1+json"
curl -sfS -H "Accept: $accept" -o "$tmp/manifest.json" "http://$REG/v2/${IMAGE%%:*}/manifests/${IMAGE##*:}"
# Layer digests in order (the config digest is the first "digest" in the manifest).
mapfile -t layers < <(grep -o '"digest": *"sha256:[0-9a-f]*"' "$tmp/manifest.json" | grep -o 'sha256:[0-9a-f]*' | tail -n +2)

run_curl() { # dir
  mkdir -p "$1"
  local args=() dg
  for dg in "${layers[@]}"; do args+=(-o "$1/${dg#sha256:}" "http://$REG/v2/${IMAGE%%:*}/blobs/$dg"); done
  curl -sfS --no-progress-meter -Z --parallel-max 6 "${args[@]}"
}

run_curltar() { # dir: each layer into its own dir, like snapshots
  local dg pids=()
  for dg in "${layers[@]}"; do
    mkdir -p "$1/${dg#sha256:}"
    (curl -sfS "http://$REG/v2/${IMAGE%%:*}/blobs/$dg" | gzip -dc | tar -x -C "$1/${dg#sha256:}") &
    pids+=($!)
  done
  for p in "${pids[@]}"; do wait "$p"; done
}

run_skopeo() { # dir
  mkdir -p "$1"
  skopeo copy -q --src-tls-verify=false "docker://$REG/$IMAGE" "oci:$1/x:latest" >/dev/null
}

run_skopeoumoci() { # dir
  run_skopeo "$1"
  umoci unpack --image "$1/x:latest" "$1/bundle" >/dev/null
}

run_berth() { # dir
  mkdir -p "$1"
  "$BERTH" --root "$1" pull -q "$REG/$IMAGE" >/dev/null
}

contenders=(curl curltar skopeo skopeoumoci berth)
bench_loop
bench_medians
echo "berth/(skopeo+umoci) $(div "${med[berth]}" "${med[skopeoumoci]}")   berth/(curl|gzip|tar) $(div "${med[berth]}" "${med[curltar]}")   berth/skopeo $(div "${med[berth]}" "${med[skopeo]}")   berth/curl $(div "${med[berth]}" "${med[curl]}")"
