//! Container networks, the engine's side: which namespace gets which
//! address on which bridge, and when (berth-network does the kernel's
//! side). For now the one network is Docker's default `bridge`: the
//! bridge `berth0` with the subnet of the config's `bip` (Docker's key:
//! the bridge's address with its prefix, `172.17.0.1/16` unless told).
//!
//! A container on it has, while it runs:
//! - a network namespace kept on `<exec root>/netns/ID`, which its spec
//!   names, so the runtime joins it;
//! - a veth pair, `veth` + 11 characters of its id on the bridge, `eth0` in
//!   its namespace, with its address and a default route via the bridge;
//! - the lease of its address (`<root>/networks/bridge/leases/ADDRESS`).
//!
//! [`attach`] makes them before its start, [`detach`] takes them away
//! after its exit (and with every removal, and the clean-up after a dead
//! berth), so a stopped container holds no address.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_network::{Leases, NetNs, Netlink, Subnet};

use crate::Engine;
use crate::ports::{Proto, Published};
use crate::records::ContainerRecord;

/// The default bridge's device.
pub const BRIDGE: &str = "berth0";

/// The default bridge's address and subnet: Docker's.
const DEFAULT_BIP: &str = "172.17.0.1/16";

/// The address a container got, and the network's gateway and prefix.
#[derive(Debug, Clone, Copy)]
pub struct Attachment {
    pub address: Ipv4Addr,
    pub gateway: Ipv4Addr,
    pub prefix: u8,
}

/// Where container `id`'s network namespace is kept.
pub fn netns_path(engine: &Engine, id: &str) -> PathBuf {
    engine.exec_root.join("netns").join(id)
}

/// The default bridge's subnet and gateway, from the config's `bip`.
fn bridge_subnet(engine: &Engine) -> Result<(Subnet, Ipv4Addr)> {
    let bip = engine.config.bip.as_deref().unwrap_or(DEFAULT_BIP);
    let bad = || format!("config key bip {bip:?}: expected ADDRESS/PREFIX, like 172.17.0.1/16");
    let (addr, prefix) = bip.split_once('/').with_context(bad)?;
    let gateway: Ipv4Addr = addr.parse().ok().with_context(bad)?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 30).with_context(bad)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let subnet =
        Subnet::new(Ipv4Addr::from(u32::from(gateway) & mask), prefix).with_context(bad)?;
    Ok((subnet, gateway))
}

/// `--network container:KEY`: the id of running container KEY and the
/// network namespace to join: the one berth keeps for a container on the
/// bridge, else its PID 1's (good while it runs).
pub fn namespace_of(engine: &Engine, key: &str) -> Result<(String, PathBuf)> {
    let c = engine.records()?.find(key)?;
    if !c.is_running() {
        bail!("cannot join network of a non running container: {}", c.name);
    }
    if c.network == "host" {
        bail!(
            "cannot join network of container {}: it uses the host's",
            c.name
        );
    }
    let kept = netns_path(engine, &c.id);
    if c.network == "bridge" && kept.exists() {
        return Ok((c.id, kept));
    }
    let pid = c
        .pid
        .with_context(|| format!("container {} has no process to join", c.name))?;
    Ok((c.id, PathBuf::from(format!("/proc/{pid}/ns/net"))))
}

/// The default bridge's address (what `--add-host NAME:host-gateway` names).
pub fn gateway(engine: &Engine) -> Result<Ipv4Addr> {
    Ok(bridge_subnet(engine)?.1)
}

fn leases(engine: &Engine) -> Result<Leases> {
    Ok(Leases::new(
        &engine.root.join("networks").join("bridge").join("leases"),
    )?)
}

/// The host's end of container `id`'s veth pair (15 characters, the
/// kernel's longest name).
fn host_veth(id: &str) -> String {
    format!("veth{}", &id[..id.len().min(11)])
}

/// Gives container `id` its network on the default bridge: the bridge
/// (made the first time), a lease, the namespace, the veth pair, the
/// address and route. On failure nothing of it is left.
pub fn attach(engine: &Engine, id: &str) -> Result<Attachment> {
    let (subnet, gateway) = bridge_subnet(engine)?;
    let mut nl = Netlink::open()?;
    let bridge = ensure_bridge(engine, &mut nl, gateway, &subnet)?;
    let leases = leases(engine)?;
    // Leases whose container is gone (a berth killed before it detached).
    let records = engine.records()?;
    leases.sweep(|owner| owner == id || records.load(owner).is_ok())?;
    let address = leases.take(&subnet, id, None)?;
    let a = Attachment {
        address,
        gateway,
        prefix: subnet.prefix(),
    };
    let made = plumb(engine, &mut nl, id, bridge, &a);
    if let Err(e) = made {
        let _ = detach(engine, id);
        return Err(e.context(format!("connect container {id} to network bridge")));
    }
    Ok(a)
}

