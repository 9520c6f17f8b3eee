//! cgroups behind one interface: v1 for real on this host's hierarchies,
//! v2 for real on whatever cgroup2 mount the host has (this hybrid host's
//! controller-less /sys/fs/cgroup/unified, or a pure v2 host's
//! /sys/fs/cgroup with its controllers, as in fixture/v2vm.sh's VM), and
//! v2's files and values against a directory laid out like cgroup2.
//! Tests that need one kind of host say which and skip elsewhere; the test
//! suite runs them on both kinds.

mod common;

use berth_runtime::cgroups::{Cgroup, Layout, resolve_path};
use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};
use std::fs;
use std::path::{Path, PathBuf};

/// Removes a test's cgroup (killing what is left) and its parent dirs in
/// every hierarchy, also when the test fails half-way.
struct Cleanup(Vec<(Cgroup, Vec<PathBuf>)>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for (cg, parents) in &self.0 {
            let _ = cg.destroy();
            for p in parents {
                let _ = fs::remove_dir(p);
            }
        }
    }
}

fn limits() -> LinuxResources {
    let mut r = LinuxResources::default();
    let mut m = LinuxMemory::default();
    m.set_limit(Some(32 << 20));
    m.set_swap(Some(64 << 20));
    m.set_reservation(Some(16 << 20));
    r.set_memory(Some(m));
    let mut c = LinuxCpu::default();
    c.set_quota(Some(50_000));
    c.set_period(Some(100_000));
    c.set_shares(Some(512));
    c.set_cpus(Some("0".into()));
    r.set_cpu(Some(c));
    let mut p = LinuxPids::default();
    p.set_limit(50);
    r.set_pids(Some(p));
    r
}

#[test]
fn cgroups_paths_resolve_like_runc_and_systemd() {
    let own = Path::new("/user.slice/me");
    assert_eq!(
        resolve_path("/berth/abc", own).unwrap(),
        PathBuf::from("berth/abc")
    );
    assert_eq!(
        resolve_path("jobs/abc", own).unwrap(),
        PathBuf::from("user.slice/me/jobs/abc")
    );
    assert_eq!(
        resolve_path("machine-ci.slice:berth:abc", own).unwrap(),
        PathBuf::from("machine.slice/machine-ci.slice/berth-abc.scope")
    );
    assert_eq!(
        resolve_path(":berth:abc", own).unwrap(),
        PathBuf::from("system.slice/berth-abc.scope")
    );
    for bad in ["/../etc", "/a/../../b", "/", "x.service:berth:abc"] {
        let e = resolve_path(bad, own).unwrap_err().to_string();
        assert!(e.contains("invalid cgroupsPath"), "{bad}: {e}");
    }
}

#[test]
fn v1_used_hierarchies_are_those_of_the_limits_and_device_rules() {
    use berth_runtime::cgroups::Hierarchy;
    let h = |name: &str| Hierarchy {
        mount: PathBuf::from(format!("/sys/fs/cgroup/{name}")),
        controllers: name.split(',').map(str::to_string).collect(),
        own: PathBuf::from("/"),
    };
    let host = Layout::V1(
        [
            "blkio",
            "cpu,cpuacct",
            "cpuset",
            "devices",
            "freezer",
            "memory",
            "pids",
        ]
        .iter()
        .map(|n| h(n))
        .collect(),
    );
    let names = |l: Layout| -> Vec<String> {
        let Layout::V1(hs) = l else {
            panic!("v1 stays v1")
        };
        hs.iter().map(|h| h.controllers.join(",")).collect()
    };
    // Nothing asked: no hierarchy at all.
    assert!(names(host.clone().used_by(None)).is_empty());
    // Docker's default: only the device allow-list.
    let mut dev = LinuxResources::default();
    dev.set_devices(Some(vec![oci_spec::runtime::LinuxDeviceCgroup::default()]));
    assert_eq!(names(host.clone().used_by(Some(&dev))), ["devices"]);
    // Every limit of `limits()` (memory, CPU quota and set, pids), and devices.
    let mut all = limits();
    all.set_devices(dev.devices().clone());
    assert_eq!(
        names(host.clone().used_by(Some(&all))),
        ["cpu,cpuacct", "cpuset", "devices", "memory", "pids"]
    );
    // A host with cpu and cpuacct mounted apart (like this one): a CPU
    // limit brings its accounting along.
    let split = Layout::V1(["cpu", "cpuacct", "devices"].iter().map(|n| h(n)).collect());
    let mut shares = LinuxResources::default();
    let mut c = LinuxCpu::default();
    c.set_shares(Some(512));
    shares.set_cpu(Some(c));
    assert_eq!(names(split.used_by(Some(&shares))), ["cpu", "cpuacct"]);
    // v2 has one hierarchy: unchanged.
    let v2 = Layout::V2 {
        mount: PathBuf::from("/sys/fs/cgroup"),
        own: PathBuf::from("/"),
    };
    assert_eq!(v2.clone().used_by(None), v2);
}

