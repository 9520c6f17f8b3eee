//! What runs in the cloned child, from clone to exec: it is already PID 1
//! of its new namespaces. It waits for the runtime's go-ahead, builds the
//! filesystem view, sets identity and limits, resolves the command, reports
//! "ready", blocks on the exec fifo until `start`, then execs. Any failure
//! is sent to the runtime over the sync socket and the child exits.
//!
//! The child is a copy of the single-threaded runtime made by a raw clone
//! (see `sys::clone_process`): it may allocate, but runs no atfork handler
//! and leaves through `sys::exit_now`, never through the parent's exit
//! path. Each step below is a function of its own, in the order the child
//! takes them; `exec` into a running container (see `exec`) takes the
//! same [`set_identity`], [`resolve_command`] and [`exec_command`] after
//! joining the container's namespaces instead of making them.

use crate::capabilities;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::rootfs;
use crate::seccomp;
use crate::sync::{self, Msg, Outgoing};
use crate::sys::{self, cstr};
use oci_spec::runtime::{PosixRlimit, Process, Spec};
use rustix::fs::OFlags;
use rustix::process::{Resource, Rlimit, Signal};
use rustix::thread::LinkNameSpaceType;
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(crate) struct ChildConfig<'a> {
    /// The container's id (for the hooks the child runs).
    pub id: &'a str,
    pub spec: &'a Spec,
    pub rootfs: PathBuf,
    pub bundle: PathBuf,
    pub sync: OwnedFd,
    pub exec_fifo: OwnedFd,
    pub stdin_null: bool,
    /// Pipes of the runtime's to become fds 0, 1, 2 (see `relay`); a None
    /// leaves that fd as the caller's.
    pub stdio: [Option<OwnedFd>; 3],
    pub terminal: bool,
    pub last_cap: u32,
    /// A fresh network namespace, whose loopback starts down.
    pub new_netns: bool,
    /// v1 cgroup `tasks` files: the child moves itself in first thing.
    pub join_cgroup: Vec<OwnedFd>,
    /// The v1 hierarchies of the container's cgroup, if it has one on v1.
    pub cgroup_v1: Option<crate::cgroups::V1View>,
    /// A fresh user namespace, whose maps the runtime wrote before `G`.
    pub new_userns: bool,
    /// Unshare the cgroup namespace after `G` (by then the child is in its
    /// cgroup, which becomes the namespace's root).
    pub unshare_cgroupns: bool,
    /// Existing namespaces to join (spec namespaces that carry a path).
    pub join: Vec<(OwnedFd, LinkNameSpaceType)>,
    /// The compiled `linux.seccomp` filter, if any.
    pub seccomp: Option<&'a seccomp::Program>,
    /// The sealed exec trampoline (see `trampoline`).
    pub trampoline: OwnedFd,
    /// fds 3..3+kept_fds stay open into the command (runc's
    /// `--preserve-fds`); the trampoline reports on the next one.
    pub kept_fds: u32,
    /// Switch root without pivot_root (the [`crate::NO_PIVOT`] annotation).
    pub no_pivot: bool,
    /// No device cgroup of its own and no user namespace: device nodes on
    /// the root filesystem must not open (see `rootfs::prepare`).
    pub nodev_root: bool,
    /// The spec has prestart or createRuntime hooks: the runtime runs them
    /// between the rootfs mounts and the root switch (see `hooks`).
    pub runtime_hooks: bool,
}

/// What [`set_identity`] needs besides the spec's process.
pub(crate) struct Identity<'a> {
    /// The compiled `linux.seccomp` filter, if any.
    pub seccomp: Option<&'a seccomp::Program>,
    pub last_cap: u32,
    /// In a user namespace other than the runtime's (made or joined): its
    /// setgroups may be denied.
    pub userns: bool,
}

impl ChildConfig<'_> {
    fn identity(&self) -> Identity<'_> {
        Identity {
            seccomp: self.seccomp,
            last_cap: self.last_cap,
            userns: self.new_userns,
        }
    }
}

/// Entry point of the child. Never returns.
pub(crate) fn child_main(cfg: ChildConfig<'_>) -> ! {
    let err = match setup_and_exec(&cfg) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sync::send_error(cfg.sync.as_fd(), &err);
    sys::exit_now(err.exit_code())
}

pub(crate) enum Never {}

