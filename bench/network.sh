#!/usr/bin/env bash
# The cost of a container's network: berth against docker (its default bridge,
# docker-proxy for published ports) and podman (netavark), in the same run.
#   1. start: `run --rm --network bridge true` minus `--network none`,
#      medians of N alternating runs;
#   2. HTTP through a published port from the host: busybox httpd serving a
#      10 KiB file, `ab` (apache2-utils) with and without keep-alive (busybox
#      httpd closes each connection, so -k mostly measures the same),
#      requests/s; berth's also against the same server on --network host;
#   3. container-to-container TCP throughput: Debian's iperf3, bind-mounted
#      read-only with its libraries into busybox containers, server and client
#      on each engine's default bridge, the client by the server's address;
#      iperf3 over loopback without containers as the roof.
# By hand, as root: N=start iterations (default 20), R=rounds of 2. and 3.
# (default 3), T=iperf3 seconds (default 5), DOCKER=0 / PODMAN=0 leave a peer out.
#
# Network safety: each engine lives in a network and mount namespace of its
# own that this script makes (`unshare --net --mount`, held open by a sleeping
# process): bridges, veths, NAT rules, ports and sysctls are that namespace's,
# and it has no route to anywhere. The images come from the fixture registry
# on the host's loopback before that (berth pulls, skopeo writes an archive
# docker and podman load). A namespace goes with its last process; at exit the
# script kills what runs in them and checks that the host's links, addresses,
# routes, netns list and nftables ruleset are what they were.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh
bench_berth
N=${N:-20} R=${R:-3} T=${T:-5} DOCKER=${DOCKER:-1} PODMAN=${PODMAN:-1}
command -v /usr/sbin/dockerd >/dev/null || { [ "$DOCKER" = 0 ] || echo "no dockerd: docker left out" >&2; DOCKER=0; }
if ! command -v podman >/dev/null || [ ! -x /usr/lib/podman/netavark ]; then
	[ "$PODMAN" = 0 ] || echo "no podman with netavark: podman left out" >&2
	PODMAN=0
fi
for tool in ab iperf3 skopeo nsenter curl; do
	command -v "$tool" >/dev/null || { echo "bench: $tool missing (scripts/install-deps.sh)" >&2; exit 1; }
done
engines=(berth)
[ "$DOCKER" = 1 ] && engines+=(docker)
[ "$PODMAN" = 1 ] && engines+=(podman)

root=$(mktemp -d /var/tmp/berth-bench-net.XXXX)
host_net() { ip -br link; ip -br addr; ip route; ip netns list; nft list ruleset; sysctl -n net.ipv4.ip_forward; }
host_net >"$root/host-before"

# --- the namespaces ---------------------------------------------------------
declare -A holder
# Run inside a fresh `unshare --net --mount`, $1 a scratch directory:
# loopback up; a sysfs of this namespace (docker and netavark read their
# bridges under /sys/class/net) that keeps the host's cgroup mounts, which
# the engines need (PEERS.md: without them dockerd fails); a /run of its own,
# so the engines' state, /run/netns and the xtables lock go with it; short
# connections may reuse TIME_WAIT ports (ab opens thousands). Then it holds
# the namespaces open until killed.
# shellcheck disable=SC2016 # expanded by the namespace's bash
ns_init='set -e
ip link set lo up
mount --rbind /sys/fs/cgroup "$1"
mount -t sysfs sysfs /sys
mount --move "$1" /sys/fs/cgroup
mount -t tmpfs -o mode=755 tmpfs /run
echo 1 >/proc/sys/net/ipv4/tcp_tw_reuse
: >"$1.ready"
exec sleep infinity'
ns_up() { # name
	mkdir -p "$root/ns-$1"
	unshare --net --mount --propagation private -- bash -c "$ns_init" ns "$root/ns-$1" </dev/null &
	holder[$1]=$!
	local i
	for i in $(seq 50); do [ -e "$root/ns-$1.ready" ] && return 0; sleep 0.1; done
	echo "bench: namespace $1 did not come up" >&2
	exit 1
}
# Runs a command in an engine's namespaces (nsenter also moves to the
# namespace's / : every path given is absolute).
ns() { local h=${holder[$1]}; shift; nsenter --target "$h" --net --mount -- "$@"; }

# --- the engines --------------------------------------------------------------
b() { ns berth "$BERTH" --root "$root/berth" "$@"; }
# Debian's docker client (/usr/local/bin/docker may be another one).
d() { ns docker /usr/bin/docker -H "unix://$root/docker/sock" "$@"; }
p() {
	ns podman env CONTAINERS_CONF="$root/podman/containers.conf" podman --root "$root/podman/root" \
		--runroot /run/bench-podman --tmpdir /run/bench-podman-tmp "$@"
}
eng() { local e=$1; shift; case $e in berth) b "$@" ;; docker) d "$@" ;; podman) p "$@" ;; esac; }
# Removes a running container at once (podman's rm -f first waits 10 s for
# httpd and iperf3, which ignore SIGTERM as PID 1).
eng_rm() { if [ "$1" = podman ]; then p rm -f -t 0 "$2"; else eng "$1" rm -f "$2"; fi >/dev/null; }

start_docker() {
	mkdir -p "$root/docker"
	echo '{}' >"$root/docker/daemon.json"
	# Docker's defaults otherwise: the docker0 bridge, iptables rules (nft
	# through iptables-nft, in this namespace), the userland proxy, IP forwarding.
	ns docker setsid /usr/sbin/dockerd --config-file "$root/docker/daemon.json" \
		--data-root "$root/docker/data" --exec-root /run/bench-docker \
		--pidfile "$root/docker/dockerd.pid" -H "unix://$root/docker/sock" \
		</dev/null >"$root/docker/dockerd.log" 2>&1 &
	local i
	for i in $(seq 300); do
		[ "$(curl -s --max-time 2 --unix-socket "$root/docker/sock" http://docker/_ping 2>/dev/null)" = OK ] && break
		sleep 0.1
	done
	d load -q -i "$root/busybox.tar" >/dev/null || { tail "$root/docker/dockerd.log" >&2; exit 1; }
}

start_podman() {
	mkdir -p "$root/podman"
	# No systemd here, root lacks CAP_SYS_RESOURCE and crun refuses the hybrid
	# cgroups (PEERS.md); netavark named, as Debian's podman would pick CNI
	# while its plugins are installed; its configuration kept private.
	cat >"$root/podman/containers.conf" <<-EOF
		[containers]
		default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
		[network]
		network_backend = "netavark"
		network_config_dir = "$root/podman/networks"
		[engine]
		cgroup_manager = "cgroupfs"
		events_logger = "file"
		runtime = "runc"
	EOF
	p load -q -i "$root/busybox.tar" >/dev/null
}

stop_engines() {
	local e pid i id
	for e in "${!holder[@]}"; do
		case $e in
		berth) for id in $(b ps -aq --no-trunc 2>/dev/null); do b rm -f "$id" >/dev/null 2>&1; done ;;
		podman) p rm -af -t 0 >/dev/null 2>&1 ;;
		docker)
			for id in $(d ps -aq 2>/dev/null); do d rm -f "$id" >/dev/null 2>&1; done
			pid=$(cat "$root/docker/dockerd.pid" 2>/dev/null) || pid=""
			if [ -n "$pid" ]; then
				kill "$pid" 2>/dev/null
				for i in $(seq 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			fi
			;;
		esac
	done
}

