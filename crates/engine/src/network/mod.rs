//! Container networks, the engine's side: which namespace gets which
//! address on which bridge, and when (berth-network does the kernel's
//! side). A network is Docker's default `bridge` (the bridge `berth0`,
//! the subnet of the config's `bip`) or one of `network create`'s
//! ([`store`]); a container may be on several ([`Endpoint`]s).
//!
//! A container on networks has, while it runs:
//! - a network namespace kept on `<exec root>/netns/ID`, which its spec
//!   names, so the runtime joins it;
//! - per network, a veth pair: `veth` + 11 characters of its id and the
//!   network on the bridge, `eth0`, `eth1`… in its namespace, with its
//!   address (the default route via the first network's gateway);
//! - per network, the lease of its address
//!   (`<root>/networks/NAME/leases/ADDRESS`), and on a user-defined one
//!   its names in the network's DNS ([`dns`]).
//!
//! [`connect`] makes them before its start, [`disconnect`] takes them away
//! after its exit (and with every removal, and the clean-up after a dead
//! berth), so a stopped container holds no address.

pub mod dns;
mod firewall;
pub mod manage;
pub(crate) mod publish;
pub mod store;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_network::{Leases, NetNs, Netlink};
use serde::{Deserialize, Serialize};

use crate::Engine;
use crate::records::ContainerRecord;
use crate::request::{Network, RunRequest};
pub use store::{NetworkRecord, NetworkRequest};

/// A container's place on one network, as its record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    /// The network's name.
    pub network: String,
    /// `--network-alias`: more names it has in the network's DNS.
    #[serde(default)]
    pub aliases: Vec<String>,
    /// `--ip`: the address asked for (else the first free one).
    #[serde(default)]
    pub ip: Option<Ipv4Addr>,
}

/// The address a container got on a network, and the network's gateway
/// and prefix.
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

/// The networks container `c` is on.
pub fn endpoints(c: &ContainerRecord) -> Vec<Endpoint> {
    c.networks.clone()
}

/// The network of `run` without `--network`: the config's
/// `default-network`, else Docker's `bridge` (through pasta for a rootless
/// berth, as podman's); `none` where no bridge can be had (no pasta, or no
/// CAP_NET_ADMIN, as inside a container).
pub fn default_mode(engine: &Engine) -> String {
    if let Some(n) = &engine.config.default_network {
        return n.clone();
    }
    let bridge = if crate::rootless::active() {
        crate::pasta::find().is_ok()
    } else {
        crate::host::Host::get().has_cap("CAP_NET_ADMIN")
    };
    if !bridge {
        tracing::info!("containers get no network by default here");
        return "none".into();
    }
    store::DEFAULT.into()
}

/// `--network container:KEY`: the id of running container KEY and the
/// network namespace to join: the one berth keeps for a container on
/// networks, else its PID 1's (good while it runs).
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
    if kept.exists() {
        return Ok((c.id, kept));
    }
    let pid = c
        .pid
        .with_context(|| format!("container {} has no process to join", c.name))?;
    Ok((c.id, PathBuf::from(format!("/proc/{pid}/ns/net"))))
}

/// The network of `--network NAME` exists and is a bridge, and
/// `--network-alias` and `--ip` are where Docker takes them.
pub(crate) fn check(engine: &Engine, req: &RunRequest) -> Result<()> {
    let Network::Bridge(name) = &req.network else {
        if !req.network_aliases.is_empty() {
            bail!("network-scoped aliases are only supported for user-defined networks");
        }
        if req.ip.is_some() {
            bail!("--ip needs a network: use --network NAME");
        }
        return Ok(());
    };
    let net = store::find(engine, name)?;
    if !net.is_bridge() {
        bail!("network {name} is not a bridge network");
    }
    if crate::rootless::active() && net.name != store::DEFAULT {
        bail!(
            "network {name} needs root: user-defined networks are bridges of the host's; rootless \
             berth has bridge (through pasta), none and host"
        );
    }
    if !net.has_dns() && !req.network_aliases.is_empty() {
        bail!("network-scoped aliases are only supported for user-defined networks");
    }
    if let Some(ip) = req.ip {
        if !net.user_subnet {
            bail!(
                "user specified IP address is supported only when connecting to networks with \
                 user configured subnets"
            );
        }
        if !net.subnet()?.contains(ip) {
            bail!("no configured subnet contains the IP address {ip}");
        }
    }
    Ok(())
}

