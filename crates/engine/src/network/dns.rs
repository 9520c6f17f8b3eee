//! Names on a user-defined network, as Docker's embedded DNS and podman's
//! aardvark-dns give them: each container by its name, its short id, its
//! hostname and its `--network-alias`es, for every container on the
//! network, including those started later; other names are forwarded to
//! the host's resolvers.
//!
//! Per network, a names file (`<exec root>/networks/ID/names`, hosts
//! syntax, each container's line after a `# ID` comment) that attach and
//! detach rewrite under a lock, and one server process, berth itself
//! re-executed (`berth dns-server`), listening on the gateway's port 53
//! for the network's containers, whose resolv.conf names the gateway. It
//! re-reads the file when it changes, and ends when the file is gone,
//! which the last container's detach does.

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use super::{Endpoint, NetworkRecord};
use crate::Engine;
use crate::records::ContainerRecord;

/// The hidden subcommand of the server process.
pub const SUBCOMMAND: &str = "dns-server";

/// By id: two roots may share an exec root (and have networks of one name).
fn dir(engine: &Engine, net: &NetworkRecord) -> PathBuf {
    engine.exec_root.join("networks").join(&net.id)
}

fn lock(d: &Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(d).with_context(|| format!("create {}", d.display()))?;
    let p = d.join(".lock");
    let f = std::fs::File::create(&p).with_context(|| format!("create {}", p.display()))?;
    f.lock().with_context(|| format!("lock {}", p.display()))?;
    Ok(f)
}

/// The names file without container `id`'s entry (bounded: the file is
/// berth's, but a runaway one must not take the memory with it).
fn others(names: &Path, id: &str) -> Result<String> {
    // Looked for first: an error (and its backtrace) costs milliseconds.
    if !names.exists() {
        return Ok(String::new());
    }
    let text = berth_io::read_capped_string(names, 16 * berth_io::MIB, "DNS names")
        .with_context(|| format!("read {}", names.display()))?;
    let mut out = String::with_capacity(text.len());
    let mut skip = false;
    for line in text.lines() {
        if let Some(owner) = line.strip_prefix("# ") {
            skip = owner == id;
        } else if skip {
            skip = false;
            continue;
        }
        if !skip {
            out.push_str(line);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Replaces the names file by `text` (whole, by rename), or removes it
/// when `text` is empty: the server then ends.
fn store(names: &Path, text: &str) -> Result<()> {
    if text.trim().is_empty() {
        return match std::fs::remove_file(names) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", names.display()))
            }
            _ => Ok(()),
        };
    }
    let tmp = names.with_extension("tmp");
    std::fs::write(&tmp, text).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, names).with_context(|| format!("write {}", names.display()))
}

/// Gives container `c` its names on network `net` at `address`, and makes
/// sure the network's server runs.
pub fn add(
    engine: &Engine,
    net: &NetworkRecord,
    c: &ContainerRecord,
    ep: &Endpoint,
    address: Ipv4Addr,
) -> Result<()> {
    let d = dir(engine, net);
    let _lock = lock(&d)?;
    let names = d.join("names");
    let mut text = others(&names, &c.id)?;
    let mut line = format!("{address} {}", c.name);
    let mut seen = vec![c.name.as_str()];
    let short = &c.id[..c.id.len().min(12)];
    for n in ep
        .aliases
        .iter()
        .map(String::as_str)
        .chain([short])
        .chain(c.hostname.as_deref())
    {
        if !seen.contains(&n) && !n.is_empty() {
            seen.push(n);
            line.push(' ');
            line.push_str(n);
        }
    }
    text.push_str(&format!("# {}\n{line}\n", c.id));
    store(&names, &text)?;
    ensure_server(net, &d, &names)
        .with_context(|| format!("start the DNS server of network {}", net.name))
}

/// Takes container `id`'s names off network `net`.
pub fn remove(engine: &Engine, net: &NetworkRecord, id: &str) -> Result<()> {
    let d = dir(engine, net);
    if !d.exists() {
        return Ok(());
    }
    let _lock = lock(&d)?;
    let names = d.join("names");
    let text = others(&names, id)?;
    store(&names, &text)
}

