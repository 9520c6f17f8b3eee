#!/usr/bin/python3
"""`exec true` into a running container: median wall time of berth, crun,
runc and the `nsenter -a` floor, in one run.

Each contender has a container of its own, running `sleep`: berth's from
busybox (default seccomp profile, capabilities, masks), crun's and runc's
from a bundle whose config is `runc spec`'s with berth's seccomp filter
added (so every exec'd process installs the same filter). The floor enters
every namespace of berth's container and runs /bin/true there, with no
set-up at all. Contenders alternate, first place rotating, so machine
noise hits all alike. Run by hand as root: `bench/exec.sh`.
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

N = int(os.environ.get("N", "40"))
BERTH = os.environ["BERTH"]
ROOT = os.environ["BERTH_BENCH_ROOT"]
IMAGE = os.environ.get("IMAGE", "127.0.0.1:5500/busybox:latest")
work = tempfile.mkdtemp(prefix="berth-bench-exec-")
berth = [BERTH, "--root", ROOT]


def run(argv):
    t0 = time.perf_counter()
    p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace")
        raise RuntimeError(f"{argv} failed ({p.returncode}): {err.strip()[:300]}")
    return dt


def start_berth():
    """berth's container, run in the background; its PID 1 and its spec."""
    p = subprocess.Popen(berth + ["run", "--rm", "-q", "--name", "bench-exec", IMAGE,
                                  "sh", "-c", "echo up; exec sleep 100000"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
    if p.stdout.readline() != b"up\n":
        sys.exit("bench: berth's container did not start")
    info = json.loads(subprocess.run(berth + ["inspect", "bench-exec"], check=True,
                                     capture_output=True).stdout)[0]
    return p, info["State"]["Pid"], info["Id"]


def berth_seccomp(cid):
    """The seccomp section of berth's container's config.json (its bundle
    is in root's default exec root)."""
    cfg = json.load(open(f"/run/berth/bundles/{cid}/config.json"))
    return cfg.get("linux", {}).get("seccomp")


def make_bundle(name, seccomp):
    b = os.path.join(work, name)
    rootfs = os.path.join(b, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for a in ("sh", "true", "sleep"):
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", b], check=True)
    cfg = json.load(open(os.path.join(b, "config.json")))
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/sleep", "100000"]
    if seccomp:
        cfg["linux"]["seccomp"] = seccomp
    cfg["linux"]["cgroupsPath"] = f"/berth-bench/{name}"
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    return b


def main():
    proc, pid, cid = start_berth()
    seccomp = berth_seccomp(cid)
    contenders = {
        "nsenter -a (floor)": ["nsenter", "-a", "-t", str(pid), "/bin/true"],
        "berth exec": berth + ["exec", "bench-exec", "true"],
    }
    started = []
    for rt in ("crun", "runc"):
        if not shutil.which(rt):
            continue
        state = os.path.join(work, rt)
        name = f"bench-{rt}"
        bundle = make_bundle(f"bundle-{rt}", seccomp)
        subprocess.run([rt, "--root", state, "run", "-d", "--bundle", bundle, name], check=True,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        started.append((rt, state, name))
        contenders[f"{rt} exec"] = [rt, "--root", state, "exec", name, "/bin/true"]
    try:
        for argv in contenders.values():  # warm up (and check they work)
            run(argv)
        times = {k: [] for k in contenders}
        order = list(contenders.items())
        for i in range(N):
            for k, argv in order[i % len(order):] + order[:i % len(order)]:
                times[k].append(run(argv))
        med = {k: statistics.median(v) for k, v in times.items()}
        crun = med.get("crun exec")
        floor = med["nsenter -a (floor)"]
        print(f"{'contender':20} {'median ms':>10} {'vs crun':>8} {'vs floor':>9} {'runs':>5}")
        for k, v in med.items():
            ratio = f"{v / crun:.2f}x" if crun else "-"
            print(f"{k:20} {v * 1000:10.2f} {ratio:>8} {v / floor:8.2f}x {len(times[k]):5}")
    finally:
        for rt, state, name in started:
            subprocess.run([rt, "--root", state, "delete", "-f", name], capture_output=True)
        subprocess.run(berth + ["rm", "-f", "bench-exec"], capture_output=True)
        proc.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
