//! `berth run` in the foreground: create + start, forward signals, copy the
//! pty if there is one, wait, delete (the loop is `foreground`'s, which
//! `exec` shares).

use crate::container::{Container, Io, Supervision};
use crate::error::{Error, Result};
use crate::foreground::{self, Tty};
use crate::relay::{OutputTap, Pump};
use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

/// How a container run in the foreground ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    /// Docker's exit code: the process's own, or 128+N if killed by signal N.
    pub code: i32,
    /// Whether the kernel's OOM killer killed a process of the container.
    pub oom_killed: bool,
}

/// Run the bundle in the foreground and return how it ended. `on_start` gets the host PID
/// of the container's PID 1 just before the command is released to run. The container's state directory
/// is gone when this returns, whatever happened.
///
/// Must be called from a single-threaded process.
pub fn run(
    id: &str,
    bundle: &Path,
    state_dir: &Path,
    io: &Io,
    on_start: impl FnOnce(i32),
) -> Result<Exit> {
    let spec = crate::container::load_spec(bundle)?;
    run_spec(id, bundle, &spec, state_dir, io, on_start, None)
}

/// [`run`] with the bundle's spec already in memory, and the container's
/// output shown to `tap` on its way.
pub fn run_spec(
    id: &str,
    bundle: &Path,
    spec: &oci_spec::runtime::Spec,
    state_dir: &Path,
    io: &Io,
    on_start: impl FnOnce(i32),
    tap: Option<&mut (dyn OutputTap + '_)>,
) -> Result<Exit> {
    // Block before create so no signal is lost (it waits in the signalfd).
    let (_mask, sfd) = foreground::catch_signals()?;

    let mut container =
        Container::create_supervised(id, bundle, spec, state_dir, io, Supervision::Foreground)?;
    // Closed after the delete below, as when the container held it.
    let master = container.take_pty_master();
    let master = master.as_ref().map(|m| m.as_fd());
    let result = supervise(&mut container, sfd.as_fd(), master, io, on_start, tap);
    match result {
        Ok(code) => {
            let oom_killed = container.oom_killed();
            container.delete(true)?;
            Ok(Exit { code, oom_killed })
        }
        Err(e) => {
            let _ = container.delete(true);
            Err(e)
        }
    }
}

/// Start the container and look after it until its PID 1 exits: forward
/// signals, copy the pty or pump the stdio pipes, then take what output is
/// left. Docker's exit code for it.
fn supervise(
    c: &mut Container,
    sfd: BorrowedFd<'_>,
    master: Option<BorrowedFd<'_>>,
    io: &Io,
    on_start: impl FnOnce(i32),
    mut tap: Option<&mut (dyn OutputTap + '_)>,
) -> Result<i32> {
    // The guard restores the terminal on every way out of here.
    let _raw = foreground::prepare_terminal(master, io.interactive);
    // Before the release, so that by the time the command can show
    // anything, the caller has recorded it running (`inspect` gives its PID).
    on_start(c.pid());
    c.start()?;

    let mut pumps: Vec<Pump> = c
        .take_stdio()
        .map(|s| s.pumps(tap.is_some(), tap.as_ref().is_some_and(|t| t.alone())))
        .unwrap_or_default();
    let mut tty = Tty::new(master, io.interactive);
    let pidfd = c
        .pidfd()
        .ok_or_else(|| Error::setup("container has no pidfd"))?;
    foreground::relay_until_exit(pidfd, sfd, &mut tty, &mut pumps, tap.as_deref_mut())?;
    let code = c.wait()?;
    // PID 1 is gone, so with a PID namespace of its own every process of
    // the container is too. Without one a leftover process may hold the
    // pty or pipes open for ever.
    foreground::drain_after_exit(&mut tty, &mut pumps, c.has_own_pid_ns(), tap.as_deref_mut());
    if let Some(t) = tap {
        t.idle();
    }
    Ok(code)
}
