//! A container as the OCI runtime interface sees it: create (process set up
//! and parked before exec), start, kill, state, delete — each usable from a
//! different invocation through `<state_dir>/<id>/state.json` and the exec
//! fifo next to it, the way runc splits them. A `Container` returned by
//! `create` in this process also holds the live handles (pidfd, sync
//! socket, pty master) that `run` uses to supervise it in the foreground.
//! `create` has a file of its own (`create`).

mod create;

pub(crate) use create::seccomp_cache_dir;

use crate::cgroups::{Cgroup, Layout};
use crate::error::{Context, Error, Result};
use crate::state::{self, State, Status};
use crate::sync::{self, Msg};
use crate::sys;
use oci_spec::runtime::Spec;
use rustix::fs::OFlags;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

/// How the container's standard streams connect to the caller's.
#[derive(Debug, Clone, Default)]
pub struct Io {
    /// Keep stdin open (`docker run -i`); otherwise it is /dev/null.
    /// In the foreground ([`run`](crate::run)) stdout and stderr are pipes
    /// the runtime relays to the caller's fds 1 and 2 (with
    /// `process.terminal`, a pty copied to fd 1); a container made by
    /// [`Container::create`] inherits the caller's fds, which the caller
    /// (containerd, say) made for it.
    pub interactive: bool,
    /// fds 3..3+preserve_fds of the caller stay open into the container's
    /// command (runc's `--preserve-fds`, and `LISTEN_FDS`); every other fd
    /// past stdio is closed at its exec.
    pub preserve_fds: u32,
}

/// Who looks after the container once `create` has returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Supervision {
    /// The creating process supervises it to the end (`berth run`): its
    /// stdio are relayed pipes and it dies with that process.
    Foreground,
    /// It is handed over when `create` returns and outlives its creator.
    Detached,
}

/// Handles that exist only in the process that created the container.
pub(crate) struct Live {
    pub pidfd: OwnedFd,
    pub sync: OwnedFd,
    pub pty_master: Option<OwnedFd>,
    /// The runtime's ends of the stdio pipes (foreground, no terminal).
    pub stdio: Option<crate::relay::Stdio>,
    /// Whether the container has its own PID namespace: then the exit of
    /// its PID 1 ends every process in it.
    pub own_pid_ns: bool,
    /// The command's resolved path (for the message of a failed exec).
    pub program: String,
}

pub struct Container {
    dir: PathBuf,
    state: State,
    pub(crate) live: Option<Live>,
    /// The cgroup, once known: made by `create`, or found from the state on
    /// first use (finding the hierarchies reads mountinfo).
    cgroup: std::cell::OnceCell<Option<Cgroup>>,
}

const EXEC_FIFO: &str = "exec.fifo";

/// The bundle's config.json.
pub fn load_spec(bundle: &Path) -> Result<Spec> {
    let config = bundle.join("config.json");
    // Bounded: a bundle is anyone's directory; berth's specs are a few KiB.
    let data = berth_io::read_capped(&config, 16 * berth_io::MIB, "bundle config")
        .map_err(|e| Error::setup(e.to_string()))?;
    serde_json::from_slice(&data)
        .map_err(|e| Error::setup(format!("load {}: {e}", config.display())))
}

/// Whether `id` is a valid container id (a single, harmless path component).
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 1024
        && id != "."
        && id != ".."
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_+-.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(Error::setup(format!("invalid container id {id:?}")))
    }
}

impl Container {
    /// Load a container created earlier (possibly by another process).
    pub fn load(id: &str, state_dir: &Path) -> Result<Container> {
        validate_id(id)?;
        let dir = state_dir.join(id);
        if !dir.join(state::FILE).exists() {
            return Err(Error::setup(format!("container {id:?} does not exist")));
        }
        let mut state = State::load(&dir)?;
        // Started is not written down: start removes the exec fifo, as runc
        // tells created from running.
        if state.status == Status::Created && !dir.join(EXEC_FIFO).exists() {
            state.status = Status::Running;
        }
        Ok(Container {
            dir,
            state,
            live: None,
            cgroup: std::cell::OnceCell::new(),
        })
    }

