//! cgroups: the container's own cgroup with its limits, on cgroup v1 (and
//! hybrid hosts, where the v1 controllers do the work) and v2, behind one
//! interface chosen at run time from what is mounted; and the container's
//! view of /sys/fs/cgroup.
//!
//! The cgroup is made and limited before the process starts. On v2 the
//! child is cloned straight into it (CLONE_INTO_CGROUP: no migration); on
//! v1 the child moves itself in (writing 0 to each hierarchy's `tasks`) as
//! soon as it has `G`. The child then unshares its cgroup namespace, so the
//! container sees its own cgroup as /.

mod blockio;
mod devices;
mod mount;
mod stats;
mod v1;
mod v2;

pub use stats::Stats;

pub(crate) use mount::mount_cgroupfs;
use oci_spec::runtime::LinuxResources;
use rustix::fs::OFlags;
use rustix::process::{Pid, Signal};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Component, Path, PathBuf};

/// Where the cgroup hierarchies are, as this process sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1 (or hybrid): one mount per hierarchy of controllers.
    V1(Vec<Hierarchy>),
    /// cgroup v2: one unified hierarchy.
    V2 {
        /// Its mount point (normally /sys/fs/cgroup).
        mount: PathBuf,
        /// This process's own cgroup in it (relative paths start there).
        own: PathBuf,
    },
}

/// What a container's /sys/fs/cgroup shows on v1: these hierarchies, each
/// mounted afresh (rooted at its cgroup namespace), or with `bind` the
/// container's own cgroup (that path under each hierarchy) bound from the
/// host's, as runc does for a container without a cgroup namespace, which
/// would otherwise see every hierarchy from its root (dockerd on v1).
#[derive(Debug, Clone)]
pub(crate) struct V1View {
    pub hierarchies: Vec<Hierarchy>,
    pub bind: Option<PathBuf>,
}

/// One v1 hierarchy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Mount point, e.g. /sys/fs/cgroup/memory.
    pub mount: PathBuf,
    /// Controllers bound to it, e.g. ["cpu", "cpuacct"].
    pub controllers: Vec<String>,
    /// This process's own cgroup in it.
    pub own: PathBuf,
}

/// Spec annotation: `used` asks a v1 host to put the container only in the
/// hierarchies of the controllers its resources use (devices for its
/// allow-list, memory for a memory limit, …), and to mount only those in
/// its /sys/fs/cgroup. Making a cgroup costs the kernel about 0.1 ms per
/// hierarchy (0.5 ms of a 8.5 ms start here); most containers use one of
/// the ten. Without it (or `all`), every hierarchy, as runc does. No effect
/// on cgroup v2.
///
/// Only for a container that can never mount a cgroup filesystem: in a
/// hierarchy it is not in, its cgroup namespace is rooted at the host's
/// root, whose `release_agent` the host runs as root (CVE-2022-0492). The
/// runtime honours it only when the bounding set lacks CAP_SYS_ADMIN; the
/// caller must also know that no new user namespace can be made (berth's
/// default seccomp profile refuses them without CAP_SYS_ADMIN).
pub const V1_HIERARCHIES: &str = "org.berth.cgroup.v1-hierarchies";

/// Annotation: `disabled` makes no cgroup for the container, which stays
/// in its creator's cgroups (podman's `--cgroups disabled`); a spec that
/// sets limits is then refused. Its device rules go unenforced too: what
/// devices it may open is its creator's cgroup's business (an engine run
/// in a container: the outer container's). Its cgroup namespace and
/// /sys/fs/cgroup are rooted at the creator's cgroups.
pub const MODE: &str = "org.berth.cgroups";

