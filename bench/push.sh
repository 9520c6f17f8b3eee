#!/usr/bin/env bash
# Push benchmark of large:latest (6 gzip layers, ~165 MiB compressed) to an
# EMPTY registry on loopback: a private distribution registry this script
# starts on 127.0.0.1:5599 with fresh storage before every run (a repository
# of the fixture's plain registry would let berth mount the blobs and upload
# nothing). Both contenders start from local copies, made once, untimed:
#   skopeo   skopeo copy dir:SRC docker://127.0.0.1:5599/large:latest
#            (the blobs and manifest as the registry served them)
#   berth    berth push of the same image, pulled once into a root of its own
#            and tagged 127.0.0.1:5599/large:latest
# Contenders alternate in one run so machine noise hits them alike.
# Usage: bench/push.sh   (N=5 iterations; BERTH=path/to/berth to override)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-5}"
BERTH="${BERTH:-$PWD/target/x86_64-unknown-linux-gnu/release/berth}"
SRC=127.0.0.1:5500/large:latest
DEST=127.0.0.1:5599
REGISTRY_BIN="${BERTH_FIXTURE_REGISTRY_BIN:-/usr/bin/docker-registry}"

bash fixture/registry.sh up >/dev/null
[ -x "$BERTH" ] || cargo build --release -p berth
tmp=$(mktemp -d /var/tmp/berth-bench-push.XXXX)
reg_pid=""
stop_registry() {
  if [ -n "$reg_pid" ]; then kill "$reg_pid" 2>/dev/null || true; wait "$reg_pid" 2>/dev/null || true; fi
  reg_pid=""
}
trap 'stop_registry; rm -rf "$tmp"' EXIT

source bench/lib.sh

export BERTH_CONFIG="$PWD/bench/config.json" DOCKER_CONFIG="$tmp/docker-config"
"$BERTH" --root "$tmp/root" pull -q "$SRC" >/dev/null
"$BERTH" --root "$tmp/root" tag "$SRC" "$DEST/large:latest"
skopeo copy -q --src-tls-verify=false "docker://$SRC" "dir:$tmp/src" >/dev/null

# A registry with empty storage on $DEST, up and answering, before each run.
bench_prepare() { # name dir
  stop_registry
  rm -rf "$tmp/storage"
  cat >"$tmp/registry.yml" <<YML
version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $tmp/storage
http:
  addr: $DEST
  secret: berth-bench-push
YML
  "$REGISTRY_BIN" serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
  reg_pid=$!
  local i
  for i in $(seq 100); do
    curl -sf -o /dev/null "http://$DEST/v2/" && return 0
    sleep 0.05
  done
  echo "bench: registry on $DEST did not start" >&2
  cat "$tmp/registry.log" >&2
  exit 1
}

run_skopeo() { # dir
  skopeo copy -q --dest-tls-verify=false "dir:$tmp/src" "docker://$DEST/large:latest" >/dev/null
}

run_berth() { # dir
  "$BERTH" --root "$tmp/root" push -q "$DEST/large:latest" >/dev/null
}

contenders=(skopeo berth)
bench_loop
stop_registry
bench_medians
echo "berth/skopeo $(div "${med[berth]}" "${med[skopeo]}")"
