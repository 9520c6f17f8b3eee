//! The OCI lifecycle under runc's names: create, start, run, state, kill,
//! delete, and the read-only list and ps.

use super::{CreateArgs, Global, RunArgs};
use anyhow::{Context, Result, anyhow, bail};
use berth_io::outln;
use berth_runtime::{Container, Io, State, Status};
use oci_spec::runtime::Spec;
use serde::Serialize;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};

/// runc's words for a container that is not there; containerd's shim
/// looks for "does not exist".
fn not_found(id: &str) -> anyhow::Error {
    anyhow!("container {id} does not exist")
}

/// Load `id`, or runc's error for one that is not there.
pub(super) fn load(g: &Global, id: &str) -> Result<Container> {
    berth_runtime::validate_id(id).map_err(|e| anyhow!("{e}"))?;
    if !g.state_dir.join(id).join("state.json").exists() {
        return Err(not_found(id));
    }
    Container::load(id, &g.state_dir).map_err(|e| anyhow!("{e}"))
}

/// The spec `create` and `run` are to use: the bundle's, with what the
/// flags and the environment add (runc's socket activation: `LISTEN_FDS`
/// fds are kept, and the container is told of them). Returns it with the
/// number of fds to keep past stdio.
fn prepared_spec(a: &CreateArgs, bundle: &Path) -> Result<(Spec, u32)> {
    let mut spec = berth_runtime::load_spec(bundle).map_err(|e| anyhow!("{e}"))?;
    if a.no_pivot {
        let mut ann = spec.annotations().clone().unwrap_or_default();
        ann.insert(berth_runtime::NO_PIVOT.into(), "true".into());
        spec.set_annotations(Some(ann));
    }
    allow_runc_default_devices(&mut spec);
    let mut keep = a.preserve_fds;
    let listen = std::env::var("LISTEN_FDS")
        .ok()
        .and_then(|v| v.parse::<u32>().ok())
        .filter(|n| *n > 0);
    if let (Some(n), Some(p)) = (listen, spec.process_mut().as_mut()) {
        let mut env = p.env().clone().unwrap_or_default();
        env.retain(|e| !e.starts_with("LISTEN_FDS=") && !e.starts_with("LISTEN_PID="));
        env.push(format!("LISTEN_FDS={n}"));
        env.push("LISTEN_PID=1".into());
        p.set_env(Some(env));
        keep += n;
    }
    check_kept_fds(keep)?;
    Ok((spec, keep))
}

/// runc's default device rules, appended after the spec's as runc does:
/// engines count on them (dockerd's own list has no pty, yet `docker run
/// -t` opens /dev/ptmx and /dev/pts/N).
fn allow_runc_default_devices(spec: &mut Spec) {
    use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType as T};
    let Some(res) = spec
        .linux_mut()
        .as_mut()
        .and_then(|l| l.resources_mut().as_mut())
    else {
        return;
    };
    let Some(rules) = res.devices_mut().as_mut() else {
        return;
    };
    let rule = |typ: T, major: Option<i64>, minor: Option<i64>, access: &str| {
        let mut r = LinuxDeviceCgroup::default();
        r.set_allow(true);
        r.set_typ(Some(typ));
        r.set_major(major);
        r.set_minor(minor);
        r.set_access(Some(access.into()));
        r
    };
    rules.push(rule(T::C, None, None, "m"));
    rules.push(rule(T::B, None, None, "m"));
    // null, zero, full, random, urandom, tty, console, ptmx, the ptys.
    for (major, minor) in [
        (1, 3),
        (1, 5),
        (1, 7),
        (1, 8),
        (1, 9),
        (5, 0),
        (5, 1),
        (5, 2),
    ] {
        rules.push(rule(T::C, Some(major), Some(minor), "rwm"));
    }
    rules.push(rule(T::C, Some(136), None, "rwm"));
}

/// fds 3..3+n must be the caller's: a gap would let one of the runtime's
/// own (the exec fifo, say) land there and cross into the container.
pub(super) fn check_kept_fds(n: u32) -> Result<()> {
    for fd in 3..3 + n.min(65536) as i32 {
        // SAFETY: only asks whether the number is an open fd; borrows nothing.
        let open = unsafe { libc::fcntl(fd, libc::F_GETFD) } != -1;
        if !open {
            bail!("--preserve-fds: fd {fd} is not open");
        }
    }
    Ok(())
}