/// The v1 controllers `res` needs a cgroup in.
fn used_controllers(res: Option<&LinuxResources>) -> Vec<&'static str> {
    let Some(res) = res else {
        return Vec::new();
    };
    let mut used = Vec::new();
    if res.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        used.push("devices");
    }
    if res.memory().as_ref().is_some_and(memory_wanted) {
        used.push("memory");
    }
    if let Some(c) = res.cpu() {
        if c.shares().is_some() || c.quota().is_some() || c.period().is_some() {
            // With its accounting, where a host mounts it on its own.
            used.extend(["cpu", "cpuacct"]);
        }
        if c.cpus().is_some() || c.mems().is_some() {
            used.push("cpuset");
        }
    }
    if res.pids().is_some() {
        used.push("pids");
    }
    if res
        .hugepage_limits()
        .as_ref()
        .is_some_and(|h| !h.is_empty())
    {
        used.push("hugetlb");
    }
    if res.block_io().is_some() {
        used.push("blkio");
    }
    if let Some(n) = res.network() {
        if n.class_id().is_some() {
            used.push("net_cls");
        }
        if n.priorities().as_ref().is_some_and(|p| !p.is_empty()) {
            used.push("net_prio");
        }
    }
    used
}

impl Layout {
    /// On v1, only the hierarchies whose controllers `res` uses (see
    /// [`V1_HIERARCHIES`]); v2 as it is.
    pub fn used_by(self, res: Option<&LinuxResources>) -> Layout {
        match self {
            Layout::V1(hs) => {
                let res = res.map(zeros_unset);
                let used = used_controllers(res.as_ref());
                Layout::V1(
                    hs.into_iter()
                        .filter(|h| h.controllers.iter().any(|c| used.contains(&c.as_str())))
                        .collect(),
                )
            }
            v2 => v2,
        }
    }

    /// What this host has: v2 when /sys/fs/cgroup is cgroup2, otherwise the
    /// v1 hierarchies from /proc/self/mountinfo. On a hybrid host the
    /// cgroup2 mount at /sys/fs/cgroup/unified is left alone: the v1
    /// controllers hold the limits there.
    pub fn detect() -> io::Result<Layout> {
        let own = std::fs::read_to_string("/proc/self/cgroup")?;
        if fs_magic(Path::new("/sys/fs/cgroup"))? == CGROUP2_SUPER_MAGIC {
            let own = own
                .lines()
                .find_map(|l| l.strip_prefix("0::"))
                .unwrap_or("/");
            return Ok(Layout::V2 {
                mount: PathBuf::from("/sys/fs/cgroup"),
                own: PathBuf::from(own),
            });
        }
        let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")?;
        Ok(Layout::V1(v1_hierarchies(&mountinfo, &own)))
    }

    /// Whether this is cgroup v2.
    pub fn is_v2(&self) -> bool {
        matches!(self, Layout::V2 { .. })
    }
}

/// The v1 hierarchies in `mountinfo`, with this process's place in each
/// (from `proc_cgroup`, the content of /proc/self/cgroup). Named
/// hierarchies without controllers (name=systemd) count too: they limit
/// nothing, but their root has a `release_agent` like any other, so the
/// container needs a cgroup of its own there as well (CVE-2022-0492).
fn v1_hierarchies(mountinfo: &str, proc_cgroup: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let mut post = post.split(' ');
        if post.next() != Some("cgroup") {
            continue;
        }
        let superopts = post.nth(1).unwrap_or("");
        let Some(mount) = pre.split(' ').nth(4) else {
            continue;
        };
        let mut controllers: Vec<String> = superopts
            .split(',')
            .filter(|o| v1::CONTROLLERS.contains(o) || o.starts_with("name="))
            .map(str::to_string)
            .collect();
        if controllers.is_empty() || out.iter().any(|h| h.controllers == controllers) {
            continue;
        }
        controllers.sort();
        let own = proc_cgroup
            .lines()
            .filter_map(|l| {
                let mut f = l.splitn(3, ':');
                let (_, names, path) = (f.next()?, f.next()?, f.next()?);
                let mut names: Vec<&str> = names.split(',').collect();
                names.sort();
                (names == controllers).then(|| PathBuf::from(path))
            })
            .next()
            .unwrap_or_else(|| PathBuf::from("/"));
        out.push(Hierarchy {
            mount: PathBuf::from(mount.replace("\\040", " ")),
            controllers,
            own,
        });
    }
    out
}