/// A directory shaped like a cgroup2 mount with every controller: the
/// kernel makes the interface files on mkdir, here the test does.
fn fake_v2(files_in_leaf: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let t = tempfile::tempdir().unwrap();
    fs::write(
        t.path().join("cgroup.controllers"),
        "cpuset cpu io memory pids\n",
    )
    .unwrap();
    fs::write(t.path().join("cgroup.subtree_control"), "").unwrap();
    let mid = t.path().join("berth");
    fs::create_dir(&mid).unwrap();
    fs::write(mid.join("cgroup.subtree_control"), "").unwrap();
    let leaf = mid.join("c1");
    fs::create_dir(&leaf).unwrap();
    for f in files_in_leaf {
        fs::write(leaf.join(f), "").unwrap();
    }
    (t, leaf)
}

/// The v2 files `limits()` writes.
const LIMIT_FILES: &[&str] = &[
    "memory.max",
    "memory.swap.max",
    "memory.low",
    "cpu.max",
    "cpu.weight",
    "cpuset.cpus",
    "pids.max",
];

#[test]
fn v2_writes_the_unified_files_with_v2_values() {
    // Proven here: which files get which values, in which order of
    // ancestors. Only a v2 kernel can prove the kernel accepts them (and
    // that CLONE_INTO_CGROUP lands the process there).
    let (t, leaf) = fake_v2(LIMIT_FILES);
    let layout = Layout::V2 {
        mount: t.path().to_path_buf(),
        own: PathBuf::from("/"),
    };
    let cg = Cgroup::new(layout, "/berth/c1").unwrap();
    cg.create(Some(&limits())).unwrap();
    let read = |f: &str| fs::read_to_string(leaf.join(f)).unwrap();
    assert_eq!(read("memory.max"), (32 << 20).to_string());
    assert_eq!(
        read("memory.swap.max"),
        (32 << 20).to_string(),
        "swap alone, not memory+swap"
    );
    assert_eq!(read("memory.low"), (16 << 20).to_string());
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpu.weight"), "20", "512 shares on the weight scale");
    assert_eq!(read("cpuset.cpus"), "0");
    assert_eq!(read("pids.max"), "50");
    // Each write replaces the file (a real subtree_control takes one token
    // per write), so the last controller enabled is what stays here.
    let top = fs::read_to_string(t.path().join("cgroup.subtree_control")).unwrap();
    assert_eq!(top, "+pids");
    assert_eq!(cg.dirs(), vec![leaf.clone()]);

    // Unlimited values are "max".
    let mut r = LinuxResources::default();
    let mut m = LinuxMemory::default();
    m.set_limit(Some(32 << 20));
    m.set_swap(Some(-1));
    r.set_memory(Some(m));
    let mut p = LinuxPids::default();
    p.set_limit(-1);
    r.set_pids(Some(p));
    cg.create(Some(&r)).unwrap();
    assert_eq!(read("memory.swap.max"), "max");
    assert_eq!(read("pids.max"), "max");
}

