#!/usr/bin/python3
"""Container start-to-exit benchmark: berth against its peers, in one run.

Runs `/bin/true` in a busybox container N times per contender, alternating
contenders so machine noise hits all alike, and prints medians, ratios to
crun and peak RSS (from wait4, which covers the whole reaped process tree).
Run by hand as root: `bench/start.sh` (it installs the peers and the image).
"""
import json, os, shutil, statistics, subprocess, sys, tempfile, time

N = int(os.environ.get("N", "30"))
BERTH = os.environ["BERTH"]
ROOT = os.environ["BERTH_BENCH_ROOT"]
IMAGE = os.environ.get("IMAGE", "127.0.0.1:5500/busybox:latest")
work = tempfile.mkdtemp(prefix="berth-bench-")


RSS_FILE = os.path.join(work, "rss")


def run(argv):
    """Wall time of the whole command and its peak RSS in KiB.

    Peak RSS comes from GNU time: a process forked by Python would report
    Python's own high-water mark (exec records the old mm's peak), while
    time's is ~2 MiB, the floor every contender's figure includes.
    """
    t0 = time.perf_counter()
    p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", RSS_FILE] + argv,
                       stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        err = p.stderr.decode(errors="replace")
        raise RuntimeError(f"{argv[0]} failed ({p.returncode}): {err.strip()[:300]}")
    return dt, int(open(RSS_FILE).read().split()[-1])


def make_bundle(name, docker_like):
    b = os.path.join(work, name)
    rootfs = os.path.join(b, "rootfs")
    os.makedirs(os.path.join(rootfs, "bin"))
    shutil.copy("/bin/busybox", os.path.join(rootfs, "bin/busybox"))
    for a in ("sh", "true"):
        os.symlink("busybox", os.path.join(rootfs, "bin", a))
    for d in ("proc", "sys", "dev", "tmp", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    subprocess.run(["runc", "spec", "--bundle", b], check=True)
    cfg = json.load(open(os.path.join(b, "config.json")))
    cfg["process"]["terminal"] = False
    cfg["process"]["args"] = ["/bin/true"]
    if docker_like:
        podman = podman_config(b, rootfs)
        if podman:
            cfg = podman
        else:
            # Without podman, its seccomp profile on runc's config stands in.
            prof = "/usr/share/containers/seccomp.json"
            if os.path.exists(prof):
                cfg["linux"]["seccomp"] = oci_seccomp(json.load(open(prof)))
    json.dump(cfg, open(os.path.join(b, "config.json"), "w"))
    return b, rootfs


def podman_config(bundle, rootfs):
    """The config.json podman itself generates for `podman run --network none
    --ulimit ... /bin/true` (Docker's capabilities, seccomp profile with its
    argument rules, masks, rlimits, pids limit, device rules, /etc binds):
    the Docker-like bundle of the shared PEERS figures. Paths are moved into
    the bundle, so crun runs it on its own."""
    podman = os.environ.get("PODMAN_ARGS")
    if not podman:
        return None
    p = podman.split()
    cid = subprocess.run(p + ["create", "--network", "none", "--ulimit", "nofile=20000:20000",
                              "--ulimit", "nproc=32768:32768", "localhost/bb", "/bin/true"],
                         check=True, capture_output=True, text=True).stdout.strip()
    try:
        subprocess.run(p + ["init", cid], check=True, capture_output=True)
        root = p[p.index("--root") + 1]
        path = os.path.join(root, "overlay-containers", cid, "userdata", "config.json")
        cfg = json.load(open(path))
    finally:
        subprocess.run(p + ["rm", "-f", cid], capture_output=True)
    cfg["root"]["path"] = rootfs
    cfg.pop("annotations", None)
    cfg["linux"]["cgroupsPath"] = "/berth-bench/crun-docker-like"
    for d in ("run", "dev", "proc", "sys", "etc"):
        os.makedirs(os.path.join(rootfs, d), exist_ok=True)
    for m in cfg["mounts"]:
        if m["type"] != "bind":
            continue
        name = os.path.basename(m["source"])
        src = os.path.join(bundle, name)
        if os.path.isdir(m["source"]):
            os.makedirs(src, exist_ok=True)
        else:
            open(src, "w").write("127.0.0.1\tlocalhost\n" if name == "hosts" else "")
        m["source"] = src
    return cfg


def oci_seccomp(docker):
    """Docker's profile format to the OCI runtime-spec form (amd64 only)."""
    out = {"defaultAction": docker["defaultAction"], "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"], "syscalls": []}
    for s in docker.get("syscalls", []):
        inc, exc = s.get("includes", {}), s.get("excludes", {})
        if inc.get("arches") and "amd64" not in inc["arches"]:
            continue
        if inc.get("caps") or exc.get("caps") or exc.get("arches"):
            continue
        r = {"names": s["names"], "action": s["action"]}
        if s.get("args"):
            r["args"] = s["args"]
        if "errnoRet" in s:
            r["errnoRet"] = s["errnoRet"]
        out["syscalls"].append(r)
    return out


