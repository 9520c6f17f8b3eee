#!/usr/bin/env bash
# Unpack benchmark of large:latest (6 gzip layers, ~410 MiB, ~9,800 files),
# everything already local, contenders alternated in one run:
#   tar     tar -x of the already DECOMPRESSED layer tars, each into its own dir
#   umoci   umoci unpack of the image from an OCI layout (decompress + unpack)
#   berth   berth unpacking the stored blobs into fresh snapshots (decompress,
#           verify diff_ids, unpack), timed as `berth pull` of the image with
#           its blobs present and its snapshots removed (the registry only
#           answers the manifest request)
# and then the second container of an already unpacked image: the time berth
# logs from "snapshots wanted" to "rootfs mounted" (no unpacking at all).
# Usage: bench/unpack.sh   (N=5; BERTH=path/to/berth)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-5}"
BERTH="${BERTH:-$PWD/target/x86_64-unknown-linux-gnu/release/berth}"
REG=127.0.0.1:5500
IMAGE=large:latest

bash fixture/registry.sh up
[ -x "$BERTH" ] || cargo build --release -p berth
tmp=$(mktemp -d /var/tmp/berth-bench-unpack.XXXX)
trap 'rm -rf "$tmp"' EXIT

# One-time preparation: an OCI layout, decompressed tars, a berth store.
skopeo copy -q --src-tls-verify=false "docker://$REG/$IMAGE" "oci:$tmp/oci:latest" >/dev/null
mkdir -p "$tmp/tars"
manifest=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$tmp/oci/index.json" | head -1 | grep -o '[0-9a-f]\{64\}')
for dg in $(grep -o '"digest":"sha256:[0-9a-f]*"' "$tmp/oci/blobs/sha256/$manifest" | tail -n +2 | grep -o '[0-9a-f]\{64\}'); do
  gzip -dc < "$tmp/oci/blobs/sha256/$dg" > "$tmp/tars/$dg.tar"
done
"$BERTH" --root "$tmp/berth" pull -q "$REG/$IMAGE" >/dev/null

source bench/lib.sh

run_tar() {
  local t
  for t in "$tmp"/tars/*.tar; do
    mkdir -p "$1/$(basename "$t" .tar)"
    tar -x -C "$1/$(basename "$t" .tar)" -f "$t"
  done
}
run_umoci() { umoci unpack --image "$tmp/oci:latest" "$1" >/dev/null; }
run_berth() {
  rm -rf "$tmp/berth/snapshots"
  "$BERTH" --root "$tmp/berth" pull -q "$REG/$IMAGE" >/dev/null
}

contenders=(tar umoci berth)
bench_loop
bench_medians
echo "berth/umoci $(div "${med[berth]}" "${med[umoci]}")   berth/tar $(div "${med[berth]}" "${med[tar]}")"

# Second container: snapshots exist, so the rootfs is only an overlay mount.
ready=""
for i in $(seq 20); do
  # large:latest has no command to run (Debian files only): the run ends in a
  # 127 after the rootfs is ready, which is all this measures.
  ms=$("$BERTH" --root "$tmp/berth" --log-level berth=debug run --rm -q --pull never "$REG/$IMAGE" /nonexistent 2>&1 \
    | grep -o 'rootfs ready in [0-9.]* ms' | grep -o '[0-9.]*' | head -1 || true)
  ready+="$ms "
done
echo "second container: rootfs ready in median $(echo "$ready" | median) ms   ($ready)"
