//! What runs in the cloned child, from clone to exec: it is already PID 1
//! of its new namespaces. It waits for the runtime's go-ahead, builds the
//! filesystem view, sets identity and limits, resolves the command, reports
//! "ready", blocks on the exec fifo until `start`, then execs. Any failure
//! is sent to the runtime over the sync socket and the child exits.

use crate::capabilities;
use crate::error::{Context, Error, ErrorKind, Result};
use crate::rootfs;
use crate::seccomp;
use crate::sync::{self, Msg, Outgoing};
use crate::sys::{self, cstr};
use oci_spec::runtime::{PosixRlimit, Spec};
use std::ffi::CString;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};

pub(crate) struct ChildConfig<'a> {
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
    pub cgroup_v1: Option<Vec<crate::cgroups::Hierarchy>>,
    /// A fresh user namespace, whose maps the runtime wrote before `G`.
    pub new_userns: bool,
    /// Unshare the cgroup namespace after `G` (by then the runtime has put
    /// the child in its cgroup, which becomes the namespace's root).
    pub unshare_cgroupns: bool,
    /// Existing namespaces to join (spec namespaces that carry a path).
    pub join: Vec<(OwnedFd, libc::c_int)>,
    /// The compiled `linux.seccomp` filter, if any.
    pub seccomp: Option<&'a seccomp::Program>,
    /// The sealed exec trampoline (see `trampoline`).
    pub trampoline: OwnedFd,
    /// Switch root without pivot_root (the [`crate::NO_PIVOT`] annotation).
    pub no_pivot: bool,
    /// No device cgroup of its own and no user namespace: device nodes on
    /// the root filesystem must not open (see `rootfs::prepare`).
    pub nodev_root: bool,
}

/// Entry point of the child. Never returns.
pub(crate) fn child_main(cfg: ChildConfig<'_>) -> ! {
    let sync = cfg.sync.as_raw_fd();
    let err = match setup_and_exec(&cfg) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    // SAFETY: `sync` stays open until _exit; we only borrow it here.
    sync::send_error(unsafe { BorrowedFd::borrow_raw(sync) }, &err);
    // SAFETY: _exit skips atexit handlers and destructors that belong to
    // the parent's copy of this process image.
    unsafe { libc::_exit(err.exit_code()) }
}

enum Never {}