/// `linux.resources.unified`: files by name, written after the fields
/// (so they win); a name that is not a file of the cgroup is refused; on
/// v1 the whole map is refused.
#[test]
fn unified_resources_are_written_last_and_only_as_file_names() {
    let (t, leaf) = fake_v2(&[LIMIT_FILES, &["memory.high"]].concat());
    let layout = Layout::V2 {
        mount: t.path().to_path_buf(),
        own: PathBuf::from("/"),
    };
    let cg = Cgroup::new(layout, "/berth/c1").unwrap();
    let mut r = limits();
    r.set_unified(Some(
        [("memory.max", "1000000"), ("memory.high", "900000")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .into(),
    ));
    cg.create(Some(&r)).unwrap();
    let read = |f: &str| fs::read_to_string(leaf.join(f)).unwrap();
    assert_eq!(
        read("memory.max"),
        "1000000",
        "unified wins over memory.limit"
    );
    assert_eq!(read("memory.high"), "900000");
    assert_eq!(read("pids.max"), "50");
    for bad in ["../memory.max", "cgroup", ".hidden.x"] {
        r.set_unified(Some([(bad.to_string(), "1".to_string())].into()));
        let e = cg.create(Some(&r)).unwrap_err();
        assert!(
            e.to_string().contains("not a cgroup file name"),
            "{bad}: {e}"
        );
    }
    assert!(!t.path().join("berth/memory.max").exists());

    let (t1, _) = fake_v2(&[]);
    let v1 = Layout::V1(vec![berth_runtime::cgroups::Hierarchy {
        mount: t1.path().join("memory"),
        controllers: vec!["memory".into()],
        own: PathBuf::from("/"),
    }]);
    let mut r = LinuxResources::default();
    r.set_unified(Some([("memory.max".to_string(), "1".to_string())].into()));
    let e = Cgroup::new(v1, "/berth/c1")
        .unwrap()
        .create(Some(&r))
        .unwrap_err();
    assert!(e.to_string().contains("needs cgroup v2"), "{e}");
}

#[test]
fn v2_missing_controller_is_a_clear_error() {
    let (t, _leaf) = fake_v2(&[]);
    fs::write(t.path().join("cgroup.controllers"), "cpu io\n").unwrap();
    let layout = Layout::V2 {
        mount: t.path().to_path_buf(),
        own: PathBuf::from("/"),
    };
    let cg = Cgroup::new(layout, "/berth/c1").unwrap();
    let e = cg.create(Some(&limits())).unwrap_err().to_string();
    assert!(e.contains("memory controller is not available"), "{e}");
    // A controller listed but whose files are missing in the cgroup.
    let (t, _leaf) = fake_v2(&["memory.max"]);
    let cg = Cgroup::new(
        Layout::V2 {
            mount: t.path().to_path_buf(),
            own: PathBuf::from("/"),
        },
        "/berth/c1",
    )
    .unwrap();
    let e = cg.create(Some(&limits())).unwrap_err().to_string();
    assert!(
        e.contains("memory.low") && e.contains("no such file"),
        "{e}"
    );
}

/// The host's cgroup2 mount: /sys/fs/cgroup on a pure v2 host, else a
/// hybrid host's /sys/fs/cgroup/unified, if any.
fn cgroup2_mount() -> Option<PathBuf> {
    let mounts = fs::read_to_string("/proc/self/mounts").unwrap();
    let is_cgroup2 = |dir: &str| {
        mounts.lines().any(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            f.get(1) == Some(&dir) && f.get(2) == Some(&"cgroup2")
        })
    };
    ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|d| is_cgroup2(d))
        .map(PathBuf::from)
}

fn spawn_sleeper() -> std::process::Child {
    std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap()
}