/// Turn an OCI `cgroupsPath` into a path relative to each hierarchy's root:
/// `/a/b` is taken from the root, `a/b` from this process's own cgroup, and
/// the systemd form `slice:prefix:name` becomes
/// `<slice expanded>/<prefix>-<name>.scope` (`a-b.slice` is
/// `a.slice/a-b.slice`), which is where systemd would put it. `..` is
/// refused: the path must stay inside the hierarchy.
pub fn resolve_path(cgroups_path: &str, own: &Path) -> io::Result<PathBuf> {
    let bad = |why: &str| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid cgroupsPath {cgroups_path:?}: {why}"),
        )
    };
    let parts: Vec<&str> = cgroups_path.split(':').collect();
    let rel = if parts.len() == 3 && !cgroups_path.starts_with('/') {
        let (slice, prefix, name) = (parts[0], parts[1], parts[2]);
        let slice = if slice.is_empty() {
            "system.slice"
        } else {
            slice
        };
        let stem = slice
            .strip_suffix(".slice")
            .ok_or_else(|| bad("a systemd parent must end in .slice"))?;
        let mut p = PathBuf::new();
        if stem != "-" {
            let mut acc = String::new();
            for piece in stem.split('-') {
                if piece.is_empty() {
                    return Err(bad("empty part in slice name"));
                }
                if !acc.is_empty() {
                    acc.push('-');
                }
                acc.push_str(piece);
                p.push(format!("{acc}.slice"));
            }
        }
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        p.push(unit);
        p
    } else if let Some(abs) = cgroups_path.strip_prefix('/') {
        PathBuf::from(abs)
    } else {
        own.strip_prefix("/").unwrap_or(own).join(cgroups_path)
    };
    let mut clean = PathBuf::new();
    for c in rel.components() {
        match c {
            Component::Normal(n) => clean.push(n),
            Component::CurDir => {}
            _ => return Err(bad("it must not leave the cgroup hierarchy")),
        }
    }
    if clean.as_os_str().is_empty() {
        return Err(bad("it names the root cgroup"));
    }
    Ok(clean)
}

/// A container's cgroup, in every hierarchy it uses.
#[derive(Debug, Clone)]
pub struct Cgroup {
    layout: Layout,
    /// Relative to each hierarchy's mount point.
    rel: PathBuf,
}

