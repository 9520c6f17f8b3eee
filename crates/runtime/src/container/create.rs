//! `create`: the container's process cloned into its namespaces and
//! cgroup, set up and parked before exec (see `setup` for the child's
//! side), with its state written and, unless it is run in the foreground,
//! handed over to outlive its creator.

use super::{Container, EXEC_FIFO, Io, Live, Supervision, annotation, load_spec, validate_id};
use crate::cgroups::{Cgroup, Layout};
use crate::error::{Context, Error, Result};
use crate::setup::{self, ChildConfig};
use crate::state::{State, Status};
use crate::sync::{self, Msg, Outgoing};
use crate::sys;
use oci_spec::runtime::{LinuxNamespaceType, Spec};
use rustix::fs::OFlags;
use rustix::thread::LinkNameSpaceType;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

/// What `create` was asked for.
struct Request<'a> {
    id: &'a str,
    /// The bundle directory, canonical.
    bundle: &'a Path,
    spec: &'a Spec,
    io: &'a Io,
    supervision: Supervision,
}

/// The spec's root filesystem, canonical.
fn rootfs_of(spec: &Spec, bundle: &Path) -> Result<PathBuf> {
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| Error::setup("config.json has no root"))?;
    let rootfs = bundle.join(root.path());
    std::fs::canonicalize(&rootfs).step(|| format!("rootfs {}", rootfs.display()))
}

/// The spec's namespaces: new ones for clone3, existing ones to join.
struct Namespaces {
    /// CLONE_NEW* flags of the namespaces made at clone (a
    /// LinkNameSpaceType is its CLONE_NEW* flag).
    clone_flags: u64,
    /// A new cgroup namespace: unshared by the child once it is in its
    /// cgroup, so that the cgroup is the namespace's root (see setup.rs).
    unshare_cgroupns: bool,
    /// Existing namespaces (spec namespaces with a path), opened.
    join: Vec<(OwnedFd, LinkNameSpaceType)>,
    /// An existing PID namespace: a process cannot move itself into one,
    /// so the runtime enters it for its children just around the clone.
    join_pid: Option<OwnedFd>,
}

impl Namespaces {
    fn of(spec: &Spec) -> Result<Namespaces> {
        let mut new: u64 = 0;
        let mut join = Vec::new();
        let mut join_pid = None;
        for ns in spec
            .linux()
            .as_ref()
            .and_then(|l| l.namespaces().as_deref())
            .unwrap_or_default()
        {
            use LinkNameSpaceType as T;
            let (typ, name) = match ns.typ() {
                LinuxNamespaceType::Pid => (T::ProcessID, "pid"),
                LinuxNamespaceType::Mount => (T::Mount, "mount"),
                LinuxNamespaceType::Uts => (T::HostNameAndNISDomainName, "uts"),
                LinuxNamespaceType::Ipc => (T::InterProcessCommunication, "ipc"),
                LinuxNamespaceType::Network => (T::Network, "network"),
                LinuxNamespaceType::Cgroup => (T::ControlGroup, "cgroup"),
                LinuxNamespaceType::Time => (T::Time, "time"),
                // The runtime writes its uid/gid maps while the child waits for `G`.
                LinuxNamespaceType::User => (T::User, "user"),
            };
            match ns.path() {
                None => new |= typ as u64,
                Some(p) if typ == T::User => {
                    return Err(Error::setup(format!(
                        "joining an existing {name} namespace ({}) is not supported",
                        p.display()
                    )));
                }
                Some(p) if typ == T::ProcessID => {
                    let fd = sys::open(p, OFlags::RDONLY)
                        .step(|| format!("open {name} namespace {}", p.display()))?;
                    join_pid = Some(fd);
                }
                Some(p) => {
                    let fd = sys::open(p, OFlags::RDONLY)
                        .step(|| format!("open {name} namespace {}", p.display()))?;
                    join.push((fd, typ));
                }
            }
        }
        if new & LinkNameSpaceType::Mount as u64 == 0
            && join.iter().all(|(_, t)| *t != LinkNameSpaceType::Mount)
        {
            return Err(Error::setup("config.json must have a mount namespace"));
        }
        let cgroup = LinkNameSpaceType::ControlGroup as u64;
        Ok(Namespaces {
            clone_flags: new & !cgroup,
            unshare_cgroupns: new & cgroup != 0,
            join,
            join_pid,
        })
    }