/// The container's command, resolved before `start` (so that `create`
/// already fails for a missing one, like runc).
pub(crate) struct Command {
    /// Its path, as found in the spec's PATH.
    pub program: CString,
    argv: Vec<CString>,
    envp: Vec<CString>,
}

fn setup_and_exec(cfg: &ChildConfig<'_>) -> Result<Never> {
    reset_signals();
    // Die with the runtime: until it hands the container over (`D`, a
    // `create` that returns) or, in the foreground, for the container's
    // whole life (it is set again after the identity change clears it).
    die_with_runtime();
    await_go_ahead(cfg)?;
    enter_namespaces(cfg)?;
    attach_stdio(cfg)?;
    build_view(cfg)?;
    let process = cfg
        .spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::setup("config.json has no process"))?;
    set_oom_score_adj(process)?;
    set_identity(&cfg.identity(), process)?;
    let command = resolve_command(process)?;
    await_start(cfg, &command)?;
    exec_command(
        cfg.sync.as_fd(),
        cfg.trampoline.as_fd(),
        cfg.seccomp,
        process,
        &command,
        cfg.kept_fds,
    )
}

/// The parent-death signal: SIGKILL when the runtime exits.
pub(crate) fn die_with_runtime() {
    let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
}

/// Wait for the runtime's `G` (by then the maps of a new user namespace
/// are written), then move into the container's cgroup (v1) before
/// anything else runs here.
fn await_go_ahead(cfg: &ChildConfig<'_>) -> Result<()> {
    match sync::recv(cfg.sync.as_fd()).step(|| "wait for runtime".into())? {
        Msg::Go => {}
        _ => return Err(Error::setup("runtime went away during setup")),
    }
    for fd in &cfg.join_cgroup {
        sys::write_all(fd.as_fd(), b"0").step(|| "join the container's cgroup".into())?;
    }
    Ok(())
}

/// Join the spec's existing namespaces, become root of a new user
/// namespace, unshare the cgroup namespace (now that the child is in its
/// cgroup, which becomes its root) and bring up a new network namespace's
/// loopback.
fn enter_namespaces(cfg: &ChildConfig<'_>) -> Result<()> {
    for (fd, nstype) in &cfg.join {
        rustix::thread::move_into_link_name_space(fd.as_fd(), Some(*nstype))
            .step(|| format!("join namespace (type {:#x})", *nstype as u32))?;
    }
    if cfg.new_userns {
        become_userns_root()?;
    }
    if cfg.unshare_cgroupns {
        // SAFETY: without CLONE_FILES no fd table is unshared, which is
        // what makes unshare unsafe in rustix's eyes; this process is
        // single-threaded anyway.
        unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }
            .step(|| "unshare cgroup namespace".into())?;
    }
    if cfg.new_netns {
        loopback_up()?;
    }
    Ok(())
}

/// Become root of the user namespace just made or joined (the runtime's
/// own ids may not be mapped, as when root remaps to a subordinate range).
pub(crate) fn become_userns_root() -> Result<()> {
    let root = rustix::process::Gid::ROOT;
    rustix::thread::set_thread_res_gid(root, root, root)
        .step(|| "setresgid 0 in user namespace".into())?;
    let root = rustix::process::Uid::ROOT;
    rustix::thread::set_thread_res_uid(root, root, root)
        .step(|| "setresuid 0 in user namespace".into())
}

/// The runtime's pipes (or /dev/null) become fds 0–2.
fn attach_stdio(cfg: &ChildConfig<'_>) -> Result<()> {
    for (target, fd) in cfg.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            sys::dup_to_stdio(fd.as_fd(), target as i32).step(|| "attach stdio pipes".into())?;
        }
    }
    if cfg.stdin_null {
        null_stdio(&[0])?;
    }
    Ok(())
}

/// /dev/null (the container's, once in its mount namespace) as these of
/// fds 0–2.
pub(crate) fn null_stdio(targets: &[i32]) -> Result<()> {
    let null = sys::open(Path::new("/dev/null"), OFlags::RDWR).step(|| "open /dev/null".into())?;
    for &fd in targets {
        sys::dup_to_stdio(null.as_fd(), fd).step(|| "redirect stdio to /dev/null".into())?;
    }
    Ok(())
}

