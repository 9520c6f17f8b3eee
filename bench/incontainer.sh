#!/usr/bin/env bash
# Start-to-exit of `berth run --rm busybox true` inside the challenge's box
# (`docker run --cap-add SYS_ADMIN`, Debian's dockerd, berth's store on the
# box's overlay root) against the same berth on the host, alternating, in the
# same run. Prints medians and the ratio (target: at most 1.5x the host).
#
#   bench/incontainer.sh            N=30 samples each
#   N=100 bench/incontainer.sh
#   BERTH=/path/to/berth ...        use that binary instead of building release
#   BOX_FLAGS="--security-opt seccomp=unconfined" ...   extra `docker run` flags
#   RUN_FLAGS="--network host" ...  extra `berth run` flags (both sides)
#
# Each sample is timed where berth runs, by the same busybox sh one-liner on
# both sides (the clock read just before and after berth), so neither the
# `docker exec` round trip nor bash's start-up is in the numbers. Root only.
set -euo pipefail
cd "$(dirname "$0")/.."
# Like for like with the runtimes' bare bundles, and nothing on the host's
# network: berth's containers default to no network here (bench/config.json).
export BERTH_CONFIG="$PWD/bench/config.json"
. bench/lib.sh
N="${N:-30}"
IMAGE=127.0.0.1:5500/busybox:latest

scripts/install-deps.sh
bash fixture/registry.sh up
bash fixture/dockerd.sh up
. <(bash fixture/dockerd.sh env)
docker=("$BERTH_DOCKER" -H "$BERTH_DOCKER_HOST")

if [ -z "${BERTH:-}" ]; then
  cargo build --release -p berth
  BERTH="$PWD/target/x86_64-unknown-linux-gnu/release/berth"
fi

tmp=$(mktemp -d /var/tmp/berth-bench-ic.XXXX)
box="berth-bench-ic-$$"
cleanup() {
  "${docker[@]}" rm -f "$box" >/dev/null 2>&1 || true
  "$BERTH" --root "$tmp/root" rm -f $("$BERTH" --root "$tmp/root" ps -aq 2>/dev/null) >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# The binary goes in through a read-only bind of a directory holding a copy.
mkdir -p "$tmp/bin" "$tmp/root"
cp "$BERTH" "$tmp/bin/berth"
chmod 755 "$tmp/bin"
# shellcheck disable=SC2086 # BOX_FLAGS is a list of flags
"${docker[@]}" run -d --name "$box" --cap-add SYS_ADMIN --network host ${BOX_FLAGS:-} \
  -v "$tmp/bin:/opt/berth:ro" "$BERTH_OUTER_IMAGE" \
  sh -c 'trap "exit 0" TERM; while :; do sleep 86400 & wait; done' >/dev/null

# One timed start-to-exit in nanoseconds, printed by busybox sh where it runs.
# The clock: busybox's date has no %N and Docker masks /proc/timer_list, so
# the kernel's time in microseconds as read by busybox adjtimex (a read-only
# adjtimex(2)); the parsing happens after the timed region.
# shellcheck disable=SC2016 # expanded by the inner sh
timed='a=$(adjtimex); "$@" >/dev/null || exit 1; b=$(adjtimex)
  printf "%s\n%s\n" "$a" "$b" | awk '"'"'/tv_sec/ {s[i++]=$2} /tv_usec/ {u[j++]=$2}
    END {printf "%.0f\n", ((s[1] - s[0]) * 1e6 + u[1] - u[0]) * 1e3}'"'"
# shellcheck disable=SC2086 # RUN_FLAGS is a list of flags
run_box() { "${docker[@]}" exec "$box" sh -c "$timed" sh /opt/berth/berth run --rm ${RUN_FLAGS:-} "$IMAGE" true; }
# shellcheck disable=SC2086
run_host() { /bin/busybox sh -c "$timed" sh "$tmp/bin/berth" --root "$tmp/root" run --rm ${RUN_FLAGS:-} "$IMAGE" true; }

# Pull on both sides, then one untimed run each: the first start of a root
# sets up what later ones reuse (seccomp profile cache, exec root).
"${docker[@]}" exec "$box" /opt/berth/berth pull -q "$IMAGE" >/dev/null
"$tmp/bin/berth" --root "$tmp/root" pull -q "$IMAGE" >/dev/null
for side in box host; do
  if ! "run_$side" >/dev/null 2>"$tmp/err"; then
    echo "bench: berth run --rm $IMAGE true fails on the $side side:" >&2
    cat "$tmp/err" >&2
    exit 1
  fi
done

declare -A ns=([box]="" [host]="")
for i in $(seq "$N"); do
  if ((i % 2)); then order=(box host); else order=(host box); fi
  for side in "${order[@]}"; do
    t=$("run_$side") || { echo "bench: $side run $i failed" >&2; exit 1; }
    [[ $t =~ ^[0-9]+$ ]] || { echo "bench: $side run $i: bad time '$t'" >&2; exit 1; }
    ns[$side]+="$t "
    printf 'iter %3d %-4s %7.2f ms\n' "$i" "$side" "$(awk -v t="$t" 'BEGIN {print t / 1e6}')"
  done
done

echo
for side in host box; do
  med[$side]=$(echo "${ns[$side]}" | median | awk '{printf "%.2f", $1 / 1e6}')
  printf 'median %-4s %7.2f ms   (N=%d)\n' "$side" "${med[$side]}" "$N"
done
ratio=$(div "${med[box]}" "${med[host]}")
verdict=$(awk -v r="$ratio" 'BEGIN {print (r <= 1.5) ? "within" : "OVER"}')
echo "ratio box/host ${ratio}x ($verdict the 1.5x target)"
echo "box: docker run --cap-add SYS_ADMIN --network host ${BOX_FLAGS:-}; berth run --rm ${RUN_FLAGS:-} $IMAGE true"