fn terminal(spec: &Spec) -> bool {
    spec.process()
        .as_ref()
        .and_then(|p| p.terminal())
        .unwrap_or(false)
}

/// runc's rules: a detached pty needs somewhere to go, and a socket
/// without a pty is a mistake.
fn check_console(terminal: bool, socket: Option<&Path>, detached: bool) -> Result<()> {
    match (terminal, socket.is_some()) {
        (true, false) if detached => {
            bail!("cannot allocate tty if runc will detach without setting console socket")
        }
        (false, true) => bail!("cannot use console socket if runc will not allocate tty"),
        _ => Ok(()),
    }
}

/// A container without a PID namespace of its own can see this process:
/// re-execute from a sealed binary first (see berth_runtime::exe).
fn seal_if_needed(spec: &Spec) -> Result<()> {
    use oci_spec::runtime::LinuxNamespaceType;
    let own_pid_ns = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|ns| {
            ns.iter()
                .any(|n| n.typ() == LinuxNamespaceType::Pid && n.path().is_none())
        });
    if own_pid_ns || berth_runtime::exe::is_sealed() {
        return Ok(());
    }
    let how = if rustix::process::geteuid().is_root() {
        berth_runtime::exe::Seal::Copy(PathBuf::from("/run/berth/exe"))
    } else {
        berth_runtime::exe::Seal::Memfd
    };
    berth_runtime::exe::ensure_sealed(&how).map_err(|e| anyhow!("{e}"))
}

/// Write `pid` to `path` whole or not at all (temp file + rename), as
/// callers read it as soon as `create` returns.
pub(super) fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let tmp = path.with_file_name(format!(
        ".{}.tmp",
        path.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&tmp, pid.to_string())
        .and_then(|()| std::fs::rename(&tmp, path))
        .with_context(|| format!("write pid file {}", path.display()))
}

fn bundle_of(a: &CreateArgs) -> Result<PathBuf> {
    match &a.bundle {
        Some(b) => Ok(b.clone()),
        None => std::env::current_dir().context("current directory"),
    }
}

/// What `create` and `run --detach` share: the container made, its pty
/// sent and its pid written; on any failure after the make, removed.
fn create_container(g: &Global, a: &CreateArgs, detached: bool) -> Result<Container> {
    let bundle = bundle_of(a)?;
    let (spec, keep) = prepared_spec(a, &bundle)?;
    check_console(terminal(&spec), a.console_socket.as_deref(), detached)?;
    seal_if_needed(&spec)?;
    if g.state_dir.join(&a.id).exists() {
        bail!("container with id exists: {}", a.id);
    }
    let io = Io {
        // The caller's stdin goes in as it is (a shim's pipe or fifo).
        interactive: true,
        preserve_fds: keep,
    };
    let mut c = Container::create_with_spec(&a.id, &bundle, &spec, &g.state_dir, &io)
        .map_err(|e| anyhow!("{e}"))?;
    let handed = hand_out(&mut c, a);
    if let Err(e) = handed {
        let _ = c.delete(true);
        return Err(e);
    }
    Ok(c)
}

/// The pty master to the console socket, the pid to the pid file.
fn hand_out(c: &mut Container, a: &CreateArgs) -> Result<()> {
    if let (Some(sock), Some(master)) = (&a.console_socket, c.take_pty_master()) {
        berth_runtime::terminal::send_to_console_socket(sock, master.as_fd())
            .with_context(|| format!("send pty to console socket {}", sock.display()))?;
    }
    if let Some(p) = &a.pid_file {
        write_pid_file(p, c.pid())?;
    }
    Ok(())
}

pub fn create(g: &Global, a: &CreateArgs) -> Result<()> {
    create_container(g, a, true).map(drop)
}

pub fn start(g: &Global, id: &str) -> Result<()> {
    let mut c = load(g, id)?;
    match c.state().map_err(|e| anyhow!("{e}"))?.status {
        Status::Stopped => bail!("cannot start a container that has stopped"),
        Status::Running => bail!("cannot start an already running container"),
        _ => {}
    }
    c.start().map_err(|e| anyhow!("{e}"))
}