def main():
    plain, rootfs = make_bundle("plain", False)
    dlike, _ = make_bundle("dockerlike", True)
    contenders = {
        "floor (unshare+chroot)": ["unshare", "--pid", "--fork", "--mount", "--uts", "--ipc", "--net",
                                   "chroot", rootfs, "/bin/true"],
        "berth run --rm": [BERTH, "--root", ROOT, "run", "--rm", "--pull", "never", IMAGE, "true"],
        # Without the (cached) default seccomp filter: what hardening costs.
        "berth run --rm (unconfined)": [BERTH, "--root", ROOT, "run", "--rm", "--pull", "never",
                                        "--security-opt", "seccomp=unconfined", IMAGE, "true"],
    }
    # Another build of berth (BERTH_BASELINE=path), for a before/after in one run.
    base = os.environ.get("BERTH_BASELINE")
    if base:
        contenders["berth run --rm (baseline build)"] = [base, "--root", ROOT, "run", "--rm",
                                                         "--pull", "never", IMAGE, "true"]
    if shutil.which("crun") and os.environ.get("CRUN_OK") == "1":
        contenders["crun run (plain)"] = ["crun", "--root", os.path.join(work, "crun"), "run", "--bundle", plain, "bench-crun"]
        contenders["crun run (docker-like)"] = ["crun", "--root", os.path.join(work, "crun"), "run", "--bundle", dlike, "bench-crun2"]
    if shutil.which("runc"):
        contenders["runc run (plain)"] = ["runc", "--root", os.path.join(work, "runc"), "run", "--bundle", plain, "bench-runc"]
        contenders["runc run (docker-like)"] = ["runc", "--root", os.path.join(work, "runc"), "run", "--bundle", dlike, "bench-runc2"]
    # berth's runtime through its runc command line (issue 15), same bundles.
    runc_name = os.environ.get("BERTH_RUNC")
    if runc_name:
        contenders["berth-runc run (plain)"] = [runc_name, "--root", os.path.join(work, "berth-runc"), "run", "--bundle", plain, "bench-b"]
        contenders["berth-runc run (docker-like)"] = [runc_name, "--root", os.path.join(work, "berth-runc"), "run", "--bundle", dlike, "bench-b2"]
    podman = os.environ.get("PODMAN_ARGS")
    if podman:
        contenders["podman run --rm"] = podman.split() + ["run", "--rm", "--network", "none",
            "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=32768:32768", "localhost/bb", "/bin/true"]
    times = {k: [] for k in contenders}
    rss = {k: 0 for k in contenders}
    n_slow = max(3, N // 6)
    order = list(contenders.items())
    for i in range(N):
        # Rotate who goes first: a start right after one that made a network
        # namespace pays for its teardown (RCU grace periods), measured at
        # several ms here; rotating spreads that over every contender.
        for k, argv in order[i % len(order):] + order[:i % len(order)]:
            if k.startswith("podman") and i >= n_slow:
                continue
            dt, m = run(argv)
            times[k].append(dt)
            rss[k] = max(rss[k], m)
    med = {k: statistics.median(v) for k, v in times.items() if v}
    ref = next((med[k] for k in med if k.startswith("crun run (plain)")), None)
    dref = next((med[k] for k in med if k.startswith("crun run (docker-like)")), None)
    print(f"{'contender':30} {'median ms':>10} {'vs crun':>8} {'vs crun docker-like':>20} {'peak RSS MiB':>13} {'runs':>5}")
    for k, v in med.items():
        ratio = f"{v / ref:.2f}x" if ref else "-"
        dratio = f"{v / dref:.2f}x" if dref else "-"
        print(f"{k:30} {v * 1000:10.1f} {ratio:>8} {dratio:>20} {rss[k] / 1024:13.1f} {len(times[k]):5}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