/// The namespace, the pair, the address and the routes of `a`.
fn plumb(engine: &Engine, nl: &mut Netlink, id: &str, bridge: u32, a: &Attachment) -> Result<()> {
    let path = netns_path(engine, id);
    std::fs::create_dir_all(path.parent().unwrap_or(&path))
        .with_context(|| format!("create {}", path.display()))?;
    // What a killed berth may have left under this id.
    NetNs::remove(&path)?;
    let ns = NetNs::create(&path)?;
    let veth = host_veth(id);
    // The pair of this container's last run, if its namespace is still
    // being taken down (a quick restart).
    if let Some(old) = nl.link_index(&veth)? {
        match nl.delete_link(old) {
            Err(e) if e.errno() == Some(libc::ENODEV) => {}
            r => r?,
        }
    }
    // Docker's hardware address for an address (02:42 and its four
    // bytes): a neighbour's ARP cache stays right when the address goes
    // to another container.
    let o = a.address.octets();
    let mac = [0x02, 0x42, o[0], o[1], o[2], o[3]];
    nl.add_veth(&veth, "eth0", ns.fd(), Some(mac))?;
    let host_end = nl
        .link_index(&veth)?
        .with_context(|| format!("link {veth} gone after it was made"))?;
    nl.set_up(host_end, Some(bridge))?;
    ns.run(|| {
        let mut inner = Netlink::open()?;
        if let Some(lo) = inner.link_index("lo")? {
            inner.set_up(lo, None)?;
        }
        let eth0 = inner.link_index("eth0")?.unwrap_or(0);
        inner.add_address(eth0, a.address, a.prefix)?;
        inner.set_up(eth0, None)?;
        inner.add_default_route(a.gateway)
    })?;
    Ok(())
}

/// The bridge's index; made, addressed and set up the first time, under
/// a lock so that concurrent berths make it once.
fn ensure_bridge(
    engine: &Engine,
    nl: &mut Netlink,
    gateway: Ipv4Addr,
    subnet: &Subnet,
) -> Result<u32> {
    if let Some(i) = nl.link_index(BRIDGE)? {
        return Ok(i);
    }
    let dir = engine.root.join("networks");
    std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
    let lock_path = dir.join("bridge.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("lock {}", lock_path.display()))?;
    if let Some(i) = nl.link_index(BRIDGE)? {
        return Ok(i);
    }
    masquerade(subnet)?;
    nl.add_bridge(BRIDGE)?;
    let i = nl
        .link_index(BRIDGE)?
        .with_context(|| format!("bridge {BRIDGE} gone after it was made"))?;
    nl.add_address(i, gateway, subnet.prefix())?;
    nl.set_up(i, None)?;
    // A published port reached through 127.0.0.1 leaves for the bridge
    // with a loopback source (masqueraded there).
    let localnet = format!("/proc/sys/net/ipv4/conf/{BRIDGE}/route_localnet");
    std::fs::write(&localnet, "1").with_context(|| format!("write {localnet}"))?;
    Ok(i)
}

/// The firewall of the default bridge, in berth's own table `ip berth`
/// (never another's): what leaves the subnet for elsewhere is masqueraded,
/// and forwarding to and from the bridge is accepted; IP forwarding on,
/// as Docker turns it on. Replaced whole, at once (`nft -f`), when the
/// bridge is made: once per boot, never per container.
fn masquerade(subnet: &Subnet) -> Result<()> {
    let rules = format!(
        "table ip berth\n\
         delete table ip berth\n\
         table ip berth {{\n\
         \tmap tcp-ports {{ type inet_service : ipv4_addr . inet_service; }}\n\
         \tmap udp-ports {{ type inet_service : ipv4_addr . inet_service; }}\n\
         \tmap tcp-addr-ports {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}\n\
         \tmap udp-addr-ports {{ type ipv4_addr . inet_service : ipv4_addr . inet_service; }}\n\
         \tchain prerouting {{\n\
         \t\ttype nat hook prerouting priority dstnat; policy accept;\n\
         \t\tfib daddr type local jump published\n\
         \t}}\n\
         \tchain output {{\n\
         \t\ttype nat hook output priority -100; policy accept;\n\
         \t\tfib daddr type local jump published\n\
         \t}}\n\
         \tchain published {{\n\
         \t\tdnat ip to ip daddr . tcp dport map @tcp-addr-ports\n\
         \t\tdnat ip to ip daddr . udp dport map @udp-addr-ports\n\
         \t\tdnat ip to tcp dport map @tcp-ports\n\
         \t\tdnat ip to udp dport map @udp-ports\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr {subnet} oifname != \"{BRIDGE}\" masquerade\n\
         \t\tip saddr 127.0.0.0/8 oifname \"{BRIDGE}\" masquerade\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname \"{BRIDGE}\" accept\n\
         \t\toifname \"{BRIDGE}\" ct state established,related accept\n\
         \t}}\n\
         }}\n"
    );
    run_nft(&rules).context("set up the firewall of network bridge")?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .context("turn on IP forwarding (/proc/sys/net/ipv4/ip_forward)")?;
    Ok(())
}

/// Runs `nft -f -` on `rules`.
fn run_nft(rules: &str) -> Result<()> {
    use std::io::Write;
    let mut child = std::process::Command::new("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => {
                anyhow::anyhow!(
                    "nft not found: the bridge network needs nftables (Debian's package nftables)"
                )
            }
            _ => anyhow::anyhow!("run nft: {e}"),
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(rules.as_bytes()).context("write to nft")?;
    }
    let out = child.wait_with_output().context("wait for nft")?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        anyhow::bail!("nft: {}", err.lines().next().unwrap_or("failed"));
    }
    Ok(())
}

