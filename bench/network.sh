#!/usr/bin/env bash
# The cost of a container's network:
#   1. start: `run --rm --network bridge true` minus `--network none`,
#      medians of N (default 30) alternating runs;
#   2. HTTP through a published port from the host: busybox httpd serving a
#      10 KiB file, `ab` (Debian's apache2-utils) with and without
#      keep-alive (busybox httpd closes each connection, so -k mostly measures
#      the same), requests/s against the same server on --network host.
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

# 2. HTTP: the same httpd, published (-p 8080:80) and on the host network (port 8081).
www="mkdir -p /www && head -c 10240 /dev/zero | tr \"\\0\" x > /www/f && exec httpd -f -p"
b run -d --name pub --network bridge -p 8080:80 "$IMAGE" sh -c "$www 80 -h /www" >/dev/null
b run -d --name hostnet --network host "$IMAGE" sh -c "$www 8081 -h /www" >/dev/null
sleep 1
# Many short connections: reuse TIME_WAIT ports (this namespace only).
echo 1 > /proc/sys/net/ipv4/tcp_tw_reuse
rps() { ab -q "$@" 2>/dev/null | awk "/Requests per second/ {print \$4}"; }
for ka in "" "-k"; do
	for port in 8080 8081 8080 8081 8080 8081; do
		echo "$port $(rps -n 5000 -c 8 $ka http://127.0.0.1:$port/f)"
	done > /tmp/berth-bench-ab
	p=$(awk "\$1 == 8080 {print \$2}" /tmp/berth-bench-ab | median)
	h=$(awk "\$1 == 8081 {print \$2}" /tmp/berth-bench-ab | median)
	awk -v p="$p" -v h="$h" -v k="${ka:-no keep-alive}" "BEGIN { printf \"HTTP (%s): published port %.0f req/s, host network %.0f req/s: %.2fx (target >= 0.9x)\n\", k, p, h, p/h }"
done
b rm -f pub hostnet >/dev/null
'