fn setup_and_exec(cfg: &ChildConfig<'_>) -> Result<Never> {
    let spec = cfg.spec;
    reset_signals();
    // Die with the runtime: until it hands the container over (`D`, a
    // `create` that returns) or, in the foreground, for the container's
    // whole life (it is set again after the identity change clears it).
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };

    // Wait for the runtime's go-ahead (uid maps, cgroup placement hook).
    match sync::recv(cfg.sync.as_fd()).step(|| "wait for runtime".into())? {
        Msg::Go => {}
        _ => return Err(Error::setup("runtime went away during setup")),
    }
    // Into the container's cgroup (v1) before anything else runs here.
    for fd in &cfg.join_cgroup {
        sys::write_all(fd.as_fd(), b"0").step(|| "join the container's cgroup".into())?;
    }
    for (fd, nstype) in &cfg.join {
        // SAFETY: fd is an open namespace file.
        sys::cvt(unsafe { libc::setns(fd.as_raw_fd(), *nstype) })
            .step(|| format!("join namespace (type {nstype:#x})"))?;
    }
    if cfg.new_userns {
        // Become the namespace's root (the runtime's own ids may not be
        // mapped, as when root remaps to a subordinate range).
        // SAFETY: integer arguments.
        sys::cvt(unsafe { libc::setresgid(0, 0, 0) })
            .step(|| "setresgid 0 in user namespace".into())?;
        // SAFETY: integer arguments.
        sys::cvt(unsafe { libc::setresuid(0, 0, 0) })
            .step(|| "setresuid 0 in user namespace".into())?;
    }
    if cfg.unshare_cgroupns {
        // SAFETY: unshare with a flag only.
        sys::cvt(unsafe { libc::unshare(libc::CLONE_NEWCGROUP) })
            .step(|| "unshare cgroup namespace".into())?;
    }
    if cfg.new_netns {
        loopback_up()?;
    }
    for (target, fd) in cfg.stdio.iter().enumerate() {
        if let Some(fd) = fd {
            sys::dup2(fd.as_raw_fd(), target as i32).step(|| "attach stdio pipes".into())?;
        }
    }
    if cfg.stdin_null {
        let null =
            sys::open(Path::new("/dev/null"), libc::O_RDONLY).step(|| "open /dev/null".into())?;
        sys::dup2(null.as_raw_fd(), 0).step(|| "redirect stdin".into())?;
    }
    // Device nodes and mount points get exactly the modes we ask for.
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(0) };
    // New session: no way back to the host's controlling terminal.
    // SAFETY: setsid has no arguments; fails only if already a leader.
    unsafe { libc::setsid() };

    rootfs::prepare(
        spec,
        &cfg.rootfs,
        &cfg.bundle,
        cfg.cgroup_v1.as_deref(),
        cfg.nodev_root,
    )?;
    rootfs::pivot(&cfg.rootfs, cfg.no_pivot)?;
    if cfg.terminal {
        setup_console(cfg.sync.as_fd())?;
    }
    if let Some(h) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        // SAFETY: pointer and length of a live string.
        sys::cvt(unsafe { libc::sethostname(h.as_ptr().cast(), h.len()) })
            .step(|| format!("sethostname {h}"))?;
    }
    if let Some(d) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: pointer and length of a live string.
        sys::cvt(unsafe { libc::setdomainname(d.as_ptr().cast(), d.len()) })
            .step(|| format!("setdomainname {d}"))?;
    }
    if let Some(sysctl) = spec.linux().as_ref().and_then(|l| l.sysctl().as_ref()) {
        for (key, value) in sysctl {
            let path = Path::new("/proc/sys").join(key.replace('.', "/"));
            std::fs::write(&path, value).step(|| format!("sysctl {key}={value}"))?;
        }
    }
    rootfs::finish(spec)?;

    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::setup("config.json has no process"))?;
    if let Some(adj) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", adj.to_string())
            .step(|| format!("set oom_score_adj {adj}"))?;
    }
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
    if let (Some(p), false) = (cfg.seccomp, no_new_privs) {
        seccomp::install(p)?;
    }

    // Identity: bounding set first (needs CAP_SETPCAP), keep permitted
    // capabilities across setuid, then the final sets.
    let caps = process.capabilities().as_ref();
    if let Some(caps) = caps {
        // SAFETY: prctl with integer arguments.
        sys::cvt(unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 1, 0, 0, 0) })
            .step(|| "keep capabilities".into())?;
        capabilities::drop_bounding(caps, cfg.last_cap)?;
    }
    let user = process.user();
    let groups: Vec<libc::gid_t> = user.additional_gids().clone().unwrap_or_default();
    // A rootless user namespace without newgidmap has setgroups disabled:
    // then there is nothing to drop, and supplementary groups are impossible
    // beyond the primary gid (which Docker lists, and setgid gives anyway).
    let setgroups_denied = cfg.new_userns
        && std::fs::read_to_string("/proc/self/setgroups").is_ok_and(|s| s.trim() == "deny");
    if !(setgroups_denied && groups.iter().all(|g| *g == user.gid())) {
        // SAFETY: pointer and length of a live vector.
        sys::cvt(unsafe { libc::setgroups(groups.len(), groups.as_ptr()) })
            .step(|| format!("setgroups {groups:?}"))?;
    }
    // SAFETY: integer arguments.
    sys::cvt(unsafe { libc::setgid(user.gid()) }).step(|| format!("setgid {}", user.gid()))?;
    // SAFETY: integer arguments.
    sys::cvt(unsafe { libc::setuid(user.uid()) }).step(|| format!("setuid {}", user.uid()))?;
    if let Some(caps) = caps {
        // SAFETY: prctl with integer arguments.
        unsafe { libc::prctl(libc::PR_SET_KEEPCAPS, 0, 0, 0, 0) };
        capabilities::apply(caps, cfg.last_cap)?;
    }
    if no_new_privs {
        // SAFETY: prctl with integer arguments.
        sys::cvt(unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) })
            .step(|| "set no_new_privs".into())?;
    }
    let umask = user.umask().unwrap_or(0o022);
    // SAFETY: umask cannot fail.
    unsafe { libc::umask(umask as libc::mode_t) };

    // Resolve the command now, as the container user inside the container,
    // so `create` already fails for a missing command (like runc).
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

    // setuid cleared the parent-death signal: set it again. A runtime that
    // died in between is caught below, by end-of-file on the sync socket.
    // SAFETY: prctl with integer arguments.
    unsafe {
        libc::prctl(
            libc::PR_SET_PDEATHSIG,
            libc::SIGKILL as libc::c_ulong,
            0,
            0,
            0,
        )
    };
    // With the command's path: a failed exec is reported by the trampoline
    // as an errno alone, and the runtime words the message.
    sync::send(cfg.sync.as_fd(), Outgoing::Ready(&program)).step(|| "report ready".into())?;
    wait_for_start(cfg)?;

    // Only stdio crosses into the container: any fd the caller leaked
    // without O_CLOEXEC closes at exec (as do the fifo and sync socket).
    // SAFETY: close_range with flags only marks descriptors close-on-exec.
    unsafe { libc::close_range(3, u32::MAX, libc::CLOSE_RANGE_CLOEXEC as libc::c_int) };
    // With no_new_privs, the filter goes on as late as possible, so that it
    // constrains only execve and the container's own syscalls.
    if let (Some(p), true) = (cfg.seccomp, no_new_privs) {
        seccomp::install(p)?;
    }
    exec_through_trampoline(cfg, &program, &argv, &envp)
}

