//! `exec`: a new process in a running container, built from the same steps
//! as the container's own set-up (see `setup`), with the namespaces joined
//! rather than made. What berth's `exec` and an OCI runtime's `exec` run.
//!
//! 1. The runtime pins the container's PID 1 (pidfd, then its start time
//!    from state.json checked), finds which of its namespaces this process
//!    does not share, compiles (or takes from the cache) the spec's seccomp
//!    filter, and clone3s a joining child straight into the container's
//!    cgroup (v2: CLONE_INTO_CGROUP; v1: the child writes each hierarchy's
//!    `tasks` first thing; none when the container has no cgroup of its own).
//! 2. The joining child makes itself non-dumpable (no process of the
//!    container may open its /proc/PID/exe, the runtime's binary, or its
//!    fds), joins every namespace at once with setns(2) on the pidfd (the
//!    kernel takes the user namespace first), and clone3s the exec'd child
//!    with CLONE_PARENT: the runtime's own child, so the runtime can wait
//!    for it, born in the container's PID namespace. It sends its pid and
//!    pidfd (`P`) and exits.
//! 3. The exec'd child becomes root of a joined user namespace, starts a
//!    session, takes its stdio (the runtime's pipes, /dev/null, the
//!    caller's, or a pty from the container's own /dev/ptmx, whose master
//!    goes to the runtime, so the container sees its own /dev/pts/N), then
//!    the container set-up's own steps: rlimits, cwd, seccomp, user and
//!    groups, capabilities, no_new_privs, the PATH lookup, and the exec
//!    through the trampoline, which reports a failed exec (126/127).
//!
//! Masked and read-only paths, mounts and the root come with the mount
//! namespace. The caller must be single-threaded (see `sys::clone_process`).

use crate::cgroups::{Cgroup, Layout};
use crate::container::{Io, seccomp_cache_dir, validate_id};
use crate::error::{Context, Error, Result};
use crate::foreground::{self, Tty};
use crate::relay::Stdio;
use crate::setup::{self, Identity, Never};
use crate::state::State;
use crate::sync::{self, Msg, Outgoing};
use crate::sys;
use oci_spec::runtime::{Process, Spec};
use rustix::thread::ThreadNameSpaceType as Ns;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

/// A process to run in a running container.
pub struct Exec<'a> {
    /// The container's id and the runtime's state directory, as `create`
    /// was given them.
    pub id: &'a str,
    pub state_dir: &'a Path,
    /// The container's spec (its bundle's config.json): the seccomp filter
    /// comes from it; namespaces, mounts and masked paths come with PID 1.
    pub spec: &'a Spec,
    /// What to run, as a whole OCI process (runc exec's `--process`): its
    /// args, env, cwd, user, capabilities, rlimits, no_new_privs, terminal.
    pub process: &'a Process,
    /// fds 3..3+preserve_fds of the caller stay open into the command
    /// (runc exec's `--preserve-fds`).
    pub preserve_fds: u32,
}

/// Where a detached exec's fds 0–2 go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetachedStdio {
    /// /dev/null (`docker exec -d`).
    Null,
    /// The caller's own (an OCI runtime's caller made them for it).
    Inherit,
    /// stdin /dev/null, stdout and stderr one pipe whose read end comes
    /// back in [`Detached::output`] (a health check's combined output).
    Output,
}

/// A detached exec once its command runs.
#[derive(Debug)]
pub struct Detached {
    /// Its pid as the host sees it.
    pub pid: i32,
    /// Its pidfd: the process is the caller's child (born with
    /// CLONE_PARENT), which may wait for it through this.
    pub pidfd: OwnedFd,
    /// With [`DetachedStdio::Output`]: the read end of its stdout and
    /// stderr (close-on-exec, blocking).
    pub output: Option<OwnedFd>,
    /// With `process.terminal`: the pty master (the caller keeps it, or
    /// passes it on, as to runc's `--console-socket`).
    pub pty_master: Option<OwnedFd>,
}

