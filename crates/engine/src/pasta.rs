//! `--network bridge` for a rootless berth, through pasta (Debian's
//! `passt`), as podman's rootless default is: a rootless berth may make
//! no bridge, veth or firewall rule on the host, so the container gets a
//! network namespace of its own (made by the runtime at clone, owned by
//! its user namespace) and pasta, run as the same user, connects it to
//! the host's network from user space: its tap device carries the host's
//! address and routes (`--config-net`), outbound connections become the
//! user's own sockets on the host, `-p` ports are pasta's listening
//! sockets there (`-t`/`-u`), and DNS to 169.254.1.1 goes to the host's
//! first resolver (`--dns-forward`). The rest is podman's set: nothing
//! forwarded from the container to the host's ports (`-T none -U none`),
//! no gateway mapped to the host's loopback (`--no-map-gw`), `--quiet`.
//!
//! The mechanism, and why:
//! - **When**: the runtime runs a createRuntime hook, which [`add_hook`]
//!   puts in the spec, once the container's namespaces exist and before
//!   its command runs. The hook is berth itself, hidden subcommand
//!   [`HOOK`] ([`hook_main`]): pasta needs the container's PID on its
//!   command line, a hook only gets it on stdin in the state JSON, and
//!   berth reads that without a shell or jq, and turns what it finds into
//!   one error line. pasta forks into the background once the namespace
//!   is set up, so the hook returns when the network is ready.
//! - **What pasta runs with** is decided per start by [`connect`] (called
//!   where a root berth connects to its bridge): pasta's path, and the
//!   host ports, free ones chosen as for the bridge and recorded so that
//!   `port` and `ps` show them, written to `<bundle>/pasta.json`, which
//!   the hook finds from the state's bundle.
//! - **How pasta ends**: it quits when the file naming its namespace is
//!   deleted (an inotify watch on that directory), and, given a PID
//!   instead, never (this pasta, 2023-03). So the hook gives it
//!   `<exec root>/pasta/<id>`, a symlink to the hook's own fd of the
//!   container's namespace (`/proc/<hook pid>/fd/N`, still the same
//!   process once it execs pasta), and [`disconnect`] removes the link
//!   when the container stops (also from `rm` and the sweep after a
//!   killed berth). An fd rather than `/proc/<container pid>/ns/net`:
//!   where berth runs in its own user namespace, pasta drops capabilities
//!   before it opens the path, and the kernel then refuses it the
//!   container's (fully privileged) process; its own fd it may always
//!   open. pasta keeps none of berth's or the container's fds (the
//!   runtime marks them close-on-exec for every hook), so neither waits
//!   for it.
//!
//! `/etc/resolv.conf` gets `nameserver 169.254.1.1` first, before the
//! host's (non-loopback) ones, as podman writes it; `--dns` replaces them
//! all, as everywhere.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{HookBuilder, Spec};
use serde::{Deserialize, Serialize};

use crate::Engine;
use crate::ports::{PortBinding, Proto, Published};
use crate::records::ContainerRecord;
use crate::request::{Network, RunRequest};

/// The hidden subcommand the hook runs: `berth pasta-hook`.
pub const HOOK: &str = "pasta-hook";

/// The address in the container that pasta forwards DNS from: podman's.
pub const DNS_FORWARD: &str = "169.254.1.1";

/// The hook's file in the bundle.
const PLAN: &str = "pasta.json";

/// How long the hook may take: pasta is set up in about 40 ms.
const HOOK_TIMEOUT_SECS: i64 = 30;

/// What the hook runs: written by [`connect`] for each start.
#[derive(Debug, Serialize, Deserialize)]
struct Plan {
    /// pasta, as found on berth's PATH.
    pasta: PathBuf,
    /// Its arguments, but for the namespaces.
    args: Vec<String>,
    /// The link to the container's network namespace that pasta is given
    /// and watches: removed, pasta quits.
    netns: PathBuf,
}

/// Whether a run of `req` goes through pasta.
pub fn wanted(req: &RunRequest) -> bool {
    req.network == Network::Bridge(crate::network::store::DEFAULT.into())
        && crate::rootless::active()
}

/// Whether container `c`'s network is pasta's.
pub fn serves(c: &ContainerRecord) -> bool {
    c.network == "bridge" && crate::rootless::active()
}

