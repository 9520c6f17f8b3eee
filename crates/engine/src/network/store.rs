//! The networks berth knows: Docker's three predefined ones (`bridge`,
//! `host`, `none`) and the user-defined bridges of `network create`, each
//! kept as `<root>/networks/NAME/network.json` beside its leases.
//!
//! The default `bridge` has no file: it is made from the config's `bip`
//! each time, so a changed config is a changed bridge.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use berth_network::Subnet;
use serde::{Deserialize, Serialize};

use crate::Engine;

/// The default bridge's name, its device, and its address and subnet
/// unless the config's `bip` says otherwise (all Docker's).
pub const DEFAULT: &str = "bridge";
pub const DEFAULT_DEVICE: &str = "berth0";
const DEFAULT_BIP: &str = "172.17.0.1/16";

/// Where subnets of networks created without `--subnet` come from, when
/// the config has no `default-address-pools`: Docker's pools, 172.17/16
/// to 172.31/16, then /20s of 192.168/16.
const DEFAULT_POOLS: [(&str, u8); 5] = [
    ("172.17.0.0/16", 16),
    ("172.18.0.0/15", 16),
    ("172.20.0.0/14", 16),
    ("172.24.0.0/13", 16),
    ("192.168.0.0/16", 20),
];

/// One network: Docker's `network inspect` fields that berth has.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NetworkRecord {
    pub name: String,
    pub id: String,
    pub created: String,
    /// `bridge`, or `host`/`null` for the predefined ones.
    pub driver: String,
    /// `ADDRESS/PREFIX`; empty for `host` and `none`.
    pub subnet: String,
    pub gateway: Option<Ipv4Addr>,
    /// `--internal`: no way out of the subnet, and none in.
    pub internal: bool,
    /// The Linux bridge: `berth0` for the default, `br-` and 12
    /// characters of the id for others (Docker's naming).
    pub device: String,
    /// Whether the subnet was given (`--subnet`): only then does Docker
    /// take `--ip`.
    #[serde(default)]
    pub user_subnet: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

impl NetworkRecord {
    /// A bridge network: the default one or a user-defined one.
    pub fn is_bridge(&self) -> bool {
        self.driver == "bridge"
    }

    /// Whether `network rm` may take it (not the predefined ones).
    pub fn is_predefined(&self) -> bool {
        matches!(self.name.as_str(), DEFAULT | "host" | "none")
    }

    pub fn subnet(&self) -> Result<Subnet> {
        self.subnet
            .parse()
            .map_err(|e| anyhow::anyhow!("network {}: {e}", self.name))
    }

    pub fn gateway(&self) -> Result<Ipv4Addr> {
        self.gateway
            .with_context(|| format!("network {} has no gateway", self.name))
    }

    /// Whether containers on it resolve each other by name (Docker: every
    /// user-defined network, never the default bridge).
    pub fn has_dns(&self) -> bool {
        self.is_bridge() && self.name != DEFAULT
    }
}

/// What `network create` asks for.
#[derive(Debug, Default, Clone)]
pub struct NetworkRequest {
    pub name: String,
    pub driver: Option<String>,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub labels: BTreeMap<String, String>,
}

/// An id for a predefined network: the same on every host and every run
/// (Docker makes random ones, but it also keeps them; berth has no daemon
/// to keep them in).
fn predefined_id(name: &str) -> String {
    // FNV-1a, widened: only needs to be stable and look like an id.
    let mut out = String::with_capacity(64);
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for round in 0u8..4 {
        for b in name.bytes().chain([round]) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
        out.push_str(&format!("{h:016x}"));
    }
    out
}

fn dir(engine: &Engine) -> PathBuf {
    engine.root.join("networks")
}

/// Network `name`'s directory: its record and leases.
pub fn network_dir(engine: &Engine, name: &str) -> PathBuf {
    dir(engine).join(name)
}

/// The lock of network creation and removal (and of the firewall's
/// table), across berths.
pub fn lock(engine: &Engine) -> Result<std::fs::File> {
    let d = dir(engine);
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    let p = d.join(".lock");
    let f = std::fs::File::create(&p).with_context(|| format!("create {}", p.display()))?;
    f.lock().with_context(|| format!("lock {}", p.display()))?;
    Ok(f)
}