/// `run`'s NetworkMode for the record: `container:ID` (by id: the other
/// may be renamed), a network's name (an id or its prefix may have named
/// it), or the mode.
pub(crate) fn mode_of(
    engine: &Engine,
    req: &RunRequest,
    network_of: Option<&(String, PathBuf)>,
) -> Result<String> {
    Ok(match &req.network {
        Network::Container(_) => {
            format!("container:{}", network_of.map_or("", |(id, _)| id.as_str()))
        }
        Network::Bridge(n) => store::find(engine, n)?.name,
        n => n.name(),
    })
}

/// `run`'s endpoint: its network, `--network-alias` and `--ip`.
pub(crate) fn endpoints_of(engine: &Engine, req: &RunRequest) -> Result<Vec<Endpoint>> {
    Ok(match &req.network {
        Network::Bridge(n) => vec![Endpoint {
            network: store::find(engine, n)?.name,
            aliases: req.network_aliases.clone(),
            ip: req.ip,
        }],
        _ => Vec::new(),
    })
}

/// Network `name`'s gateway (what `--add-host NAME:host-gateway` names,
/// and a user-defined network's DNS server).
pub fn gateway_of(engine: &Engine, name: &str) -> Result<Ipv4Addr> {
    store::find(engine, name)?.gateway()
}

fn leases(engine: &Engine, net: &str) -> Result<Leases> {
    Ok(Leases::new(
        &store::network_dir(engine, net).join("leases"),
    )?)
}

/// The host's end of container `id`'s veth pair on network `net` (15
/// characters, the kernel's longest name): 7 of the id, 4 of the network.
fn host_veth(id: &str, net: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in net.bytes() {
        h = (h ^ u32::from(b)).wrapping_mul(0x0100_0193);
    }
    format!("veth{}{:04x}", &id[..id.len().min(7)], h & 0xffff)
}

/// Gives container `c` its networks: the namespace, then per endpoint the
/// bridge (made the first time), a lease, the veth pair, the address and
/// (first only) the route. On failure nothing of it is left. Returns the
/// first network's attachment.
fn attach(engine: &Engine, c: &ContainerRecord, eps: &[Endpoint]) -> Result<Attachment> {
    let path = netns_path(engine, &c.id);
    std::fs::create_dir_all(path.parent().unwrap_or(&path))
        .with_context(|| format!("create {}", path.display()))?;
    // What a killed berth may have left under this id.
    NetNs::remove(&path)?;
    let ns = NetNs::create(&path)?;
    ns.run(|| {
        let mut inner = Netlink::open()?;
        if let Some(lo) = inner.link_index("lo")? {
            inner.set_up(lo, None)?;
        }
        Ok(())
    })?;
    let mut nl = Netlink::open()?;
    let mut first = None;
    for (i, ep) in eps.iter().enumerate() {
        let net = store::find(engine, &ep.network)?;
        let a = attach_one(
            engine,
            &mut nl,
            &ns,
            c,
            &net,
            ep,
            &format!("eth{i}"),
            i == 0,
        )
        .with_context(|| format!("connect container {} to network {}", c.name, net.name))?;
        first.get_or_insert(a);
    }
    first.context("no network to connect to")
}