/// Exec the command through the trampoline (see `trampoline`): it gets the
/// command's path as its argv[0], the command's argv after it, and the
/// sync socket as fd 3 to report a failed exec on.
fn exec_through_trampoline(
    cfg: &ChildConfig<'_>,
    program: &CString,
    argv: &[CString],
    envp: &[CString],
) -> Result<Never> {
    let report = crate::trampoline::REPORT_FD;
    let mut tramp = cfg.trampoline.as_raw_fd();
    if tramp == report {
        // SAFETY: fcntl duplicating an fd we hold; the copy is close-on-exec.
        tramp = sys::cvt(unsafe { libc::fcntl(tramp, libc::F_DUPFD_CLOEXEC, report + 1) })
            .step(|| "move the exec trampoline".into())?;
    }
    let sync = cfg.sync.as_raw_fd();
    // SAFETY: fcntl/dup3 on fds we hold; fd 3 is free (everything is close-on-exec).
    let moved = if sync == report {
        unsafe { libc::fcntl(report, libc::F_SETFD, 0) }
    } else {
        unsafe { libc::dup3(sync, report, 0) }
    };
    sys::cvt(moved).step(|| "hand the sync socket to the exec trampoline".into())?;
    let mut argv_p: Vec<*const libc::c_char> = Vec::with_capacity(argv.len() + 2);
    argv_p.push(program.as_ptr());
    argv_p.extend(argv.iter().map(|a| a.as_ptr()));
    argv_p.push(std::ptr::null());
    let mut envp_p: Vec<*const libc::c_char> = envp.iter().map(|e| e.as_ptr()).collect();
    envp_p.push(std::ptr::null());
    // SAFETY: NULL-terminated arrays of pointers into live CStrings; an
    // empty path with AT_EMPTY_PATH execs the fd itself.
    unsafe {
        libc::execveat(
            tramp,
            c"".as_ptr(),
            argv_p.as_ptr().cast(),
            envp_p.as_ptr().cast(),
            libc::AT_EMPTY_PATH,
        )
    };
    let e = std::io::Error::last_os_error();
    if matches!(e.raw_os_error(), Some(libc::EPERM) | Some(libc::ENOSYS)) {
        // A seccomp profile that allows execve but not execveat: the same
        // memfd through its /proc link.
        let path = sys::cstr(format!("/proc/self/fd/{tramp}")).step(|| "trampoline".into())?;
        // SAFETY: as above.
        unsafe { libc::execve(path.as_ptr(), argv_p.as_ptr(), envp_p.as_ptr()) };
    }
    Err(crate::error::exec_failed(
        &program.to_string_lossy(),
        &std::io::Error::last_os_error(),
    ))
}

