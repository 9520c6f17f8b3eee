//! A running container's published ports: host ports checked free (or
//! chosen), recorded, then put in the firewall's maps at once.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};

use super::firewall;
use crate::Engine;
use crate::ports::{PortBinding, Proto, Published};
use crate::records::ContainerRecord;

/// Publishes container `c`'s ports to `address`: each host port checked
/// free (a free one chosen when none was asked), then every map entry
/// made at once; the record says where they went.
pub fn publish(engine: &Engine, c: &mut ContainerRecord, address: Ipv4Addr) -> Result<()> {
    let published = choose_ports(&c.ports, |ip, p, proto| {
        if !port_free(ip, p, proto) {
            bail!("Bind for {ip}:{p} failed: port is already allocated");
        }
        Ok(())
    })?;
    // Recorded before the maps get them: a berth killed in between leaves
    // entries its record names, which the sweep takes out.
    engine.records()?.update(&c.id, |r| {
        r.published = published.clone();
        Ok(())
    })?;
    c.published = published.clone();
    if let Err(e) = firewall::publish(&published, address) {
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

/// Each binding's host port: the one asked for once `usable` says so,
/// else a free one.
pub(crate) fn choose_ports(
    ports: &[PortBinding],
    usable: impl Fn(Ipv4Addr, u16, Proto) -> Result<()>,
) -> Result<Vec<Published>> {
    let mut published = Vec::new();
    let mut taken = Vec::new();
    for b in ports {
        let ip = b.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED);
        let port = match b.host_port {
            Some(p) => {
                usable(ip, p, b.proto)?;
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
    Ok(published)
}

/// Takes container `c`'s published ports out of the maps.
pub fn unpublish(engine: &Engine, c: &mut ContainerRecord) {
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
    firewall::unpublish(&published);
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
fn free_port(ip: Ipv4Addr, proto: Proto, taken: &[(u16, Proto)]) -> Result<u16> {
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