impl Cgroup {
    /// The cgroup at `cgroups_path` (see [`resolve_path`]) in `layout`.
    pub fn new(layout: Layout, cgroups_path: &str) -> io::Result<Cgroup> {
        let own = match &layout {
            Layout::V2 { own, .. } => own.clone(),
            // Relative paths start at the process's own cgroup; take the
            // memory hierarchy's, the one that matters most for limits.
            Layout::V1(hs) => hs
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == "memory"))
                .or(hs.first())
                .map(|h| h.own.clone())
                .unwrap_or_else(|| PathBuf::from("/")),
        };
        let rel = resolve_path(cgroups_path, &own)?;
        Ok(Cgroup { layout, rel })
    }

    /// A cgroup already resolved (`rel` as [`Cgroup::rel`] gave it).
    pub fn from_rel(layout: Layout, rel: &Path) -> io::Result<Cgroup> {
        Cgroup::new(layout, &format!("/{}", rel.display()))
    }

    /// Whether this is a cgroup v2 cgroup.
    pub fn is_v2(&self) -> bool {
        self.layout.is_v2()
    }

    /// The same cgroup in only the hierarchies `res` uses (see
    /// [`V1_HIERARCHIES`]).
    pub fn used_by(self, res: Option<&LinuxResources>) -> Cgroup {
        Cgroup {
            layout: self.layout.used_by(res),
            rel: self.rel,
        }
    }

    /// The v1 hierarchies the cgroup is in (None on v2).
    pub fn v1_hierarchies(&self) -> Option<&[Hierarchy]> {
        match &self.layout {
            Layout::V1(hs) => Some(hs),
            Layout::V2 { .. } => None,
        }
    }

    /// The path relative to the hierarchy roots (what `state.json` keeps).
    pub fn rel(&self) -> &Path {
        &self.rel
    }

    /// The cgroup's directories, one per hierarchy.
    pub fn dirs(&self) -> Vec<PathBuf> {
        match &self.layout {
            Layout::V2 { mount, .. } => vec![mount.join(&self.rel)],
            Layout::V1(hs) => hs.iter().map(|h| h.mount.join(&self.rel)).collect(),
        }
    }

    /// The first hierarchy (its mount point) the cgroup would be in that is
    /// mounted read-only, as Docker mounts them in a container.
    pub fn read_only_hierarchy(&self) -> Option<PathBuf> {
        let mounts: Vec<&Path> = match &self.layout {
            Layout::V2 { mount, .. } => vec![mount],
            Layout::V1(hs) => hs.iter().map(|h| h.mount.as_path()).collect(),
        };
        mounts
            .into_iter()
            .find(|m| {
                rustix::fs::statvfs(*m)
                    .is_ok_and(|st| st.f_flag.contains(rustix::fs::StatVfsMountFlags::RDONLY))
            })
            .map(Path::to_path_buf)
    }

    /// Make the cgroup and apply `resources`. An existing cgroup is reused
    /// (its limits rewritten), as runc does.
    pub fn create(&self, resources: Option<&LinuxResources>) -> io::Result<()> {
        let res = resources.map(zeros_unset).unwrap_or_default();
        let res = &res;
        match &self.layout {
            Layout::V2 { mount, .. } => v2::create(mount, &self.rel, res),
            Layout::V1(hs) => v1::create(hs, &self.rel, res),
        }
    }

    /// The v2 cgroup's directory, opened for CLONE_INTO_CGROUP.
    pub(crate) fn open_v2(&self) -> io::Result<Option<OwnedFd>> {
        match &self.layout {
            Layout::V2 { mount, .. } => {
                let dir = mount.join(&self.rel);
                Ok(Some(
                    crate::sys::open(&dir, OFlags::PATH | OFlags::DIRECTORY)
                        .map_err(|e| with_path(e, &dir))?,
                ))
            }
            Layout::V1(_) => Ok(None),
        }
    }

    /// v1: each hierarchy's `tasks` file, opened for the child to write "0"
    /// to: a thread moving itself skips the global threadgroup lock (and
    /// its RCU grace period, several ms) that writing a pid to
    /// `cgroup.procs` takes. Empty on v2, where the child is cloned in.
    pub(crate) fn open_v1_tasks(&self) -> io::Result<Vec<OwnedFd>> {
        match &self.layout {
            Layout::V2 { .. } => Ok(Vec::new()),
            Layout::V1(_) => self
                .dirs()
                .iter()
                .map(|d| {
                    let p = d.join("tasks");
                    crate::sys::open(&p, OFlags::WRONLY).map_err(|e| with_path(e, &p))
                })
                .collect(),
        }
    }

    /// Move process `pid` into the cgroup (every hierarchy).
    pub fn add(&self, pid: i32) -> io::Result<()> {
        for d in self.dirs() {
            write(&d, "cgroup.procs", &pid.to_string())?;
        }
        Ok(())
    }

    /// PIDs in the cgroup (from the first hierarchy that has it).
    pub fn procs(&self) -> Vec<i32> {
        let mut out: Vec<i32> = Vec::new();
        for d in self.dirs() {
            if let Ok(s) = std::fs::read_to_string(d.join("cgroup.procs")) {
                out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
                if !out.is_empty() {
                    break;
                }
            }
        }
        out
    }

    /// Whether the kernel's OOM killer killed a process of this cgroup
    /// (false when it has no memory controller to say so).
    pub fn oom_killed(&self) -> bool {
        let (file, dir) = match &self.layout {
            Layout::V2 { mount, .. } => ("memory.events", mount.join(&self.rel)),
            Layout::V1(hs) => match hs
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == "memory"))
            {
                Some(h) => ("memory.oom_control", h.mount.join(&self.rel)),
                None => return false,
            },
        };
        std::fs::read_to_string(dir.join(file)).is_ok_and(|s| {
            s.lines().any(|l| {
                l.split_once(' ').is_some_and(|(k, v)| {
                    k == "oom_kill" && v.trim().parse::<u64>().unwrap_or(0) > 0
                })
            })
        })
    }

    /// On v1, gives the cgroup a freezer if it has none yet: a container
    /// made in only the hierarchies its limits use ([`V1_HIERARCHIES`])
    /// gets one when first paused, every process of it moved in, again
    /// until none is left out (a process forked meanwhile shows up in the
    /// next listing, its parent already moved).
    pub fn ensure_freezer(&self) -> io::Result<()> {
        let Layout::V1(hs) = &self.layout else {
            return Ok(());
        };
        let is_freezer = |h: &Hierarchy| h.controllers.iter().any(|c| c == "freezer");
        let Some(fz) = hs.iter().find(|h| is_freezer(h)) else {
            return Ok(());
        };
        let dir = fz.mount.join(&self.rel);
        if dir.exists() {
            return Ok(());
        }
        let others: Vec<PathBuf> = hs
            .iter()
            .filter(|h| !is_freezer(h))
            .map(|h| h.mount.join(&self.rel))
            .filter(|d| d.exists())
            .collect();
        if others.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the container has no cgroup to find its processes in",
            ));
        }
        std::fs::create_dir_all(&dir)?;
        let listed = |d: &Path| -> Vec<i32> {
            std::fs::read_to_string(d.join("cgroup.procs"))
                .map(|s| s.lines().filter_map(|l| l.trim().parse().ok()).collect())
                .unwrap_or_default()
        };
        for _ in 0..100 {
            let inside: std::collections::HashSet<i32> = listed(&dir).into_iter().collect();
            let missing: Vec<i32> = listed(&others[0])
                .into_iter()
                .filter(|p| !inside.contains(p))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            for pid in missing {
                // A process that exited meanwhile is no longer there to move.
                let _ = write(&dir, "cgroup.procs", &pid.to_string());
            }
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{}: processes kept appearing", dir.display()),
        ))
    }

    /// Freeze (or thaw) every process in the cgroup, for `pause`: v2's
    /// `cgroup.freeze`, v1's freezer controller. Returns once the kernel
    /// says they all are (a task in a system call may take a moment).
    pub fn freeze(&self, frozen: bool) -> io::Result<()> {
        let (dir, file, value, done) = match &self.layout {
            Layout::V2 { mount, .. } => {
                let v = if frozen { "1" } else { "0" };
                (mount.join(&self.rel), "cgroup.freeze", v, None)
            }
            Layout::V1(hs) => {
                let h = hs
                    .iter()
                    .find(|h| h.controllers.iter().any(|c| c == "freezer"))
                    .ok_or_else(|| {
                        io::Error::new(
                            io::ErrorKind::Unsupported,
                            "freezing needs the freezer cgroup controller, which is not mounted",
                        )
                    })?;
                let v = if frozen { "FROZEN" } else { "THAWED" };
                (h.mount.join(&self.rel), "freezer.state", v, Some(v))
            }
        };
        write(&dir, file, value)?;
        for _ in 0..400 {
            let settled = match done {
                Some(state) => std::fs::read_to_string(dir.join(file))?.trim() == state,
                None => std::fs::read_to_string(dir.join("cgroup.events"))?
                    .lines()
                    .any(|l| l == format!("frozen {value}")),
            };
            if settled {
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        Err(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("{}: not {value} after 2 s", dir.join(file).display()),
        ))
    }

    /// Whether the cgroup is frozen (a paused container).
    pub fn is_frozen(&self) -> bool {
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap_or_default();
        match &self.layout {
            Layout::V2 { mount, .. } => {
                read(mount.join(&self.rel).join("cgroup.freeze")).trim() == "1"
            }
            Layout::V1(hs) => hs
                .iter()
                .filter(|h| h.controllers.iter().any(|c| c == "freezer"))
                .any(|h| read(h.mount.join(&self.rel).join("freezer.state")).trim() == "FROZEN"),
        }
    }

    /// Kill whatever is left in the cgroup and remove its directories (the
    /// leaf only: parents like /berth stay for the next container), with
    /// any cgroups made inside it (by systemd or an engine in the
    /// container). Gone already is fine.
    pub fn destroy(&self) -> io::Result<()> {
        let dirs = self.dirs();
        if let Layout::V1(hs) = &self.layout
            && let Some(h) = hs
                .iter()
                .find(|h| h.controllers.iter().any(|c| c == "freezer"))
        {
            // A frozen v1 task dies only once thawed (v2's die frozen).
            let _ = write(&h.mount.join(&self.rel), "freezer.state", "THAWED");
        }
        if self.is_v2() {
            // Linux 5.14+: one write kills the whole subtree, processes
            // forked while it runs included, where a kill loop races them.
            for d in &dirs {
                if d.join("cgroup.kill").exists() {
                    let _ = write(d, "cgroup.kill", "1");
                }
            }
        }
        for attempt in 0..200 {
            let mut procs = Vec::new();
            for d in &dirs {
                procs_below(d, &mut procs);
            }
            if procs.is_empty() {
                break;
            }
            for pid in procs.into_iter().filter_map(Pid::from_raw) {
                let _ = rustix::process::kill_process(pid, Signal::KILL);
            }
            if attempt > 0 {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
        }
        let mut last = Ok(());
        for d in &dirs {
            if let Err(e) = remove_below(d) {
                last = Err(e);
            }
        }
        last
    }
}

/// The PIDs in cgroup `dir` and every cgroup below it.
fn procs_below(dir: &Path, out: &mut Vec<i32>) {
    if let Ok(s) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        out.extend(s.lines().filter_map(|l| l.trim().parse::<i32>().ok()));
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            procs_below(&e.path(), out);
        }
    }
}