/// Block until `start` writes to the exec fifo. Meanwhile the runtime may
/// hand the container over (`D`: it may now outlive the runtime, which
/// waits for the `A`); if the runtime dies first (end-of-file), give up
/// rather than wait for a start that can never come.
fn wait_for_start(cfg: &ChildConfig<'_>) -> Result<()> {
    let mut handed_over = false;
    loop {
        let mut fds = [
            libc::pollfd {
                fd: cfg.exec_fifo.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: if handed_over {
                    -1
                } else {
                    cfg.sync.as_raw_fd()
                },
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: a valid array of two pollfds.
        if unsafe { libc::poll(fds.as_mut_ptr(), 2, -1) } < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e).step(|| "wait on exec fifo".into());
        }
        if fds[0].revents != 0 {
            let mut byte = [0u8];
            let n =
                sys::read(cfg.exec_fifo.as_fd(), &mut byte).step(|| "wait on exec fifo".into())?;
            if n != 1 {
                return Err(Error::setup("exec fifo closed before start"));
            }
            return Ok(());
        }
        if fds[1].revents != 0 {
            match sync::recv(cfg.sync.as_fd()).step(|| "wait for start".into())? {
                Msg::Detach => {
                    // SAFETY: prctl with integer arguments.
                    unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, 0, 0, 0, 0) };
                    sync::send(cfg.sync.as_fd(), Outgoing::Ack)
                        .step(|| "acknowledge hand-over".into())?;
                    handed_over = true;
                }
                // SAFETY: nothing of this process is shared; no one is left to report to.
                Msg::Eof => unsafe { libc::_exit(125) },
                _ => return Err(Error::setup("unexpected message while waiting for start")),
            }
        }
    }
}

/// Bring up `lo` in a new network namespace, as runc does, where allowed.
fn loopback_up() -> Result<()> {
    // struct ifreq: name, then a union whose first member we use is flags.
    #[repr(C)]
    struct IfReq {
        name: [u8; libc::IFNAMSIZ],
        flags: libc::c_short,
        _rest: [u8; 22],
    }
    let what = || "bring up loopback interface".to_string();
    // SAFETY: plain socket creation.
    let sock =
        sys::cvt(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
            .step(what)?;
    // SAFETY: fresh fd.
    let sock = unsafe { OwnedFd::from_raw_fd(sock) };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        flags: 0,
        _rest: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: req is a valid ifreq-sized buffer for both ioctls.
    sys::cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) }).step(what)?;
    req.flags |= libc::IFF_UP as libc::c_short;
    // SAFETY: as above.
    match sys::cvt(unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) }) {
        // No CAP_NET_ADMIN (an engine run in a container with Docker's
        // default capabilities): the namespace stays private, `lo` down.
        Err(e) if e.raw_os_error() == Some(libc::EPERM) => Ok(()),
        r => r.map(drop).step(what),
    }
}

