//! Published ports (`-p`, `-P`): what the user asked for, as Docker's
//! grammar says it, and what a running container got.
//!
//! They are published in the kernel, not by a proxy: berth's nftables
//! table `ip berth` (see [`crate::network`]) keeps maps from a host port
//! (and, when given, host address) to the container's address and port,
//! and its rules DNAT what comes to a local address, from other hosts,
//! other containers or the host itself (127.0.0.1 too). A container's
//! entries go in when it connects and out when it disconnects.

use std::net::Ipv4Addr;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

/// `tcp` or `udp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Proto {
    Tcp,
    Udp,
}

impl Proto {
    pub fn name(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

/// One `-p`: a container port, and where on the host it is published
/// (any address and a free port when not said).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PortBinding {
    #[serde(default)]
    pub host_ip: Option<Ipv4Addr>,
    #[serde(default)]
    pub host_port: Option<u16>,
    pub container_port: u16,
    pub proto: Proto,
}

/// A binding as it is while the container runs: its host port chosen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Published {
    #[serde(default)]
    pub host_ip: Option<Ipv4Addr>,
    pub host_port: u16,
    pub container_port: u16,
    pub proto: Proto,
}

impl Published {
    /// `0.0.0.0:8080->80/tcp, 0.0.0.0:8443->443/tcp`, as `ps` shows them.
    pub fn list(all: &[Published]) -> String {
        all.iter()
            .map(Published::display)
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// Docker's `0.0.0.0:8080->80/tcp`.
    pub fn display(&self) -> String {
        format!(
            "{}:{}->{}/{}",
            self.host_ip.unwrap_or(Ipv4Addr::UNSPECIFIED),
            self.host_port,
            self.container_port,
            self.proto.name()
        )
    }
}

/// `-p [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]`, ports or equal ranges
/// (`8000-8002:80-82`).
pub fn parse(spec: &str) -> Result<Vec<PortBinding>> {
    let bad = |why: &str| format!("invalid port specification: {spec:?}: {why}");
    let (rest, proto) = match spec.rsplit_once('/') {
        Some((r, "tcp")) => (r, Proto::Tcp),
        Some((r, "udp")) => (r, Proto::Udp),
        Some((_, p)) => bail!(bad(&format!("unknown protocol {p:?} (tcp or udp)"))),
        None => (spec, Proto::Tcp),
    };
    let parts: Vec<&str> = rest.split(':').collect();
    let (ip, host, ctr) = match parts[..] {
        [c] => (None, None, c),
        [h, c] => (None, Some(h), c),
        [ip, h, c] => (Some(ip), Some(h).filter(|h| !h.is_empty()), c),
        _ => bail!(bad("expected [HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]")),
    };
    let host_ip = match ip {
        None | Some("") => None,
        Some(ip) => Some(
            ip.parse::<Ipv4Addr>()
                .ok()
                .with_context(|| bad(&format!("{ip:?} is not an IPv4 address")))?,
        )
        .filter(|ip| !ip.is_unspecified()),
    };
    let ctr = range(ctr).with_context(|| bad("bad container port"))?;
    let host = host
        .map(range)
        .transpose()
        .with_context(|| bad("bad host port"))?;
    if let Some(h) = host
        && h.1 - h.0 != ctr.1 - ctr.0
    {
        bail!(bad("the host and container port ranges differ in length"));
    }
    Ok((0..=ctr.1 - ctr.0)
        .map(|i| PortBinding {
            host_ip,
            host_port: host.map(|h| h.0 + i),
            container_port: ctr.0 + i,
            proto,
        })
        .collect())
}

/// `80` or `8000-8010`, ports from 1.
fn range(s: &str) -> Result<(u16, u16)> {
    let port = |p: &str| -> Result<u16> {
        p.parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .context("not a port")
    };
    match s.split_once('-') {
        Some((a, b)) => {
            let (a, b) = (port(a)?, port(b)?);
            if b < a {
                bail!("range ends before it starts");
            }
            Ok((a, b))
        }
        None => {
            let p = port(s)?;
            Ok((p, p))
        }
    }
}

/// The ports to publish: `-p`'s, then with `-P` every port the image
/// exposes that `-p` did not name. None without a network of its own to
/// publish from (the checks refused `none`; `host` needs none).
pub(crate) fn requested(
    engine: &crate::Engine,
    req: &crate::request::RunRequest,
    image: &berth_image::ImageRecord,
) -> Vec<PortBinding> {
    if !req.network.is_bridge() {
        return Vec::new();
    }
    let mut ports = req.publish.clone();
    if req.publish_all {
        let keys: Vec<String> = engine
            .store
            .config_json(image)
            .ok()
            .and_then(|c| {
                c["config"]["ExposedPorts"]
                    .as_object()
                    .map(|o| o.keys().cloned().collect())
            })
            .unwrap_or_default();
        for p in exposed(&keys) {
            if !ports
                .iter()
                .any(|q| q.container_port == p.container_port && q.proto == p.proto)
            {
                ports.push(p);
            }
        }
    }
    ports
}

/// The image's `ExposedPorts` keys (`80/tcp`) as bindings to free host
/// ports, for `-P`.
pub fn exposed(keys: &[String]) -> Vec<PortBinding> {
    keys.iter()
        .filter_map(|k| {
            let (p, proto) = k.split_once('/').unwrap_or((k, "tcp"));
            Some(PortBinding {
                host_ip: None,
                host_port: None,
                container_port: p.parse().ok().filter(|p| *p > 0)?,
                proto: match proto {
                    "udp" => Proto::Udp,
                    _ => Proto::Tcp,
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(ip: Option<[u8; 4]>, host: Option<u16>, ctr: u16, proto: Proto) -> PortBinding {
        PortBinding {
            host_ip: ip.map(Ipv4Addr::from),
            host_port: host,
            container_port: ctr,
            proto,
        }
    }

    #[test]
    fn port_specs_parse_like_docker() {
        use Proto::*;
        assert_eq!(parse("80").unwrap(), [b(None, None, 80, Tcp)]);
        assert_eq!(parse("8080:80").unwrap(), [b(None, Some(8080), 80, Tcp)]);
        assert_eq!(parse("53:53/udp").unwrap(), [b(None, Some(53), 53, Udp)]);
        assert_eq!(
            parse("127.0.0.1:8080:80").unwrap(),
            [b(Some([127, 0, 0, 1]), Some(8080), 80, Tcp)]
        );
        assert_eq!(
            parse("127.0.0.1::80").unwrap(),
            [b(Some([127, 0, 0, 1]), None, 80, Tcp)]
        );
        assert_eq!(
            parse("0.0.0.0:8080:80").unwrap(),
            [b(None, Some(8080), 80, Tcp)]
        );
        assert_eq!(
            parse("8000-8001:90-91").unwrap(),
            [b(None, Some(8000), 90, Tcp), b(None, Some(8001), 91, Tcp)]
        );
        for bad in [
            "",
            "x",
            "0",
            "70000",
            "80/sctp",
            "1:2:3:4",
            "8000-8002:80-81",
            "9-8",
            "h:1:2",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
        let e = parse("80/sctp").unwrap_err().to_string();
        assert!(
            e.starts_with("invalid port specification: \"80/sctp\""),
            "{e}"
        );
        assert_eq!(
            exposed(&["80/tcp".into(), "53/udp".into(), "x/tcp".into()]),
            [b(None, None, 80, Tcp), b(None, None, 53, Udp)]
        );
        let p = Published {
            host_ip: None,
            host_port: 8080,
            container_port: 80,
            proto: Tcp,
        };
        assert_eq!(p.display(), "0.0.0.0:8080->80/tcp");
    }
}