/// Remove cgroup `dir` after the cgroups below it (a cgroup with children
/// is busy). A just-killed process may still be on its way out: retry
/// briefly.
fn remove_below(dir: &Path) -> io::Result<()> {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.file_type().is_ok_and(|t| t.is_dir()) {
            remove_below(&e.path())?;
        }
    }
    for attempt in 0..100 {
        match std::fs::remove_dir(dir) {
            Ok(()) => break,
            Err(e) if e.kind() == io::ErrorKind::NotFound => break,
            Err(e) if e.raw_os_error() == Some(libc::EBUSY) && attempt < 99 => {
                std::thread::sleep(std::time::Duration::from_millis(5));
            }
            Err(e) => return Err(with_path(e, dir)),
        }
    }
    Ok(())
}

/// Remove the cgroup at `cgroups_path` (as a spec names it) in every
/// hierarchy, killing any process left in it; gone already is fine.
pub fn remove(cgroups_path: &str) -> io::Result<()> {
    let cg = Cgroup::new(Layout::detect()?, cgroups_path)?;
    if cg.dirs().iter().all(|d| !d.exists()) {
        return Ok(());
    }
    cg.destroy()
}

/// `res` with the zeros that mean "no limit" taken out, as runc reads
/// them: dockerd sends `cpu.shares: 0` and `blockIO.weight: 0` for a
/// container without limits, and a 0 written would be a limit (cpu.shares
/// 0 is clamped to 2, the least CPU there is; blkio weight 0 is refused).
pub fn zeros_unset(res: &LinuxResources) -> LinuxResources {
    let mut r = res.clone();
    if let Some(mut c) = r.cpu().clone() {
        let nz_u = |v: Option<u64>| v.filter(|v| *v != 0);
        let nz_i = |v: Option<i64>| v.filter(|v| *v != 0);
        c.set_shares(nz_u(c.shares()));
        c.set_quota(nz_i(c.quota()));
        c.set_period(nz_u(c.period()));
        c.set_realtime_runtime(nz_i(c.realtime_runtime()));
        c.set_realtime_period(nz_u(c.realtime_period()));
        c.set_cpus(c.cpus().clone().filter(|s| !s.is_empty()));
        c.set_mems(c.mems().clone().filter(|s| !s.is_empty()));
        r.set_cpu(Some(c));
    }
    if let Some(mut m) = *r.memory() {
        let nz = |v: Option<i64>| v.filter(|v| *v != 0);
        m.set_limit(nz(m.limit()));
        m.set_reservation(nz(m.reservation()));
        m.set_swap(nz(m.swap()));
        m.set_kernel(nz(m.kernel()));
        m.set_kernel_tcp(nz(m.kernel_tcp()));
        r.set_memory(Some(m));
    }
    if r.pids().is_some_and(|p| p.limit() == 0) {
        r.set_pids(None);
    }
    if let Some(mut b) = r.block_io().clone() {
        b.set_weight(b.weight().filter(|w| *w != 0));
        b.set_leaf_weight(b.leaf_weight().filter(|w| *w != 0));
        r.set_block_io(Some(b));
    }
    r
}