/// Run `x` in the foreground: stdio relayed (pipes, or the pty with the
/// caller's terminal raw under `-it`), the caller's signals forwarded,
/// until it exits. Docker's exit code: its own, or 128+N for signal N.
pub fn exec(x: &Exec<'_>, io: &Io) -> Result<i32> {
    let (_mask, sfd) = foreground::catch_signals()?;
    let terminal = x.process.terminal().unwrap_or(false);
    let pipes = if terminal {
        None
    } else {
        Some(Stdio::new(io.interactive).step(|| "stdio pipes".into())?)
    };
    let mut spawned = spawn(x, Mode::Foreground(pipes))?;
    let master = spawned.pty_master.take();
    let master = master.as_ref().map(|m| m.as_fd());
    let _raw = foreground::prepare_terminal(master, io.interactive);
    let mut pumps = spawned
        .stdio
        .take()
        .map(|s| s.pumps(false, false))
        .unwrap_or_default();
    let mut tty = Tty::new(master, io.interactive);
    let pidfd = spawned.pidfd.as_fd();
    foreground::relay_until_exit(pidfd, sfd.as_fd(), &mut tty, &mut pumps, None)?;
    let status = sys::pidfd_wait(pidfd, false)
        .step(|| "wait for the exec'd process".into())?
        .unwrap_or(0);
    // Other processes of the container may hold its pipes or pty open for
    // ever: what is already buffered is all there is to take.
    foreground::drain_after_exit(&mut tty, &mut pumps, false, None);
    Ok(sys::exit_code(status))
}

/// Run `x` detached: returns once its command has been exec'd (or with
/// the error that kept it from being, 126/127 as `run`'s).
pub fn exec_detached(x: &Exec<'_>, stdio: DetachedStdio) -> Result<Detached> {
    let s = spawn(x, Mode::Detached(stdio))?;
    Ok(Detached {
        pid: s.pid,
        pidfd: s.pidfd,
        output: s.output,
        pty_master: s.pty_master,
    })
}

enum Mode {
    /// The runtime's pipes (None with a pty).
    Foreground(Option<Stdio>),
    Detached(DetachedStdio),
}

/// The exec'd process, running its command.
struct Spawned {
    pid: i32,
    pidfd: OwnedFd,
    pty_master: Option<OwnedFd>,
    stdio: Option<Stdio>,
    /// The read end of [`DetachedStdio::Output`]'s pipe.
    output: Option<OwnedFd>,
}

/// The container's PID 1 as this process is to join it.
struct Target {
    pid1: crate::process::Process,
    /// The namespaces of PID 1 this process does not share.
    join: Ns,
    /// Its cgroup, when it has one of its own.
    cgroup: Option<Cgroup>,
}

fn not_running(id: &str) -> Error {
    Error::setup(format!("container {id:?} is not running"))
}

impl Target {
    fn find(id: &str, state_dir: &Path) -> Result<Target> {
        validate_id(id)?;
        let dir = state_dir.join(id);
        if !dir.join(crate::state::FILE).exists() {
            return Err(Error::setup(format!("container {id:?} does not exist")));
        }
        let state = State::load(&dir)?;
        let pid1 = crate::process::Process::open(state.pid, state.pid_start_time)
            .step(|| format!("find container {id:?}"))?
            .filter(|p| !p.exited())
            .ok_or_else(|| not_running(id))?;
        let join = namespaces_to_join(state.pid)?;
        // Read through /proc/PID: still the same process, so they were its.
        if pid1.exited() {
            return Err(not_running(id));
        }
        let cgroup = match &state.cgroup {
            Some(rel) => Some(
                Layout::detect()
                    .and_then(|l| Cgroup::from_rel(l, rel))
                    .map_err(|e| Error::setup(format!("cgroup: {e}")))?,
            ),
            None => None,
        };
        Ok(Target { pid1, join, cgroup })
    }
}

/// Which namespaces of process `pid` differ from this process's (those of
/// its children, for pid and time): the ones to join. Joining one's own
/// user namespace is an error, joining the others a waste.
fn namespaces_to_join(pid: i32) -> Result<Ns> {
    const KINDS: [(&str, &str, Ns); 8] = [
        ("user", "user", Ns::USER),
        ("mnt", "mnt", Ns::MOUNT),
        ("pid", "pid_for_children", Ns::PROCESS_ID),
        ("uts", "uts", Ns::HOST_NAME_AND_NIS_DOMAIN_NAME),
        ("ipc", "ipc", Ns::INTER_PROCESS_COMMUNICATION),
        ("net", "net", Ns::NETWORK),
        ("cgroup", "cgroup", Ns::CONTROL_GROUP),
        ("time", "time_for_children", Ns::TIME),
    ];
    let id = |p: &str| rustix::fs::stat(p).map(|s| (s.st_dev, s.st_ino));
    let mut join = Ns::empty();
    for (theirs, ours, flag) in KINDS {
        let Ok(t) = id(&format!("/proc/{pid}/ns/{theirs}")) else {
            // A kernel without this kind (time before 5.6) has it nowhere.
            continue;
        };
        if id(&format!("/proc/self/ns/{ours}")).ok() != Some(t) {
            join |= flag;
        }
    }
    Ok(join)
}

/// The container's cgroup for the joining child: its v2 directory
/// (CLONE_INTO_CGROUP), or the `tasks` files of the v1 hierarchies it is
/// in (with the [`crate::cgroups::V1_HIERARCHIES`] annotation, not all).
fn open_cgroup(cg: &Cgroup) -> std::io::Result<(Option<OwnedFd>, Vec<OwnedFd>)> {
    if cg.is_v2() {
        return Ok((cg.open_v2()?, Vec::new()));
    }
    let mut tasks = Vec::new();
    for dir in cg.dirs() {
        let path = dir.join("tasks");
        match sys::open(&path, rustix::fs::OFlags::WRONLY) {
            Ok(fd) => tasks.push(fd),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("{}: {e}", path.display()),
                ));
            }
        }
    }
    Ok((None, tasks))
}

/// What both children need, made before the first clone.
struct Child<'a> {
    process: &'a Process,
    target: BorrowedFd<'a>,
    join: Ns,
    /// v1 `tasks` files to write "0" to.
    join_cgroup: Vec<OwnedFd>,
    sync: OwnedFd,
    stdio: ChildStdio,
    identity: Identity<'a>,
    trampoline: OwnedFd,
    kept_fds: u32,
    foreground: bool,
}

enum ChildStdio {
    /// The runtime's pipes; a missing stdin is /dev/null.
    Pipes([Option<OwnedFd>; 3]),
    Pty,
    Null,
    Inherit,
}

