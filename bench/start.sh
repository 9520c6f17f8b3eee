#!/usr/bin/env bash
# Start-to-exit benchmark of `berth run --rm busybox true` against crun, runc,
# podman and the unshare+chroot floor, measured in the same run. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."
# Like for like with the runtimes' bare bundles, and nothing on the host's
# network: berth's containers default to no network here (bench/config.json).
export BERTH_CONFIG="$PWD/bench/config.json"
scripts/install-deps.sh
for p in crun runc podman /usr/bin/time; do
  command -v "$p" >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends crun runc podman time >/dev/null
done
bash fixture/registry.sh up
cargo build --release -p berth
export BERTH="$PWD/target/x86_64-unknown-linux-gnu/release/berth"
export BERTH_BENCH_ROOT=$(mktemp -d /var/tmp/berth-bench-root.XXXX)
# The same binary by its runc name: berth's runtime on crun's and runc's bundles.
ln -sf "$BERTH" "$BERTH_BENCH_ROOT/berth-runc"
export BERTH_RUNC="$BERTH_BENCH_ROOT/berth-runc"
"$BERTH" --root "$BERTH_BENCH_ROOT" pull -q 127.0.0.1:5500/busybox:latest
# The first start compiles the default seccomp profile (~20 ms) into the
# root's cache; every later one loads it, and those are what is measured.
"$BERTH" --root "$BERTH_BENCH_ROOT" run --rm -q 127.0.0.1:5500/busybox:latest true

. bench/lib.sh
hugetlb_v1_on
cleanup() {
  hugetlb_v1_off
  rm -rf "$BERTH_BENCH_ROOT" "${PR:-}"
}
trap cleanup EXIT
export CRUN_OK=1

# podman with the quirks of this machine (no systemd, no CAP_SYS_RESOURCE).
PR=$(mktemp -d /var/tmp/berth-bench-podman.XXXX)
export PODMAN_ARGS="podman --root $PR/root --runroot $PR/run --cgroup-manager=cgroupfs --events-backend=file --runtime crun"
rootfs=$(mktemp -d); cp /bin/busybox "$rootfs/"; mkdir -p "$rootfs/bin"; mv "$rootfs/busybox" "$rootfs/bin/"; ln -s busybox "$rootfs/bin/true"
tar -C "$rootfs" -cf "$PR/rootfs.tar" . && rm -rf "$rootfs"
$PODMAN_ARGS import -q "$PR/rootfs.tar" localhost/bb >/dev/null || unset PODMAN_ARGS

# BERTH_BASELINE=/path/to/another/berth adds that build as a contender (before/after).
/usr/bin/python3 bench/start.py