/// Removes network `net`'s names (and so ends its server): `network rm`.
pub fn forget(engine: &Engine, net: &NetworkRecord) {
    let d = dir(engine, net);
    let _ = std::fs::remove_dir_all(d);
}

/// Starts network `net`'s server unless one holds its lock, and waits for
/// it to say it listens. Called under the names lock.
fn ensure_server(net: &NetworkRecord, d: &Path, names: &Path) -> Result<()> {
    let running = d.join("server.lock");
    let f =
        std::fs::File::create(&running).with_context(|| format!("create {}", running.display()))?;
    match f.try_lock() {
        Err(std::fs::TryLockError::WouldBlock) => return Ok(()),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("lock {}", running.display()));
        }
        Ok(()) => drop(f),
    }
    let listen = SocketAddr::from((net.gateway()?, 53));
    let log = d.join("server.log");
    let log = std::fs::File::create(&log).with_context(|| format!("create {}", log.display()))?;
    let mut cmd = std::process::Command::new("/proc/self/exe");
    std::os::unix::process::CommandExt::arg0(&mut cmd, "berth");
    cmd.arg(SUBCOMMAND)
        .arg(names)
        .arg(&running)
        .arg(listen.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(log);
    let mut first = cmd.spawn().context("spawn")?;
    let mut out = first.stdout.take().context("its stdout")?;
    let mut said = Vec::new();
    let read = (&mut out).take(4096).read_to_end(&mut said);
    let _ = first.wait();
    read.context("read its answer")?;
    let said = String::from_utf8_lossy(&said);
    match said.trim() {
        "ok" => Ok(()),
        "" => bail!("it ended without a word"),
        other => bail!("{other}"),
    }
}

/// The host's resolvers, from `/etc/resolv.conf` (port 53), but not `own`.
fn upstreams(own: SocketAddr) -> Vec<SocketAddr> {
    let text = berth_io::read_capped_string(Path::new("/etc/resolv.conf"), berth_io::MIB, "")
        .unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut w = l.split_whitespace();
            (w.next() == Some("nameserver")).then(|| w.next()).flatten()
        })
        .filter_map(|a| a.parse::<std::net::IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .filter(|a| *a != own)
        .take(3)
        .collect()
}

/// `berth dns-server NAMES LOCK LISTEN`: leaves its caller (a session of
/// its own), takes LOCK (another server has it: nothing to do), listens,
/// says `ok` (or why not) on stdout, and serves until NAMES is gone.
pub fn main(args: &[std::ffi::OsString]) -> Result<()> {
    let [names, lock_path, listen] = args else {
        bail!("usage: berth {SUBCOMMAND} NAMES LOCK LISTEN");
    };
    let names = PathBuf::from(names);
    let listen: SocketAddr = listen
        .to_str()
        .and_then(|s| s.parse().ok())
        .context("LISTEN: expected ADDRESS:PORT")?;
    // SAFETY: single-threaded here; the parent only calls _exit.
    match unsafe { libc::fork() } {
        0 => {}
        p if p < 0 => bail!("fork: {}", std::io::Error::last_os_error()),
        // SAFETY: _exit is always safe; nothing of the parent needs flushing.
        _ => unsafe { libc::_exit(0) },
    }
    rustix::process::setsid().context("setsid")?;
    let say = |what: &str| {
        use std::io::Write;
        let mut o = std::io::stdout();
        let _ = writeln!(o, "{what}");
        let _ = o.flush();
    };
    let lock = std::fs::File::create(lock_path).context("create the server lock")?;
    if lock.try_lock().is_err() {
        say("ok");
        return Ok(());
    }
    let mut server = match berth_network::dns::Server::bind(listen) {
        Ok(s) => s,
        Err(e) => {
            say(&format!("listen on {listen}: {e}"));
            return Err(e.into());
        }
    };
    say("ok");
    // Nothing more to say: a reader waits for end of file.
    let _ = rustix::stdio::dup2_stdout(rustix::fs::open(
        "/dev/null",
        rustix::fs::OFlags::WRONLY,
        rustix::fs::Mode::empty(),
    )?);
    server.run(&names, &upstreams(listen))?;
    drop(lock);
    Ok(())
}
