//! The files every container gets of its own, bind-mounted over the
//! image's: `/etc/hostname`, `/etc/hosts` and `/etc/resolv.conf`, made
//! by Docker's rules.
//!
//! - hosts: localhost and the IPv6 names, the container's name
//!   (127.0.1.1 until [`crate::network`] gives it an address), then
//!   `--add-host`'s; the host's own file under `--network host`.
//! - resolv.conf: the host's, without loopback nameservers (they are
//!   the host's, not reachable from the container's namespace), each kind
//!   of line replaced by `--dns`, `--dns-search` or `--dns-option` when
//!   given; with no nameserver left, Docker's defaults, 8.8.8.8 and
//!   8.8.4.4. Under `--network host`, the host's file as it is unless a
//!   flag changes it.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use oci_spec::runtime::{Mount, MountBuilder};

/// `--dns`, `--dns-search`, `--dns-option` and `--add-host`.
#[derive(Debug, Clone, Default)]
pub struct DnsOptions {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    pub options: Vec<String>,
    /// Name and address, in the order given.
    pub hosts: Vec<(String, String)>,
}

/// `--dns ADDRESS`, as Docker checks it.
pub fn parse_dns(s: &str) -> Result<IpAddr> {
    s.parse()
        .ok()
        .with_context(|| format!("{s} is not an ip address"))
}

/// `--add-host NAME:ADDRESS` (or `NAME=ADDRESS`); the address may be
/// `host-gateway`, which stays for [`write`] to resolve.
pub fn parse_add_host(s: &str) -> Result<(String, String)> {
    let bad = || {
        format!("invalid argument {s:?} for \"--add-host\" flag: bad format for add-host: {s:?}")
    };
    let (name, addr) = s
        .split_once('=')
        .or_else(|| s.split_once(':'))
        .with_context(bad)?;
    if name.is_empty() || name.contains(char::is_whitespace) {
        bail!(bad());
    }
    // An IPv6 address may come in brackets.
    let addr = addr.trim_start_matches('[').trim_end_matches(']');
    if addr != "host-gateway" && addr.parse::<IpAddr>().is_err() {
        bail!("invalid IP address in add-host: {addr:?}");
    }
    Ok((name.to_string(), addr.to_string()))
}

/// Writes the three files into `bundle` and returns their bind mounts.
/// `gateway` is what `host-gateway` means (the bridge's address; the
/// host's loopback without a bridge).
pub fn write(
    bundle: &Path,
    hostname: &str,
    host_network: bool,
    dns: &DnsOptions,
    gateway: Option<IpAddr>,
) -> Result<Vec<Mount>> {
    let mut hosts = if host_network {
        host_file("/etc/hosts")?
    } else {
        format!(
            "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n\
             fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n\
             ff02::2\tip6-allrouters\n127.0.1.1\t{hostname}\n"
        )
    };
    for (name, addr) in &dns.hosts {
        let addr = match addr.as_str() {
            "host-gateway" => gateway
                .map(|g| g.to_string())
                .unwrap_or_else(|| "127.0.0.1".into()),
            a => a.to_string(),
        };
        hosts.push_str(&format!("{addr}\t{name}\n"));
    }
    let resolv = resolv_conf(&host_file("/etc/resolv.conf")?, host_network, dns);
    let mut mounts = Vec::new();
    for (name, text) in [
        ("hostname", format!("{hostname}\n")),
        ("hosts", hosts),
        ("resolv.conf", resolv),
    ] {
        let p = bundle.join(name);
        std::fs::write(&p, text).with_context(|| format!("write {}", p.display()))?;
        mounts.push(
            MountBuilder::default()
                .typ("bind")
                .source(p)
                .destination(PathBuf::from(format!("/etc/{name}")))
                .options(vec!["rbind".to_string(), "rprivate".into()])
                .build()?,
        );
    }
    Ok(mounts)
}