/// Whether a memory section asks for anything (`disableOOMKiller: false`,
/// which dockerd always sends, does not).
pub(crate) fn memory_wanted(m: &oci_spec::runtime::LinuxMemory) -> bool {
    m.limit().is_some()
        || m.swap().is_some()
        || m.reservation().is_some()
        || m.swappiness().is_some()
        || m.disable_oom_killer() == Some(true)
}

/// Whether `res` limits anything (device rules alone do not count: they
/// are the default of every container).
pub fn has_limits(res: &LinuxResources) -> bool {
    let res = &zeros_unset(res);
    res.memory().as_ref().is_some_and(memory_wanted)
        || res.cpu().as_ref().is_some_and(|c| {
            c.shares().is_some()
                || c.quota().is_some()
                || c.period().is_some()
                || c.cpus().is_some()
                || c.mems().is_some()
        })
        || res.pids().is_some()
        || res.block_io().as_ref().is_some_and(blockio::wanted)
        || res.unified().as_ref().is_some_and(|u| !u.is_empty())
        || res
            .hugepage_limits()
            .as_ref()
            .is_some_and(|h| !h.is_empty())
        || res.network().as_ref().is_some_and(|n| {
            n.class_id().is_some() || n.priorities().as_ref().is_some_and(|p| !p.is_empty())
        })
}

