//! `network rm`, `prune`, `connect` and `disconnect`: what changes a
//! network or a container's place on one after `run`.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use berth_network::{NetNs, Netlink};

use super::{Endpoint, NetworkRecord, store};
use crate::Engine;
use crate::records::ContainerRecord;

/// The containers on network `net` (by record), running or not.
pub fn containers_on(engine: &Engine, net: &NetworkRecord) -> Result<Vec<ContainerRecord>> {
    Ok(engine
        .records()?
        .list()?
        .into_iter()
        .filter(|c| super::endpoints(c).iter().any(|e| e.network == net.name))
        .collect())
}

/// `network rm KEY`: refused while a running container is on it;
/// otherwise its bridge, firewall entries, DNS and record go.
pub fn remove(engine: &Engine, key: &str) -> Result<NetworkRecord> {
    let net = store::find(engine, key)?;
    if net.is_predefined() {
        bail!(
            "{} is a pre-defined network and cannot be removed",
            net.name
        );
    }
    let _lock = store::lock(engine)?;
    if containers_on(engine, &net)?.iter().any(|c| c.is_running()) {
        bail!(
            "error while removing network: network {} id {} has active endpoints",
            net.name,
            net.id
        );
    }
    take_down(&net)?;
    super::dns::forget(engine, &net);
    store::remove_record(engine, &net)?;
    Ok(net)
}

/// Its bridge deleted and its firewall entries taken out.
fn take_down(net: &NetworkRecord) -> Result<()> {
    let mut nl = Netlink::open()?;
    if let Some(i) = nl.link_index(&net.device)? {
        match nl.delete_link(i) {
            Err(e) if e.errno() == Some(libc::ENODEV) => {}
            r => r.with_context(|| format!("delete bridge {}", net.device))?,
        }
        super::firewall::remove_network(net);
    }
    Ok(())
}

/// `network prune`: every user-defined network no container is on.
/// Returns their names.
pub fn prune(engine: &Engine) -> Result<Vec<String>> {
    let mut gone = Vec::new();
    for net in store::list(engine)? {
        if net.is_predefined() || !containers_on(engine, &net)?.is_empty() {
            continue;
        }
        match remove(engine, &net.name) {
            Ok(n) => gone.push(n.name),
            Err(e) => tracing::warn!("network {}: {e:#}", net.name),
        }
    }
    Ok(gone)
}

/// `network connect [--alias A] [--ip X] NETWORK CONTAINER`: the
/// container is on it from now on; if it runs, at once (a new interface).
pub fn connect(
    engine: &Engine,
    net_key: &str,
    container: &str,
    aliases: Vec<String>,
    ip: Option<Ipv4Addr>,
) -> Result<()> {
    let net = store::find(engine, net_key)?;
    if !net.is_bridge() {
        bail!("container cannot be disconnected from host network or connected to host network");
    }
    let records = engine.records()?;
    let c = records.find(container)?;
    check_mode(&c)?;
    let mut eps = super::endpoints(&c);
    if eps.iter().any(|e| e.network == net.name) {
        bail!(
            "endpoint with name {} already exists in network {}",
            c.name,
            net.name
        );
    }
    let ep = Endpoint {
        network: net.name.clone(),
        aliases,
        ip,
    };
    eps.push(ep.clone());
    if c.is_running() {
        connect_live(engine, &c, &net, &ep)?;
    }
    records.update(&c.id, |r| {
        r.networks = eps;
        if r.network.is_empty() || r.network == "none" {
            r.network = net.name.clone();
        }
        Ok(())
    })
}

/// Only a container with a namespace berth keeps moves between networks.
fn check_mode(c: &ContainerRecord) -> Result<()> {
    match c.network.as_str() {
        "host" => {
            bail!("container cannot be disconnected from host network or connected to host network")
        }
        m if m.starts_with("container:") => bail!(
            "container sharing network namespace with another container or host cannot be \
             connected to any other network"
        ),
        "" | "none" => bail!(
            "container {} has no network of its own to connect (--network none)",
            c.name
        ),
        _ => Ok(()),
    }
}

/// A running container's new interface on `net`: the first `ethN` its
/// namespace does not have.
fn connect_live(
    engine: &Engine,
    c: &ContainerRecord,
    net: &NetworkRecord,
    ep: &Endpoint,
) -> Result<()> {
    let ns = NetNs::open(&super::netns_path(engine, &c.id))?;
    let taken = ns.run(|| Netlink::open()?.link_names())?;
    let ifname = (0..1024)
        .map(|i| format!("eth{i}"))
        .find(|n| !taken.contains(n))
        .context("no free interface name")?;
    let mut nl = Netlink::open()?;
    let made = super::attach_one(engine, &mut nl, &ns, c, net, ep, &ifname, false);
    if let Err(e) = made {
        let _ = super::give_back(engine, net, &c.id);
        return Err(e.context(format!(
            "connect container {} to network {}",
            c.name, net.name
        )));
    }
    Ok(())
}

/// `network disconnect NETWORK CONTAINER`: off it, at once if it runs.
pub fn disconnect(engine: &Engine, net_key: &str, container: &str) -> Result<()> {
    let net = store::find(engine, net_key)?;
    let records = engine.records()?;
    let c = records.find(container)?;
    let eps = super::endpoints(&c);
    if !eps.iter().any(|e| e.network == net.name) {
        bail!(
            "container {} is not connected to network {}",
            c.name,
            net.name
        );
    }
    if c.is_running() {
        let mut nl = Netlink::open()?;
        if let Some(i) = nl.link_index(&super::host_veth(&c.id, &net.name))? {
            match nl.delete_link(i) {
                Err(e) if e.errno() == Some(libc::ENODEV) => {}
                r => r?,
            }
        }
        super::give_back(engine, &net, &c.id)?;
    }
    records.update(&c.id, |r| {
        r.networks = eps.into_iter().filter(|e| e.network != net.name).collect();
        Ok(())
    })
}