    /// Whether clone makes a namespace of this type.
    fn is_new(&self, typ: LinkNameSpaceType) -> bool {
        self.clone_flags & typ as u64 != 0
    }

    /// Without a PID namespace of its own the container sees this process,
    /// and /proc/PID/exe is the runtime's binary: only from a sealed one
    /// (with its own, the trampoline is all it ever runs).
    fn check_exe_unreachable(&self) -> Result<()> {
        if !self.is_new(LinkNameSpaceType::ProcessID) && !crate::exe::is_sealed() {
            return Err(Error::setup(
                "a container without a PID namespace of its own could reach the runtime's \
                 binary through /proc/PID/exe (CVE-2019-5736): run it from a sealed binary \
                 (exe::ensure_sealed) or give it a PID namespace",
            ));
        }
        Ok(())
    }
}

/// The clone, born in an existing PID namespace when the spec names one:
/// this process enters it for its children only (pid_for_children) and
/// goes back to its own right after.
fn clone_into(
    ns: &Namespaces,
    into: Option<std::os::fd::BorrowedFd<'_>>,
) -> std::io::Result<sys::Cloned> {
    let Some(target) = &ns.join_pid else {
        return sys::clone_process(ns.clone_flags, into);
    };
    let own = sys::open(Path::new("/proc/self/ns/pid_for_children"), OFlags::RDONLY)?;
    let pid = Some(LinkNameSpaceType::ProcessID);
    rustix::thread::move_into_link_name_space(target.as_fd(), pid)?;
    let cloned = sys::clone_process(ns.clone_flags, into);
    if let Ok(sys::Cloned::Parent { .. }) = &cloned {
        rustix::thread::move_into_link_name_space(own.as_fd(), pid)?;
    }
    cloned
}

/// `<dir>/exec.fifo`, which `start` writes, opened for the child to read.
fn make_exec_fifo(dir: &Path) -> Result<OwnedFd> {
    let fifo = dir.join(EXEC_FIFO);
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .step(|| format!("mkfifo {}", fifo.display()))?;
    // O_RDWR never blocks on a fifo; the child keeps it and reads.
    sys::open(&fifo, OFlags::RDWR).step(|| format!("open {}", fifo.display()))
}

/// The child runs setup code (malloc included) after a raw clone; another
/// thread holding a lock at that instant would deadlock it. Callers must
/// join their threads first: say so when one did not.
///
/// A joined thread's task lingers in /proc/self/task a moment after
/// pthread_join returns (the kernel wakes the joiner before it removes
/// the task), holding no lock by then: the count is taken again for up to
/// ~10 ms before warning (seen on stderr of a run right after a pull).
fn warn_if_threaded(id: &str) {
    let count = || {
        std::fs::read_dir("/proc/self/task")
            .map(|t| t.count())
            .unwrap_or(1)
    };
    let mut n = count();
    for _ in 0..20 {
        if n <= 1 {
            return;
        }
        std::thread::sleep(std::time::Duration::from_micros(500));
        n = count();
    }
    tracing::warn!("creating container {id} from a process with {n} threads");
}

/// The cgroup's fds for the clone: its v2 directory (CLONE_INTO_CGROUP),
/// its v1 `tasks` files (the child joins them). On failure the cgroup is
/// removed.
fn open_cgroup(cgroup: Option<&Cgroup>) -> Result<(Option<OwnedFd>, Vec<OwnedFd>)> {
    let Some(cg) = cgroup else {
        return Ok((None, Vec::new()));
    };
    cg.open_v2()
        .and_then(|v2| Ok((v2, cg.open_v1_tasks()?)))
        .map_err(|e| {
            let _ = cg.destroy();
            Error::setup(format!("cgroup: {e}"))
        })
}

