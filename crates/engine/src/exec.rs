//! `exec`: a new process in a running container. The container's record
//! says whether it runs; its bundle's config.json is the spec it runs
//! with; the exec'd process is the container's own process with the
//! request's command, environment, user, working directory and terminal,
//! and all capabilities under `--privileged` (its seccomp filter stays the
//! container's, as Docker's does). The runtime joins it to PID 1.
//!
//! A rootless berth needs no namespace of its own for this: the
//! container's user namespace (its own, or the one its berth re-executed
//! into) belongs to this user, whose berth may join it from outside.

use std::collections::HashSet;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_runtime::{DetachedStdio, Exec};
use oci_spec::runtime::{LinuxCapabilitiesBuilder, Process, Spec};

use crate::Engine;
use crate::records::ContainerRecord;

/// What `exec` is asked to run, and how.
#[derive(Debug, Clone, Default)]
pub struct ExecRequest {
    /// The container: id, id prefix or name.
    pub container: String,
    pub command: Vec<String>,
    /// `KEY=VALUE`s (`--env-file` then `-e`, parsed by the front end); a
    /// bare `KEY` removes KEY.
    pub env: Vec<String>,
    /// `-u`: `user[:group]`, names resolved in the container's own
    /// /etc/passwd and /etc/group.
    pub user: Option<String>,
    /// `-w`: an absolute path in the container.
    pub workdir: Option<String>,
    pub tty: bool,
    pub interactive: bool,
    pub detach: bool,
    pub privileged: bool,
}

/// How an exec ended (or, detached, began).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecEnded {
    /// Docker's exit code: the command's own, 128+N when signal N killed
    /// it; 126 or 127 when it could not be run, 125 for the runtime's other
    /// failures. 0 for a detached exec that started.
    pub code: i32,
    /// Why the runtime could not run it, when it could not.
    pub error: Option<String>,
    /// A detached exec's host pid.
    pub pid: Option<i32>,
}

/// Why `exec` refused before anything ran, in Docker's words (the daemon's
/// error text; Docker prints it after `Error response from daemon: `).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refused {
    NoSuchContainer(String),
    /// The container's full id.
    NotRunning(String),
    Paused(String),
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refused::NoSuchContainer(key) => write!(f, "No such container: {key}"),
            Refused::NotRunning(id) => write!(f, "container {id} is not running"),
            Refused::Paused(id) => {
                write!(
                    f,
                    "container {id} is paused, unpause the container before exec"
                )
            }
        }
    }
}

impl std::error::Error for Refused {}

/// Runs `req` in its container: in the foreground, until its command exits
/// (stdio relayed, signals forwarded); detached, until it is exec'd. An
/// error is berth's own or a [`Refused`]; the command's failure to run is
/// in [`ExecEnded::error`].
pub fn exec(engine: &Engine, req: &ExecRequest) -> Result<ExecEnded> {
    let rec = running(engine, &req.container)?;
    let bundle = engine.bundle_of(&rec);
    let spec = match berth_runtime::load_spec(&bundle) {
        Ok(s) => s,
        // The bundle goes when the container stops.
        Err(_) if !bundle.exists() => bail!(Refused::NotRunning(rec.id)),
        Err(e) => bail!("exec {}: {e}", rec.name),
    };
    let process = exec_process(&spec, &rec, req)?;
    // Docker's exec events name the exec by an id of its own, the action
    // by its command.
    let exec_id = crate::records::new_id()?;
    let ev = |what: &str, extra: &[(&str, &str)]| {
        let mut attrs = vec![("execID", exec_id.as_str())];
        attrs.extend_from_slice(extra);
        crate::events::container_with(engine, &rec, what, &attrs);
    };
    let command = req.command.join(" ");
    ev(&format!("exec_create: {command}"), &[]);
    ev(&format!("exec_start: {command}"), &[]);
    let state_dir = engine.runtime_dir();
    let x = Exec {
        id: &rec.id,
        state_dir: &state_dir,
        spec: &spec,
        process: &process,
        preserve_fds: 0,
    };
    let ended = if req.detach {
        berth_runtime::exec_detached(&x, DetachedStdio::Null).map(|d| (0, Some(d.pid)))
    } else {
        let io = berth_runtime::Io {
            interactive: req.interactive,
            ..Default::default()
        };
        berth_runtime::exec(&x, &io).map(|code| (code, None))
    };
    // A detached exec's end is not seen: it has no exec_die.
    let died = match &ended {
        Ok((code, None)) => Some(*code),
        Ok(_) => None,
        Err(e) => Some(e.exit_code()),
    };
    if let Some(code) = died {
        ev("exec_die", &[("exitCode", &code.to_string())]);
    }
    Ok(match ended {
        Ok((code, pid)) => ExecEnded {
            code,
            error: None,
            pid,
        },
        // PID 1 went in the meantime.
        Err(_) if !rec.process_alive() => bail!(Refused::NotRunning(rec.id)),
        Err(e) => ExecEnded {
            code: e.exit_code(),
            error: Some(e.message),
            pid: None,
        },
    })
}

