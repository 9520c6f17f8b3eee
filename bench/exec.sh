#!/usr/bin/env bash
# `exec true` into a running container: berth against crun, runc and the
# `nsenter -a` floor, measured in the same run (bench/exec.py). Root only;
# by hand, not in CI.
set -euo pipefail
cd "$(dirname "$0")/.."
# Like for like with the runtimes' bare bundles, and nothing on the host's
# network: berth's containers default to no network here (bench/config.json).
export BERTH_CONFIG="$PWD/bench/config.json"
for p in crun runc nsenter; do
  command -v "$p" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends crun runc >/dev/null
done
bash fixture/registry.sh up
cargo build --release -p berth
export BERTH="$PWD/target/x86_64-unknown-linux-gnu/release/berth"
export BERTH_BENCH_ROOT=$(mktemp -d /var/tmp/berth-bench-root.XXXX)
"$BERTH" --root "$BERTH_BENCH_ROOT" pull -q 127.0.0.1:5500/busybox:latest

. bench/lib.sh
hugetlb_v1_on
cleanup() {
  hugetlb_v1_off
  "$BERTH" --root "$BERTH_BENCH_ROOT" rm -f bench-exec >/dev/null 2>&1 || true
  # crun and runc leave the (empty) parent of their containers' cgroups.
  for d in /sys/fs/cgroup/*/berth-bench /sys/fs/cgroup/berth-bench; do
    [ -d "$d" ] && rmdir "$d"/bundle-crun "$d"/bundle-runc "$d" 2>/dev/null || true
  done
  rm -rf "$BERTH_BENCH_ROOT"
}
trap cleanup EXIT
/usr/bin/python3 bench/exec.py