/// Write `value` to the existing cgroup file `dir/name` (never creating
/// it: a missing file means the controller is not there), naming both in
/// any error.
pub(crate) fn write(dir: &Path, name: &str, value: &str) -> io::Result<()> {
    use std::io::Write;
    let path = dir.join(name);
    let res = std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&path)
        .and_then(|mut f| f.write_all(value.as_bytes()));
    res.map_err(|e| {
        let why = match e.raw_os_error() {
            Some(libc::ENOENT) => "no such file (is the controller enabled?)".to_string(),
            _ => crate::error::strip_os_error(&e),
        };
        io::Error::new(
            e.kind(),
            format!("write {value:?} to {}: {why}", path.display()),
        )
    })
}

/// A cgroup directory that could not be made, named, without errno digits.
pub(crate) fn create_failed(e: io::Error, dir: &Path) -> io::Error {
    io::Error::new(e.kind(), format!("create cgroup {}", with_path(e, dir)))
}

fn with_path(e: io::Error, p: &Path) -> io::Error {
    io::Error::new(
        e.kind(),
        format!("{}: {}", p.display(), crate::error::strip_os_error(&e)),
    )
}

const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;

fn fs_magic(p: &Path) -> io::Result<i64> {
    Ok(rustix::fs::statfs(p)?.f_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dockerd's resources for a container without limits.
    #[test]
    fn dockerds_zeros_are_no_limits() {
        let res: LinuxResources = serde_json::from_str(
            r#"{"devices":[{"allow":false,"access":"rwm"}],"memory":{"disableOOMKiller":false},
                "cpu":{"shares":0},"blockIO":{"weight":0}}"#,
        )
        .unwrap();
        assert!(!has_limits(&res));
        let r = zeros_unset(&res);
        assert_eq!(r.cpu().as_ref().unwrap().shares(), None);
        assert_eq!(r.block_io().as_ref().unwrap().weight(), None);
        assert_eq!(r.devices().as_ref().unwrap().len(), 1);
        let limited: LinuxResources =
            serde_json::from_str(r#"{"cpu":{"shares":512},"blockIO":{"weight":300}}"#).unwrap();
        assert!(has_limits(&limited));
        assert_eq!(zeros_unset(&limited), limited);
    }
}