impl Container {
    /// Create the container: its process is cloned into new namespaces, sets
    /// up its root filesystem and identity, and waits before exec until
    /// [`start`](Self::start). Fails with the child's own error if setup
    /// fails or the command cannot be found.
    ///
    /// Must be called from a single-threaded process (see `sys::clone_process`).
    pub fn create(id: &str, bundle: &Path, state_dir: &Path, io: &Io) -> Result<Container> {
        let spec = load_spec(bundle)?;
        Self::create_with_spec(id, bundle, &spec, state_dir, io)
    }

    /// [`create`](Self::create) with the bundle's spec already in memory
    /// (its caller built it, and need not have it parsed back).
    pub fn create_with_spec(
        id: &str,
        bundle: &Path,
        spec: &Spec,
        state_dir: &Path,
        io: &Io,
    ) -> Result<Container> {
        Self::create_supervised(id, bundle, spec, state_dir, io, Supervision::Detached)
    }

    /// Creates a container that this process holds to the end, as a
    /// foreground run does, for a monitor: its stdio are pipes (or a pty)
    /// whose other ends [`take_streams`](Self::take_streams) and
    /// [`take_pty_master`](Self::take_pty_master) give, its PID 1 is this
    /// process's child (see [`wait`](Self::wait)) and dies with it.
    pub fn create_held(
        id: &str,
        bundle: &Path,
        spec: &Spec,
        state_dir: &Path,
        io: &Io,
    ) -> Result<Container> {
        Self::create_supervised(id, bundle, spec, state_dir, io, Supervision::Foreground)
    }

