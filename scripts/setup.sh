#!/usr/bin/env bash
# Fresh machine to a running container: installs what berth needs, builds and
# installs the binary, starts the local registry (a Docker Hub mirror with
# library/busybox) and runs `berth run --rm busybox echo ...` through it.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/install-deps.sh
cargo build --release -p berth
install -m 0755 target/x86_64-unknown-linux-gnu/release/berth /usr/local/bin/berth
# The same binary called berth-runc speaks runc's command line, for
# containerd, dockerd and podman (README: "berth as the runtime of other engines").
ln -sf berth /usr/local/bin/berth-runc
bash fixture/registry.sh up

# Without internet, Docker Hub names come from the fixture registry as a mirror.
if [ ! -e /etc/berth/config.json ]; then
  mkdir -p /etc/berth
  echo '{"registry-mirrors": ["http://127.0.0.1:5500"]}' > /etc/berth/config.json
fi
berth run --rm busybox echo "hello from a berth container"
