#!/usr/bin/env bash
# Installs every system package berth's build, tests and fixture registry need
# on a fresh Debian 12 machine (run as root). Idempotent and quick when done.
set -euo pipefail

packages=(
  docker-registry   # the real CNCF distribution registry the tests pull from
  skopeo umoci      # peers: golden unpack comparison and pull benchmark
  busybox-static    # the userland of every fixture image
  python3-cryptography python3-jwt  # the fixture's token issuer (RS256 JWTs)
  apache2-utils     # htpasswd for the basic-auth registry
  openssl curl zstd ca-certificates
  libseccomp-dev    # libseccomp.a, linked into the static berth binary
  uidmap iproute2 tmux util-linux procps
  nftables          # the bridge network's masquerade rules (berth's own table)
  passt             # pasta: --network bridge for rootless containers (and its tests)
  qemu-system-x86 linux-image-amd64 cpio  # the cgroup v2 test VM (fixture/v2vm.sh)
  # The in-container tests (fixture/dockerd.sh): berth runs inside Debian's
  # dockerd and podman. docker.io brings containerd and runc; podman runs its
  # boxes with runc too (crun refuses this machine's hybrid cgroups).
  docker.io containerd runc podman conmon
  buildah           # peer for `berth build`: same-image test and bench/build.sh
  # bench/network.sh: podman's own network stack, and container-to-container
  # throughput (iperf3 bind-mounted into the busybox fixture image).
  netavark aardvark-dns iperf3
)

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "install-deps: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# docker-registry's package ships an init script; berth's fixture runs its own
# registries on loopback, so make sure the packaged one is not in the way.
if [ -x /etc/init.d/docker-registry ] && pgrep -x docker-registry >/dev/null 2>&1; then
  /etc/init.d/docker-registry stop >/dev/null 2>&1 || true
fi

# Likewise docker.io's dockerd: the tests start their own (fixture/dockerd.sh)
# with no bridge and no iptables rules; the packaged one would add both. Its
# init script only acts on its own pidfile, not on any dockerd started by hand.
if [ -x /etc/init.d/docker ] && [ -f /var/run/docker-ssd.pid ]; then
  /etc/init.d/docker stop >/dev/null 2>&1 || true
fi

command -v cargo >/dev/null || { echo "install-deps: cargo not found (this machine kind ships Rust via rustup)" >&2; exit 1; }
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt
