//! OCI hooks that run in the runtime's namespaces (runtime-spec
//! config.md, "POSIX-platform Hooks"): `prestart` (deprecated, run just
//! before `createRuntime`, as runc does), `createRuntime`, `poststart` and
//! `poststop`. Each is a process of its own, given the container's state
//! (ociVersion, id, status, pid, bundle, annotations) on stdin, with the
//! spec's path, argv (`args[0]` is its argv[0]) and environment (none
//! when the spec gives none, as youki does), its cwd the bundle.
//!
//! When:
//! - `prestart`, `createRuntime`: once the set-up child has entered its
//!   namespaces and mounted the rootfs, before the root switch: the child
//!   asks with `H` and waits for `G` (see `sync`). The state says
//!   `creating` and carries the child's PID, so a hook can enter its
//!   namespaces (berth's pasta hook does). A failure fails `create`, with
//!   one line naming the phase, the hook's path, its exit status and the
//!   last line it printed.
//! - `poststart`: after the command has been exec'd, before `start`
//!   returns; `poststop`: once `delete` has removed the container, before
//!   it returns. Their failures are warnings, as the spec says. Both are
//!   kept in state.json, so a `start` or `delete` from another process
//!   runs them too.
//!
//! How, in a single-threaded runtime: stdin is a memfd holding the state
//! (a hook that never reads it cannot block the runtime on a full pipe);
//! stdout and stderr are one memfd, read back for the error message (a
//! hook that leaves a daemon behind, as pasta does, holds no pipe anyone
//! waits on); every other fd is close-on-exec; the hook leads a process
//! group of its own, and the runtime polls its pidfd for at most its
//! `timeout` (default [`DEFAULT_TIMEOUT`], where runc would wait for
//! ever), then kills the group.
//!
//! - `createContainer`: by the set-up child itself, in the container's
//!   namespaces once its mounts are made and after `createRuntime`, before
//!   the root switch, so the path still resolves as the runtime sees it;
//!   the state's pid is the child's host PID. A failure fails `create`.
//! - `startContainer`: by the container's process, after `start` and
//!   right before the command's exec, with the container's root, identity
//!   and PID (its own, as runc gives it). A failure fails the start: the
//!   command never runs.

use crate::error::{Error, Result, strip_os_error};
use crate::state::{State, Status};
use oci_spec::runtime::{Hook, Hooks, Spec};
use serde::Serialize;
use std::collections::HashMap;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::time::{Duration, Instant};

/// How long a hook without a `timeout` may take before it is killed.
/// pasta, the longest berth runs, takes about 40 ms.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// The state a hook reads on stdin: the OCI state, without berth's own
/// fields.
#[derive(Serialize)]
struct OciState<'a> {
    #[serde(rename = "ociVersion")]
    oci_version: &'a str,
    id: &'a str,
    status: Status,
    /// Left out once stopped, where the spec no longer requires it.
    #[serde(skip_serializing_if = "no_pid")]
    pid: i32,
    bundle: &'a Path,
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    annotations: &'a HashMap<String, String>,
}

fn no_pid(pid: &i32) -> bool {
    *pid <= 0
}

/// The hooks that run before the root switch, with their phase.
#[allow(deprecated)] // prestart: deprecated, still run
fn before_root_switch(spec: &Spec) -> impl Iterator<Item = (&'static str, &Hook)> {
    let hooks = spec.hooks().as_ref();
    let prestart = hooks.and_then(|h| h.prestart().as_ref());
    let create_runtime = hooks.and_then(|h| h.create_runtime().as_ref());
    let prestart = prestart.into_iter().flatten().map(|h| ("prestart", h));
    prestart.chain(
        create_runtime
            .into_iter()
            .flatten()
            .map(|h| ("createRuntime", h)),
    )
}

/// Refuses, before anything is made, hooks this runtime cannot run as the
/// spec says: those inside the container, a relative path, a timeout that
/// is not above zero.
pub(crate) fn check(spec: &Spec) -> Result<()> {
    let Some(hooks) = spec.hooks() else {
        return Ok(());
    };
    let later = [
        ("createContainer", hooks.create_container()),
        ("startContainer", hooks.start_container()),
        ("poststart", hooks.poststart()),
        ("poststop", hooks.poststop()),
    ];
    let later = later
        .iter()
        .flat_map(|(p, l)| l.iter().flatten().map(move |h| (*p, h)));
    for (phase, hook) in before_root_switch(spec).chain(later) {
        if !hook.path().is_absolute() {
            return Err(Error::setup(format!(
                "{phase} hook {}: the path must be absolute",
                hook.path().display()
            )));
        }
        if let Some(t) = hook.timeout().filter(|t| *t <= 0) {
            return Err(Error::setup(format!(
                "{phase} hook {}: timeout {t} must be greater than zero",
                hook.path().display()
            )));
        }
    }
    Ok(())
}

/// Whether the set-up child is to stop for hooks before the root switch.
pub(crate) fn any_before_root_switch(spec: &Spec) -> bool {
    before_root_switch(spec).next().is_some()
}

/// The hooks that state.json keeps for `start` and `delete`.
pub(crate) fn kept(spec: &Spec) -> Option<Hooks> {
    let h = spec.hooks().as_ref()?;
    let (start, stop) = (h.poststart().clone(), h.poststop().clone());
    if start.is_none() && stop.is_none() {
        return None;
    }
    let mut kept = Hooks::default();
    kept.set_poststart(start);
    kept.set_poststop(stop);
    Some(kept)
}

/// Runs the prestart and createRuntime hooks, in that order, for the
/// container `state` describes (status `creating`); the first failure is
/// the error.
pub(crate) fn create_runtime(spec: &Spec, state: &State) -> Result<()> {
    let input = encode(state, Status::Creating)?;
    for (phase, hook) in before_root_switch(spec) {
        run(hook, &input, &state.bundle)
            .map_err(|why| Error::setup(format!("{phase} hook {} {why}", hook.path().display())))?;
    }
    Ok(())
}

/// Runs the createContainer hooks from the set-up child (see the module
/// doc); the first failure is the error.
pub(crate) fn create_container(spec: &Spec, id: &str, bundle: &Path) -> Result<()> {
    let hooks = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.create_container().as_ref());
    // /proc is still the runtime's: its `self` is this process's host PID.
    let pid = std::fs::read_link("/proc/self")
        .ok()
        .and_then(|p| p.to_str()?.parse().ok())
        .unwrap_or(0);
    in_container("createContainer", hooks, spec, id, bundle, pid, bundle)
}

/// Runs the startContainer hooks from the container's process, right
/// before its command (see the module doc).
pub(crate) fn start_container(spec: &Spec, id: &str, bundle: &Path) -> Result<()> {
    let hooks = spec
        .hooks()
        .as_ref()
        .and_then(|h| h.start_container().as_ref());
    let pid = rustix::process::getpid().as_raw_nonzero().get();
    in_container(
        "startContainer",
        hooks,
        spec,
        id,
        bundle,
        pid,
        Path::new("/"),
    )
}

fn in_container(
    phase: &str,
    hooks: Option<&Vec<Hook>>,
    spec: &Spec,
    id: &str,
    bundle: &Path,
    pid: i32,
    cwd: &Path,
) -> Result<()> {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
        return Ok(());
    };
    let state = State {
        oci_version: spec.version().clone(),
        id: id.to_string(),
        status: Status::Created,
        pid,
        bundle: bundle.to_path_buf(),
        annotations: spec.annotations().clone().unwrap_or_default(),
        pid_start_time: 0,
        created: 0,
        cgroup: None,
        hooks: None,
    };
    let status = if phase == "createContainer" {
        Status::Creating
    } else {
        Status::Created
    };
    let input = encode(&state, status)?;
    for hook in hooks {
        run(hook, &input, cwd)
            .map_err(|why| Error::setup(format!("{phase} hook {} {why}", hook.path().display())))?;
    }
    Ok(())
}

/// Runs the poststart hooks (status `running`); a failure is a warning.
pub(crate) fn poststart(state: &State) {
    let hooks = state.hooks.as_ref().and_then(|h| h.poststart().as_ref());
    run_warning("poststart", hooks, state, Status::Running);
}

/// Runs the poststop hooks (status `stopped`); a failure is a warning.
pub(crate) fn poststop(state: &State) {
    let hooks = state.hooks.as_ref().and_then(|h| h.poststop().as_ref());
    run_warning("poststop", hooks, state, Status::Stopped);
}

fn run_warning(phase: &str, hooks: Option<&Vec<Hook>>, state: &State, status: Status) {
    let Some(hooks) = hooks.filter(|h| !h.is_empty()) else {
        return;
    };
    let input = match encode(state, status) {
        Ok(i) => i,
        Err(e) => return tracing::warn!("{phase} hooks of {}: {e}", state.id),
    };
    for hook in hooks {
        if let Err(why) = run(hook, &input, &state.bundle) {
            tracing::warn!("{phase} hook {} {why}", hook.path().display());
        }
    }
}

