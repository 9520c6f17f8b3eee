#!/usr/bin/env bash
# Detached containers, against podman (conmon) measured in the same run:
#   1. idle cost: the monitors' summed PSS over M detached `sleep`s, per container;
#   2. `run -d` until running, against berth's own foreground `run --rm true`;
#   3. `exec true` into a running container, against the `nsenter -a` floor;
#   4. 1 GiB of text to stdout, `run -d` + `wait`, against the same write
#      to /dev/null inside the container (the floor), and `logs` reading it back.
# By hand, as root: N=iterations (default 15), M=idle containers (default 50),
# PODMAN=0 to leave podman out.
set -euo pipefail
cd "$(dirname "$0")/.."
# Like for like with the runtimes' bare bundles, and nothing on the host's
# network: berth's containers default to no network here (bench/config.json).
export BERTH_CONFIG="$PWD/bench/config.json"
source bench/lib.sh
bench_berth
N=${N:-15} M=${M:-50} PODMAN=${PODMAN:-1}
command -v podman >/dev/null || PODMAN=0
root=$(mktemp -d /var/tmp/berth-bench-root.XXXX)
proot=$(mktemp -d /var/tmp/berth-bench-podman.XXXX)
b() { "$BERTH" --root "$root" "$@"; }
# podman the way it runs here (../shared/PEERS.md): no systemd, root lacks
# CAP_SYS_RESOURCE.
p() {
	podman --root "$proot/root" --runroot "$proot/run" --cgroup-manager=cgroupfs \
		--events-backend=file "$@"
}
PFLAGS=(--network none --ulimit nofile=20000:20000 --ulimit nproc=32768:32768)
cleanup() {
	b ps -aq --no-trunc 2>/dev/null | xargs -r "$BERTH" --root "$root" rm -f >/dev/null 2>&1 || true
	[ "$PODMAN" = 1 ] && p rm -af >/dev/null 2>&1 || true
	[ "$PODMAN" = 1 ] && p system reset -f >/dev/null 2>&1 || true
	rm -rf "$root" "$proot"
}
trap cleanup EXIT
b pull -q "$IMAGE" >/dev/null
b run --rm -q "$IMAGE" true
[ "$PODMAN" = 1 ] && p pull -q --tls-verify=false "$IMAGE" >/dev/null

now() { date +%s%N; }
ms() { awk -v a="$1" -v z="$2" 'BEGIN { printf "%.1f", (z - a) / 1e6 }'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
pss_kib() { awk '/^Pss:/ { s += $2 } END { print s + 0 }' "/proc/$1/smaps_rollup" 2>/dev/null || echo 0; }

echo "== 1. idle cost: $M detached sleep containers"
for i in $(seq "$M"); do b run -d -q "$IMAGE" sleep 3600 >/dev/null; done
sleep 1
total=0
for d in "$root"/containers/*/; do
	pid=$(sed -n 's/.*"supervisor": \[\s*\([0-9]*\).*/\1/p' "$d/container.json" | head -1)
	[ -n "$pid" ] || pid=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["supervisor"][0])' "$d/container.json")
	total=$((total + $(pss_kib "$pid")))
done
berth_pss=$((total / M))
echo "berth monitor PSS per container: $berth_pss KiB"
b ps -aq --no-trunc | xargs -r "$BERTH" --root "$root" rm -f >/dev/null
if [ "$PODMAN" = 1 ]; then
	for i in $(seq "$M"); do p run -d "${PFLAGS[@]}" "$IMAGE" sleep 3600 >/dev/null; done
	sleep 1
	total=0
	for pid in $(pgrep -f "conmon.*$proot"); do total=$((total + $(pss_kib "$pid"))); done
	echo "podman conmon PSS per container: $((total / M)) KiB (ratio berth/conmon $(ratio "$berth_pss" "$((total / M))"))"
	p rm -af -t 0 >/dev/null
fi