    pub fn id(&self) -> &str {
        &self.state.id
    }

    /// Host PID of the container's first process.
    pub fn pid(&self) -> i32 {
        self.state.pid
    }

    /// Let the container's process exec its command, then run the
    /// poststart hooks. In the creating process this also waits for the
    /// exec and reports its failure (e.g. a permission error) as an
    /// [`Error`].
    pub fn start(&mut self) -> Result<()> {
        let id = self.state.id.clone();
        let fifo = self.dir.join(EXEC_FIFO);
        let fd = match sys::open(&fifo, OFlags::WRONLY | OFlags::NONBLOCK) {
            Ok(fd) => fd,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => {
                return Err(Error::setup(format!(
                    "container {id:?} has already been started"
                )));
            }
            Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
                return Err(Error::setup(format!(
                    "container {id:?} is not running: its process has exited"
                )));
            }
            Err(e) => return Err(e).step(|| format!("open {}", fifo.display())),
        };
        sys::write_all(fd.as_fd(), &[0]).step(|| format!("write {}", fifo.display()))?;
        drop(fd);
        let _ = std::fs::remove_file(&fifo);
        if let Some(live) = &self.live {
            match sync::recv(live.sync.as_fd()) {
                Ok(Msg::Eof) => {}
                Ok(Msg::Failed(e)) => {
                    let _ = sys::pidfd_wait(live.pidfd.as_fd(), false);
                    self.state.status = Status::Stopped;
                    let _ = self.state.save(&self.dir);
                    return Err(e);
                }
                Ok(Msg::ExecFailed(errno)) => {
                    let _ = sys::pidfd_wait(live.pidfd.as_fd(), false);
                    self.state.status = Status::Stopped;
                    let _ = self.state.save(&self.dir);
                    let e = std::io::Error::from_raw_os_error(errno);
                    return Err(crate::error::exec_failed(&live.program, &e));
                }
                Ok(_) => return Err(Error::setup("unexpected message from container")),
                Err(e) => return Err(Error::setup(format!("wait for exec: {e}"))),
            }
        }
        // Not saved: see load().
        self.state.status = Status::Running;
        crate::hooks::poststart(&self.state);
        Ok(())
    }

    /// Send `sig` to the container's first process.
    pub fn kill(&self, sig: i32) -> Result<()> {
        let id = &self.state.id;
        if let Some(live) = &self.live {
            return sys::pidfd_send_signal(live.pidfd.as_fd(), sig)
                .step(|| format!("kill container {id:?}"));
        }
        if !state::is_alive(&self.state) {
            return Err(Error::setup(format!("container {id:?} is not running")));
        }
        let pidfd = sys::pidfd_open(self.state.pid).step(|| format!("kill container {id:?}"))?;
        // Re-check after opening: the pidfd now pins the process.
        if !state::is_alive(&self.state) {
            return Err(Error::setup(format!("container {id:?} is not running")));
        }
        sys::pidfd_send_signal(pidfd.as_fd(), sig).step(|| format!("kill container {id:?}"))
    }

    /// The OCI state, with the status refreshed from the process.
    pub fn state(&mut self) -> Result<State> {
        if matches!(self.state.status, Status::Created | Status::Running)
            && !state::is_alive(&self.state)
        {
            self.state.status = Status::Stopped;
            if self.dir.exists() {
                self.state.save(&self.dir)?;
            }
        }
        Ok(self.state.clone())
    }

    /// Wait for the container's first process to exit and return Docker's
    /// exit code for it (its code, or 128+signal). Only in the creating
    /// process, which is the process's parent.
    pub fn wait(&mut self) -> Result<i32> {
        let live = self.live.as_ref().ok_or_else(|| {
            Error::setup("wait is only possible in the process that created the container")
        })?;
        let status = sys::pidfd_wait(live.pidfd.as_fd(), false)
            .step(|| format!("wait for container {:?}", self.state.id))?
            .unwrap_or(0);
        // Not saved: any reader finds the process gone (see state()).
        self.state.status = Status::Stopped;
        Ok(sys::exit_code(status))
    }

    /// Remove the container. A container whose process still runs is only
    /// removed with `force`, which kills it first. The poststop hooks run
    /// once it is gone.
    pub fn delete(mut self, force: bool) -> Result<()> {
        let st = self.state()?;
        if st.status != Status::Stopped {
            if !force && st.status == Status::Running {
                return Err(Error::setup(format!(
                    "cannot delete container {:?} that is not stopped: {:?}",
                    st.id, st.status
                )));
            }
            self.kill(libc::SIGKILL)?;
        }
        if let Some(live) = &self.live {
            let _ = sys::pidfd_wait(live.pidfd.as_fd(), false);
        }
        if let Some(cg) = self.cgroup() {
            cg.destroy()
                .map_err(|e| Error::setup(format!("remove cgroup: {e}")))?;
            // A freezer that a v1 `pause` added later is in no hierarchy
            // the runtime made the cgroup in.
            if let Some(Layout::V1(hs)) = cg.v1_hierarchies().and_then(|_| Layout::detect().ok())
                && let Ok(all) = Cgroup::from_rel(Layout::V1(hs), cg.rel())
            {
                let _ = all.destroy();
            }
        }
        std::fs::remove_dir_all(&self.dir).step(|| format!("remove {}", self.dir.display()))?;
        crate::hooks::poststop(&st);
        Ok(())
    }

    /// The container's cgroup, if it has one of its own (for pause,
    /// resume, update, its processes and its stats).
    pub fn cgroup(&self) -> Option<&Cgroup> {
        self.cgroup
            .get_or_init(|| {
                let rel = self.state.cgroup.as_ref()?;
                let layout = Layout::detect().ok()?;
                Cgroup::from_rel(layout, rel).ok()
            })
            .as_ref()
    }

    /// Whether the kernel's OOM killer killed a process of the container
    /// (read it before [`delete`](Self::delete), which removes the cgroup).
    pub fn oom_killed(&self) -> bool {
        self.cgroup().is_some_and(|c| c.oom_killed())
    }

    /// The pty master (`process.terminal`): the foreground copy's, or a
    /// monitor's.
    pub fn take_pty_master(&mut self) -> Option<OwnedFd> {
        self.live.as_mut()?.pty_master.take()
    }

    /// The runtime's ends of the stdio pipes, for the foreground relay.
    pub(crate) fn take_stdio(&mut self) -> Option<crate::relay::Stdio> {
        self.live.as_mut()?.stdio.take()
    }

    /// The holder's ends of the stdio pipes of a container made by
    /// [`create_held`](Self::create_held) without a terminal.
    pub fn take_streams(&mut self) -> Option<Streams> {
        let s = self.take_stdio()?;
        Some(Streams {
            input: s.input,
            output: s.output,
            error: s.error,
        })
    }

    /// Whether the container has its own PID namespace: then the exit of
    /// its PID 1 ends every process in it (and closes its stdio).
    pub fn has_own_pid_ns(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.own_pid_ns)
    }

    /// The container's PID 1 as a pidfd (readable once it has exited), in
    /// the process that created it.
    pub fn pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.live.as_ref().map(|l| l.pidfd.as_fd())
    }
}

/// The ends of a held container's stdio pipes that its holder keeps, all
/// non-blocking: stdin's write end (with [`Io::interactive`]), stdout's
/// and stderr's read ends.
pub struct Streams {
    pub input: Option<OwnedFd>,
    pub output: OwnedFd,
    pub error: OwnedFd,
}

/// The spec's annotation `key`, if set.
fn annotation<'a>(spec: &'a Spec, key: &str) -> Option<&'a str> {
    spec.annotations().as_ref()?.get(key).map(String::as_str)
}