/// The default bridge, from the config's `bip`, else the subnet chosen
/// for it the first time.
pub fn default_bridge(engine: &Engine) -> Result<NetworkRecord> {
    let chosen;
    let bip = match engine.config.bip.as_deref() {
        Some(b) => b,
        None => {
            chosen = chosen_bip(engine)?;
            chosen.as_str()
        }
    };
    let bad = || format!("config key bip {bip:?}: expected ADDRESS/PREFIX, like 172.17.0.1/16");
    let (addr, prefix) = bip.split_once('/').with_context(bad)?;
    let gateway: Ipv4Addr = addr.parse().ok().with_context(bad)?;
    let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 30).with_context(bad)?;
    let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
    let subnet =
        Subnet::new(Ipv4Addr::from(u32::from(gateway) & mask), prefix).with_context(bad)?;
    Ok(NetworkRecord {
        name: DEFAULT.into(),
        id: predefined_id(DEFAULT),
        created: String::new(),
        driver: "bridge".into(),
        subnet: subnet.to_string(),
        gateway: Some(gateway),
        internal: false,
        device: DEFAULT_DEVICE.into(),
        user_subnet: engine.config.bip.is_some(),
        labels: BTreeMap::new(),
    })
}

/// The default bridge's address when the config has no `bip`: Docker's
/// 172.17.0.1/16, unless the host already routes that subnet elsewhere
/// (Docker's own docker0 has it, say), then the first pool subnet it does
/// not route, as Docker chooses. Chosen once and kept in
/// `<root>/networks/bridge/bip`: leases and records rely on it.
fn chosen_bip(engine: &Engine) -> Result<String> {
    let d = network_dir(engine, DEFAULT);
    let kept = d.join("bip");
    let read = || berth_io::read_capped_string(&kept, 64, "networks/bridge/bip").ok();
    if let Some(b) = read() {
        return Ok(b.trim().to_string());
    }
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    // A lock of its own: the networks lock may be held by the caller.
    let lock_path = d.join(".bip.lock");
    let lock = std::fs::File::create(&lock_path)
        .with_context(|| format!("create {}", lock_path.display()))?;
    lock.lock()
        .with_context(|| format!("lock {}", lock_path.display()))?;
    if let Some(b) = read() {
        return Ok(b.trim().to_string());
    }
    let mut taken = user_subnets(engine);
    taken.extend(routed(Some(DEFAULT_DEVICE)));
    let subnet = free_in_pools(&default_pools(), &taken)
        .unwrap_or_else(|_| DEFAULT_BIP.parse().expect("a valid subnet"));
    let bip = format!("{}/{}", subnet.gateway(), subnet.prefix());
    let tmp = d.join(".bip.tmp");
    std::fs::write(&tmp, &bip).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, &kept).with_context(|| format!("write {}", kept.display()))?;
    Ok(bip)
}

/// The subnets the host routes (not its default route), but for those
/// through link `except` (the bridge whose subnet is being chosen).
fn routed(except: Option<&str>) -> Vec<Subnet> {
    let Ok(mut nl) = berth_network::Netlink::open() else {
        return Vec::new();
    };
    let skip = except.and_then(|e| nl.link_index(e).ok().flatten());
    let Ok(routes) = nl.route_destinations() else {
        return Vec::new();
    };
    routes
        .into_iter()
        .filter(|(_, prefix, _)| *prefix > 0)
        .filter(|r| skip.is_none_or(|i| r.2 != i))
        .filter_map(|(dst, prefix, _)| {
            // A host route (/31, /32) taken as its /30: Subnet's smallest.
            let prefix = prefix.min(30);
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            Subnet::new(Ipv4Addr::from(u32::from(dst) & mask), prefix).ok()
        })
        .collect()
}