    pub(crate) fn create_supervised(
        id: &str,
        bundle: &Path,
        spec: &Spec,
        state_dir: &Path,
        io: &Io,
        supervision: Supervision,
    ) -> Result<Container> {
        validate_id(id)?;
        let bundle =
            std::fs::canonicalize(bundle).step(|| format!("bundle {}", bundle.display()))?;
        std::fs::create_dir_all(state_dir)
            .step(|| format!("create state dir {}", state_dir.display()))?;
        let dir = state_dir.join(id);
        match std::fs::create_dir(&dir) {
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::setup(format!("container {id:?} already exists")));
            }
            r => r.step(|| format!("create {}", dir.display()))?,
        }
        let req = Request {
            id,
            bundle: &bundle,
            spec,
            io,
            supervision,
        };
        let result = Self::create_in(&req, &dir);
        if result.is_err() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        result
    }

    /// Everything `create` does in the container's state directory `dir`:
    /// the resources the child is to get, its cgroup, the clone, then the
    /// runtime's side of set-up ([`Self::bring_up`]).
    fn create_in(req: &Request<'_>, dir: &Path) -> Result<Container> {
        let spec = req.spec;
        crate::hooks::check(spec)?;
        // Never run without what was asked for: this runtime has no resctrl.
        if spec
            .linux()
            .as_ref()
            .is_some_and(|l| l.intel_rdt().is_some())
        {
            return Err(Error::setup(
                "linux.intelRdt is not supported by this runtime",
            ));
        }
        let rootfs = rootfs_of(spec, req.bundle)?;
        let terminal = spec
            .process()
            .as_ref()
            .and_then(|p| p.terminal())
            .unwrap_or(false);
        let mut ns = Namespaces::of(spec)?;
        let exec_fifo = make_exec_fifo(dir)?;
        let (parent_sock, child_sock) = sync::pair().step(|| "socketpair".into())?;
        let mut stdio = match req.supervision {
            Supervision::Foreground if !terminal => {
                Some(crate::relay::Stdio::new(req.io.interactive).step(|| "stdio pipes".into())?)
            }
            _ => None,
        };
        let child_stdio = match stdio.as_mut() {
            Some(s) => std::mem::take(&mut s.child),
            None => [None, None, None],
        };
        let last_cap = crate::capabilities::last_cap();
        warn_if_threaded(req.id);
        ns.check_exe_unreachable()?;
        let kept_fds = req.io.preserve_fds;
        let trampoline = crate::trampoline::memfd(crate::trampoline::report_fd(kept_fds))
            .step(|| "exec trampoline".into())?;
        // Compiled (or fetched from the cache) here, before clone: the child
        // gets the program in its copy of memory and only installs it.
        let seccomp = match spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
            Some(s) => Some(crate::seccomp::prepare(s, Some(&seccomp_cache_dir(dir)))?),
            None => None,
        };
        let cgroup = make_cgroup(req.id, spec)?;
        let (into, join_cgroup) = open_cgroup(cgroup.as_ref())?;
        // All the child is to have, made before clone: after it, the
        // child only uses them, and the runtime drops its copies at once.
        let child = ChildConfig {
            id: req.id,
            spec,
            rootfs,
            bundle: req.bundle.to_path_buf(),
            sync: child_sock,
            exec_fifo,
            stdin_null: !req.io.interactive && !terminal,
            stdio: child_stdio,
            terminal,
            last_cap,
            new_netns: ns.is_new(LinkNameSpaceType::Network),
            new_userns: ns.is_new(LinkNameSpaceType::User),
            unshare_cgroupns: ns.unshare_cgroupns,
            join_cgroup,
            cgroup_v1: cgroup_v1_view(spec, cgroup.as_ref(), ns.unshare_cgroupns),
            join: std::mem::take(&mut ns.join),
            seccomp: seccomp.as_ref(),
            trampoline,
            kept_fds,
            no_pivot: annotation(spec, crate::NO_PIVOT) == Some("true"),
            nodev_root: cgroup.is_none() && !ns.is_new(LinkNameSpaceType::User),
            runtime_hooks: crate::hooks::any_before_root_switch(spec),
        };
        let cloned = clone_into(&ns, into.as_ref().map(|f| f.as_fd()));
        drop(into);
        match cloned {
            Ok(sys::Cloned::Child) => {
                drop(parent_sock);
                setup::child_main(child)
            }
            Ok(sys::Cloned::Parent { pid, pidfd }) => {
                // The container's ends (of the stdio pipes too): only the
                // container may hold them, or its output would never reach
                // end-of-file.
                drop(child);
                let live = Live {
                    pidfd,
                    sync: parent_sock,
                    pty_master: None,
                    stdio,
                    own_pid_ns: ns.is_new(LinkNameSpaceType::ProcessID),
                    program: String::new(),
                };
                let new_userns = ns.is_new(LinkNameSpaceType::User);
                Self::bring_up(req, dir, pid, new_userns, live, cgroup)
            }
            Err(e) => {
                if let Some(cg) = &cgroup {
                    let _ = cg.destroy();
                }
                Err(e).step(|| "clone container process".into())
            }
        }
    }

    /// The runtime's side of set-up, once the child is cloned: user
    /// namespace maps, `G`, the child's report (and pty), state.json, and
    /// the hand-over of a detached container. Any failure kills the child
    /// and removes its cgroup.
    fn bring_up(
        req: &Request<'_>,
        dir: &Path,
        pid: i32,
        new_userns: bool,
        mut live: Live,
        cgroup: Option<Cgroup>,
    ) -> Result<Container> {
        let mut state = State {
            oci_version: req.spec.version().clone(),
            id: req.id.to_string(),
            status: Status::Creating,
            pid,
            bundle: req.bundle.to_path_buf(),
            annotations: req.spec.annotations().clone().unwrap_or_default(),
            pid_start_time: berth_linux::stat::start_time(pid).unwrap_or(0),
            created: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos() as u64),
            cgroup: cgroup.as_ref().map(|c| c.rel().to_path_buf()),
            hooks: crate::hooks::kept(req.spec),
        };
        let result = Self::await_ready(req.spec, &state, new_userns, &mut live).and_then(|()| {
            state.status = Status::Created;
            state.save(dir)?;
            if req.supervision == Supervision::Detached {
                hand_over(live.sync.as_fd())?;
            }
            Ok(state)
        });
        match result {
            Ok(state) => Ok(Container {
                dir: dir.to_path_buf(),
                state,
                live: Some(live),
                cgroup: cgroup.into(),
            }),
            Err(e) => {
                let _ = sys::pidfd_send_signal(live.pidfd.as_fd(), libc::SIGKILL);
                let _ = sys::pidfd_wait(live.pidfd.as_fd(), false);
                if let Some(cg) = &cgroup {
                    let _ = cg.destroy();
                }
                Err(e)
            }
        }
    }

    /// Write the maps of a new user namespace, send `G`, and wait for the
    /// child's `R` (taking the pty master it may send before, and running
    /// the createRuntime hooks when it asks with `H`).
    fn await_ready(spec: &Spec, state: &State, new_userns: bool, live: &mut Live) -> Result<()> {
        let pid = state.pid;
        if new_userns {
            let linux = spec.linux().as_ref();
            let uids = linux
                .and_then(|l| l.uid_mappings().as_deref())
                .unwrap_or_default();
            let gids = linux
                .and_then(|l| l.gid_mappings().as_deref())
                .unwrap_or_default();
            crate::userns::write_maps(pid, uids, gids)?;
        }
        sync::send(live.sync.as_fd(), Outgoing::Go)
            .map_err(|e| Error::setup(format!("start container setup: {e}")))?;
        loop {
            match sync::recv(live.sync.as_fd()) {
                Ok(Msg::Pty(fd)) => live.pty_master = Some(fd),
                Ok(Msg::Hooks) => {
                    crate::hooks::create_runtime(spec, state)?;
                    sync::send(live.sync.as_fd(), Outgoing::Go)
                        .map_err(|e| Error::setup(format!("resume container setup: {e}")))?;
                }
                Ok(Msg::Ready(program)) => {
                    live.program = program;
                    return Ok(());
                }
                Ok(Msg::Failed(e)) => return Err(e),
                Ok(
                    Msg::Eof | Msg::Go | Msg::Detach | Msg::Ack | Msg::ExecFailed(_) | Msg::Pid(..),
                ) => {
                    return Err(Error::setup("container setup exited unexpectedly"));
                }
                Err(e) => {
                    return Err(Error::setup(format!("read from container setup: {e}")));
                }
            }
        }
    }
}