/// pasta on berth's PATH, or the error that says what to install.
pub fn find() -> Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join("pasta"))
        .find(|p| {
            p.is_absolute()
                && std::fs::metadata(p)
                    .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .context("--network bridge for rootless containers needs pasta (Debian's package passt)")
}

/// Puts the hook in `spec`: berth's own binary as `berth pasta-hook`.
pub fn add_hook(spec: &mut Spec) -> Result<()> {
    let exe = std::env::current_exe().context("find berth's own binary for the pasta hook")?;
    let hook = HookBuilder::default()
        .path(exe)
        .args(vec!["berth".to_string(), HOOK.to_string()])
        .timeout(HOOK_TIMEOUT_SECS)
        .build()?;
    let mut hooks = spec.hooks().clone().unwrap_or_default();
    let mut list = hooks.create_runtime().clone().unwrap_or_default();
    list.push(hook);
    hooks.set_create_runtime(Some(list));
    spec.set_hooks(Some(hooks));
    Ok(())
}

/// The container's resolv.conf (in `bundle`) asks pasta's forwarder
/// first, unless `--dns` named the servers.
pub fn forward_dns(req: &RunRequest, bundle: &Path) -> Result<()> {
    if !wanted(req) || !req.dns.servers.is_empty() {
        return Ok(());
    }
    let path = bundle.join("resolv.conf");
    let text = berth_io::read_capped_string(&path, berth_io::MIB, "resolv.conf")
        .with_context(|| format!("read {}", path.display()))?;
    // In place: the file is bind-mounted by inode.
    std::fs::write(&path, format!("nameserver {DNS_FORWARD}\n{text}"))
        .with_context(|| format!("write {}", path.display()))
}

/// Where container `id`'s namespace link is (see the module's doc).
fn link_path(engine: &Engine, id: &str) -> PathBuf {
    engine.exec_root.join("pasta").join(id)
}

/// Readies container `c`'s start through pasta: its host ports chosen
/// and recorded, the hook's plan written into `bundle`.
pub fn connect(engine: &Engine, c: &mut ContainerRecord, bundle: &Path) -> Result<()> {
    let pasta = find()?;
    let published = choose_ports(&c.ports)?;
    let netns = link_path(engine, &c.id);
    let dir = netns.parent().unwrap_or(&netns);
    std::fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let plan = Plan {
        pasta,
        args: arguments(&published),
        netns,
    };
    let path = bundle.join(PLAN);
    std::fs::write(&path, serde_json::to_vec(&plan)?)
        .with_context(|| format!("write {}", path.display()))?;
    if !published.is_empty() {
        engine.records()?.update(&c.id, |r| {
            r.published = published.clone();
            Ok(())
        })?;
        c.published = published;
    }
    Ok(())
}

/// Ends container `c`'s pasta (it quits once its namespace link is gone)
/// and takes its published ports out of `c` (which the caller saves).
pub fn disconnect(engine: &Engine, c: &mut ContainerRecord) {
    let link = link_path(engine, &c.id);
    match std::fs::remove_file(&link) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            tracing::warn!(
                "stop the pasta of {}: remove {}: {e}",
                c.name,
                link.display()
            );
        }
        _ => {}
    }
    c.published.clear();
}

/// Each binding's host port: the one asked for, once the host lets this
/// user bind it, else a free one.
fn choose_ports(ports: &[PortBinding]) -> Result<Vec<Published>> {
    crate::network::publish::choose_ports(ports, bindable)
}

/// Whether this user may bind `ip:port` on the host, as pasta is to.
fn bindable(ip: Ipv4Addr, port: u16, proto: Proto) -> Result<()> {
    let addr = std::net::SocketAddrV4::new(ip, port);
    let bound = match proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).map(drop),
        Proto::Udp => std::net::UdpSocket::bind(addr).map(drop),
    };
    match bound {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
            bail!("Bind for {ip}:{port} failed: port is already allocated")
        }
        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
            let lowest = std::fs::read_to_string("/proc/sys/net/ipv4/ip_unprivileged_port_start")
                .unwrap_or_default();
            bail!(
                "Bind for {ip}:{port} failed: a rootless berth may not use host ports below {} \
                 (net.ipv4.ip_unprivileged_port_start)",
                lowest.trim()
            )
        }
        Err(e) => Err(e).with_context(|| format!("Bind for {ip}:{port} failed")),
    }
}