/// The subnets of the user-defined networks' records.
fn user_subnets(engine: &Engine) -> Vec<Subnet> {
    let Ok(rd) = std::fs::read_dir(dir(engine)) else {
        return Vec::new();
    };
    rd.flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.') && network_dir(engine, n).join("network.json").exists())
        .filter_map(|n| load(engine, &n).ok())
        .filter_map(|n| n.subnet().ok())
        .collect()
}

fn predefined(name: &str, driver: &str) -> NetworkRecord {
    NetworkRecord {
        name: name.into(),
        id: predefined_id(name),
        created: String::new(),
        driver: driver.into(),
        subnet: String::new(),
        gateway: None,
        internal: false,
        device: String::new(),
        user_subnet: false,
        labels: BTreeMap::new(),
    }
}

/// Every network, the predefined ones first, then by name.
pub fn list(engine: &Engine) -> Result<Vec<NetworkRecord>> {
    let mut out = vec![
        default_bridge(engine)?,
        predefined("host", "host"),
        predefined("none", "null"),
    ];
    let mut user = Vec::new();
    let d = dir(engine);
    let entries = match std::fs::read_dir(&d) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e).with_context(|| format!("list {}", d.display())),
    };
    for e in entries {
        let name = e?.file_name().to_string_lossy().into_owned();
        // Not a network's (the lock), or a directory without a record:
        // the default bridge's leases, or a create that died before its
        // record was written. Looked at first: an error (and its
        // backtrace, under RUST_BACKTRACE) costs milliseconds.
        if name.starts_with('.') || !network_dir(engine, &name).join("network.json").exists() {
            continue;
        }
        if let Ok(n) = load(engine, &name) {
            user.push(n);
        }
    }
    user.sort_by(|a, b| a.name.cmp(&b.name));
    out.extend(user);
    Ok(out)
}

fn load(engine: &Engine, name: &str) -> Result<NetworkRecord> {
    let p = network_dir(engine, name).join("network.json");
    let text = berth_io::read_capped(&p, berth_io::MIB, "network record")?;
    serde_json::from_slice(&text).with_context(|| format!("parse {}", p.display()))
}

/// Network `key`: by name, full id or unique id prefix (Docker's rules).
pub fn find(engine: &Engine, key: &str) -> Result<NetworkRecord> {
    let all = list(engine)?;
    if let Some(n) = all.iter().find(|n| n.name == key || n.id == key) {
        return Ok(n.clone());
    }
    let matches: Vec<_> = all.iter().filter(|n| n.id.starts_with(key)).collect();
    match matches.as_slice() {
        [one] if !key.is_empty() => Ok((*one).clone()),
        [] | [_] => bail!("network {key} not found"),
        _ => bail!("network {key} is ambiguous ({} matches)", matches.len()),
    }
}