/// `run`: detached, create + start; in the foreground, berth's own run
/// (signals forwarded, the pty relayed), then the container's exit code.
pub fn run(g: &Global, a: &RunArgs) -> Result<u8> {
    if a.detach {
        let mut c = create_container(g, &a.create, true)?;
        if let Err(e) = c.start() {
            let _ = c.delete(true);
            bail!("{e}");
        }
        return Ok(0);
    }
    if a.keep {
        bail!("--keep is not supported: the container is removed when it exits");
    }
    let c = &a.create;
    let bundle = bundle_of(c)?;
    let (spec, keep) = prepared_spec(c, &bundle)?;
    check_console(terminal(&spec), c.console_socket.as_deref(), false)?;
    if c.console_socket.is_some() {
        bail!("--console-socket with run in the foreground is not supported: use --detach");
    }
    seal_if_needed(&spec)?;
    let io = Io {
        interactive: true,
        preserve_fds: keep,
    };
    let pid_file = c.pid_file.clone();
    let on_start = move |pid| {
        if let Some(p) = &pid_file {
            let _ = write_pid_file(p, pid);
        }
    };
    let exit = berth_runtime::run_spec(&c.id, &bundle, &spec, &g.state_dir, &io, on_start, None)
        .map_err(|e| anyhow!("{e}"))?;
    Ok(exit.code.clamp(0, 255) as u8)
}

/// `state`'s JSON, runc's shape (containerd's go-runc and podman parse it).
#[derive(Serialize)]
pub(super) struct RuncState {
    #[serde(rename = "ociVersion")]
    oci_version: String,
    id: String,
    pid: i32,
    status: &'static str,
    bundle: PathBuf,
    rootfs: PathBuf,
    created: String,
    owner: String,
    #[serde(skip_serializing_if = "std::collections::HashMap::is_empty")]
    annotations: std::collections::HashMap<String, String>,
}

pub(super) fn runc_state(c: &mut Container) -> Result<RuncState> {
    let st: State = c.state().map_err(|e| anyhow!("{e}"))?;
    let paused = st.status == Status::Running && c.cgroup().is_some_and(|cg| cg.is_frozen());
    let status = match st.status {
        _ if paused => "paused",
        Status::Creating => "creating",
        Status::Created => "created",
        Status::Running => "running",
        Status::Stopped => "stopped",
    };
    let rootfs = berth_runtime::load_spec(&st.bundle)
        .ok()
        .and_then(|s| s.root().as_ref().map(|r| st.bundle.join(r.path())))
        .unwrap_or_default();
    let secs = (st.created / 1_000_000_000) as i64;
    let nanos = (st.created % 1_000_000_000) as u32;
    Ok(RuncState {
        oci_version: st.oci_version,
        id: st.id,
        pid: if st.status == Status::Stopped {
            0
        } else {
            st.pid
        },
        status,
        bundle: st.bundle,
        rootfs,
        created: berth_engine::timefmt::format_unix(secs, nanos),
        owner: owner_name(rustix::process::geteuid().as_raw()),
        annotations: st.annotations,
    })
}

/// The user's name from /etc/passwd (runc's `owner`), else the number.
fn owner_name(uid: u32) -> String {
    let passwd = berth_io::read_capped(Path::new("/etc/passwd"), berth_io::MIB, "passwd")
        .unwrap_or_default();
    String::from_utf8_lossy(&passwd)
        .lines()
        .find_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            (f.nth(1)?.parse::<u32>().ok()? == uid).then(|| name.to_string())
        })
        .unwrap_or_else(|| uid.to_string())
}

pub fn state(g: &Global, id: &str) -> Result<()> {
    let mut c = load(g, id)?;
    let s = runc_state(&mut c)?;
    outln!("{}", serde_json::to_string_pretty(&s)?);
    Ok(())
}

pub fn kill(g: &Global, id: &str, signal: &str, all: bool) -> Result<()> {
    let sig = berth_engine::lifecycle::parse_signal(signal)?;
    let mut c = load(g, id)?;
    let st = c.state().map_err(|e| anyhow!("{e}"))?;
    if !matches!(st.status, Status::Created | Status::Running) {
        bail!("container not running");
    }
    if all && let Some(cg) = c.cgroup() {
        for pid in cg.procs() {
            // SAFETY: kill(2) on a pid; a process gone already is ESRCH.
            unsafe { libc::kill(pid, sig) };
        }
        return Ok(());
    }
    c.kill(sig).map_err(|e| {
        if matches!(c.state().map(|s| s.status), Ok(Status::Stopped)) {
            anyhow!("container not running")
        } else {
            anyhow!("{e}")
        }
    })
}

