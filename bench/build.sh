#!/usr/bin/env bash
# build (issue 17): a 10-step Dockerfile (the fixture busybox, RUNs that
# write files, COPY of a 50 MB context, ENV/WORKDIR/CMD) built in the same
# run by berth, `buildah bud --layers` (Debian's, private store, chroot
# isolation) and the fixture dockerd's BuildKit and classic builder: cold
# (--no-cache), fully cached, and after one copied file changed; medians of
# N runs (default 5) and berth's ratios to BuildKit; each timed until its
# data is on disk, as the other benches time. Root only.
# BERTH=path skips the release build; PEERS=0 times berth alone;
# BUILDAH_DRIVER picks buildah's storage driver (default overlay).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ -z "${BERTH:-}" ]; then bench_berth; else IMAGE=127.0.0.1:5500/busybox:latest; bash fixture/registry.sh up >/dev/null; fi
N=${N:-5}
root=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
ctx=$(mktemp -d /var/tmp/berth-bench-ctx.XXXXXX)
bah=$(mktemp -d /var/tmp/berth-bench-buildah.XXXXXX)
cleanup() {
  [ -z "${docker_on:-}" ] || "$BERTH_DOCKER" -H "$BERTH_DOCKER_HOST" rmi -f bench-bk bench-classic >/dev/null 2>&1 || true
  [ -z "${docker_on:-}" ] || "$BERTH_DOCKER" -H "$BERTH_DOCKER_HOST" builder prune -af >/dev/null 2>&1 || true
  [ ! -f "$bah/storage.conf" ] || bah rm -a >/dev/null 2>&1 || true
  [ ! -f "$bah/storage.conf" ] || bah rmi -af >/dev/null 2>&1 || true
  umount -R "$bah/root/overlay" 2>/dev/null || true
  rm -rf "$root" "$ctx" "$bah"
}
trap cleanup EXIT
b() { "$BERTH" --config bench/config.json --root "$root" "$@"; }
b pull -q "$IMAGE" >/dev/null
mkdir -p "$ctx/data"
for i in $(seq 50); do head -c 1048576 /dev/urandom > "$ctx/data/f$i"; done
# Every builder names the base by the fixture registry's address: nothing
# ever resolves a name on docker.io.
cat > "$ctx/Dockerfile" <<DF
FROM $IMAGE
RUN mkdir -p /srv && echo one > /srv/one
RUN i=0; while [ \$i -lt 100 ]; do echo \$i > /srv/n\$i; i=\$((i+1)); done
ENV APP=/srv/app MODE=bench
WORKDIR /srv/app
COPY data/ ./data/
RUN ls data | wc -l > count
RUN echo done > /srv/done
LABEL bench=build
CMD ["cat", "count"]
DF

build_berth() { b build "$@" -t bench "$ctx"; }
contenders=(berth)
if [ "${PEERS:-1}" != 0 ]; then
  bash fixture/dockerd.sh up >/dev/null
  . /var/tmp/berth-dockerd/env
  docker_on=1
  d() { "$BERTH_DOCKER" -H "$BERTH_DOCKER_HOST" "$@"; }
  # dockerd has the base locally (and treats 127.0.0.0/8 as insecure); it
  # has no bridge, so RUN steps need --network none.
  b save "$IMAGE" | d load -q >/dev/null
  build_buildkit() { DOCKER_BUILDKIT=1 d build -q --network none "$@" -t bench-bk "$ctx"; }
  build_classic() { DOCKER_BUILDKIT=0 d build -q --network none "$@" -t bench-classic "$ctx"; }
  printf '[storage]\ndriver = "%s"\nrunroot = "%s/run"\ngraphroot = "%s/root"\n' \
    "${BUILDAH_DRIVER:-overlay}" "$bah" "$bah" > "$bah/storage.conf"
  bah() { CONTAINERS_STORAGE_CONF="$bah/storage.conf" buildah "$@"; }
  bah pull -q --tls-verify=false "$IMAGE" >/dev/null 2>&1
  build_buildah() { bah bud -q --layers --isolation chroot "$@" -t bench "$ctx"; }
  contenders=(berth buildkit classic buildah)
fi

# As bench_loop times (lib.sh): each run starts with nothing left to write
# back, and its timed region ends with sync(1), so every builder is
# charged its own writeback (berth syncs its blobs and snapshots before it
# names them; BuildKit and buildah leave theirs to the page cache).
t() {
  local t0
  sync
  t0=$(now)
  "$@" >/dev/null 2>&1 || { echo "bench: $* failed" >&2; exit 1; }
  sync
  sub "$(now)" "$t0"
}
last() { echo "$1" | awk '{print $NF}'; }
declare -A cold cached one
for i in $(seq "$N"); do
  k=$(((i - 1) % ${#contenders[@]}))
  for c in "${contenders[@]:$k}" "${contenders[@]:0:$k}"; do
    cold[$c]+="$(t "build_$c" --no-cache) "
    cached[$c]+="$(t "build_$c") "
    head -c 1048576 /dev/urandom > "$ctx/data/f7"
    one[$c]+="$(t "build_$c") "
    printf 'iter %d %-9s cold %s cached %s one-changed %s\n' "$i" "$c" \
      "$(last "${cold[$c]}")" "$(last "${cached[$c]}")" "$(last "${one[$c]}")"
  done
done
echo
echo "10-step build, 50 MB context, medians of $N (s):"
printf '  %-9s %8s %8s %12s\n' builder cold cached one-changed
declare -A mc mk mo
for c in "${contenders[@]}"; do
  mc[$c]=$(echo "${cold[$c]}" | median) mk[$c]=$(echo "${cached[$c]}" | median) mo[$c]=$(echo "${one[$c]}" | median)
  printf '  %-9s %8s %8s %12s\n' "$c" "${mc[$c]}" "${mk[$c]}" "${mo[$c]}"
done
if [ -n "${mc[buildkit]:-}" ]; then
  echo "berth / BuildKit: cold $(div "${mc[berth]}" "${mc[buildkit]}")x (target <= 0.7)," \
    "cached $(div "${mk[berth]}" "${mk[buildkit]}")x (<= 1.0)," \
    "one changed $(div "${mo[berth]}" "${mo[buildkit]}")x (<= 0.7)"
fi
