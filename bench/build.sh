#!/usr/bin/env bash
# build (issue 17): a 10-step Dockerfile (the fixture busybox, RUNs that
# write files, COPY of a 50 MB context, ENV/WORKDIR/CMD) built by berth:
# cold (--no-cache), fully cached, and after one copied file changed;
# medians of N runs (default 5). BERTH=path skips the release build.
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
if [ -z "${BERTH:-}" ]; then bench_berth; else IMAGE=127.0.0.1:5500/busybox:latest; bash fixture/registry.sh up >/dev/null; fi
N=${N:-5}
root=$(mktemp -d /var/tmp/berth-bench-build.XXXXXX)
ctx=$(mktemp -d /var/tmp/berth-bench-ctx.XXXXXX)
trap 'rm -rf "$root" "$ctx"' EXIT
b() { "$BERTH" --config bench/config.json --root "$root" "$@"; }
b pull -q "$IMAGE" >/dev/null
mkdir -p "$ctx/data"
for i in $(seq 50); do head -c 1048576 /dev/urandom > "$ctx/data/f$i"; done
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
t() { local t0; t0=$(now); "$@" >/dev/null 2>&1; sub "$(now)" "$t0"; }
cold="" cached="" one=""
for i in $(seq "$N"); do
  cold+="$(t b build --no-cache -t bench "$ctx") "
  cached+="$(t b build -t bench "$ctx") "
  head -c 1048576 /dev/urandom > "$ctx/data/f7"
  one+="$(t b build -t bench "$ctx") "
done
echo "berth build, 10 steps, 50 MB context, medians of $N:"
echo "  cold (--no-cache)   $(echo "$cold" | median) s"
echo "  fully cached        $(echo "$cached" | median) s"
echo "  one file changed    $(echo "$one" | median) s"
