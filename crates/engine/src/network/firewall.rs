//! berth's firewall: one nftables table, `ip berth`, never another's
//! (Docker's and podman's tables on the same host are left alone).
//!
//! Its chains are fixed; what changes are set and map elements, each
//! change one `nft -f` (all or nothing):
//! - `bridges`, `own` (bridge . bridge), `members` (bridge . subnet):
//!   every network's bridge; `internal`: those of `--internal` ones;
//!   `nat`: the subnets masqueraded on their way out.
//! - `tcp-ports`, `udp-ports` (host port → address . port) and
//!   `tcp-addr-ports`, `udp-addr-ports` (host address . host port → …):
//!   published ports.
//!
//! Port 53 of a gateway (a network's name server) only from that
//! network's bridge.
//!
//! Forwarding: within a network, yes; into or out of an internal one, no;
//! to a published port, yes from anywhere; between two networks, no
//! (Docker's isolation); out of a network, yes, and back only as replies.

use std::net::Ipv4Addr;

use anyhow::{Context, Result};

use super::store::NetworkRecord;
use crate::ports::Published;

/// Marks the table's current shape: a table without it (an older berth's)
/// is replaced whole.
const SHAPE: &str = "berth-3";

fn table() -> String {
    format!(
        "table ip berth {{\n\
         \tcomment \"{SHAPE}\"\n\
         \tset bridges {{ type ifname; }}\n\
         \tset internal {{ type ifname; }}\n\
         \tset own {{ type ifname . ifname; }}\n\
         \tset members {{ type ifname . ipv4_addr; flags interval; }}\n\
         \tset nat {{ type ipv4_addr; flags interval; }}\n\
         \tset gateways {{ type ipv4_addr; }}\n\
         \tset dns {{ type ipv4_addr . ifname; }}\n\
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
         \t\tiifname @internal return\n\
         \t\tdnat ip to ip daddr . tcp dport map @tcp-addr-ports\n\
         \t\tdnat ip to ip daddr . udp dport map @udp-addr-ports\n\
         \t\tdnat ip to tcp dport map @tcp-ports\n\
         \t\tdnat ip to udp dport map @udp-ports\n\
         \t}}\n\
         \tchain postrouting {{\n\
         \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
         \t\tip saddr @nat oifname != @bridges masquerade\n\
         \t\tct status dnat oifname . ip saddr @members masquerade\n\
         \t\tip saddr 127.0.0.0/8 oifname @bridges masquerade\n\
         \t}}\n\
         \tchain input {{\n\
         \t\ttype filter hook input priority filter; policy accept;\n\
         \t\tmeta l4proto {{ tcp, udp }} th dport 53 ip daddr . iifname @dns accept\n\
         \t\tmeta l4proto {{ tcp, udp }} th dport 53 ip daddr @gateways drop\n\
         \t}}\n\
         \tchain forward {{\n\
         \t\ttype filter hook forward priority filter; policy accept;\n\
         \t\tiifname . oifname @own accept\n\
         \t\tiifname @internal drop\n\
         \t\toifname @internal drop\n\
         \t\toifname @bridges ct status dnat accept\n\
         \t\tiifname @bridges oifname @bridges drop\n\
         \t\tiifname @bridges accept\n\
         \t\toifname @bridges ct state established,related accept\n\
         \t\toifname @bridges drop\n\
         \t}}\n\
         }}\n"
    )
}

/// The elements that make network `n` (its bridge up) known to the table.
fn elements(n: &NetworkRecord, verb: &str) -> String {
    let (dev, subnet) = (&n.device, &n.subnet);
    let mut s = format!(
        "{verb} element ip berth bridges {{ \"{dev}\" }}\n\
         {verb} element ip berth own {{ \"{dev}\" . \"{dev}\" }}\n\
         {verb} element ip berth members {{ \"{dev}\" . {subnet} }}\n"
    );
    // A network's name server answers its own containers only: not other
    // networks' (their names are theirs), not other hosts (no open resolver).
    if let Some(g) = n.gateway {
        s.push_str(&format!(
            "{verb} element ip berth gateways {{ {g} }}\n\
             {verb} element ip berth dns {{ {g} . \"{dev}\" }}\n"
        ));
    }
    if n.internal {
        s.push_str(&format!(
            "{verb} element ip berth internal {{ \"{dev}\" }}\n"
        ));
    } else {
        s.push_str(&format!("{verb} element ip berth nat {{ {subnet} }}\n"));
    }
    s
}