#[test]
fn v2_for_real_on_this_hosts_cgroup2_mount() {
    // On a hybrid host (cgroup2 at /sys/fs/cgroup/unified with no
    // controllers) and a pure one alike: make a cgroup, move a process in,
    // see it there, kill what is left and remove the cgroup; without
    // controllers, ask for a limit and get a clear error.
    let Some(mount) = cgroup2_mount() else {
        eprintln!("needs a cgroup2 mount (hybrid or pure v2 host): skipped");
        return;
    };
    let layout = Layout::V2 {
        mount: mount.clone(),
        own: PathBuf::from("/"),
    };
    let parent = format!("berth-test-v2-{}", std::process::id());
    let path = format!("/{parent}/c");
    let cg = Cgroup::new(layout, &path).unwrap();
    let _cleanup = Cleanup(vec![(cg.clone(), vec![mount.join(&parent)])]);
    cg.create(None).unwrap();
    let dir = mount.join(path.trim_start_matches('/'));
    assert!(dir.join("cgroup.procs").exists());
    let mut child = spawn_sleeper();
    cg.add(child.id() as i32).unwrap();
    assert_eq!(cg.procs(), vec![child.id() as i32]);
    cg.destroy().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
    assert!(!dir.exists());
    let available = fs::read_to_string(mount.join("cgroup.controllers")).unwrap();
    if !available.contains("pids") {
        let e = cg.create(Some(&limits())).unwrap_err().to_string();
        assert!(e.contains("controller is not available"), "{e}");
    }
}

/// v1's memory.swappiness and memory.oom_control from the spec; dockerd's
/// `disableOOMKiller: false` alone makes no memory cgroup setting.
#[test]
fn v1_for_real_swappiness_and_oom_killer() {
    let layout = Layout::detect().unwrap();
    let Layout::V1(hs) = &layout else {
        eprintln!("needs a cgroup v1 host (this machine kind): skipped");
        return;
    };
    let Some(mem) = hs
        .iter()
        .find(|h| h.controllers.iter().any(|c| c == "memory"))
    else {
        eprintln!("no v1 memory controller: skipped");
        return;
    };
    let path = format!("/berth-test/swap-{}", std::process::id());
    let cg = Cgroup::new(layout.clone(), &path).unwrap();
    let mut r = LinuxResources::default();
    let mut m = LinuxMemory::default();
    m.set_swappiness(Some(10));
    m.set_disable_oom_killer(Some(true));
    r.set_memory(Some(m));
    assert!(berth_runtime::cgroups::has_limits(&r));
    cg.create(Some(&r)).unwrap();
    let dir = mem.mount.join(path.trim_start_matches('/'));
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap();
    assert_eq!(read("memory.swappiness").trim(), "10");
    assert!(read("memory.oom_control").contains("oom_kill_disable 1"));
    m.set_swappiness(Some(101));
    r.set_memory(Some(m));
    assert!(
        cg.create(Some(&r))
            .unwrap_err()
            .to_string()
            .contains("above 100")
    );
    cg.destroy().unwrap();
    let mut m = LinuxMemory::default();
    m.set_disable_oom_killer(Some(false));
    let mut r = LinuxResources::default();
    r.set_memory(Some(m));
    assert!(!berth_runtime::cgroups::has_limits(&r));
}

