#!/usr/bin/env bash
# save+load round trip of large:latest (6 gzip layers, ~410 MiB unpacked)
# against Debian's dockerd 20.10 (the fixture's, private socket). Contenders
# run alternated in one run so machine noise hits them alike:
#   berth        berth save IMG | berth --root EMPTY load: every blob hashed
#                against its name, every layer decompressed to check its diff_id
#   berth-warm   berth save IMG | berth load into the root that has it
#   docker       docker save IMG | docker load (the image already there: what
#                the issue's 8.0 s figure measured)
#   docker-cold  docker save -o F IMG; docker rmi IMG; docker load -i F: docker
#                loads every layer again (rmi inside the timed region)
# Usage: bench/saveload.sh   (N=3 iterations; BERTH=path/to/berth to override)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-3}"
BERTH="${BERTH:-$PWD/target/x86_64-unknown-linux-gnu/release/berth}"
IMAGE=127.0.0.1:5500/large:latest

bash fixture/registry.sh up >/dev/null
bash fixture/dockerd.sh up >/dev/null
# shellcheck disable=SC1090
source <(bash fixture/dockerd.sh env)
DOCKER=("$BERTH_DOCKER" -H "$BERTH_DOCKER_HOST")
[ -x "$BERTH" ] || cargo build --release -p berth
export BERTH_CONFIG="$PWD/crates/cli/tests/config.json"
tmp=$(mktemp -d /var/tmp/berth-bench-saveload.XXXX)
trap 'rm -rf "$tmp"' EXIT

source bench/lib.sh

src="$tmp/src"
"$BERTH" --root "$src" pull -q "$IMAGE" >/dev/null
# dockerd gets the image from berth (it has no way to the loopback registry).
"${DOCKER[@]}" image inspect "$IMAGE" >/dev/null 2>&1 ||
  "$BERTH" --root "$src" save "$IMAGE" | "${DOCKER[@]}" load -q >/dev/null
echo "archive: $("$BERTH" --root "$src" save "$IMAGE" | wc -c) bytes"

run_berth() { # dir
  mkdir -p "$1"
  "$BERTH" --root "$src" save "$IMAGE" | "$BERTH" --root "$1" load >/dev/null
}

run_berthwarm() { # dir
  "$BERTH" --root "$src" save "$IMAGE" | "$BERTH" --root "$src" load >/dev/null
}

run_docker() { # dir
  "${DOCKER[@]}" save "$IMAGE" | "${DOCKER[@]}" load -q >/dev/null
}

run_dockercold() { # dir
  mkdir -p "$1"
  "${DOCKER[@]}" save -o "$1/image.tar" "$IMAGE"
  "${DOCKER[@]}" rmi "$IMAGE" >/dev/null
  "${DOCKER[@]}" load -q -i "$1/image.tar" >/dev/null
}

contenders=(berth berthwarm docker dockercold)
bench_loop
bench_medians
echo "berth/docker $(div "${med[berth]}" "${med[docker]}")   berth/docker-cold $(div "${med[berth]}" "${med[dockercold]}")   berth-warm/docker $(div "${med[berthwarm]}" "${med[docker]}")"