/// The container's resolv.conf from the host's `text` (module doc).
fn resolv_conf(text: &str, host_network: bool, dns: &DnsOptions) -> String {
    let no_flags = dns.servers.is_empty() && dns.search.is_empty() && dns.options.is_empty();
    if host_network && no_flags {
        return text.to_string();
    }
    let keyword = |l: &str| l.split_whitespace().next().unwrap_or("").to_string();
    let mut out = String::new();
    let mut servers = 0;
    for line in text.lines() {
        let k = keyword(line);
        let replaced = (k == "nameserver" && !dns.servers.is_empty())
            || (k == "search" || k == "domain") && !dns.search.is_empty()
            || (k == "options" && !dns.options.is_empty());
        if replaced {
            continue;
        }
        if k == "nameserver" {
            let loopback = line
                .split_whitespace()
                .nth(1)
                .and_then(|a| a.parse::<IpAddr>().ok())
                .is_some_and(|a| a.is_loopback());
            if loopback && !host_network {
                continue;
            }
            servers += 1;
        }
        out.push_str(line);
        out.push('\n');
    }
    for s in &dns.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    servers += dns.servers.len();
    if servers == 0 {
        out.push_str("nameserver 8.8.8.8\nnameserver 8.8.4.4\n");
    }
    if !dns.search.is_empty() {
        out.push_str(&format!("search {}\n", dns.search.join(" ")));
    }
    if !dns.options.is_empty() {
        out.push_str(&format!("options {}\n", dns.options.join(" ")));
    }
    out
}

/// A host file copied into the container: empty when missing; bounded,
/// since a huge one would be copied into every container.
fn host_file(path: &str) -> Result<String> {
    match berth_io::read_capped_string(Path::new(path), berth_io::MIB, "host file") {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        r => Ok(r?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOST: &str = "# made by hand\nnameserver 127.0.0.53\nnameserver 10.0.0.2\n\
                        search lan\noptions edns0\n";

    #[test]
    fn resolv_conf_follows_dockers_rules() {
        let none = DnsOptions::default();
        // Loopback servers are the host's own: dropped.
        assert_eq!(
            resolv_conf(HOST, false, &none),
            "# made by hand\nnameserver 10.0.0.2\nsearch lan\noptions edns0\n"
        );
        // Nothing left: Docker's defaults.
        assert_eq!(
            resolv_conf("nameserver 127.0.0.1\n", false, &none),
            "nameserver 8.8.8.8\nnameserver 8.8.4.4\n"
        );
        // Host network: the host's file as it is.
        assert_eq!(resolv_conf(HOST, true, &none), HOST);
        // Each flag replaces its kind of line.
        let flags = DnsOptions {
            servers: vec!["192.0.2.53".parse().unwrap()],
            search: vec!["a.example".into(), "b.example".into()],
            options: vec!["ndots:2".into()],
            hosts: vec![],
        };
        assert_eq!(
            resolv_conf(HOST, false, &flags),
            "# made by hand\nnameserver 192.0.2.53\nsearch a.example b.example\noptions ndots:2\n"
        );
    }

    #[test]
    fn flags_parse_like_docker() {
        assert!(parse_dns("1.2.3.4").is_ok() && parse_dns("::1").is_ok());
        let e = parse_dns("dns.example").unwrap_err().to_string();
        assert_eq!(e, "dns.example is not an ip address");
        assert_eq!(
            parse_add_host("db:10.0.0.5").unwrap(),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(
            parse_add_host("db=10.0.0.5").unwrap(),
            ("db".into(), "10.0.0.5".into())
        );
        assert_eq!(
            parse_add_host("v6:[2001:db8::1]").unwrap(),
            ("v6".into(), "2001:db8::1".into())
        );
        assert_eq!(parse_add_host("gw:host-gateway").unwrap().1, "host-gateway");
        for bad in ["nohost", ":1.2.3.4", "x:not-an-ip"] {
            assert!(parse_add_host(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn hosts_gets_the_added_names_and_host_gateway() {
        let d = tempfile::tempdir().unwrap();
        let dns = DnsOptions {
            hosts: vec![
                ("db".into(), "10.0.0.5".into()),
                ("host.docker.internal".into(), "host-gateway".into()),
            ],
            ..Default::default()
        };
        let mounts = write(
            d.path(),
            "box",
            false,
            &dns,
            Some("172.17.0.1".parse().unwrap()),
        )
        .unwrap();
        assert_eq!(mounts.len(), 3);
        let hosts = std::fs::read_to_string(d.path().join("hosts")).unwrap();
        assert!(hosts.contains("127.0.1.1\tbox\n"), "{hosts}");
        assert!(
            hosts.ends_with("10.0.0.5\tdb\n172.17.0.1\thost.docker.internal\n"),
            "{hosts}"
        );
        assert_eq!(
            std::fs::read_to_string(d.path().join("hostname")).unwrap(),
            "box\n"
        );
    }
}