/// Hugepage and network limits are applied where their controllers are,
/// and refused with a clear error where they are not: never dropped.
#[test]
fn hugepage_and_network_limits_are_applied_or_refused() {
    let layout = Layout::detect().unwrap();
    let has = |c: &str| match &layout {
        Layout::V1(hs) => hs.iter().any(|h| h.controllers.iter().any(|x| x == c)),
        Layout::V2 { .. } => c == "hugetlb",
    };
    let path = format!("/berth-test/hn-{}", std::process::id());
    let hp: LinuxResources =
        serde_json::from_str(r#"{"hugepageLimits":[{"pageSize":"2MB","limit":4194304}]}"#).unwrap();
    let net: LinuxResources = serde_json::from_str(r#"{"network":{"classID":1048577}}"#).unwrap();
    assert!(berth_runtime::cgroups::has_limits(&hp) && berth_runtime::cgroups::has_limits(&net));
    for (res, controller) in [(&hp, "hugetlb"), (&net, "net_cls")] {
        let cg = Cgroup::new(layout.clone(), &path).unwrap();
        let r = cg.create(Some(res));
        if has(controller) && r.is_ok() {
            let _ = cg.destroy();
            continue;
        }
        let _ = cg.destroy();
        let e = r.expect_err(controller).to_string();
        assert!(
            e.contains(controller) || e.contains("hugetlb"),
            "{controller}: {e}"
        );
    }
}

#[test]
fn v1_for_real_limits_placement_oom_flag_and_removal() {
    let layout = Layout::detect().unwrap();
    let Layout::V1(hs) = &layout else {
        eprintln!("needs a cgroup v1 host (this machine kind): skipped");
        return;
    };
    assert!(hs.iter().any(|h| h.controllers == ["memory"]));
    let parent = format!("berth-test-v1-{}", std::process::id());
    let path = format!("/{parent}/c");
    let cg = Cgroup::new(layout.clone(), &path).unwrap();
    let _cleanup = Cleanup(vec![(
        cg.clone(),
        hs.iter().map(|h| h.mount.join(&parent)).collect(),
    )]);
    cg.create(Some(&limits())).unwrap();
    let rel = path.trim_start_matches('/');
    let read = |ctl: &str, f: &str| {
        fs::read_to_string(Path::new("/sys/fs/cgroup").join(ctl).join(rel).join(f))
            .unwrap()
            .trim()
            .to_string()
    };
    assert_eq!(
        read("memory", "memory.limit_in_bytes"),
        (32u64 << 20).to_string()
    );
    assert_eq!(
        read("memory", "memory.memsw.limit_in_bytes"),
        (64u64 << 20).to_string()
    );
    assert_eq!(
        read("memory", "memory.soft_limit_in_bytes"),
        (16u64 << 20).to_string()
    );
    assert_eq!(read("cpu", "cpu.cfs_quota_us"), "50000");
    assert_eq!(read("cpu", "cpu.shares"), "512");
    assert_eq!(read("cpuset", "cpuset.cpus"), "0");
    assert_eq!(read("pids", "pids.max"), "50");
    let mut child = spawn_sleeper();
    cg.add(child.id() as i32).unwrap();
    assert!(cg.procs().contains(&(child.id() as i32)));
    assert!(!cg.oom_killed());
    cg.destroy().unwrap();
    child.wait().unwrap();
    for d in cg.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

/// A shell in `cgroup_dir` (joined before exec): opens /dev/null and
/// /dev/kmsg, saying which it could.
fn open_devices_in(cgroup_dir: &Path) -> String {
    use std::os::unix::process::CommandExt;
    let procs = std::ffi::CString::new(cgroup_dir.join("cgroup.procs").to_str().unwrap()).unwrap();
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        ": < /dev/null && echo null; : < /dev/kmsg && echo kmsg; true",
    ]);
    // SAFETY: pre_exec runs in the forked child; open/write/close are
    // async-signal-safe and use only memory prepared before the fork.
    unsafe {
        cmd.pre_exec(move || {
            let fd = libc::open(procs.as_ptr(), libc::O_WRONLY);
            if fd < 0 || libc::write(fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            libc::close(fd);
            Ok(())
        });
    }
    let out = cmd.stderr(std::process::Stdio::null()).output().unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One device-cgroup rule; no major or minor is a wildcard.
fn rule(
    allow: bool,
    typ: oci_spec::runtime::LinuxDeviceType,
    major: Option<i64>,
    minor: Option<i64>,
    access: &str,
) -> oci_spec::runtime::LinuxDeviceCgroup {
    let mut b = oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
        .allow(allow)
        .typ(typ)
        .access(access);
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    b.build().unwrap()
}

#[test]
fn v2_device_filter_for_real_on_this_hosts_cgroup2_mount() {
    // eBPF device programs work on any cgroup2 directory, controllers or
    // not: a hybrid host's unified mount proves the filter for real too.
    let Some(mount) = cgroup2_mount() else {
        eprintln!("needs a cgroup2 mount (hybrid or pure v2 host): skipped");
        return;
    };
    use oci_spec::runtime::LinuxDeviceType;
    let mut res = LinuxResources::default();
    res.set_devices(Some(vec![
        rule(false, LinuxDeviceType::A, None, None, "rwm"),
        rule(true, LinuxDeviceType::C, None, None, "m"),
        rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"),
    ]));
    let layout = Layout::V2 {
        mount: mount.clone(),
        own: PathBuf::from("/"),
    };
    let parent = format!("berth-test-dev-{}", std::process::id());
    let filtered = Cgroup::new(layout.clone(), &format!("/{parent}/filtered")).unwrap();
    let open = Cgroup::new(layout, &format!("/{parent}/open")).unwrap();
    let _cleanup = Cleanup(vec![
        (filtered.clone(), vec![]),
        (open.clone(), vec![mount.join(&parent)]),
    ]);
    filtered.create(Some(&res)).unwrap();
    let out = open_devices_in(&filtered.dirs()[0]);
    filtered.destroy().unwrap();
    assert_eq!(out, "null\n", "kmsg must be refused, null allowed");
    // Twin: the same cgroup without rules lets both open.
    open.create(None).unwrap();
    let out = open_devices_in(&open.dirs()[0]);
    open.destroy().unwrap();
    assert_eq!(out, "null\nkmsg\n");
}

#[test]
fn used_hierarchies_only_for_a_container_without_cap_sys_admin() {
    if !Path::new("/sys/fs/cgroup/freezer").is_dir() {
        eprintln!("no cgroup v1 freezer hierarchy: skipped");
        return;
    }
    // The annotation asks for the hierarchies its limits use only; with
    // CAP_SYS_ADMIN in its bounding set the container could mount one it
    // is not in and find the host's release_agent, so the runtime refuses.
    // Seen from the host: the container's cgroup in the freezer hierarchy.
    let freezer_of = |sys_admin: bool| {
        let mut b = common::Bundle::sh("echo ready; exec sleep 600");
        b.config["annotations"] =
            serde_json::json!({ berth_runtime::cgroups::V1_HIERARCHIES: "used" });
        if sys_admin {
            b.config["process"]["capabilities"]["bounding"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!("CAP_SYS_ADMIN"));
        }
        let want = b.config["linux"]["cgroupsPath"]
            .as_str()
            .unwrap()
            .to_string();
        let pidfile = b.path().join("pid");
        let mut cmd = b.command(false);
        cmd.env("BERTH_TEST_PIDFILE", &pidfile)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        let pid = common::wait_for_pidfile(&pidfile);
        let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap();
        // SAFETY: plain kill of the container's PID 1.
        unsafe { libc::kill(pid, libc::SIGKILL) };
        let _ = child.wait();
        let freezer = cgroup
            .lines()
            .find(|l| l.contains(":freezer:"))
            .unwrap_or_default()
            .to_string();
        (freezer.ends_with(&want), freezer)
    };
    let (own, line) = freezer_of(false);
    assert!(!own, "joined the freezer hierarchy without need: {line}");
    let (own, line) = freezer_of(true);
    assert!(
        own,
        "with CAP_SYS_ADMIN not in its own freezer cgroup: {line}"
    );
}

#[test]
fn v2_device_filter_with_many_rules_loads_and_filters() {
    // A filter far longer than Docker's default list (what a few --device
    // flags add up to): the kernel's verifier log for it is many KB, and a
    // load must not depend on how much the verifier has to say.
    let Some(mount) = cgroup2_mount() else {
        eprintln!("needs a cgroup2 mount (hybrid or pure v2 host): skipped");
        return;
    };
    use oci_spec::runtime::LinuxDeviceType;
    let mut rules = vec![rule(false, LinuxDeviceType::A, None, None, "rwm")];
    // 200 rules for devices no test opens: block and char, partial access.
    for i in 0..200 {
        let typ = if i % 2 == 0 {
            LinuxDeviceType::C
        } else {
            LinuxDeviceType::B
        };
        rules.push(rule(true, typ, Some(200 + i / 50), Some(i), "rw"));
    }
    rules.push(rule(true, LinuxDeviceType::C, Some(1), Some(3), "rwm"));
    let mut res = LinuxResources::default();
    res.set_devices(Some(rules));
    let layout = Layout::V2 {
        mount: mount.clone(),
        own: PathBuf::from("/"),
    };
    let parent = format!("berth-test-devmany-{}", std::process::id());
    let cg = Cgroup::new(layout, &format!("/{parent}/c")).unwrap();
    let _cleanup = Cleanup(vec![(cg.clone(), vec![mount.join(&parent)])]);
    cg.create(Some(&res)).unwrap();
    let out = open_devices_in(&cg.dirs()[0]);
    cg.destroy().unwrap();
    assert_eq!(out, "null\n", "kmsg must be refused, null allowed");
}

#[test]
fn v2_for_real_limits_placement_oom_flag_and_removal() {
    // The v1 test's twin, on a pure v2 host (fixture/v2vm.sh's VM): the
    // kernel takes the values berth writes, in the files it writes them to.
    let layout = Layout::detect().unwrap();
    let Layout::V2 { mount, .. } = &layout else {
        eprintln!("needs a pure cgroup v2 host (fixture/v2vm.sh): skipped");
        return;
    };
    let parent = format!("berth-test-v2lim-{}", std::process::id());
    let path = format!("/{parent}/c");
    let cg = Cgroup::new(layout.clone(), &path).unwrap();
    let _cleanup = Cleanup(vec![(cg.clone(), vec![mount.join(&parent)])]);
    cg.create(Some(&limits())).unwrap();
    let dir = mount.join(path.trim_start_matches('/'));
    let read = |f: &str| fs::read_to_string(dir.join(f)).unwrap().trim().to_string();
    assert_eq!(read("memory.max"), (32u64 << 20).to_string());
    assert_eq!(read("memory.low"), (16u64 << 20).to_string());
    if dir.join("memory.swap.max").exists() {
        assert_eq!(read("memory.swap.max"), (32u64 << 20).to_string());
    }
    assert_eq!(read("cpu.max"), "50000 100000");
    assert_eq!(read("cpu.weight"), "20");
    assert_eq!(read("cpuset.cpus"), "0");
    assert_eq!(read("pids.max"), "50");
    let mut child = spawn_sleeper();
    cg.add(child.id() as i32).unwrap();
    assert_eq!(cg.procs(), vec![child.id() as i32]);
    assert!(!cg.oom_killed());
    cg.destroy().unwrap();
    child.wait().unwrap();
    assert!(!dir.exists(), "{} left behind", dir.display());
}

/// A container's cgroup with a cgroup of its own inside (as systemd or an
/// engine in a container makes), a process in each: removal kills both
/// and leaves no directory, whatever the container made.
fn nested_cgroups_are_killed_and_removed(layout: Layout, name: &str) {
    let parent = format!("berth-test-{name}-{}", std::process::id());
    let cg = Cgroup::new(layout, &format!("/{parent}/c")).unwrap();
    let parents = cg
        .dirs()
        .iter()
        .map(|d| d.parent().unwrap().to_path_buf())
        .collect();
    let _cleanup = Cleanup(vec![(cg.clone(), parents)]);
    cg.create(None).unwrap();
    let mut top = spawn_sleeper();
    cg.add(top.id() as i32).unwrap();
    let mut inner = spawn_sleeper();
    for d in cg.dirs() {
        let mut sub = d.clone();
        for part in ["sub", "deeper"] {
            let above = sub.clone();
            sub.push(part);
            fs::create_dir(&sub).unwrap();
            // A v1 cpuset cgroup starts with no CPUs, which no process may join.
            for f in ["cpuset.cpus", "cpuset.mems"] {
                if let Ok(v) = fs::read_to_string(above.join(f))
                    && sub.join(f).exists()
                {
                    fs::write(sub.join(f), v.trim()).unwrap();
                }
            }
        }
        fs::write(sub.join("cgroup.procs"), inner.id().to_string()).unwrap();
    }
    cg.destroy().unwrap();
    for child in [&mut top, &mut inner] {
        let status = child.wait().unwrap();
        assert_eq!(
            std::os::unix::process::ExitStatusExt::signal(&status),
            Some(9)
        );
    }
    for d in cg.dirs() {
        assert!(!d.exists(), "{} left behind", d.display());
    }
}

#[test]
fn nested_cgroups_go_with_the_container_on_this_hosts_layout() {
    nested_cgroups_are_killed_and_removed(Layout::detect().unwrap(), "nest");
}

#[test]
fn nested_cgroups_go_with_the_container_on_a_cgroup2_mount() {
    let Some(mount) = cgroup2_mount() else {
        eprintln!("needs a cgroup2 mount (hybrid or pure v2 host): skipped");
        return;
    };
    let layout = Layout::V2 {
        mount,
        own: PathBuf::from("/"),
    };
    nested_cgroups_are_killed_and_removed(layout, "nest2");
}

/// CPU time (utime + stime, in ticks) process `pid` has used.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 of stat(5), counted from the state (field 3).
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

/// A busy loop in a cgroup stops using CPU while it is frozen and goes on
/// once thawed; removal kills it frozen or not.
fn freeze_stops_and_thaw_resumes(layout: Layout, name: &str) {
    let parent = format!("berth-test-{name}-{}", std::process::id());
    let cg = Cgroup::new(layout, &format!("/{parent}/c")).unwrap();
    let parents = cg
        .dirs()
        .iter()
        .map(|d| d.parent().unwrap().to_path_buf())
        .collect();
    let _cleanup = Cleanup(vec![(cg.clone(), parents)]);
    cg.create(None).unwrap();
    let mut spin = std::process::Command::new("sh")
        .args(["-c", "while :; do :; done"])
        .spawn()
        .unwrap();
    cg.add(spin.id() as i32).unwrap();
    let pause = || std::thread::sleep(std::time::Duration::from_millis(300));
    cg.freeze(true).unwrap();
    let t1 = cpu_ticks(spin.id());
    pause();
    assert_eq!(cpu_ticks(spin.id()), t1, "it ran while frozen");
    cg.freeze(false).unwrap();
    pause();
    assert!(cpu_ticks(spin.id()) > t1, "it did not run once thawed");
    cg.freeze(true).unwrap();
    cg.destroy().unwrap();
    let status = spin.wait().unwrap();
    assert_eq!(
        std::os::unix::process::ExitStatusExt::signal(&status),
        Some(9)
    );
}

#[test]
fn freeze_and_thaw_on_this_hosts_layout() {
    freeze_stops_and_thaw_resumes(Layout::detect().unwrap(), "freeze");
}

#[test]
fn freeze_and_thaw_on_a_cgroup2_mount() {
    let Some(mount) = cgroup2_mount() else {
        eprintln!("needs a cgroup2 mount (hybrid or pure v2 host): skipped");
        return;
    };
    let layout = Layout::V2 {
        mount,
        own: PathBuf::from("/"),
    };
    freeze_stops_and_thaw_resumes(layout, "freeze2");
}