/// Docker's rule for network names.
fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c))
        && name.len() <= 128;
    if !ok {
        bail!("invalid network name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

/// `network create`: checks, picks a subnet when none is given, and
/// saves the record (the bridge itself is made when a container first
/// needs it). Returns the new network.
pub fn create(engine: &Engine, req: &NetworkRequest) -> Result<NetworkRecord> {
    validate_name(&req.name)?;
    match req.driver.as_deref() {
        None | Some("bridge") => {}
        Some(d) => bail!("network driver {d:?} is not supported: berth has bridge networks"),
    }
    let _lock = lock(engine)?;
    let all = list(engine)?;
    if all.iter().any(|n| n.name == req.name) {
        bail!("network with name {} already exists", req.name);
    }
    let taken: Vec<Subnet> = all.iter().filter_map(|n| n.subnet().ok()).collect();
    let (subnet, user_subnet) = match &req.subnet {
        Some(s) => {
            let s: Subnet = s.parse().map_err(|e| anyhow::anyhow!("--subnet: {e}"))?;
            if let Some(n) = all
                .iter()
                .find(|n| n.subnet().is_ok_and(|t| t.overlaps(&s)))
            {
                bail!(
                    "invalid pool request: Pool overlaps with other one on this address space \
                     ({s} and network {}'s {})",
                    n.name,
                    n.subnet
                );
            }
            (s, true)
        }
        None => (free_subnet(engine, &taken)?, false),
    };
    let gateway = match &req.gateway {
        Some(g) => {
            let g: Ipv4Addr = g
                .parse()
                .map_err(|_| anyhow::anyhow!("--gateway {g:?}: not an IPv4 address"))?;
            if !subnet.hosts().any(|h| h == g) {
                bail!("--gateway {g} is not a host address of subnet {subnet}");
            }
            g
        }
        None => subnet.gateway(),
    };
    let id = crate::records::new_id()?;
    let rec = NetworkRecord {
        name: req.name.clone(),
        device: format!("br-{}", &id[..12]),
        id,
        created: crate::timefmt::now_rfc3339(),
        driver: "bridge".into(),
        subnet: subnet.to_string(),
        gateway: Some(gateway),
        internal: req.internal,
        user_subnet,
        labels: req.labels.clone(),
    };
    save(engine, &rec)?;
    Ok(rec)
}

/// Written whole, then renamed into place: `list` sees all of it or none.
fn save(engine: &Engine, rec: &NetworkRecord) -> Result<()> {
    let d = network_dir(engine, &rec.name);
    std::fs::create_dir_all(&d).with_context(|| format!("create {}", d.display()))?;
    let tmp = d.join(".network.json.tmp");
    std::fs::write(&tmp, serde_json::to_vec_pretty(rec)?)
        .with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, d.join("network.json"))
        .with_context(|| format!("save network {}", rec.name))
}

/// The first subnet of the pools that neither a network nor a route of
/// the host's has.
fn free_subnet(engine: &Engine, taken: &[Subnet]) -> Result<Subnet> {
    let pools: Vec<(Subnet, u8)> = match &engine.config.default_address_pools {
        Some(p) => p
            .iter()
            .map(|p| {
                let base: Subnet = p
                    .base
                    .parse()
                    .map_err(|e| anyhow::anyhow!("config key default-address-pools: {e}"))?;
                if p.size < base.prefix() || p.size > 30 {
                    bail!(
                        "config key default-address-pools: size {} does not fit base {base}",
                        p.size
                    );
                }
                Ok((base, p.size))
            })
            .collect::<Result<_>>()?,
        None => default_pools(),
    };
    let mut taken = taken.to_vec();
    taken.extend(routed(None));
    free_in_pools(&pools, &taken)
}

fn default_pools() -> Vec<(Subnet, u8)> {
    DEFAULT_POOLS
        .iter()
        .filter_map(|(b, s)| Some((b.parse::<Subnet>().ok()?, *s)))
        .collect()
}

fn free_in_pools(pools: &[(Subnet, u8)], taken: &[Subnet]) -> Result<Subnet> {
    for (base, size) in pools {
        // At most 2^14 candidates per pool (a /16 in /30s): linear, bounded.
        let step = 1u64 << (32 - u32::from(*size));
        let count = (1u64 << (size - base.prefix())).min(1 << 14);
        let first = u64::from(u32::from(base.network()));
        for i in 0..count {
            let net = Ipv4Addr::from((first + i * step) as u32);
            let candidate = Subnet::new(net, *size)?;
            if !taken.iter().any(|t| t.overlaps(&candidate)) {
                return Ok(candidate);
            }
        }
    }
    bail!(
        "could not find an available, non-overlapping IPv4 address pool among the defaults to \
         assign to the network"
    )
}

/// Removes network `rec`'s record and leases (the caller has taken its
/// bridge and firewall entries down).
pub fn remove_record(engine: &Engine, rec: &NetworkRecord) -> Result<()> {
    let d = network_dir(engine, &rec.name);
    match std::fs::remove_dir_all(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove {}", d.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn predefined_ids_are_stable_and_distinct() {
        assert_eq!(predefined_id("bridge"), predefined_id("bridge"));
        assert_ne!(predefined_id("bridge"), predefined_id("host"));
        assert_eq!(predefined_id("none").len(), 64);
    }

    #[test]
    fn names_follow_dockers_rule() {
        assert!(validate_name("backend-1.x_y").is_ok());
        for bad in ["", "-x", "a b", "a/b", "container:x"] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