/// Make the exec'd process and see it through to its command's exec.
fn spawn(x: &Exec<'_>, mode: Mode) -> Result<Spawned> {
    let target = Target::find(x.id, x.state_dir)?;
    let terminal = x.process.terminal().unwrap_or(false);
    let seccomp = match x.spec.linux().as_ref().and_then(|l| l.seccomp().as_ref()) {
        Some(s) => {
            let cache = seccomp_cache_dir(&x.state_dir.join(x.id));
            Some(crate::seccomp::prepare(s, Some(&cache))?)
        }
        None => None,
    };
    let (into, join_cgroup) = match &target.cgroup {
        Some(cg) => open_cgroup(cg).map_err(|e| Error::setup(format!("cgroup: {e}")))?,
        None => (None, Vec::new()),
    };
    let (parent_sock, child_sock) = sync::pair().step(|| "socketpair".into())?;
    let mut output = None;
    let (mut pipes, stdio, foreground) = match mode {
        Mode::Foreground(_) if terminal => (None, ChildStdio::Pty, true),
        Mode::Foreground(mut p) => {
            let child = p.as_mut().map(|s| std::mem::take(&mut s.child));
            (p, ChildStdio::Pipes(child.unwrap_or_default()), true)
        }
        Mode::Detached(_) if terminal => (None, ChildStdio::Pty, false),
        Mode::Detached(DetachedStdio::Null) => (None, ChildStdio::Null, false),
        Mode::Detached(DetachedStdio::Inherit) => (None, ChildStdio::Inherit, false),
        Mode::Detached(DetachedStdio::Output) => {
            let (r, w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .step(|| "output pipe".into())?;
            let w2 = rustix::io::fcntl_dupfd_cloexec(&w, 3).step(|| "output pipe".into())?;
            output = Some(r);
            (None, ChildStdio::Pipes([None, Some(w), Some(w2)]), false)
        }
    };
    let child = Child {
        process: x.process,
        target: target.pid1.pidfd(),
        join: target.join,
        join_cgroup,
        sync: child_sock,
        stdio,
        identity: Identity {
            seccomp: seccomp.as_ref(),
            last_cap: crate::capabilities::last_cap(),
            userns: target.join.contains(Ns::USER),
        },
        trampoline: crate::trampoline::memfd(crate::trampoline::report_fd(x.preserve_fds))
            .step(|| "exec trampoline".into())?,
        kept_fds: x.preserve_fds,
        foreground,
    };
    let cloned = sys::clone_process(0, into.as_ref().map(|f| f.as_fd()));
    drop(into);
    match cloned {
        Ok(sys::Cloned::Child) => {
            drop(parent_sock);
            join_main(child)
        }
        Ok(sys::Cloned::Parent { pidfd, .. }) => {
            // Only the children may hold their ends (of the pipes too).
            drop(child);
            let mut s = await_exec(parent_sock.as_fd(), pidfd.as_fd())?;
            s.stdio = pipes.take();
            s.output = output;
            Ok(s)
        }
        Err(e) => Err(e).step(|| "clone exec process".into()),
    }
}

/// The runtime's side once the joining child is cloned: every message
/// until end-of-file (both children gone, or the command exec'd), in
/// whatever order the two children send them.
fn await_exec(sock: BorrowedFd<'_>, joiner: BorrowedFd<'_>) -> Result<Spawned> {
    let mut exec_child = None;
    let mut pty_master = None;
    let mut program = String::new();
    let mut failed = None;
    loop {
        match sync::recv(sock) {
            Ok(Msg::Eof) => break,
            Ok(Msg::Pid(pid, pidfd)) => exec_child = Some((pid, pidfd)),
            Ok(Msg::Pty(fd)) => pty_master = Some(fd),
            Ok(Msg::Ready(p)) => program = p,
            Ok(Msg::Failed(e)) => failed = Some(e),
            Ok(Msg::ExecFailed(errno)) => {
                let e = std::io::Error::from_raw_os_error(errno);
                failed = Some(crate::error::exec_failed(&program, &e));
            }
            Ok(Msg::Go | Msg::Hooks | Msg::Detach | Msg::Ack) => {
                failed = Some(Error::setup("unexpected message from exec process"));
            }
            Err(e) => {
                failed = Some(Error::setup(format!("read from exec process: {e}")));
                break;
            }
        }
    }
    // The joining child exits once it has sent `P` (or failed).
    let _ = sys::pidfd_wait(joiner, false);
    match (exec_child, failed) {
        (Some((pid, pidfd)), None) => Ok(Spawned {
            pid,
            pidfd,
            pty_master,
            stdio: None,
            output: None,
        }),
        (child, failed) => {
            if let Some((_, pidfd)) = child {
                let _ = sys::pidfd_send_signal(pidfd.as_fd(), libc::SIGKILL);
                let _ = sys::pidfd_wait(pidfd.as_fd(), false);
            }
            Err(failed.unwrap_or_else(|| Error::setup("exec process exited unexpectedly")))
        }
    }
}

/// The joining child: into the cgroup (v1), non-dumpable, every namespace
/// of PID 1, then the exec'd child as the runtime's. Never returns.
fn join_main(cfg: Child<'_>) -> ! {
    setup::reset_signals();
    setup::die_with_runtime();
    let joined = join(&cfg);
    let err = match joined.and_then(|()| {
        // The exec'd child is born in PID 1's PID namespace, as a sibling.
        sys::clone_process(libc::CLONE_PARENT as u64, None).step(|| "clone exec process".into())
    }) {
        Ok(sys::Cloned::Child) => exec_main(cfg),
        Ok(sys::Cloned::Parent { pid, pidfd }) => {
            match sync::send(cfg.sync.as_fd(), Outgoing::Pid(pid, pidfd.as_fd())) {
                Ok(()) => sys::exit_now(0),
                Err(e) => Error::setup(format!("report exec process: {e}")),
            }
        }
        Err(e) => e,
    };
    sync::send_error(cfg.sync.as_fd(), &err);
    sys::exit_now(err.exit_code())
}

fn join(cfg: &Child<'_>) -> Result<()> {
    // Inherited by the exec'd child; set while /proc/self is still writable
    // by its owner (a non-dumpable process's belongs to root).
    setup::set_oom_score_adj(cfg.process)?;
    // Until exec, this process's /proc/PID/exe is the runtime's binary and
    // its fds the runtime's: no process of the container may open them
    // (CVE-2019-5736; runc's exec does the same). Its memory belongs to the
    // host's user namespace, so root of the container's cannot override it.
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .step(|| "make the exec process non-dumpable".into())?;
    for fd in &cfg.join_cgroup {
        sys::write_all(fd.as_fd(), b"0").step(|| "join the container's cgroup".into())?;
    }
    if !cfg.join.is_empty() {
        rustix::thread::move_into_thread_name_spaces(cfg.target, cfg.join)
            .step(|| "join the container's namespaces".into())?;
    }
    Ok(())
}

/// The exec'd child, in the container's namespaces and cgroup. Never returns.
fn exec_main(cfg: Child<'_>) -> ! {
    let err = match set_up_and_exec(&cfg) {
        Ok(never) => match never {},
        Err(e) => e,
    };
    sync::send_error(cfg.sync.as_fd(), &err);
    sys::exit_now(err.exit_code())
}

fn set_up_and_exec(cfg: &Child<'_>) -> Result<Never> {
    // The parent-death signal does not survive clone: set it again (the
    // runtime, killed, takes the process it was setting up with it).
    setup::die_with_runtime();
    if cfg.identity.userns {
        setup::become_userns_root()?;
    }
    // A session of its own: no way to the caller's controlling terminal,
    // and the pty's slave can become this one's.
    let _ = rustix::process::setsid();
    attach_stdio(cfg)?;
    setup::set_identity(&cfg.identity, cfg.process)?;
    let command = setup::resolve_command(cfg.process)?;
    // setuid cleared the parent-death signal. In the foreground the
    // process lives as long as the runtime relays it; detached, it
    // outlives the runtime, which returns once it is exec'd.
    if cfg.foreground {
        setup::die_with_runtime();
    } else {
        let _ = rustix::process::set_parent_process_death_signal(None);
    }
    sync::send(cfg.sync.as_fd(), Outgoing::Ready(&command.program))
        .step(|| "report ready".into())?;
    setup::exec_command(
        cfg.sync.as_fd(),
        cfg.trampoline.as_fd(),
        cfg.identity.seccomp,
        cfg.process,
        &command,
        cfg.kept_fds,
    )
}

fn attach_stdio(cfg: &Child<'_>) -> Result<()> {
    match &cfg.stdio {
        ChildStdio::Pipes(fds) => {
            for (target, fd) in fds.iter().enumerate() {
                if let Some(fd) = fd {
                    sys::dup_to_stdio(fd.as_fd(), target as i32)
                        .step(|| "attach stdio pipes".into())?;
                }
            }
            if fds[0].is_none() {
                setup::null_stdio(&[0])?;
            }
            Ok(())
        }
        ChildStdio::Pty => {
            // The container's own /dev/ptmx: this process is in its mount
            // namespace, under its root.
            let (master, slave) = setup::open_pty()?;
            setup::attach_pty(cfg.sync.as_fd(), master, slave)
        }
        ChildStdio::Null => setup::null_stdio(&[0, 1, 2]),
        ChildStdio::Inherit => Ok(()),
    }
}
