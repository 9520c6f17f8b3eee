#!/usr/bin/env bash
# Throughput of a container's stdout through berth: `berth run --rm busybox`
# writing 1 GiB, read by a pipe (wc -c) and redirected to a file. With
# BERTH_BASELINE=/path/to/another/berth, that build is measured in the same
# run, alternating, for a before/after. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."
# Like for like with the runtimes' bare bundles, and nothing on the host's
# network: berth's containers default to no network here (bench/config.json).
export BERTH_CONFIG="$PWD/bench/config.json"
scripts/install-deps.sh
bash fixture/registry.sh up
cargo build --release -p berth
BERTH="$PWD/target/x86_64-unknown-linux-gnu/release/berth"
IMAGE=127.0.0.1:5500/busybox:latest
N=${N:-5}
root=$(mktemp -d /var/tmp/berth-bench-root.XXXX)
out=$(mktemp /var/tmp/berth-bench-out.XXXX)
trap 'rm -rf "$root" "$out"' EXIT
"$BERTH" --root "$root" pull -q "$IMAGE"
"$BERTH" --root "$root" run --rm -q "$IMAGE" true

declare -A builds=([berth]="$BERTH")
[ -n "${BERTH_BASELINE:-}" ] && builds[baseline]="$BERTH_BASELINE"
write='dd if=/dev/zero bs=1M count=1024 status=none'
for i in $(seq "$N"); do
  for b in "${!builds[@]}"; do
    for sink in pipe file; do
      t0=$(date +%s.%N)
      if [ $sink = pipe ]; then
        n=$("${builds[$b]}" --root "$root" run --rm -q "$IMAGE" sh -c "$write" | wc -c)
      else
        "${builds[$b]}" --root "$root" run --rm -q "$IMAGE" sh -c "$write" > "$out"
        n=$(stat -c %s "$out")
      fi
      t1=$(date +%s.%N)
      [ "$n" = 1073741824 ] || { echo "$b $sink: got $n bytes" >&2; exit 1; }
      echo "$b $sink $(awk -v a="$t0" -v z="$t1" 'BEGIN { print 1024 / (z - a) }')"
    done
  done
done > "$out.results"
# Median per build and sink (mawk has no asort: sort each group instead).
for k in $(cut -d' ' -f1,2 --output-delimiter=: "$out.results" | sort -u); do
  grep "^${k/:/ } " "$out.results" | cut -d' ' -f3 | sort -g |
    awk -v k="${k/:/ }" '{ v[NR] = $1 } END { printf "%-16s median %.0f MiB/s (%d runs)\n", k, v[int((NR + 1) / 2)], NR }'
done
rm -f "$out.results"