/// Container `c` on network `net` as interface `ifname` of namespace `ns`.
#[allow(clippy::too_many_arguments)]
fn attach_one(
    engine: &Engine,
    nl: &mut Netlink,
    ns: &NetNs,
    c: &ContainerRecord,
    net: &NetworkRecord,
    ep: &Endpoint,
    ifname: &str,
    route: bool,
) -> Result<Attachment> {
    if !net.is_bridge() {
        bail!("network {} is not a bridge network", net.name);
    }
    let subnet = net.subnet()?;
    let gateway = net.gateway()?;
    if let Some(ip) = ep.ip {
        if !net.user_subnet {
            bail!(
                "user specified IP address is supported only when connecting to networks with \
                 user configured subnets"
            );
        }
        if !subnet.contains(ip) {
            bail!("no configured subnet contains the IP address {ip}");
        }
    }
    let bridge = ensure_bridge(engine, nl, net)?;
    let leases = leases(engine, &net.name)?;
    // Leases whose container is gone (a berth killed before it detached).
    let records = engine.records()?;
    leases.sweep(|owner| owner == c.id || records.load(owner).is_ok())?;
    let address = leases
        .take(&subnet, &c.id, ep.ip)
        .map_err(|e| match ep.ip {
            Some(ip) if e.to_string().contains("in use") => {
                anyhow::anyhow!("Address already in use: {ip} on network {}", net.name)
            }
            _ => e.into(),
        })?;
    let a = Attachment {
        address,
        gateway,
        prefix: subnet.prefix(),
    };
    let veth = host_veth(&c.id, &net.name);
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
    nl.add_veth(&veth, ifname, ns.fd(), Some(mac))?;
    let host_end = nl
        .link_index(&veth)?
        .with_context(|| format!("link {veth} gone after it was made"))?;
    nl.set_up(host_end, Some(bridge))?;
    ns.run(|| {
        let mut inner = Netlink::open()?;
        let i = inner.link_index(ifname)?.unwrap_or(0);
        inner.add_address(i, a.address, a.prefix)?;
        inner.set_up(i, None)?;
        if route {
            inner.add_default_route(a.gateway)?;
        }
        Ok(())
    })?;
    if net.has_dns() {
        dns::add(engine, net, c, ep, address)?;
    }
    Ok(a)
}

/// Network `net`'s bridge's index; made, addressed, set up and known to
/// the firewall the first time, under the networks lock so that
/// concurrent berths make it once.
fn ensure_bridge(engine: &Engine, nl: &mut Netlink, net: &NetworkRecord) -> Result<u32> {
    if let Some(i) = nl.link_index(&net.device)? {
        return Ok(i);
    }
    let _lock = store::lock(engine)?;
    if let Some(i) = nl.link_index(&net.device)? {
        return Ok(i);
    }
    let mut up = Vec::new();
    for n in store::list(engine)? {
        if n.is_bridge() && nl.link_index(&n.device)?.is_some() {
            up.push(n);
        }
    }
    firewall::add_network(net, &up)?;
    nl.add_bridge(&net.device)?;
    let i = nl
        .link_index(&net.device)?
        .with_context(|| format!("bridge {} gone after it was made", net.device))?;
    nl.add_address(i, net.gateway()?, net.subnet()?.prefix())?;
    nl.set_up(i, None)?;
    // A published port reached through 127.0.0.1 leaves for the bridge
    // with a loopback source (masqueraded there).
    let localnet = format!("/proc/sys/net/ipv4/conf/{}/route_localnet", net.device);
    std::fs::write(&localnet, "1").with_context(|| format!("write {localnet}"))?;
    Ok(i)
}

/// Takes container `id`'s networks away: its namespace, its leases and
/// names on every network. Nothing there is fine. The veth pairs go with
/// the namespace, which the kernel takes down a moment later in the
/// background: deleting them here would wait out RCU grace periods, some
/// 20 ms of every run.
pub fn detach(engine: &Engine, id: &str) -> Result<()> {
    NetNs::remove(&netns_path(engine, id))?;
    for net in store::list(engine)?.iter().filter(|n| n.is_bridge()) {
        give_back(engine, net, id)?;
    }
    Ok(())
}