/// The container `key` names, if it runs and is not paused.
fn running(engine: &Engine, key: &str) -> Result<ContainerRecord> {
    let records = engine.records()?;
    let rec = match records.find(key) {
        Ok(r) => r,
        Err(e)
            if e.to_string()
                .to_lowercase()
                .starts_with("no such container") =>
        {
            bail!(Refused::NoSuchContainer(key.to_string()))
        }
        Err(e) => return Err(e),
    };
    if rec.paused {
        bail!(Refused::Paused(rec.id));
    }
    if !rec.is_running() || !rec.process_alive() {
        bail!(Refused::NotRunning(rec.id));
    }
    Ok(rec)
}

/// The exec'd process: the container's own, with the request's command,
/// environment, user, working directory, terminal and capabilities.
pub(crate) fn exec_process(
    spec: &Spec,
    rec: &ContainerRecord,
    req: &ExecRequest,
) -> Result<Process> {
    if req.command.is_empty() {
        bail!("exec needs a command to run");
    }
    let mut p = spec
        .process()
        .clone()
        .context("the container's config.json has no process")?;
    let mut env = p.env().clone().unwrap_or_default();
    // Docker's exec environment is the container's as it was made, with
    // TERM only for a terminal of its own.
    if p.terminal().unwrap_or(false) && !req.tty {
        env.retain(|e| e != "TERM=xterm");
    }
    let mut own = Vec::new();
    if req.tty {
        own.push("TERM=xterm".to_string());
    }
    if let Some(u) = &req.user {
        let user = resolve_user(rec, u)?;
        let mut identity = p.user().clone();
        identity.set_uid(user.uid);
        identity.set_gid(user.gid);
        identity.set_additional_gids(Some(user.additional_gids));
        p.set_user(identity);
        // runc sets HOME from the exec user's passwd entry, as at run.
        own.push(format!("HOME={}", user.home));
    }
    // A TERM or HOME the container set is kept; -e overrides all.
    own.retain(|o| {
        let key = o.split('=').next().unwrap_or_default();
        key == "HOME" || !env.iter().any(|e| e.split('=').next() == Some(key))
    });
    let env = berth_spec::process::merge_env(env, &[&own, &req.env]);
    p.set_env(Some(env));
    p.set_args(Some(req.command.clone()));
    p.set_terminal(Some(req.tty));
    p.set_console_size(None);
    if let Some(w) = &req.workdir {
        if !w.starts_with('/') {
            bail!("the working directory {w:?} is invalid, it needs to be an absolute path");
        }
        p.set_cwd(PathBuf::from(w));
    }
    if req.privileged {
        let all = berth_spec::capabilities::capability_set(true, &[], &[])?;
        p.set_capabilities(Some(
            LinuxCapabilitiesBuilder::default()
                .bounding(all.clone())
                .effective(all.clone())
                .permitted(all)
                .inheritable(HashSet::new())
                .ambient(HashSet::new())
                .build()?,
        ));
    }
    p.set_apparmor_profile(None);
    p.set_selinux_label(None);
    Ok(p)
}

/// `-u` resolved in the container's own /etc/passwd and /etc/group, read
/// through its PID 1's root (/proc/PID/root: the container's view, its
/// mounts included), every path resolved inside it: a symlink there
/// cannot make berth read a host file.
fn resolve_user(rec: &ContainerRecord, user: &str) -> Result<berth_spec::ExecUser> {
    let (Some(pid), Some(start)) = (rec.pid, rec.pid_start) else {
        bail!(Refused::NotRunning(rec.id.clone()));
    };
    let root = berth_snapshot::Root::open(&PathBuf::from(format!("/proc/{pid}/root")));
    // Checked after the open: the root opened was that process's.
    if !berth_runtime::process::alive(pid, start) {
        bail!(Refused::NotRunning(rec.id.clone()));
    }
    let root = root.with_context(|| format!("open the root of container {}", rec.name))?;
    berth_spec::user::resolve_user(&root, user)
}