# What is left in a namespace this script made (a daemon that did not stop,
# a container's helper): killed by pid, then the holder itself.
sweep() {
	local e net pid left
	for e in "${!holder[@]}"; do
		net=$(readlink "/proc/${holder[$e]}/ns/net" 2>/dev/null) || continue
		left=()
		for pid in /proc/[0-9]*; do
			pid=${pid#/proc/}
			[ "$pid" != "${holder[$e]}" ] && [ "$(readlink "/proc/$pid/ns/net" 2>/dev/null)" = "$net" ] &&
				left+=("$pid")
		done
		if ((${#left[@]})); then
			echo "sweep: killing what was left in $e's namespace: $(ps -o pid=,comm= -p "${left[*]}" | xargs)" >&2
			kill -9 "${left[@]}" 2>/dev/null
		fi
		kill "${holder[$e]}" 2>/dev/null
		wait "${holder[$e]}" 2>/dev/null
	done
}

cleanup() {
	set +e
	stop_engines
	sweep
	rm -rf "$root/berth" "$root/docker" "$root/podman"
	host_net >"$root/host-after"
	if diff -u "$root/host-before" "$root/host-after" >"$root/host-diff"; then
		echo "host network: links, addresses, routes, netns and nftables ruleset unchanged"
	else
		echo "host network CHANGED during the run:" >&2
		cat "$root/host-diff" >&2
	fi
	rm -rf "$root"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- set-up -------------------------------------------------------------------
# Images, before any namespace: inside there is no route to the registry.
"$BERTH" --root "$root/berth" pull -q "$IMAGE" >/dev/null
if [ "$DOCKER" = 1 ] || [ "$PODMAN" = 1 ]; then
	skopeo copy -q --src-tls-verify=false "docker://$IMAGE" "docker-archive:$root/busybox.tar:$IMAGE"
fi
# iperf3 and what it links, for `-v DIR:/iperf:ro`, started through the
# loader so nothing else of the host's is needed in the container.
mkdir -p "$root/iperf"
cp -L "$(command -v iperf3)" "$root/iperf/"
ldd "$(command -v iperf3)" | awk '$(NF-1) ~ /^\// {print $(NF-1)} $1 ~ /^\// {print $1}' | sort -u |
	while read -r lib; do cp -L "$lib" "$root/iperf/"; done
iperf=(/iperf/ld-linux-x86-64.so.2 --library-path /iperf /iperf/iperf3)
[ -e "$root/iperf/ld-linux-x86-64.so.2" ] || { echo "bench: no x86-64 loader for iperf3" >&2; exit 1; }

for e in "${engines[@]}"; do ns_up "$e"; done
[ "$DOCKER" = 1 ] && start_docker
[ "$PODMAN" = 1 ] && start_podman
echo "engines: ${engines[*]}, each in a network namespace of its own"
[ "$PODMAN" = 1 ] && echo "podman's network backend: $(p info --format '{{.Host.NetworkBackend}}')"

now() { date +%s%N; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2fx", a / b; else print "-" }'; }
declare -A none bridge rps gbit res

# --- 1. start cost --------------------------------------------------------------
echo "== 1. run --rm true: --network bridge minus --network none (medians of $N, alternating)"
for e in "${engines[@]}"; do
	eng "$e" run --rm --network bridge "$IMAGE" true # the bridge and its rules made once
	none[$e]="" bridge[$e]=""
done
for i in $(seq "$N"); do
	k=$(((i - 1) % ${#engines[@]}))
	for e in "${engines[@]:$k}" "${engines[@]:0:$k}"; do
		for net in none bridge; do
			# The kernel takes a bridge container's namespace and veth down in
			# the background (RCU grace periods, ~20 ms): let that finish
			# outside the timed region, not in the next engine's run.
			sleep 0.2
			t0=$(now)
			eng "$e" run --rm --pull never --network "$net" "$IMAGE" true
			t1=$(now)
			if [ "$net" = none ]; then none[$e]+="$(((t1 - t0) / 1000)) "; else bridge[$e]+="$(((t1 - t0) / 1000)) "; fi
		done
	done
done
for e in "${engines[@]}"; do
	n=$(echo "${none[$e]}" | median) br=$(echo "${bridge[$e]}" | median)
	res[start-$e]=$(awk -v n="$n" -v b="$br" 'BEGIN { printf "%.1f", (b - n) / 1000 }')
	awk -v e="$e" -v n="$n" -v b="$br" 'BEGIN { printf "%-7s none %7.1f ms  bridge %7.1f ms  start cost %+7.1f ms\n", e, n/1000, b/1000, (b-n)/1000 }'
done

# --- 2. HTTP through a published port --------------------------------------------
echo "== 2. HTTP from the host, 10 KiB file, ab -n 5000 -c 8 (medians of $R rounds)"
www='mkdir -p /www && head -c 10240 /dev/zero | tr "\0" x >/www/f && exec httpd -f -h /www -p'
for e in "${engines[@]}"; do
	eng "$e" run -d --name pub --network bridge -p 8080:80 "$IMAGE" sh -c "$www 80" >/dev/null
done
b run -d --name hostnet --network host "$IMAGE" sh -c "$www 8081" >/dev/null
targets=()
for e in "${engines[@]}"; do targets+=("$e:8080"); done
targets+=(berth:8081) # the same server on --network host, in berth's namespace
for t in "${targets[@]}"; do
	for i in $(seq 50); do ns "${t%:*}" curl -sf -o /dev/null "http://127.0.0.1:${t#*:}/f" && break; sleep 0.1; done
done
ab_rps() { # engine port [-k]
	local out
	out=$(ns "$1" ab -q -n 5000 -c 8 ${3:+"$3"} "http://127.0.0.1:$2/f")
	echo "$out" | awk '/^(Failed requests|Non-2xx responses):/ && $3 > 0 {print "ab: " $0 > "/dev/stderr"}'
	echo "$out" | awk '/^Requests per second/ {print $4}'
}
for t in "${targets[@]}"; do rps[$t-ka]="" rps[$t-close]=""; done
for i in $(seq "$R"); do
	k=$(((i - 1) % ${#targets[@]}))
	for t in "${targets[@]:$k}" "${targets[@]:0:$k}"; do
		rps[$t-close]+="$(ab_rps "${t%:*}" "${t#*:}") "
		rps[$t-ka]+="$(ab_rps "${t%:*}" "${t#*:}" -k) "
	done
done
for ka in close ka; do
	for t in "${targets[@]}"; do
		name=${t%:*}-published
		[ "$t" = berth:8081 ] && name=berth-hostnet
		res[http-$ka-$name]=$(echo "${rps[$t-$ka]}" | median)
		printf '%-16s %-13s %8.0f req/s   (%s)\n' "$name" "$([ $ka = ka ] && echo keep-alive || echo no-keep-alive)" \
			"${res[http-$ka-$name]}" "${rps[$t-$ka]% }"
	done
done
for e in "${engines[@]}"; do eng_rm "$e" pub; done
eng_rm berth hostnet

# --- 3. container to container, iperf3 --------------------------------------------
echo "== 3. iperf3 container to container on the default bridge, -t $T (medians of $R rounds)"
declare -A server_ip
for e in "${engines[@]}"; do
	eng "$e" run -d --name ipsrv --network bridge -v "$root/iperf:/iperf:ro" "$IMAGE" "${iperf[@]}" -s >/dev/null
	server_ip[$e]=$(eng "$e" inspect -f '{{.NetworkSettings.IPAddress}}' ipsrv)
	[ -n "${server_ip[$e]}" ] || { echo "bench: no address for $e's iperf3 server" >&2; exit 1; }
	gbit[$e]=""
done
gbit[loopback]=""
sleep 1
mbits() { awk '/receiver/ {print $(NF-2)}'; }
iperf_client() { # engine
	eng "$1" run --rm --pull never --network bridge -v "$root/iperf:/iperf:ro" "$IMAGE" \
		"${iperf[@]}" -c "${server_ip[$1]}" -t "$T" -f m | mbits
}
iperf_loopback() { # host processes over loopback, in berth's namespace
	ns berth iperf3 -s -1 >/dev/null &
	sleep 0.5
	ns berth iperf3 -c 127.0.0.1 -t "$T" -f m | mbits
	wait $!
}
sides=("${engines[@]}" loopback)
for i in $(seq "$R"); do
	k=$(((i - 1) % ${#sides[@]}))
	for s in "${sides[@]:$k}" "${sides[@]:0:$k}"; do
		if [ "$s" = loopback ]; then m=$(iperf_loopback); else m=$(iperf_client "$s"); fi
		[ -n "$m" ] || { echo "bench: iperf3 for $s gave no result" >&2; exit 1; }
		gbit[$s]+="$(awk -v m="$m" 'BEGIN { printf "%.2f", m / 1000 }') "
	done
done
for s in "${sides[@]}"; do
	res[iperf-$s]=$(echo "${gbit[$s]}" | median)
	printf '%-9s %6.2f Gbit/s   (%s)\n' "$s" "${res[iperf-$s]}" "${gbit[$s]% }"
done
for e in "${engines[@]}"; do eng_rm "$e" ipsrv; done

# --- summary ------------------------------------------------------------------------
echo
echo "== summary (berth/peer ratios; for start cost, lower is better)"
for e in "${engines[@]}"; do printf '  start cost %-7s %+7.1f ms\n' "$e" "${res[start-$e]}"; done
echo "  berth start cost target: <= +3 ms"
# The issue's targets: HTTP berth/host >= 0.9x and berth/docker >= 1.5x;
# iperf3 berth/docker >= 1.0x.
target() { case $1 in docker) echo " (target >= $2)" ;; esac; }
for ka in close ka; do
	label=$([ $ka = ka ] && echo keep-alive || echo no-keep-alive)
	line="  HTTP $label: berth/host network $(ratio "${res[http-$ka-berth-published]}" "${res[http-$ka-berth-hostnet]}") (target >= 0.9x)"
	for e in "${engines[@]:1}"; do
		line+=", berth/$e $(ratio "${res[http-$ka-berth-published]}" "${res[http-$ka-$e-published]}")$(target "$e" 1.5x)"
	done
	echo "$line"
done
line="  iperf3: berth/loopback $(ratio "${res[iperf-berth]}" "${res[iperf-loopback]}")"
for e in "${engines[@]:1}"; do
	line+=", berth/$e $(ratio "${res[iperf-berth]}" "${res[iperf-$e]}")$(target "$e" 1.0x)"
	line+=", $e/loopback $(ratio "${res[iperf-$e]}" "${res[iperf-loopback]}")"
done
echo "$line"