/// The container's filesystem view: the rootfs with its mounts and /dev,
/// the root switch, the console, sysctls (written before /proc/sys may go
/// read-only), then masked and read-only paths.
fn build_view(cfg: &ChildConfig<'_>) -> Result<()> {
    let spec = cfg.spec;
    // Device nodes and mount points get exactly the modes we ask for.
    rustix::process::umask(rustix::fs::Mode::empty());
    // New session: no way back to the host's controlling terminal (and the
    // console's pty can become this one's).
    let _ = rustix::process::setsid();
    rootfs::prepare(
        spec,
        &cfg.rootfs,
        &cfg.bundle,
        cfg.cgroup_v1.as_ref(),
        cfg.nodev_root,
    )?;
    if cfg.runtime_hooks {
        await_runtime_hooks(cfg.sync.as_fd())?;
    }
    crate::hooks::create_container(spec, cfg.id, &cfg.bundle)?;
    rootfs::pivot(&cfg.rootfs, cfg.no_pivot)?;
    if cfg.terminal {
        setup_console(cfg.sync.as_fd())?;
    }
    set_names(spec)?;
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (key, value) in sysctl {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value).step(|| format!("sysctl {key}={value}"))?;
        }
    }
    rootfs::finish(spec)
}

/// Has the runtime run the createRuntime hooks, now that the namespaces
/// exist and the rootfs is mounted (the runtime kills this child if one
/// fails).
fn await_runtime_hooks(sock: BorrowedFd<'_>) -> Result<()> {
    sync::send(sock, Outgoing::Hooks).step(|| "ask for the createRuntime hooks".into())?;
    match sync::recv(sock).step(|| "wait for the createRuntime hooks".into())? {
        Msg::Go => Ok(()),
        _ => Err(Error::setup(
            "runtime went away during the createRuntime hooks",
        )),
    }
}

/// Host and domain name, in the container's UTS namespace.
fn set_names(spec: &Spec) -> Result<()> {
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        rustix::system::sethostname(h.as_bytes()).step(|| format!("sethostname {h}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        rustix::system::setdomainname(d.as_bytes()).step(|| format!("setdomainname {d}"))?;
    }
    Ok(())
}

/// The process's OOM score (inherited by its children: exec sets it in the
/// child that forks the exec'd process, while its /proc/self is still its
/// own to write).
pub(crate) fn set_oom_score_adj(process: &Process) -> Result<()> {
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .step(|| format!("set oom_score_adj {adj}"))?;
    }
    Ok(())
}

/// What the process is and may do: rlimits, working directory,
/// seccomp filter (here, unless no_new_privs defers it to exec), then the
/// user switch with its capabilities, no_new_privs and umask.
pub(crate) fn set_identity(id: &Identity<'_>, process: &Process) -> Result<()> {
    for rl in process.rlimits().as_deref().unwrap_or_default() {
        set_rlimit(rl)?;
    }
    let cwd = process.cwd();
    std::env::set_current_dir(cwd).step(|| {
        format!(
            "chdir to cwd ({:?}) set in config.json failed",
            cwd.display()
        )
    })?;

    // Installing a filter takes CAP_SYS_ADMIN unless no_new_privs is set:
    // without it, the filter goes on now, while we still have every
    // capability (as runc does); the syscalls left until exec (setgroups,
    // setuid, capset, prctl, execve …) are ones Docker's profile allows.
    let no_new_privs = process.no_new_privileges().unwrap_or(false);
    if let (Some(p), false) = (id.seccomp, no_new_privs) {
        seccomp::install(p)?;
    }
    switch_user(id, process)?;
    if no_new_privs {
        rustix::thread::set_no_new_privs(true).step(|| "set no_new_privs".into())?;
    }
    let umask = process.user().umask().unwrap_or(0o022);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(umask));
    Ok(())
}