/// Makes network `n` known to the firewall, the table made first if it is
/// missing or an older shape (then with `others`, the networks whose
/// bridges are up, again). IP forwarding on, as Docker turns it on.
/// Called under the networks lock, when `n`'s bridge is made.
pub fn add_network(n: &NetworkRecord, others: &[NetworkRecord]) -> Result<()> {
    let current = std::process::Command::new("nft")
        .args(["list", "table", "ip", "berth"])
        .output()
        .map(|o| o.status.success() && String::from_utf8_lossy(&o.stdout).contains(SHAPE))
        .unwrap_or(false);
    let mut rules = String::new();
    if !current {
        rules.push_str("table ip berth\ndelete table ip berth\n");
        rules.push_str(&table());
        for o in others.iter().filter(|o| o.name != n.name) {
            rules.push_str(&elements(o, "add"));
        }
    }
    rules.push_str(&elements(n, "add"));
    run_nft(&rules).with_context(|| format!("set up the firewall of network {}", n.name))?;
    let_through_docker(n)?;
    std::fs::write("/proc/sys/net/ipv4/ip_forward", "1")
        .context("turn on IP forwarding (/proc/sys/net/ipv4/ip_forward)")
}

/// Forgets network `n` (its bridge being deleted). Missing elements, or no
/// table at all, are fine.
pub fn remove_network(n: &NetworkRecord) {
    forget_docker(n);
    // One at a time: one already gone must not keep the rest.
    for rule in elements(n, "delete").lines() {
        if let Err(e) = run_nft(rule) {
            tracing::debug!("network {}: {e:#}", n.name);
        }
    }
}

/// The map entries of `published` (to container address `address`).
pub fn publish(published: &[Published], address: Ipv4Addr) -> Result<()> {
    let mut rules = String::new();
    for p in published {
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
    run_nft(&rules)
}

/// Takes `published` out of the maps, each on its own.
pub fn unpublish(published: &[Published]) {
    for p in published {
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
        if let Err(e) = run_nft(&rule) {
            tracing::debug!("unpublish {}: {e:#}", p.display());
        }
    }
}

/// Docker sets the policy of iptables' FORWARD chain to drop, and an
/// accept in berth's table cannot override a drop in another's: a
/// bridge's traffic would stop at Docker's. Docker's documented way for
/// other bridges is the DOCKER-USER chain, which it keeps across its
/// restarts: `iptables` puts two rules there per bridge (through iptables
/// itself, so that Docker's iptables can still read its table), when the
/// chain is there. Nothing without Docker.
pub fn let_through_docker(n: &NetworkRecord) -> Result<()> {
    let dev = n.device.as_str();
    let rules = docker_user_rules(dev);
    if !iptables(&["-S", "DOCKER-USER"]).unwrap_or(false) {
        return Ok(());
    }
    for r in rules {
        let check = [&["-C", "DOCKER-USER"][..], &r].concat();
        if iptables(&check)? {
            continue;
        }
        let insert = [&["-I", "DOCKER-USER"][..], &r].concat();
        if !iptables(&insert)? {
            anyhow::bail!("iptables -I DOCKER-USER {} failed", r.join(" "));
        }
    }
    Ok(())
}

/// Takes network `n`'s rules out of DOCKER-USER, if they are there.
pub fn forget_docker(n: &NetworkRecord) {
    let dev = n.device.as_str();
    let rules = docker_user_rules(dev);
    for r in rules {
        let delete = [&["-D", "DOCKER-USER"][..], &r].concat();
        // At most as many as could have been put there.
        for _ in 0..4 {
            if !iptables(&delete).unwrap_or(false) {
                break;
            }
        }
    }
}

/// What lets bridge `dev`'s traffic through Docker's FORWARD drop: out
/// of it, and back in as replies.
fn docker_user_rules(dev: &str) -> [Vec<&str>; 2] {
    [
        vec!["-i", dev, "-j", "ACCEPT"],
        vec![
            "-o",
            dev,
            "-m",
            "conntrack",
            "--ctstate",
            "RELATED,ESTABLISHED",
            "-j",
            "ACCEPT",
        ],
    ]
}

/// `iptables -w ARGS` (the filter table): whether it succeeded; an error
/// only when it cannot run. No iptables, no Docker to let through.
fn iptables(args: &[&str]) -> Result<bool> {
    match std::process::Command::new("iptables")
        .arg("-w")
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
    {
        Ok(s) => Ok(s.success()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e).context("run iptables"),
    }
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
                    "nft not found: bridge networks need nftables (Debian's package nftables)"
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_network_is_not_masqueraded() {
        let mut n = NetworkRecord {
            name: "n".into(),
            id: "x".into(),
            created: String::new(),
            driver: "bridge".into(),
            subnet: "10.9.0.0/24".into(),
            gateway: None,
            internal: true,
            device: "br-x".into(),
            user_subnet: false,
            labels: Default::default(),
        };
        let e = elements(&n, "add");
        assert!(
            e.contains("internal { \"br-x\" }") && !e.contains("nat {"),
            "{e}"
        );
        n.internal = false;
        let e = elements(&n, "add");
        assert!(
            e.contains("nat { 10.9.0.0/24 }") && !e.contains("internal"),
            "{e}"
        );
    }
}