fn encode(state: &State, status: Status) -> Result<Vec<u8>> {
    let s = OciState {
        oci_version: &state.oci_version,
        id: &state.id,
        status,
        pid: if status == Status::Stopped {
            0
        } else {
            state.pid
        },
        bundle: &state.bundle,
        annotations: &state.annotations,
    };
    serde_json::to_vec(&s).map_err(|e| Error::setup(format!("encode the state for hooks: {e}")))
}

/// Runs `hook` with `input` on stdin, its cwd `cwd`, until it exits or
/// its timeout: Err says what went wrong, as `failed: exit status 3: <its
/// last line>`.
fn run(hook: &Hook, input: &[u8], cwd: &Path) -> std::result::Result<(), String> {
    let stdin = memfd("berth-hook-state").map_err(|e| format!("failed: state: {e}"))?;
    crate::sys::write_all(stdin.as_fd(), input).map_err(|e| format!("failed: state: {e}"))?;
    rustix::fs::seek(&stdin, rustix::fs::SeekFrom::Start(0))
        .map_err(|e| format!("failed: state: {e}"))?;
    let output = memfd("berth-hook-output").map_err(|e| format!("failed: output: {e}"))?;
    let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("failed: output: {e}"));
    let mut cmd = std::process::Command::new(hook.path());
    if let Some((argv0, rest)) = hook.args().as_deref().and_then(<[String]>::split_first) {
        cmd.arg0(argv0).args(rest);
    }
    cmd.env_clear();
    for kv in hook.env().iter().flatten() {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        cmd.env(k, v);
    }
    cmd.current_dir(cwd)
        .stdin(stdin)
        .stdout(dup(&output)?)
        .stderr(dup(&output)?)
        .process_group(0);
    // SAFETY: between fork and exec, only close_range(2), which is
    // async-signal-safe: no fd of the runtime's (nor one its caller leaked
    // to it) reaches the hook, or a daemon it leaves behind.
    unsafe {
        cmd.pre_exec(|| crate::sys::cloexec_from(3));
    }
    let mut child = cmd
        .spawn()
        .map_err(|e| format!("could not be run: {}", strip_os_error(&e)))?;
    let timeout = hook
        .timeout()
        .map_or(DEFAULT_TIMEOUT, |s| Duration::from_secs(s.unsigned_abs()));
    let pid = child.id() as i32;
    let exited = wait_exit(pid, timeout).map_err(|e| format!("failed: wait: {e}"));
    if !matches!(exited, Ok(true)) {
        // The whole group: a shell's children too.
        let _ = crate::sys::kill(-pid, libc::SIGKILL);
        let _ = crate::sys::kill(pid, libc::SIGKILL);
    }
    let status = child.wait().map_err(|e| format!("failed: wait: {e}"))?;
    if !exited? {
        return Err(format!(
            "timed out after {} s and was killed",
            timeout.as_secs()
        ));
    }
    if status.success() {
        return Ok(());
    }
    let why = match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(sig)) => format!("killed by signal {sig}"),
        _ => "failed".to_string(),
    };
    Err(match last_line(&output) {
        Some(line) => format!("failed: {why}: {line}"),
        None => format!("failed: {why}"),
    })
}

fn memfd(name: &str) -> std::io::Result<OwnedFd> {
    Ok(rustix::fs::memfd_create(
        name,
        rustix::fs::MemfdFlags::CLOEXEC,
    )?)
}

/// Whether process `pid` (the caller's child) exited within `timeout`.
fn wait_exit(pid: i32, timeout: Duration) -> std::io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let pidfd = crate::sys::pidfd_open(pid)?;
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as _,
            tv_nsec: left.subsec_nanos() as _,
        };
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&ts)) {
            Ok(0) => return Ok(false),
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
}

/// The last non-empty line the hook wrote (of its first 4 KiB), for an
/// error of one line.
fn last_line(output: &OwnedFd) -> Option<String> {
    let mut buf = vec![0u8; 4096];
    let n = rustix::io::pread(output, &mut buf, 0).ok()?;
    let text = String::from_utf8_lossy(&buf[..n]);
    let line = text.lines().map(str::trim).rfind(|l| !l.is_empty())?;
    Some(line.chars().take(300).collect())
}