/// The spec's user and groups with its capabilities: the bounding set
/// first (needs CAP_SETPCAP), permitted capabilities kept across setuid,
/// then the final sets.
fn switch_user(id: &Identity<'_>, process: &Process) -> Result<()> {
    use rustix::process::{Gid, Uid};
    let caps = process.capabilities().as_ref();
    if let Some(caps) = caps {
        rustix::thread::set_keep_capabilities(true).step(|| "keep capabilities".into())?;
        capabilities::drop_bounding(caps, id.last_cap)?;
    }
    let user = process.user();
    let groups: Vec<Gid> = user
        .additional_gids()
        .iter()
        .flatten()
        .map(|g| Gid::from_raw_unchecked(*g))
        .collect();
    // A rootless user namespace without newgidmap has setgroups disabled:
    // then there is nothing to drop, and supplementary groups are impossible
    // beyond the primary gid (which Docker lists, and setgid gives anyway).
    let setgroups_denied = id.userns
        && std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !(setgroups_denied && groups.iter().all(|g| g.as_raw() == user.gid())) {
        rustix::thread::set_thread_groups(&groups).step(|| {
            let raw: Vec<u32> = groups.iter().map(|g| g.as_raw()).collect();
            format!("setgroups {raw:?}")
        })?;
    }
    // The raw syscalls, for this one thread: the child has no other.
    rustix::thread::set_thread_gid(Gid::from_raw_unchecked(user.gid()))
        .step(|| format!("setgid {}", user.gid()))?;
    rustix::thread::set_thread_uid(Uid::from_raw_unchecked(user.uid()))
        .step(|| format!("setuid {}", user.uid()))?;
    if let Some(caps) = caps {
        let _ = rustix::thread::set_keep_capabilities(false);
        capabilities::apply(caps, id.last_cap)?;
    }
    Ok(())
}

/// Resolve the command now, as the container user inside the container,
/// so `create` already fails for a missing command (like runc).
pub(crate) fn resolve_command(process: &Process) -> Result<Command> {
    let args = process.args().as_deref().unwrap_or_default();
    let Some(arg0) = args.first() else {
        return Err(Error::setup("process.args in config.json is empty"));
    };
    let env: Vec<String> = process.env().clone().unwrap_or_default();
    let path_env = env
        .iter()
        .rev()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or(DEFAULT_PATH);
    let program = look_path(arg0, path_env)?;
    let c = |s: &str| cstr(s).step(|| format!("argument {s:?}"));
    let argv: Vec<CString> = args.iter().map(|a| c(a)).collect::<Result<_>>()?;
    let envp: Vec<CString> = env.iter().map(|e| c(e)).collect::<Result<_>>()?;
    Ok(Command {
        program,
        argv,
        envp,
    })
}

/// Report ready (`R`) and block until `start`.
fn await_start(cfg: &ChildConfig<'_>, command: &Command) -> Result<()> {
    // setuid cleared the parent-death signal: set it again. A runtime that
    // died in between is caught below, by end-of-file on the sync socket.
    die_with_runtime();
    // With the command's path: a failed exec is reported by the trampoline
    // as an errno alone, and the runtime words the message.
    sync::send(cfg.sync.as_fd(), Outgoing::Ready(&command.program))
        .step(|| "report ready".into())?;
    wait_for_start(cfg)?;
    crate::hooks::start_container(cfg.spec, cfg.id, &cfg.bundle)
}

/// The last steps before the command runs: every fd but stdio
/// close-on-exec, the seccomp filter if it waited for no_new_privs, and
/// the exec through the trampoline.
pub(crate) fn exec_command(
    sync: BorrowedFd<'_>,
    trampoline: BorrowedFd<'_>,
    seccomp: Option<&seccomp::Program>,
    process: &Process,
    command: &Command,
    kept_fds: u32,
) -> Result<Never> {
    // Only stdio (and the fds the caller asked to keep) cross into the
    // container: any fd the caller leaked without O_CLOEXEC closes at exec
    // (as do the fifo and sync socket).
    let report = crate::trampoline::report_fd(kept_fds);
    let _ = sys::cloexec_from(report);
    // With no_new_privs, the filter goes on as late as possible, so that it
    // constrains only execve and the container's own syscalls.
    if let (Some(p), true) = (seccomp, process.no_new_privileges().unwrap_or(false)) {
        seccomp::install(p)?;
    }
    exec_through_trampoline(sync, trampoline, command, report)
}

/// Exec the command through the trampoline (see `trampoline`): it gets the
/// command's path as its argv[0], the command's argv after it, and the
/// sync socket as fd `report` (3, or the first after the kept fds) to
/// report a failed exec on.
fn exec_through_trampoline(
    sync: BorrowedFd<'_>,
    trampoline: BorrowedFd<'_>,
    command: &Command,
    report: i32,
) -> Result<Never> {
    let moved;
    let tramp = if trampoline.as_raw_fd() == report {
        moved = rustix::io::fcntl_dupfd_cloexec(trampoline, report + 1)
            .step(|| "move the exec trampoline".into())?;
        moved.as_fd()
    } else {
        trampoline
    };
    // The report fd is free: everything from it on is close-on-exec by now.
    if sync.as_raw_fd() == report {
        rustix::io::fcntl_setfd(sync, rustix::io::FdFlags::empty()).map_err(Into::into)
    } else {
        sys::dup_onto(sync, report)
    }
    .step(|| "hand the sync socket to the exec trampoline".into())?;
    let e = sys::exec_fd(tramp, &command.program, &command.argv, &command.envp);
    Err(crate::error::exec_failed(
        &command.program.to_string_lossy(),
        &e,
    ))
}

