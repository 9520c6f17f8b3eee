#!/usr/bin/env bash
# commit (issue 16): a container that wrote 200 MB of new files (200 x 1 MiB
# of random bytes: incompressible, the worst case for the compressor) is
# committed by `berth commit`, `docker commit` and `podman commit`; only the
# commit is timed, medians in one run. Root only; docker and podman are the
# fixture's (fixture/dockerd.sh: private sockets and stores). Knobs: N
# (iterations, default 5), MB (default 200), COMPRESS (berth's, gzip|zstd).
set -euo pipefail
cd "$(dirname "$0")/.."
. bench/lib.sh
bench_berth
bash fixture/dockerd.sh up
. /var/tmp/berth-dockerd/env
export BERTH IMAGE
BERTH_ROOT=$(mktemp -d /var/tmp/berth-bench-commit.XXXXXX)
export BERTH_ROOT
trap 'rm -rf "$BERTH_ROOT"' EXIT
"$BERTH" --config bench/config.json --root "$BERTH_ROOT" pull -q "$IMAGE" >/dev/null

/usr/bin/python3 - <<'PY'
import os, statistics, subprocess, time
N = int(os.environ.get("N", "5"))
MB = int(os.environ.get("MB", "200"))
compress = os.environ.get("COMPRESS", "gzip")
berth = [os.environ["BERTH"], "--config", "bench/config.json", "--root", os.environ["BERTH_ROOT"]]
docker = [os.environ["BERTH_DOCKER"], "-H", os.environ["BERTH_DOCKER_HOST"]]
pod = os.environ["BERTH_PODMAN"].split() + os.environ["BERTH_PODMAN_ARGS"].split()
ulimits = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
write = f"mkdir /data; i=0; while [ $i -lt {MB} ]; do head -c 1048576 /dev/urandom > /data/f$i; i=$((i+1)); done"

def sh(argv):
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    if p.returncode:
        raise SystemExit(f"{argv[:4]}... failed: {p.stderr.decode()[:300]}")

engines = {
    "berth": (berth, os.environ["IMAGE"], [], ["--compress", compress]),
    "docker": (docker, os.environ["BERTH_OUTER_IMAGE"], ["--network", "none"], []),
    "podman": (pod, os.environ["BERTH_PODMAN_OUTER_IMAGE"], ["--network", "none"] + ulimits, []),
}
times = {k: [] for k in engines}
order = list(engines.items())
for r in range(N):
    for k, (cli, image, flags, cflags) in order[r % 3:] + order[:r % 3]:
        name = f"bench-commit-{r}"
        sh(cli + ["run", "--name", name] + flags + [image, "sh", "-c", write])
        subprocess.run(["sync"])
        t0 = time.perf_counter()
        sh(cli + ["commit"] + cflags + [name, f"bench-commit:{r}"])
        subprocess.run(["sync"])
        times[k].append(time.perf_counter() - t0)
        sh(cli + ["rm", "-f", name])
        sh(cli + ["rmi", f"bench-commit:{r}"])
        print(f"iter {r} {k:8} {times[k][-1]:6.2f} s", flush=True)
med = {k: statistics.median(v) for k, v in times.items()}
print()
for k, v in med.items():
    print(f"median {k:8} {v:6.2f} s   ({' '.join(f'{t:.2f}' for t in times[k])})")
print(f"\nberth / docker: {med['berth'] / med['docker']:.2f}x (target <= 0.5)")
print(f"berth / podman: {med['berth'] / med['podman']:.2f}x")
PY
