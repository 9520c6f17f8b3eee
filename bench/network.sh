#!/usr/bin/env bash
# The start cost of a container's network: `run --rm --network bridge true`
# minus `--network none`, medians of N (default 30) alternating runs.
# Network safety: everything runs inside a network and mount namespace
# this script makes (unshare), so the bridge and its table are that
# namespace's, never the machine's. By hand, as root.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_berth
N=${N:-30}
root=$(mktemp -d /var/tmp/berth-bench-net.XXXX)
trap 'rm -rf "$root"' EXIT
# Pulled here: inside the namespace there is no route to the registry.
"$BERTH" --root "$root" pull -q "$IMAGE" >/dev/null
export BERTH BERTH_ROOT_DIR="$root" IMAGE N
unshare --net --mount -- bash -c '
set -euo pipefail
ip link set lo up
b() { "$BERTH" --root "$BERTH_ROOT_DIR" "$@"; }
now() { date +%s%N; }
median() { sort -g | awk "{a[NR]=\$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}"; }
# Alone first: the kernel takes the namespace of a bridge container down in the
# background, and in the alternating runs below some of that lands in the
# none runs that follow.
alone=()
for i in $(seq "$N"); do
	s=$(now); b run --rm --network none "$IMAGE" true; e=$(now)
	alone+=($(( (e - s) / 1000 )))
done
b run --rm --network bridge "$IMAGE" true   # makes the bridge and its table once
none=() bridge=()
for i in $(seq "$N"); do
	s=$(now); b run --rm --network none "$IMAGE" true; m=$(now)
	b run --rm --network bridge "$IMAGE" true; e=$(now)
	none+=($(( (m - s) / 1000 ))) bridge+=($(( (e - m) / 1000 )))
done
a=$(printf "%s\n" "${alone[@]}" | median)
n=$(printf "%s\n" "${none[@]}" | median) br=$(printf "%s\n" "${bridge[@]}" | median)
awk -v a="$a" "BEGIN { printf \"run --rm --network none true, alone: %.2f ms\n\", a/1000 }"
awk -v n="$n" -v b="$br" "BEGIN { printf \"run --rm true: --network none %.2f ms, bridge %.2f ms: +%.2f ms (target <= +3 ms)\n\", n/1000, b/1000, (b-n)/1000 }"
'