/// Whether the container's processes could ever hold CAP_SYS_ADMIN (it
/// is in the bounding set): then they may mount a cgroup filesystem.
fn may_mount(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.capabilities().as_ref())
        .and_then(|c| c.bounding().as_ref())
        .is_none_or(|b| b.contains(&oci_spec::runtime::Capability::SysAdmin))
}

/// Tell the set-up child it may outlive us, and wait until it has dropped
/// its parent-death signal: returning (and exiting) before that would kill it.
fn hand_over(sock: std::os::fd::BorrowedFd<'_>) -> Result<()> {
    sync::send(sock, Outgoing::Detach).step(|| "hand the container over".into())?;
    match sync::recv(sock) {
        Ok(Msg::Ack) => Ok(()),
        Ok(Msg::Failed(e)) => Err(e),
        Ok(_) => Err(Error::setup("container setup exited unexpectedly")),
        Err(e) => Err(Error::setup(format!("hand the container over: {e}"))),
    }
}

/// Compiled seccomp programs, shared by every container of a state dir:
/// `<state_dir>/../seccomp-cache` (berth: `<root>/seccomp-cache`). Beside
/// the state dir rather than in it, where a container id could collide.
pub(crate) fn seccomp_cache_dir(container_dir: &Path) -> PathBuf {
    let state_dir = container_dir.parent().unwrap_or(Path::new("/"));
    state_dir
        .parent()
        .unwrap_or(state_dir)
        .join("seccomp-cache")
}

