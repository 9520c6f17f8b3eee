#!/usr/bin/env bash
# Engines with berth inside (issue 15): `docker run --rm --runtime berth` vs
# the same with runc, and `podman --runtime berth-runc run --rm` vs crun and
# runc, busybox `true`, medians in one run. Root only; uses the dockerd and
# podman of fixture/dockerd.sh (private sockets and stores).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh >/dev/null
cargo build --release -p berth
bash fixture/dockerd.sh up
. /var/tmp/berth-dockerd/env
# dockerd's runtime `berth` is this link (fixture/dockerd.sh): the release build.
ln -sfn "$PWD/target/x86_64-unknown-linux-gnu/release/berth" "$BERTH_DOCKER_RUNTIME_LINK.bench"
mv -T "$BERTH_DOCKER_RUNTIME_LINK.bench" "$BERTH_DOCKER_RUNTIME_LINK"

. bench/lib.sh
hugetlb_v1_on
cleanup() {
  hugetlb_v1_off
}
trap cleanup EXIT

/usr/bin/python3 - <<'PY'
import os, statistics, subprocess, time
N = int(os.environ.get("N", "20"))
docker = [os.environ["BERTH_DOCKER"], "-H", os.environ["BERTH_DOCKER_HOST"]]
pod = os.environ["BERTH_PODMAN"].split() + [a for a in os.environ["BERTH_PODMAN_ARGS"].split()]
i = pod.index("--runtime"); del pod[i:i + 2]
berth_runc = os.environ["BERTH_DOCKER_RUNTIME_LINK"]
dimg, pimg = os.environ["BERTH_OUTER_IMAGE"], os.environ["BERTH_PODMAN_OUTER_IMAGE"]
ulimits = ["--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768"]
c = {
    "docker --runtime runc": docker + ["run", "--rm", "--network", "none", "--runtime", "runc", dimg, "true"],
    "docker --runtime berth": docker + ["run", "--rm", "--network", "none", "--runtime", "berth", dimg, "true"],
    "podman --runtime crun": pod + ["--runtime", "crun", "run", "--rm", "--network", "none"] + ulimits + [pimg, "true"],
    "podman --runtime runc": pod + ["--runtime", "runc", "run", "--rm", "--network", "none"] + ulimits + [pimg, "true"],
    "podman --runtime berth-runc": pod + ["--runtime", berth_runc, "run", "--rm", "--network", "none"] + ulimits + [pimg, "true"],
}
times = {k: [] for k in c}
order = list(c.items())
for r in range(N):
    for k, argv in order[r % len(order):] + order[:r % len(order)]:
        t0 = time.perf_counter()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if p.returncode:
            raise SystemExit(f"{k} failed: {p.stderr.decode()[:300]}")
        times[k].append(time.perf_counter() - t0)
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
ref = {"docker": med["docker --runtime runc"], "podman crun": med["podman --runtime crun"], "podman runc": med["podman --runtime runc"]}
print(f"{'engine':30} {'median ms':>10}")
for k, v in med.items():
    print(f"{k:30} {v:10.1f}")
print(f"\ndocker with berth / with runc:   {med['docker --runtime berth'] / ref['docker']:.2f}x (target <= 1.0)")
print(f"podman with berth / with crun:   {med['podman --runtime berth-runc'] / ref['podman crun']:.2f}x (target <= 1.0)")
print(f"podman with berth / with runc:   {med['podman --runtime berth-runc'] / ref['podman runc']:.2f}x")
PY