/// Block until `start` writes to the exec fifo. Meanwhile the runtime may
/// hand the container over (`D`: it may now outlive the runtime, which
/// waits for the `A`); if the runtime dies first (end-of-file), give up
/// rather than wait for a start that can never come.
fn wait_for_start(cfg: &ChildConfig<'_>) -> Result<()> {
    let mut handed_over = false;
    loop {
        let (fifo, sync) = (cfg.exec_fifo.as_fd(), cfg.sync.as_fd());
        // Once handed over, the runtime may exit: only the fifo matters.
        let ready = if handed_over {
            sys::wait_readable([fifo]).map(|[f]| [f, false])
        } else {
            sys::wait_readable([fifo, sync])
        };
        let [start, message] = ready.step(|| "wait on exec fifo".into())?;
        if start {
            let mut byte = [0u8];
            let n =
                sys::read(cfg.exec_fifo.as_fd(), &mut byte).step(|| "wait on exec fifo".into())?;
            if n != 1 {
                return Err(Error::setup("exec fifo closed before start"));
            }
            return Ok(());
        }
        if message {
            match sync::recv(cfg.sync.as_fd()).step(|| "wait for start".into())? {
                Msg::Detach => {
                    let _ = rustix::process::set_parent_process_death_signal(None);
                    sync::send(cfg.sync.as_fd(), Outgoing::Ack)
                        .step(|| "acknowledge hand-over".into())?;
                    handed_over = true;
                }
                // No one is left to report to.
                Msg::Eof => sys::exit_now(125),
                _ => return Err(Error::setup("unexpected message while waiting for start")),
            }
        }
    }
}

/// Bring up `lo` in a new network namespace, as runc does, where allowed.
fn loopback_up() -> Result<()> {
    use rustix::net::{AddressFamily, SocketFlags, SocketType};
    // struct ifreq: name, then a union whose first member we use is flags.
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _rest: [u8; 22],
    }
    let what = || "bring up loopback interface".to_string();
    let sock = rustix::net::socket_with(
        AddressFamily::INET,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .step(what)?;
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _rest: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: `req` is an ifreq-sized buffer, which SIOCGIFFLAGS fills.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) };
    if r == -1 {
        return Err(std::io::Error::last_os_error()).step(what);
    }
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above; SIOCSIFFLAGS only reads it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        let e = std::io::Error::last_os_error();
        // No CAP_NET_ADMIN (an engine run in a container with Docker's
        // default capabilities): the namespace stays private, `lo` down.
        if e.raw_os_error() != Some(libc::EPERM) {
            return Err(e).step(what);
        }
    }
    Ok(())
}

/// PATH used when the spec's environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Undo what the runtime process had set up: blocked signals (for its
/// signalfd) and ignored ones (Rust ignores SIGPIPE); exec would keep both.
pub(crate) fn reset_signals() {
    sys::default_signal_dispositions();
    sys::sigmask(libc::SIG_SETMASK, &sys::sigset(&[]));
}

/// Allocate the container's pty inside its own devpts, make the slave the
/// controlling terminal and fds 0–2, bind it to /dev/console, and hand the
/// master to the runtime.
fn setup_console(sync_fd: BorrowedFd<'_>) -> Result<()> {
    let (master, slave) = open_pty()?;
    rootfs::bind_console(slave.as_fd())?;
    attach_pty(sync_fd, master, slave)
}

/// A pty from the /dev/ptmx this process sees (the container's own devpts,
/// once in its mount namespace): master and slave.
pub(crate) fn open_pty() -> Result<(OwnedFd, OwnedFd)> {
    use rustix::pty::OpenptFlags;
    let flags = OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC;
    let master = rustix::pty::openpt(flags).step(|| "open /dev/ptmx".into())?;
    rustix::pty::unlockpt(&master).step(|| "unlock pty".into())?;
    let slave = rustix::pty::ioctl_tiocgptpeer(&master, flags).step(|| "open pty slave".into())?;
    Ok((master, slave))
}