/// The container's cgroup, made and limited: the spec's cgroupsPath, or
/// `/berth/<id>` as runc picks a default. Always one of its own, in every
/// v1 hierarchy: in one where it stayed in the runtime's cgroup, its cgroup
/// namespace could be rooted at the hierarchy's root, and a container with
/// CAP_SYS_ADMIN that mounts it would find `release_agent` there, which the
/// host runs as root (CVE-2022-0492).
///
/// None, the container staying in its creator's cgroups: with the
/// [`crate::cgroups::MODE`] annotation `disabled` (limits are then
/// refused), or where no cgroup can be made (rootless without delegation,
/// or a read-only cgroup filesystem as Docker mounts one in a container)
/// and the spec asks for no limits: said at debug level only, a run that
/// works prints nothing. Limits without a cgroup fail, with nothing left.
/// Its cgroup namespace is then rooted at its creator's cgroups, a
/// hierarchy's root where the creator sits there: a container with
/// CAP_SYS_ADMIN could reach `release_agent`, which takes CAP_SYS_ADMIN in
/// the initial user namespace to write, that is, no more than its creator
/// (or the container itself, unconfined by a device cgroup) holds anyway.
fn make_cgroup(id: &str, spec: &Spec) -> Result<Option<Cgroup>> {
    let linux = spec.linux().as_ref();
    let resources = linux.and_then(|l| l.resources().as_ref());
    let limited = resources.is_some_and(crate::cgroups::has_limits);
    if annotation(spec, crate::cgroups::MODE) == Some("disabled") {
        if limited {
            return Err(Error::setup(
                "cgroup: resource limits need a cgroup, and cgroups are disabled",
            ));
        }
        return Ok(None);
    }
    let path = match linux.and_then(|l| l.cgroups_path().as_ref()) {
        Some(p) => p.to_string_lossy().into_owned(),
        None => format!("/berth/{id}"),
    };
    let layout = Layout::detect().map_err(|e| Error::setup(format!("cgroup: {e}")))?;
    let mut cg = Cgroup::new(layout, &path).map_err(|e| Error::setup(format!("cgroup: {e}")))?;
    if used_hierarchies_only(spec) {
        cg = cg.used_by(resources);
    }
    let e = match cg.create(resources) {
        Ok(()) => return Ok(Some(cg)),
        Err(e) => e,
    };
    // Also what it made in the hierarchies before the one that failed.
    let _ = cg.destroy();
    let denied = e.kind() == std::io::ErrorKind::PermissionDenied;
    let read_only = e.kind() == std::io::ErrorKind::ReadOnlyFilesystem;
    if (denied || read_only) && !limited {
        tracing::debug!("running without a cgroup of its own: {e}");
        return Ok(None);
    }
    Err(Error::setup(if denied {
        format!(
            "cgroup: resource limits need a cgroup berth may create, and this user may not \
             (rootless needs a delegated cgroup): {e}"
        )
    } else if read_only {
        match cg.read_only_hierarchy() {
            Some(h) => format!(
                "cgroup: resource limits need a writable cgroup hierarchy, and {} is read-only",
                h.display()
            ),
            None => format!("cgroup: resource limits need a writable cgroup hierarchy: {e}"),
        }
    } else {
        format!("cgroup: {e}")
    }))
}

/// Whether the container is to be in (and see) only the v1 hierarchies its
/// resources use: the [`crate::cgroups::V1_HIERARCHIES`] annotation, for a
/// container that can never mount a cgroup filesystem.
fn used_hierarchies_only(spec: &Spec) -> bool {
    annotation(spec, crate::cgroups::V1_HIERARCHIES) == Some("used") && !may_mount(spec)
}

/// The v1 hierarchies the container's /sys/fs/cgroup shows (None: every
/// one the host has, or cgroup v2): those of its own cgroup; without one,
/// under the `used` annotation, those its resources use all the same,
/// rooted at its creator's cgroups. Without a cgroup namespace of its own
/// its cgroup is bound from the host's hierarchies (runc's way).
fn cgroup_v1_view(
    spec: &Spec,
    cgroup: Option<&Cgroup>,
    own_cgroupns: bool,
) -> Option<crate::cgroups::V1View> {
    use crate::cgroups::V1View;
    match cgroup {
        Some(cg) => cg.v1_hierarchies().map(|hs| V1View {
            hierarchies: hs.to_vec(),
            bind: (!own_cgroupns).then(|| cg.rel().to_path_buf()),
        }),
        None if used_hierarchies_only(spec) => {
            let res = spec.linux().as_ref().and_then(|l| l.resources().as_ref());
            match Layout::detect().ok()?.used_by(res) {
                Layout::V1(hs) => Some(V1View {
                    hierarchies: hs,
                    bind: None,
                }),
                Layout::V2 { .. } => None,
            }
        }
        None => None,
    }
}
