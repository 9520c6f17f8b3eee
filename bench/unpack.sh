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

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

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
declare -A times
for c in "${contenders[@]}"; do times[$c]=""; done
for i in $(seq "$N"); do
  k=$(((i - 1) % ${#contenders[@]}))
  for c in "${contenders[@]:$k}" "${contenders[@]:0:$k}"; do
    d="$tmp/$c-$i"
    sync
    t0=$(now)
    "run_$c" "$d"
    dt=$(sub "$(now)" "$t0")
    times[$c]+="$dt "
    printf 'iter %d %-6s %6.2f s\n' "$i" "$c" "$dt"
    rm -rf "$d"
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
declare -A med
for c in "${contenders[@]}"; do
  med[$c]=$(echo "${times[$c]}" | median)
  printf 'median %-6s %6.2f s   (%s)\n' "$c" "${med[$c]}" "${times[$c]}"
done
echo "berth/umoci $(div "${med[berth]}" "${med[umoci]}")   berth/tar $(div "${med[berth]}" "${med[tar]}")"

# Second container: snapshots exist, so the rootfs is only an overlay mount.
ready=""
for i in $(seq 20); do
  # large:latest has no command to run (Debian files only): the run ends in a
  # 127 after the rootfs is ready, which is all this measures.
  ms=$("$BERTH" --root "$tmp/berth" --log-level berth=debug run --rm -q --pull never "$REG/$IMAGE" /nonexistent 2>&1 \
    | grep -o 'rootfs ready in [0-9.]* ms' | grep -o '[0-9.]*' | head -1)
  ready+="$ms "
done
echo "second container: rootfs ready in median $(echo "$ready" | median) ms   ($ready)"