/// Takes container `id`'s network away: its namespace, and its lease.
/// Nothing there is fine. The veth pair goes with the namespace, which the
/// kernel takes down a moment later in the background: deleting the pair
/// here would wait out RCU grace periods, some 20 ms of every run.
pub fn detach(engine: &Engine, id: &str) -> Result<()> {
    NetNs::remove(&netns_path(engine, id))?;
    let leases = leases(engine)?;
    for (ip, owner) in leases.list()? {
        if owner == id {
            leases.give_back(ip, id)?;
        }
    }
    Ok(())
}

/// [`attach`] for container `c` if it is on the bridge, and its
/// `/etc/hosts` (in `bundle`) names it by its address, as Docker's does.
pub fn connect(engine: &Engine, c: &mut ContainerRecord, bundle: &Path) -> Result<()> {
    if crate::pasta::serves(c) {
        return crate::pasta::connect(engine, c, bundle);
    }
    if c.network != "bridge" {
        return Ok(());
    }
    let a = attach(engine, &c.id)?;
    // Both are bind-mounted into the container, which may have written
    // them: read bounded.
    let hosts = bundle.join("hosts");
    let text = berth_io::read_capped_string(&hosts, berth_io::MIB, "/etc/hosts")
        .with_context(|| format!("read {}", hosts.display()))?;
    let name_file = bundle.join("hostname");
    let hostname = berth_io::read_capped_string(&name_file, 4096, "/etc/hostname")
        .with_context(|| format!("read {}", name_file.display()))?;
    let hostname = hostname.trim();
    let mut out = String::with_capacity(text.len() + 16);
    for line in text.lines() {
        // The line that names the container: 127.0.1.1 before it had an
        // address, its address of a previous start after. Not --add-host's.
        match line.split_once('\t') {
            Some((ip, names)) if names == hostname && ip.parse::<Ipv4Addr>().is_ok() => {
                out.push_str(&format!("{}\t{names}\n", a.address));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    // In place: the file is bind-mounted by inode.
    std::fs::write(&hosts, out).with_context(|| format!("write {}", hosts.display()))?;
    if !c.ports.is_empty()
        && let Err(e) = publish(engine, c, a.address)
    {
        let _ = detach(engine, &c.id);
        return Err(e);
    }
    Ok(())
}

/// Publishes container `c`'s ports to `address`: each host port checked
/// free (a free one chosen when none was asked), then every map entry
/// made at once; the record says where they went.
fn publish(engine: &Engine, c: &mut ContainerRecord, address: Ipv4Addr) -> Result<()> {
    let mut published = Vec::new();
    let mut taken = Vec::new();
    for b in &c.ports {
        let ip = b.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let port = match b.host_port {
            Some(p) => {
                if !port_free(ip, p, b.proto) {
                    bail!("Bind for {ip}:{p} failed: port is already allocated");
                }
                p
            }
            None => free_port(ip, b.proto, &taken)?,
        };
        taken.push((port, b.proto));
        published.push(Published {
            host_ip: b.host_ip,
            host_port: port,
            container_port: b.container_port,
            proto: b.proto,
        });
    }
    // Recorded before the maps get them: a berth killed in between leaves
    // entries its record names, which the sweep takes out.
    engine.records()?.update(&c.id, |r| {
        r.published = published.clone();
        Ok(())
    })?;
    c.published = published.clone();
    let mut rules = String::new();
    for p in &published {
        let proto = p.proto.name();
        match p.host_ip {
            None => rules.push_str(&format!(
                "create element ip berth {proto}-ports {{ {} : {address} . {} }}\n",
                p.host_port, p.container_port
            )),
            Some(ip) => rules.push_str(&format!(
                "create element ip berth {proto}-addr-ports {{ {ip} . {} : {address} . {} }}\n",
                p.host_port, p.container_port
            )),
        }
    }
    if let Err(e) = run_nft(&rules) {
        // None of them went in (nft -f is all or nothing).
        c.published.clear();
        let _ = engine.records()?.update(&c.id, |r| {
            r.published.clear();
            Ok(())
        });
        // Most likely another container publishes one of them.
        let first = published
            .first()
            .map(|p| (p.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED), p.host_port));
        return match (format!("{e:#}").contains("exists"), first) {
            (true, Some((ip, port))) if published.len() == 1 => {
                bail!("Bind for {ip}:{port} failed: port is already allocated")
            }
            (true, _) => bail!(
                "a port of {} is already allocated",
                Published::list(&published)
            ),
            _ => Err(e.context("publish ports")),
        };
    }
    Ok(())
}

/// Takes container `c`'s published ports out of the maps.
fn unpublish(engine: &Engine, c: &mut ContainerRecord) {
    let Ok(records) = engine.records() else {
        return;
    };
    // The caller's copy and the record as it is now (a monitor may have
    // published since `c` was read).
    let mut published = std::mem::take(&mut c.published);
    for p in records.load(&c.id).map(|r| r.published).unwrap_or_default() {
        if !published.contains(&p) {
            published.push(p);
        }
    }
    if published.is_empty() {
        return;
    }
    for p in &published {
        let proto = p.proto.name();
        let rule = match p.host_ip {
            None => format!(
                "delete element ip berth {proto}-ports {{ {} }}\n",
                p.host_port
            ),
            Some(ip) => format!(
                "delete element ip berth {proto}-addr-ports {{ {ip} . {} }}\n",
                p.host_port
            ),
        };
        // One at a time: one already gone must not keep the rest.
        if let Err(e) = run_nft(&rule) {
            tracing::debug!("unpublish {}: {e:#}", p.display());
        }
    }
}

/// Whether nothing on the host holds `ip:port` (bound, so that the
/// kernel would hand it to a host process rather than the container).
fn port_free(ip: Ipv4Addr, port: u16, proto: Proto) -> bool {
    let addr = std::net::SocketAddrV4::new(ip, port);
    match proto {
        Proto::Tcp => std::net::TcpListener::bind(addr).is_ok(),
        Proto::Udp => std::net::UdpSocket::bind(addr).is_ok(),
    }
}

/// A free port from the kernel's ephemeral range (not one of `taken`).
pub(crate) fn free_port(ip: Ipv4Addr, proto: Proto, taken: &[(u16, Proto)]) -> Result<u16> {
    for _ in 0..64 {
        let addr = std::net::SocketAddrV4::new(ip, 0);
        let port = match proto {
            Proto::Tcp => std::net::TcpListener::bind(addr).and_then(|l| l.local_addr()),
            Proto::Udp => std::net::UdpSocket::bind(addr).and_then(|l| l.local_addr()),
        }
        .with_context(|| format!("find a free {} port", proto.name()))?
        .port();
        if !taken.contains(&(port, proto)) {
            return Ok(port);
        }
    }
    bail!("no free {} port found", proto.name())
}

/// [`detach`] for container `c` if it is on the bridge, its published
/// ports taken out of the maps and out of `c` (which the caller saves:
/// it may hold the records lock); a failure is only warned about (what is
/// left, the next attach or sweep takes).
pub fn disconnect(engine: &Engine, c: &mut ContainerRecord) {
    if crate::pasta::serves(c) {
        return crate::pasta::disconnect(engine, c);
    }
    if c.network != "bridge" {
        return;
    }
    unpublish(engine, c);
    if let Err(e) = detach(engine, &c.id) {
        tracing::warn!("disconnect container {} from network bridge: {e:#}", c.name);
    }
}

/// Container `c`'s place on the bridge, while it runs there.
pub fn attachment_of(engine: &Engine, c: &ContainerRecord) -> Option<Attachment> {
    if c.network != "bridge" {
        return None;
    }
    let address = leases(engine)
        .ok()?
        .list()
        .ok()?
        .into_iter()
        .find_map(|(ip, owner)| (owner == c.id).then_some(ip))?;
    let (subnet, gateway) = bridge_subnet(engine).ok()?;
    Some(Attachment {
        address,
        gateway,
        prefix: subnet.prefix(),
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn veth_names_fit_the_kernels_limit() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        assert_eq!(super::host_veth(id), "veth0123456789a");
        assert_eq!(super::host_veth(id).len(), 15);
    }
}