/// PATH used when the spec's environment has none (Docker's default).
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Undo what the runtime process had set up: blocked signals (for its
/// signalfd) and ignored ones (Rust ignores SIGPIPE); exec would keep both.
fn reset_signals() {
    for sig in 1..=64 {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: resetting a disposition to default; invalid numbers fail harmlessly.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
    let all = sys::sigset(&[]);
    // SAFETY: valid sigset pointer.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &all, std::ptr::null_mut()) };
}

/// Allocate the container's pty inside its own devpts, make the slave the
/// controlling terminal and fds 0–2, bind it to /dev/console, and hand the
/// master to the runtime.
fn setup_console(sync_fd: BorrowedFd<'_>) -> Result<()> {
    let master = sys::open(Path::new("/dev/ptmx"), libc::O_RDWR | libc::O_NOCTTY)
        .step(|| "open /dev/ptmx".into())?;
    let unlock: libc::c_int = 0;
    // SAFETY: TIOCSPTLCK takes a pointer to int.
    sys::cvt(unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSPTLCK, &unlock) })
        .step(|| "unlock pty".into())?;
    // SAFETY: TIOCGPTPEER returns a new fd for the slave of this master.
    let slave = sys::cvt(unsafe {
        libc::ioctl(
            master.as_raw_fd(),
            libc::TIOCGPTPEER,
            libc::O_RDWR | libc::O_NOCTTY | libc::O_CLOEXEC,
        )
    })
    .step(|| "open pty slave".into())?;
    // SAFETY: fresh fd.
    let slave = unsafe { OwnedFd::from_raw_fd(slave) };
    rootfs::bind_console(slave.as_fd())?;
    // SAFETY: we are a session leader without a controlling terminal.
    sys::cvt(unsafe { libc::ioctl(slave.as_raw_fd(), libc::TIOCSCTTY, 0) })
        .step(|| "set controlling terminal".into())?;
    for fd in 0..3 {
        sys::dup2(slave.as_raw_fd(), fd).step(|| "attach pty to stdio".into())?;
    }
    sync::send(sync_fd, Outgoing::Pty(master.as_fd())).step(|| "send pty master".into())
}

fn set_rlimit(rl: &PosixRlimit) -> Result<()> {
    let name = serde_json::to_value(rl.typ())
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let resource = match name.as_str() {
        "RLIMIT_CPU" => libc::RLIMIT_CPU,
        "RLIMIT_FSIZE" => libc::RLIMIT_FSIZE,
        "RLIMIT_DATA" => libc::RLIMIT_DATA,
        "RLIMIT_STACK" => libc::RLIMIT_STACK,
        "RLIMIT_CORE" => libc::RLIMIT_CORE,
        "RLIMIT_RSS" => libc::RLIMIT_RSS,
        "RLIMIT_NPROC" => libc::RLIMIT_NPROC,
        "RLIMIT_NOFILE" => libc::RLIMIT_NOFILE,
        "RLIMIT_MEMLOCK" => libc::RLIMIT_MEMLOCK,
        "RLIMIT_AS" => libc::RLIMIT_AS,
        "RLIMIT_LOCKS" => libc::RLIMIT_LOCKS,
        "RLIMIT_SIGPENDING" => libc::RLIMIT_SIGPENDING,
        "RLIMIT_MSGQUEUE" => libc::RLIMIT_MSGQUEUE,
        "RLIMIT_NICE" => libc::RLIMIT_NICE,
        "RLIMIT_RTPRIO" => libc::RLIMIT_RTPRIO,
        "RLIMIT_RTTIME" => libc::RLIMIT_RTTIME,
        other => return Err(Error::setup(format!("unknown rlimit {other:?}"))),
    };
    let lim = libc::rlimit {
        rlim_cur: rl.soft(),
        rlim_max: rl.hard(),
    };
    // SAFETY: valid rlimit pointer.
    if unsafe { libc::setrlimit(resource, &lim) } == -1 {
        let e = std::io::Error::last_os_error();
        // Docker's name for it (`nofile`), as the user wrote it in --ulimit.
        let short = name.trim_start_matches("RLIMIT_").to_ascii_lowercase();
        // fs.nr_open is global, so any /proc shows the host's.
        let nr_open: Option<u64> = std::fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|s| s.trim().parse().ok());
        let why = match e.raw_os_error() {
            Some(libc::EPERM) => match nr_open {
                Some(n) if resource == libc::RLIMIT_NOFILE && rl.hard() > n => {
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
    let c = cstr(p)?;
    // SAFETY: valid string; checks execute permission for the effective ids.
    sys::cvt(unsafe { libc::faccessat(libc::AT_FDCWD, c.as_ptr(), libc::X_OK, libc::AT_EACCESS) })?;
    Ok(())
}
