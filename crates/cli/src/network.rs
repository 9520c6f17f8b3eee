//! `berth network`: create, ls, inspect, rm, prune, connect, disconnect,
//! with Docker's flags, columns and messages.

use std::collections::BTreeMap;

use anyhow::{Result, bail};
use berth_engine::Engine;
use berth_engine::network::{self, NetworkRecord, NetworkRequest, manage, store};
use berth_io::{errln, out, outln};
use clap::{Args, Subcommand};
use serde_json::{Value, json};

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a network.
    Create(CreateArgs),
    /// List networks.
    #[command(alias = "list")]
    Ls(LsArgs),
    /// Display detailed information on one or more networks.
    Inspect {
        #[arg(short, long)]
        format: Option<String>,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove one or more networks.
    #[command(alias = "remove")]
    Rm {
        /// Do not error if the network does not exist.
        #[arg(short, long)]
        force: bool,
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove all unused networks.
    Prune {
        /// Do not prompt (berth never prompts).
        #[arg(short, long)]
        force: bool,
    },
    /// Connect a container to a network.
    Connect(ConnectArgs),
    /// Disconnect a container from a network.
    Disconnect {
        /// Accepted for Docker compatibility.
        #[arg(short, long)]
        force: bool,
        network: String,
        container: String,
    },
}

#[derive(Args, Debug)]
pub struct CreateArgs {
    /// Driver to manage the network (bridge).
    #[arg(short, long)]
    pub driver: Option<String>,
    /// Subnet in CIDR format (e.g. 10.10.0.0/24).
    #[arg(long)]
    pub subnet: Option<String>,
    /// IPv4 gateway for the subnet.
    #[arg(long)]
    pub gateway: Option<String>,
    /// Restrict external access to the network.
    #[arg(long)]
    pub internal: bool,
    /// Set metadata on a network.
    #[arg(long)]
    pub label: Vec<String>,
    pub name: String,
}

#[derive(Args, Debug)]
pub struct LsArgs {
    /// Only display network IDs.
    #[arg(short, long)]
    pub quiet: bool,
    /// Do not truncate the output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output (name=, id=, driver=, label=).
    #[arg(short, long)]
    pub filter: Vec<String>,
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct ConnectArgs {
    /// Add a network-scoped alias for the container.
    #[arg(long)]
    pub alias: Vec<String>,
    /// IPv4 address (e.g. 172.30.100.104).
    #[arg(long)]
    pub ip: Option<String>,
    pub network: String,
    pub container: String,
}

pub fn run(engine: &Engine, cmd: &NetworkCommand) -> Result<u8> {
    match cmd {
        NetworkCommand::Create(a) => create(engine, a),
        NetworkCommand::Ls(a) => ls(engine, a),
        NetworkCommand::Inspect { format, networks } => {
            inspect(engine, format.as_deref(), networks)
        }
        NetworkCommand::Rm { force, networks } => rm(engine, *force, networks),
        NetworkCommand::Prune { .. } => {
            let gone = manage::prune(engine)?;
            if !gone.is_empty() {
                outln!("Deleted Networks:");
                for n in gone {
                    outln!("{n}");
                }
            }
            Ok(0)
        }
        NetworkCommand::Connect(a) => {
            let ip =
                a.ip.as_deref()
                    .map(|ip| {
                        ip.parse()
                            .map_err(|_| anyhow::anyhow!("invalid IPv4 address: {ip}"))
                    })
                    .transpose()?;
            manage::connect(engine, &a.network, &a.container, a.alias.clone(), ip)?;
            Ok(0)
        }
        NetworkCommand::Disconnect {
            network, container, ..
        } => {
            manage::disconnect(engine, network, container)?;
            Ok(0)
        }
    }
}

fn create(engine: &Engine, a: &CreateArgs) -> Result<u8> {
    let mut labels = BTreeMap::new();
    for l in &a.label {
        let (k, v) = crate::runopts::parse_label(l)?;
        labels.insert(k, v);
    }
    let n = store::create(
        engine,
        &NetworkRequest {
            name: a.name.clone(),
            driver: a.driver.clone(),
            subnet: a.subnet.clone(),
            gateway: a.gateway.clone(),
            internal: a.internal,
            labels,
        },
    )?;
    outln!("{}", n.id);
    Ok(0)
}

/// Whether network `n` passes every `--filter` (Docker: one key's values
/// are alternatives, different keys must all match).
fn passes(n: &NetworkRecord, filters: &[(String, String)]) -> Result<bool> {
    let mut by_key: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (k, v) in filters {
        by_key.entry(k.as_str()).or_default().push(v.as_str());
    }
    for (k, values) in by_key {
        let ok = values.iter().any(|v| match k {
            "name" => n.name.contains(v),
            "id" => n.id.starts_with(v),
            "driver" => n.driver == *v,
            "label" => match v.split_once('=') {
                Some((lk, lv)) => n.labels.get(lk).is_some_and(|x| x == lv),
                None => n.labels.contains_key(*v),
            },
            "type" => (*v == "builtin") == n.is_predefined(),
            _ => false,
        });
        if !["name", "id", "driver", "label", "type"].contains(&k) {
            bail!("invalid filter '{k}'");
        }
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn ls(engine: &Engine, a: &LsArgs) -> Result<u8> {
    let filters = a
        .filter
        .iter()
        .map(|f| match f.split_once('=') {
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => bail!("bad format of filter (expected name=value)"),
        })
        .collect::<Result<Vec<_>>>()?;
    let mut nets = Vec::new();
    for n in store::list(engine)? {
        if passes(&n, &filters)? {
            nets.push(n);
        }
    }
    let id = |n: &NetworkRecord| {
        if a.no_trunc {
            n.id.clone()
        } else {
            n.id[..12].to_string()
        }
    };
    if a.quiet {
        for n in &nets {
            outln!("{}", id(n));
        }
        return Ok(0);
    }
    let format = crate::format::Format::parse(
        a.format.as_deref(),
        "{{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}",
    )?;
    let items: Vec<Value> = nets
        .iter()
        .map(|n| {
            json!({
                "ID": id(n), "Name": n.name, "Driver": n.driver, "Scope": "local",
                "IPv6": "false", "Internal": n.internal.to_string(),
                "Labels": n.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
                "CreatedAt": n.created,
            })
        })
        .collect();
    let headers = json!({
        "ID": "NETWORK ID", "Name": "NAME", "Driver": "DRIVER", "Scope": "SCOPE",
        "IPv6": "IPV6", "Internal": "INTERNAL", "Labels": "LABELS", "CreatedAt": "CREATED AT",
    });
    let none = |_: usize, _: &str, _: &[crate::template::Val]| None;
    out!("{}", format.render(&items, &headers, "network", &none)?);
    Ok(0)
}

/// Docker's `network inspect` document.
fn document(engine: &Engine, n: &NetworkRecord) -> Result<Value> {
    let mut containers = serde_json::Map::new();
    if n.is_bridge() {
        for c in manage::containers_on(engine, n)? {
            let Some((_, a)) = network::attachments_of(engine, &c)
                .into_iter()
                .find(|(e, _)| e.network == n.name)
            else {
                continue;
            };
            let o = a.address.octets();
            containers.insert(
                c.id.clone(),
                json!({
                    "Name": c.name,
                    "MacAddress": format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3]),
                    "IPv4Address": format!("{}/{}", a.address, a.prefix),
                    "IPv6Address": "",
                }),
            );
        }
    }
    let config = if n.subnet.is_empty() {
        json!([])
    } else {
        json!([{"Subnet": n.subnet, "Gateway": n.gateway.map(|g| g.to_string()).unwrap_or_default()}])
    };
    let mut options = serde_json::Map::new();
    if n.is_bridge() {
        options.insert("com.docker.network.bridge.name".into(), json!(n.device));
    }
    Ok(json!({
        "Name": n.name,
        "Id": n.id,
        "Created": if n.created.is_empty() { "0001-01-01T00:00:00Z" } else { n.created.as_str() },
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": false,
        "IPAM": {"Driver": "default", "Options": {}, "Config": config},
        "Internal": n.internal,
        "Attachable": false,
        "Ingress": false,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": false,
        "Containers": containers,
        "Options": options,
        "Labels": n.labels,
    }))
}

fn inspect(engine: &Engine, format: Option<&str>, keys: &[String]) -> Result<u8> {
    let mut docs = Vec::new();
    let mut failed = false;
    for k in keys {
        match store::find(engine, k).and_then(|n| document(engine, &n)) {
            Ok(d) => docs.push(d),
            Err(e) => {
                errln!("Error response from daemon: {e:#}");
                failed = true;
            }
        }
    }
    match format {
        None => outln!("{}", serde_json::to_string_pretty(&docs)?),
        Some(f) => {
            let t = crate::template::Template::parse(f)
                .map_err(|e| anyhow::anyhow!("template parsing error: {e}"))?;
            for d in &docs {
                outln!("{}", t.execute(d, &crate::template::Options::default())?);
            }
        }
    }
    Ok(u8::from(failed))
}

fn rm(engine: &Engine, force: bool, keys: &[String]) -> Result<u8> {
    let mut failed = false;
    for k in keys {
        match manage::remove(engine, k) {
            Ok(_) => outln!("{k}"),
            Err(e) if force && format!("{e:#}").contains("not found") => {}
            Err(e) => {
                errln!("Error response from daemon: {e:#}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
