//! `exec`: a new process in a running container, described by a whole OCI
//! process (`--process FILE`, as the shims and conmon pass it) or by the
//! container's own process changed by the flags (argv, env, cwd, user,
//! capabilities, terminal), as runc builds it.

use super::Global;
use super::lifecycle::{check_kept_fds, load, write_pid_file};
use anyhow::{Context, Result, anyhow, bail};
use berth_runtime::{DetachedStdio, Io, Status};
use clap::Args;
use oci_spec::runtime::{Capability, Process, User};
use std::os::fd::AsFd;
use std::path::PathBuf;

#[derive(Args, Debug)]
pub struct ExecArgs {
    /// The process as OCI JSON (its args replace the command line's).
    #[arg(short, long)]
    process: Option<PathBuf>,
    /// Return once the process runs.
    #[arg(short, long)]
    detach: bool,
    #[arg(long)]
    pid_file: Option<PathBuf>,
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Give the process a pty.
    #[arg(short, long)]
    tty: bool,
    #[arg(long)]
    cwd: Option<String>,
    /// KEY=VALUE added to the process's environment.
    #[arg(short, long)]
    env: Vec<String>,
    /// UID[:GID].
    #[arg(short, long)]
    user: Option<String>,
    #[arg(short = 'g', long)]
    additional_gids: Vec<u32>,
    /// A capability added to the process's sets (CAP_NET_ADMIN, …).
    #[arg(short, long)]
    cap: Vec<String>,
    #[arg(long)]
    no_new_privs: bool,
    /// Accepted as runc takes them; no LSM runs here.
    #[arg(long)]
    apparmor: Option<String>,
    #[arg(long)]
    process_label: Option<String>,
    /// Exec into a paused container too.
    #[arg(long)]
    ignore_paused: bool,
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    command: Vec<String>,
}

pub fn exec(g: &Global, a: &ExecArgs) -> Result<u8> {
    let mut c = load(g, &a.id)?;
    let st = c.state().map_err(|e| anyhow!("{e}"))?;
    match st.status {
        Status::Stopped => bail!("cannot exec in a stopped container"),
        Status::Creating => bail!("cannot exec in a container that is being created"),
        _ if !a.ignore_paused && c.cgroup().is_some_and(|cg| cg.is_frozen()) => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        _ => {}
    }
    let spec = berth_runtime::load_spec(&st.bundle).map_err(|e| anyhow!("{e}"))?;
    let process = match &a.process {
        Some(p) => super::read_json(p, "process")?,
        None => process_from_flags(spec.process().clone().unwrap_or_default(), a)?,
    };
    let terminal = process.terminal().unwrap_or(false);
    match (terminal, a.console_socket.is_some()) {
        (true, false) if a.detach => {
            bail!("cannot allocate tty if runc will detach without setting console socket")
        }
        (false, true) => bail!("cannot use console socket if runc will not allocate tty"),
        _ => {}
    }
    check_kept_fds(a.preserve_fds)?;
    let x = berth_runtime::Exec {
        id: &a.id,
        state_dir: &g.state_dir,
        spec: &spec,
        process: &process,
        preserve_fds: a.preserve_fds,
    };
    if !a.detach && a.console_socket.is_none() {
        // Attached: berth's own exec relays the stdio (or the pty) and
        // forwards signals; the pid is known only once it runs.
        if a.pid_file.is_some() {
            bail!("--pid-file needs --detach here");
        }
        let code = berth_runtime::exec(
            &x,
            &Io {
                interactive: true,
                ..Default::default()
            },
        )
        .map_err(|e| anyhow!("{e}"))?;
        return Ok(code.clamp(0, 255) as u8);
    }
    let d = berth_runtime::exec_detached(&x, DetachedStdio::Inherit).map_err(|e| anyhow!("{e}"))?;
    if let (Some(sock), Some(master)) = (&a.console_socket, &d.pty_master) {
        berth_runtime::terminal::send_to_console_socket(sock, master.as_fd())
            .with_context(|| format!("send pty to console socket {}", sock.display()))?;
    }
    if let Some(p) = &a.pid_file {
        write_pid_file(p, d.pid)?;
    }
    if a.detach {
        return Ok(0);
    }
    // A pty sent elsewhere but not detached: wait for the process.
    let status = berth_runtime::process::wait_child(d.pidfd.as_fd())
        .map_err(|e| anyhow!("wait for the exec'd process: {e}"))?;
    Ok(status.clamp(0, 255) as u8)
}

/// The container's process changed as runc's flags change it.
fn process_from_flags(mut p: Process, a: &ExecArgs) -> Result<Process> {
    if a.command.is_empty() {
        bail!("exec: no command given (the arguments after the container id, or --process)");
    }
    p.set_args(Some(a.command.clone()));
    p.set_terminal(Some(a.tty));
    let mut env = p.env().clone().unwrap_or_default();
    env.extend(a.env.iter().cloned());
    p.set_env(Some(env));
    if let Some(cwd) = &a.cwd {
        p.set_cwd(PathBuf::from(cwd));
    }
    if a.no_new_privs {
        p.set_no_new_privileges(Some(true));
    }
    if let Some(u) = &a.user {
        let (uid, gid) = u.split_once(':').unwrap_or((u, "0"));
        let mut user = User::default();
        user.set_uid(
            uid.parse()
                .with_context(|| format!("invalid --user {u:?}"))?,
        );
        user.set_gid(
            gid.parse()
                .with_context(|| format!("invalid --user {u:?}"))?,
        );
        p.set_user(user);
    }
    if !a.additional_gids.is_empty() {
        let mut user = p.user().clone();
        user.set_additional_gids(Some(a.additional_gids.clone()));
        p.set_user(user);
    }
    if !a.cap.is_empty() {
        let mut caps = p.capabilities().clone().unwrap_or_default();
        for name in &a.cap {
            // As the spec spells them (CAP_NET_ADMIN); runc takes that form.
            let upper = name.to_ascii_uppercase();
            let full = if upper.starts_with("CAP_") {
                upper
            } else {
                format!("CAP_{upper}")
            };
            let cap: Capability = serde_json::from_value(serde_json::Value::String(full))
                .map_err(|_| anyhow!("unknown capability {name:?}"))?;
            let add = |s: &Option<oci_spec::runtime::Capabilities>| {
                let mut s = s.clone().unwrap_or_default();
                s.insert(cap);
                Some(s)
            };
            caps.set_bounding(add(caps.bounding()));
            caps.set_effective(add(caps.effective()));
            caps.set_permitted(add(caps.permitted()));
        }
        p.set_capabilities(Some(caps));
    }
    Ok(p)
}