pub fn delete(g: &Global, id: &str, force: bool) -> Result<()> {
    berth_runtime::validate_id(id).map_err(|e| anyhow!("{e}"))?;
    let dir = g.state_dir.join(id);
    if !dir.join("state.json").exists() {
        // An aborted create can leave the directory without its state.
        if dir.is_dir() {
            let _ = std::fs::remove_dir_all(&dir);
        }
        if force {
            return Ok(());
        }
        return Err(not_found(id));
    }
    let c = load(g, id)?;
    c.delete(force).map_err(|e| anyhow!("{e}"))
}

/// Every container under the state dir, in name order.
fn all(g: &Global) -> Result<Vec<Container>> {
    let mut ids: Vec<String> = match std::fs::read_dir(&g.state_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).context(format!("read {}", g.state_dir.display())),
    };
    ids.sort();
    Ok(ids.iter().filter_map(|id| load(g, id).ok()).collect())
}

pub fn list(g: &Global, json: bool, quiet: bool) -> Result<()> {
    let mut states = Vec::new();
    for mut c in all(g)? {
        if let Ok(s) = runc_state(&mut c) {
            states.push(s);
        }
    }
    if quiet {
        for s in &states {
            outln!("{}", s.id);
        }
    } else if json {
        // runc encodes a nil slice: `null` when there are none.
        if states.is_empty() {
            outln!("null");
        } else {
            outln!("{}", serde_json::to_string(&states)?);
        }
    } else {
        let mut rows =
            vec![["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from)];
        for s in &states {
            rows.push([
                s.id.clone(),
                s.pid.to_string(),
                s.status.to_string(),
                s.bundle.display().to_string(),
                s.created.clone(),
                s.owner.clone(),
            ]);
        }
        print_table(&rows);
    }
    Ok(())
}

/// Columns padded to their widest cell plus one space (Go's tabwriter as
/// runc sets it up, minimum width 12).
fn print_table<const N: usize>(rows: &[[String; N]]) {
    let mut width = [12usize; N];
    for r in rows {
        for (w, c) in width.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count() + 1);
        }
    }
    for r in rows {
        let mut line = String::new();
        for (i, c) in r.iter().enumerate() {
            if i + 1 == N {
                line.push_str(c);
            } else {
                line.push_str(&format!("{c:<w$}", w = width[i]));
            }
        }
        outln!("{line}");
    }
}

/// `ps`: the pids in the container's cgroup (JSON), or ps(1)'s lines for them.
pub fn ps(g: &Global, id: &str, json: bool, ps_args: &[String]) -> Result<()> {
    let mut c = load(g, id)?;
    let st = c.state().map_err(|e| anyhow!("{e}"))?;
    let pids: Vec<i32> = match c.cgroup() {
        Some(cg) => cg.procs(),
        None if st.status != Status::Stopped => vec![st.pid],
        None => Vec::new(),
    };
    if json {
        outln!("{}", serde_json::to_string(&pids)?);
        return Ok(());
    }
    let args: Vec<&str> = if ps_args.is_empty() {
        vec!["-ef"]
    } else {
        ps_args.iter().map(String::as_str).collect()
    };
    let out = std::process::Command::new("ps")
        .args(&args)
        .output()
        .context("run ps")?;
    if !out.status.success() {
        bail!("ps: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let pid_col = header
        .split_whitespace()
        .position(|h| h == "PID")
        .ok_or_else(|| anyhow!("couldn't find PID field in ps output"))?;
    outln!("{header}");
    let pids: std::collections::HashSet<i32> = pids.into_iter().collect();
    for l in lines {
        let pid = l
            .split_whitespace()
            .nth(pid_col)
            .and_then(|p| p.parse().ok());
        if pid.is_some_and(|p: i32| pids.contains(&p)) {
            outln!("{l}");
        }
    }
    Ok(())
}