/// The slave becomes the controlling terminal (of a session leader without
/// one) and fds 0–2; the master goes to the runtime.
pub(crate) fn attach_pty(sync_fd: BorrowedFd<'_>, master: OwnedFd, slave: OwnedFd) -> Result<()> {
    rustix::process::ioctl_tiocsctty(&slave).step(|| "set controlling terminal".into())?;
    for fd in 0..3 {
        sys::dup_to_stdio(slave.as_fd(), fd).step(|| "attach pty to stdio".into())?;
    }
    sync::send(sync_fd, Outgoing::Pty(master.as_fd())).step(|| "send pty master".into())
}

fn set_rlimit(rl: &PosixRlimit) -> Result<()> {
    let name = serde_json::to_value(rl.typ())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let resource = match berth_linux::rlimit::by_oci_name(&name) {
        Some(r) => r.resource,
        None => return Err(Error::setup(format!("unknown rlimit {name:?}"))),
    };
    let lim = Rlimit {
        current: Some(rl.soft()),
        maximum: Some(rl.hard()),
    };
    if let Err(e) = rustix::process::setrlimit(resource, lim) {
        let e = std::io::Error::from(e);
        // Docker's name for it (`nofile`), as the user wrote it in --ulimit.
        let short = name.trim_start_matches("RLIMIT_").to_ascii_lowercase();
        // fs.nr_open is global, so any /proc shows the host's.
        let nr_open: Option<u64> = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let why = match e.raw_os_error() {
            Some(libc::EPERM) => match nr_open {
                Some(n) if resource == Resource::Nofile && rl.hard() > n => {
                    format!("hard limit is above fs.nr_open ({n}), which no capability lifts")
                }
                _ => "hard limit cannot be raised without CAP_SYS_RESOURCE".to_string(),
            },
            Some(libc::EINVAL) => "soft limit is above hard limit".to_string(),
            _ => crate::error::strip_os_error(&e),
        };
        return Err(Error::setup(format!(
            "setrlimit {short} ({name}) soft {} hard {}: {why}",
            rl.soft(),
            rl.hard()
        )));
    }
    Ok(())
}

/// PATH lookup with Go's exec.LookPath rules and messages, which is what
/// runc (and so Docker) report.
fn look_path(file: &str, path_env: &str) -> Result<CString> {
    let not_found = |msg: String| Error {
        kind: ErrorKind::NotFound,
        message: msg,
    };
    let denied = |msg: String| Error {
        kind: ErrorKind::NotExecutable,
        message: msg,
    };
    if file.contains('/') {
        return match executable(Path::new(file)) {
            Ok(()) => cstr(file).step(|| file.to_string()),
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Err(not_found(format!(
                "exec: {file:?}: stat {file}: no such file or directory"
            ))),
            Err(e) => Err(denied(format!(
                "exec: {file:?}: {}",
                crate::error::strip_os_error(&e)
            ))),
        };
    }
    for dir in path_env.split(':') {
        let dir = if dir.is_empty() { "." } else { dir };
        let candidate = Path::new(dir).join(file);
        if executable(&candidate).is_ok() {
            return cstr(&candidate).step(|| file.to_string());
        }
    }
    Err(not_found(format!(
        "exec: {file:?}: executable file not found in $PATH"
    )))
}

fn executable(p: &Path) -> std::io::Result<()> {
    let meta = std::fs::metadata(p)?;
    if meta.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::EISDIR));
    }
    // Execute permission for the container's ids. The seccomp filter may
    // already be on (without no_new_privs it goes on before the identity
    // change): plain faccessat, in every profile, not faccessat2 (which
    // AT_EACCESS needs, and older profiles refuse); the real ids are the
    // effective ones by now (setuid set both). Refused all the same, the
    // mode bits decide, as Go's LookPath (runc's) does.
    use rustix::fs::{Access, AtFlags, CWD};
    match rustix::fs::accessat(CWD, p, Access::EXEC_OK, AtFlags::empty()) {
        Err(rustix::io::Errno::PERM | rustix::io::Errno::NOSYS) => {
            use std::os::unix::fs::PermissionsExt;
            if meta.permissions().mode() & 0o111 != 0 {
                Ok(())
            } else {
                Err(std::io::Error::from_raw_os_error(libc::EACCES))
            }
        }
        r => Ok(r?),
    }
}
