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

# crun refuses hybrid cgroups while cgroup2 owns hugetlb (as in start.sh):
# mount hugetlb as v1 for the run, undo afterwards.
undo=""
if [ -d /sys/fs/cgroup/unified ] && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null \
   && [ ! -d /sys/fs/cgroup/hugetlb ]; then
  mkdir /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb && undo=1
fi
cleanup() {
  if [ -n "$undo" ]; then
    find /sys/fs/cgroup/hugetlb -mindepth 1 -depth -type d -exec rmdir {} \; 2>/dev/null || true
    umount /sys/fs/cgroup/hugetlb && rmdir /sys/fs/cgroup/hugetlb
  fi
  "$BERTH" --root "$BERTH_BENCH_ROOT" rm -f bench-exec >/dev/null 2>&1 || true
  # crun and runc leave the (empty) parent of their containers' cgroups.
  for d in /sys/fs/cgroup/*/berth-bench /sys/fs/cgroup/berth-bench; do
    [ -d "$d" ] && rmdir "$d"/bundle-crun "$d"/bundle-runc "$d" 2>/dev/null || true
  done
  rm -rf "$BERTH_BENCH_ROOT"
}
trap cleanup EXIT
/usr/bin/python3 bench/exec.py