/// Container `id`'s lease and names on network `net`.
fn give_back(engine: &Engine, net: &NetworkRecord, id: &str) -> Result<()> {
    let leases = leases(engine, &net.name)?;
    for (ip, owner) in leases.list()? {
        if owner == id {
            leases.give_back(ip, id)?;
        }
    }
    if net.has_dns() {
        dns::remove(engine, net, id)?;
    }
    Ok(())
}

/// [`attach`] for container `c` if it is on networks, its `/etc/hosts`
/// (in `bundle`) naming it by its address, as Docker's does, and its
/// ports published.
pub fn connect(engine: &Engine, c: &mut ContainerRecord, bundle: &Path) -> Result<()> {
    if crate::pasta::serves(c) {
        return crate::pasta::connect(engine, c, bundle);
    }
    let eps = endpoints(c);
    if eps.is_empty() {
        return Ok(());
    }
    let a = match attach(engine, c, &eps) {
        Ok(a) => a,
        Err(e) => {
            let _ = detach(engine, &c.id);
            return Err(e);
        }
    };
    if let Err(e) = name_in_hosts(bundle, a.address) {
        let _ = detach(engine, &c.id);
        return Err(e);
    }
    if !c.ports.is_empty()
        && let Err(e) = publish::publish(engine, c, a.address)
    {
        let _ = detach(engine, &c.id);
        return Err(e);
    }
    Ok(())
}

/// Points the container's own line of `/etc/hosts` at `address`.
fn name_in_hosts(bundle: &Path, address: Ipv4Addr) -> Result<()> {
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
                out.push_str(&format!("{address}\t{names}\n"));
            }
            _ => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    // In place: the file is bind-mounted by inode.
    std::fs::write(&hosts, out).with_context(|| format!("write {}", hosts.display()))
}

/// [`detach`] for container `c` if it is on networks, its published
/// ports taken out of the maps and out of `c` (which the caller saves:
/// it may hold the records lock); a failure is only warned about (what is
/// left, the next attach or sweep takes).
pub fn disconnect(engine: &Engine, c: &mut ContainerRecord) {
    if crate::pasta::serves(c) {
        return crate::pasta::disconnect(engine, c);
    }
    if endpoints(c).is_empty() {
        return;
    }
    publish::unpublish(engine, c);
    if let Err(e) = detach(engine, &c.id) {
        tracing::warn!("disconnect container {} from its networks: {e:#}", c.name);
    }
}

/// Container `c`, renamed, by its new name in its networks' DNS (while it
/// runs there); a failure is only warned about.
pub fn rename(engine: &Engine, c: &ContainerRecord) {
    for (ep, a) in attachments_of(engine, c) {
        let Ok(net) = store::find(engine, &ep.network) else {
            continue;
        };
        if net.has_dns()
            && let Err(e) = dns::add(engine, &net, c, &ep, a.address)
        {
            tracing::warn!("rename {} in network {}: {e:#}", c.name, net.name);
        }
    }
}

/// Container `c`'s place on each of its networks, while it runs there.
pub fn attachments_of(engine: &Engine, c: &ContainerRecord) -> Vec<(Endpoint, Attachment)> {
    let mut out = Vec::new();
    for ep in endpoints(c) {
        let Ok(net) = store::find(engine, &ep.network) else {
            continue;
        };
        let address = leases(engine, &net.name)
            .and_then(|l| Ok(l.list()?))
            .ok()
            .and_then(|l| l.into_iter().find_map(|(ip, o)| (o == c.id).then_some(ip)));
        if let (Some(address), Ok(gateway), Ok(subnet)) = (address, net.gateway(), net.subnet()) {
            out.push((
                ep,
                Attachment {
                    address,
                    gateway,
                    prefix: subnet.prefix(),
                },
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn veth_names_fit_the_kernels_limit_and_differ_by_network() {
        let id = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let a = super::host_veth(id, "bridge");
        assert!(a.starts_with("veth0123456"), "{a}");
        assert_eq!(a.len(), 15);
        assert_ne!(a, super::host_veth(id, "backend"));
    }
}