/// pasta's arguments for these ports (podman's set, see the module's doc).
fn arguments(published: &[Published]) -> Vec<String> {
    let mut args: Vec<String> = [
        "--config-net",
        "--dns-forward",
        DNS_FORWARD,
        "--no-map-gw",
        "--quiet",
        "-T",
        "none",
        "-U",
        "none",
    ]
    .map(String::from)
    .to_vec();
    for (flag, proto) in [("-t", Proto::Tcp), ("-u", Proto::Udp)] {
        let mut any = false;
        for p in published.iter().filter(|p| p.proto == proto) {
            let ip = p.host_ip.map(|ip| format!("{ip}/")).unwrap_or_default();
            args.push(flag.into());
            args.push(format!("{ip}{}:{}", p.host_port, p.container_port));
            any = true;
        }
        if !any {
            // Otherwise pasta's default: forward every port it can.
            args.push(flag.into());
            args.push("none".into());
        }
    }
    args
}

/// The part of the OCI state the hook needs.
#[derive(Deserialize)]
struct HookState {
    pid: i32,
    bundle: PathBuf,
}

/// `berth pasta-hook`, run by the runtime as a createRuntime hook with
/// the container's state on stdin: opens the container's network (and
/// user) namespace, points the plan's link at that fd, and execs pasta
/// on the link. Returns only on failure.
pub fn hook_main() -> Result<std::convert::Infallible> {
    use std::os::unix::process::CommandExt;
    let mut input = Vec::new();
    std::io::Read::read_to_end(
        &mut std::io::Read::take(std::io::stdin(), berth_io::MIB),
        &mut input,
    )
    .context("read the container's state")?;
    let state: HookState = serde_json::from_slice(&input).context("parse the container's state")?;
    let path = state.bundle.join(PLAN);
    let plan = berth_io::read_capped(&path, berth_io::MIB, "pasta plan")
        .with_context(|| format!("read {}", path.display()))?;
    let plan: Plan =
        serde_json::from_slice(&plan).with_context(|| format!("parse {}", path.display()))?;
    // Without close-on-exec: pasta opens them through /proc/<pid>/fd.
    let open = |kind: &str| {
        let p = format!("/proc/{}/ns/{kind}", state.pid);
        rustix::fs::open(&p, rustix::fs::OFlags::RDONLY, rustix::fs::Mode::empty())
            .with_context(|| format!("open {p}"))
    };
    let (net, user) = (open("net")?, open("user")?);
    let me = rustix::process::getpid().as_raw_nonzero();
    let fd_path = |fd: &std::os::fd::OwnedFd| {
        format!("/proc/{me}/fd/{}", std::os::fd::AsRawFd::as_raw_fd(fd))
    };
    match std::fs::remove_file(&plan.netns) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            return Err(e).with_context(|| format!("remove {}", plan.netns.display()));
        }
        _ => {}
    }
    std::os::unix::fs::symlink(fd_path(&net), &plan.netns)
        .with_context(|| format!("link {}", plan.netns.display()))?;
    let mut cmd = std::process::Command::new(&plan.pasta);
    cmd.args(&plan.args).arg("--netns").arg(&plan.netns);
    // Its own user namespace pasta may not join (EINVAL): only the
    // container's when it has one of its own (berth without a
    // subordinate range, outside any namespace of its own).
    if !same_inode(&user, Path::new("/proc/self/ns/user")) {
        cmd.arg("--userns").arg(fd_path(&user));
    }
    let e = cmd.exec();
    let _ = std::fs::remove_file(&plan.netns);
    Err(e).with_context(|| format!("run {}", plan.pasta.display()))
}

/// Whether `fd` and `path` are the same file (namespace).
fn same_inode(fd: &std::os::fd::OwnedFd, path: &Path) -> bool {
    match (rustix::fs::fstat(fd), rustix::fs::stat(path)) {
        (Ok(a), Ok(b)) => a.st_dev == b.st_dev && a.st_ino == b.st_ino,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pasta_is_given_podmans_arguments_and_the_published_ports() {
        let p = |ip: Option<[u8; 4]>, host, ctr, proto| Published {
            host_ip: ip.map(Ipv4Addr::from),
            host_port: host,
            container_port: ctr,
            proto,
        };
        let base = "--config-net --dns-forward 169.254.1.1 --no-map-gw --quiet -T none -U none";
        assert_eq!(arguments(&[]).join(" "), format!("{base} -t none -u none"));
        let ports = [
            p(None, 8080, 80, Proto::Tcp),
            p(Some([127, 0, 0, 1]), 8443, 443, Proto::Tcp),
            p(None, 5353, 53, Proto::Udp),
        ];
        assert_eq!(
            arguments(&ports).join(" "),
            format!("{base} -t 8080:80 -t 127.0.0.1/8443:443 -u 5353:53")
        );
    }
}