echo "== 2. run -d until running (medians of $N, alternating)"
fg="" bg="" pd=""
for i in $(seq "$N"); do
	t0=$(now); b run --rm -q "$IMAGE" true; t1=$(now); fg+="$(ms "$t0" "$t1") "
	t0=$(now); id=$(b run -d -q "$IMAGE" sleep 3600); t1=$(now); bg+="$(ms "$t0" "$t1") "
	b rm -f "$id" >/dev/null
	if [ "$PODMAN" = 1 ]; then
		t0=$(now); id=$(p run -d "${PFLAGS[@]}" "$IMAGE" sleep 3600); t1=$(now); pd+="$(ms "$t0" "$t1") "
		p rm -f -t 0 "$id" >/dev/null
	fi
done
mfg=$(echo "$fg" | median) mbg=$(echo "$bg" | median)
echo "berth run --rm true: $mfg ms; berth run -d: $mbg ms; ratio $(ratio "$mbg" "$mfg") (target <= 1.2)"
[ "$PODMAN" = 1 ] && echo "podman run -d: $(echo "$pd" | median) ms"

echo "== 3. exec true into a running container (medians of $N)"
id=$(b run -d -q "$IMAGE" sleep 3600)
pid=$(b inspect -f '{{.State.Pid}}' "$id" 2>/dev/null || python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["pid"])' "$root/containers/$id/container.json")
if b exec "$id" true 2>/dev/null; then
	ex="" ns=""
	for i in $(seq "$N"); do
		t0=$(now); b exec "$id" true; t1=$(now); ex+="$(ms "$t0" "$t1") "
		t0=$(now); nsenter -a -t "$pid" true; t1=$(now); ns+="$(ms "$t0" "$t1") "
	done
	mex=$(echo "$ex" | median) mns=$(echo "$ns" | median)
	echo "berth exec: $mex ms; nsenter -a floor: $mns ms; ratio $(ratio "$mex" "$mns")"
else
	echo "berth exec: not available in this build"
fi
b rm -f "$id" >/dev/null

echo "== 4. 1 GiB of 100-byte lines to stdout (medians of 3)"
line=$(printf '%099d' 0)
gen="yes $line | head -c 1073741824"
floor="" logged="" readback="" plog="" pread=""
for i in 1 2 3; do
	t0=$(now); b run --rm -q "$IMAGE" sh -c "$gen > /dev/null"; t1=$(now); floor+="$(ms "$t0" "$t1") "
	t0=$(now); id=$(b run -d -q "$IMAGE" sh -c "$gen"); b wait "$id" >/dev/null; t1=$(now); logged+="$(ms "$t0" "$t1") "
	if b logs "$id" >/dev/null 2>&1; then
		t0=$(now); n=$(b logs "$id" | wc -c); t1=$(now); readback+="$(ms "$t0" "$t1") "
		[ "$n" = 1073741824 ] || echo "berth logs gave $n bytes, not 1073741824" >&2
	fi
	b rm -f "$id" >/dev/null
	if [ "$PODMAN" = 1 ]; then
		t0=$(now); id=$(p run -d "${PFLAGS[@]}" "$IMAGE" sh -c "$gen"); p wait "$id" >/dev/null; t1=$(now); plog+="$(ms "$t0" "$t1") "
		t0=$(now); p logs "$id" >/dev/null; t1=$(now); pread+="$(ms "$t0" "$t1") "
		p rm -f "$id" >/dev/null
	fi
done
mfl=$(echo "$floor" | median) mlo=$(echo "$logged" | median)
echo "to /dev/null in the container: $mfl ms; run -d + wait, logged: $mlo ms; ratio $(ratio "$mlo" "$mfl") (target <= 1.2)"
[ -n "$readback" ] && echo "berth logs read back: $(echo "$readback" | median) ms"
if [ "$PODMAN" = 1 ]; then
	echo "podman run -d + wait: $(echo "$plog" | median) ms; podman logs: $(echo "$pread" | median) ms"
fi
