#!/usr/bin/env bash
# Pull benchmark of large:latest (6 gzip layers, ~410 MiB unpacked) from the
# plain fixture registry on loopback, measured in the same run and alternated
# so machine noise hits every contender alike:
#   curl   - manifest + every blob to disk in parallel: the transfer floor
#   skopeo - copy into an empty oci: layout (download + verify, no unpack)
#   berth  - `berth --root EMPTY pull` (download + verify + unpack)
# Usage: bench/pull.sh   (N=5 iterations; BERTH=path/to/berth to override)
set -euo pipefail
cd "$(dirname "$0")/.."
N="${N:-5}"
BERTH="${BERTH:-target/x86_64-unknown-linux-gnu/release/berth}"
REG=127.0.0.1:5500
IMAGE=large:latest

bash fixture/registry.sh up
tmp=$(mktemp -d /var/tmp/berth-bench-pull.XXXX)
trap 'rm -rf "$tmp"' EXIT

have_berth=1
if [ ! -x "$BERTH" ]; then
  echo "bench: $BERTH not found; skipping berth (build it with: cargo build --release -p berth)" >&2
  have_berth=0
fi

now() { date +%s.%N; }
sub() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.3f", a - b}'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

run_curl() { # dir
  local d="$1" accept="application/vnd.docker.distribution.manifest.v2+json,application/vnd.oci.image.manifest.v1+json"
  mkdir -p "$d"
  curl -sfS -H "Accept: $accept" -o "$d/manifest.json" "http://$REG/v2/${IMAGE%%:*}/manifests/${IMAGE##*:}"
  local args=() dg
  for dg in $(grep -o '"digest": *"sha256:[0-9a-f]*"' "$d/manifest.json" | grep -o 'sha256:[0-9a-f]*'); do
    args+=(-o "$d/${dg#sha256:}" "http://$REG/v2/${IMAGE%%:*}/blobs/$dg")
  done
  curl -sfS --no-progress-meter -Z --parallel-max 6 "${args[@]}"
}

run_skopeo() { # dir
  mkdir -p "$1"
  skopeo copy -q --src-tls-verify=false "docker://$REG/$IMAGE" "oci:$1/x:latest" >/dev/null
}

run_berth() { # dir
  mkdir -p "$1"
  "$BERTH" --root "$1" pull "$REG/$IMAGE" -q >/dev/null
}

declare -A times=([curl]="" [skopeo]="" [berth]="")
contenders=(curl skopeo)
[ "$have_berth" = 1 ] && contenders+=(berth)

for i in $(seq "$N"); do
  # rotate the starting contender each iteration
  order=("${contenders[@]:$(((i - 1) % ${#contenders[@]}))}" "${contenders[@]:0:$(((i - 1) % ${#contenders[@]}))}")
  for c in "${order[@]}"; do
    d="$tmp/$c-$i"
    sync
    t0=$(now)
    if ! "run_$c" "$d"; then
      echo "bench: $c failed in iteration $i" >&2
      [ "$c" = berth ] && { have_berth=0; contenders=(curl skopeo); rm -rf "$d"; continue; }
      exit 1
    fi
    t1=$(now)
    dt=$(sub "$t1" "$t0")
    times[$c]+="$dt "
    printf 'iter %d %-6s %6.2f s\n' "$i" "$c" "$dt"
    rm -rf "$d"
  done
done

median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {if (NR==0) print "nan"; else if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
echo
mc=$(echo "${times[curl]}" | median)
ms=$(echo "${times[skopeo]}" | median)
printf 'median curl   %6.2f s   (%s)\n' "$mc" "${times[curl]}"
printf 'median skopeo %6.2f s   (%s)\n' "$ms" "${times[skopeo]}"
if [ -n "${times[berth]}" ]; then
  mb=$(echo "${times[berth]}" | median)
  printf 'median berth  %6.2f s   (%s)\n' "$mb" "${times[berth]}"
  echo "ratio berth/skopeo $(div "$mb" "$ms")   berth/curl $(div "$mb" "$mc")"
else
  echo "berth: not measured"
fi
