//! `inspect` and `container inspect`: Docker's document for a container
//! (built here only, for every command that shows one), images' from the
//! store, and `--format` templates over them.

use anyhow::{Result, anyhow};
use berth_engine::Engine;
use berth_engine::records::{ContainerRecord, LogDriver, NoSuchContainer};
use berth_io::{errln, out};
use serde_json::{Value, json};

use super::view;
use crate::template::{Options, Template};

/// Docker's zero time, for what has not happened yet.
const ZERO_TIME: &str = "0001-01-01T00:00:00Z";

/// Docker's inspect document for a container, as far as berth knows it;
/// with `size`, also SizeRw and SizeRootFs.
/// Docker's NetworkSettings: the container's address on the bridge while
/// it runs there, empty strings otherwise.
fn network_settings(engine: &Engine, c: &ContainerRecord) -> Value {
    let attached = berth_engine::network::attachments_of(engine, c);
    let mut networks = serde_json::Map::new();
    for ep in berth_engine::network::endpoints(c) {
        let a = attached
            .iter()
            .find(|(e, _)| e.network == ep.network)
            .map(|(_, a)| *a);
        let ip = a.map(|a| a.address.to_string()).unwrap_or_default();
        let mac = a
            .map(|a| {
                let o = a.address.octets();
                format!("02:42:{:02x}:{:02x}:{:02x}:{:02x}", o[0], o[1], o[2], o[3])
            })
            .unwrap_or_default();
        let net_id = berth_engine::network::store::find(engine, &ep.network)
            .map(|n| n.id)
            .unwrap_or_default();
        networks.insert(
            ep.network.clone(),
            json!({
                "IPAMConfig": ep.ip.map(|ip| json!({"IPv4Address": ip.to_string()})),
                "Aliases": ep.aliases,
                "NetworkID": net_id,
                "IPAddress": ip,
                "IPPrefixLen": a.map_or(0, |a| a.prefix),
                "Gateway": a.map(|a| a.gateway.to_string()).unwrap_or_default(),
                "MacAddress": mac,
            }),
        );
    }
    // The top-level fields are the default bridge's (Docker's, deprecated).
    let a = attached
        .iter()
        .find(|(e, _)| e.network == "bridge")
        .map(|(_, a)| *a);
    let ip = a.map(|a| a.address.to_string()).unwrap_or_default();
    let gw = a.map(|a| a.gateway.to_string()).unwrap_or_default();
    let prefix = a.map_or(0, |a| a.prefix);
    if c.network == "host" || c.network == "none" || c.network.is_empty() {
        let name = if c.network.is_empty() {
            "none"
        } else {
            c.network.as_str()
        };
        networks.insert(
            name.into(),
            json!({"IPAddress": "", "IPPrefixLen": 0, "Gateway": ""}),
        );
    }
    let mut ports = serde_json::Map::new();
    for p in &c.published {
        let key = format!("{}/{}", p.container_port, p.proto.name());
        let host = p
            .host_ip
            .unwrap_or(std::net::Ipv4Addr::UNSPECIFIED)
            .to_string();
        let entry = ports.entry(key).or_insert_with(|| json!([]));
        if let Some(list) = entry.as_array_mut() {
            list.push(json!({"HostIp": host, "HostPort": p.host_port.to_string()}));
        }
    }
    json!({
        "IPAddress": ip,
        "IPPrefixLen": prefix,
        "Gateway": gw,
        "Networks": networks,
        "Ports": ports,
    })
}

pub fn document(engine: &Engine, c: &ContainerRecord, size: Option<(u64, u64)>) -> Value {
    let state = view::state(c);
    let running = matches!(state, "running" | "paused" | "restarting");
    let mut log_opts = serde_json::Map::new();
    if let Some(m) = c.log.max_size {
        log_opts.insert("max-size".into(), json!(m.to_string()));
    }
    // One file (or none recorded) is the default, which Docker leaves out.
    if c.log.max_file > 1 {
        log_opts.insert("max-file".into(), json!(c.log.max_file.to_string()));
    }
    let (log_type, log_path) = match c.log.driver {
        LogDriver::JsonFile => (
            "json-file",
            engine
                .records()
                .map(|r| {
                    r.dir(&c.id)
                        .join(format!("{}-json.log", c.id))
                        .display()
                        .to_string()
                })
                .unwrap_or_default(),
        ),
        LogDriver::None => ("none", String::new()),
    };
    let restart_max = match c.restart {
        berth_engine::records::RestartPolicy::OnFailure { max_retries } => max_retries,
        _ => 0,
    };
    let mut config = json!({
        "AttachStdin": !c.detached && c.open_stdin,
        "AttachStdout": !c.detached,
        "AttachStderr": !c.detached,
        "Tty": c.tty,
        "OpenStdin": c.open_stdin,
        "Cmd": c.command,
        "Image": c.image,
        "Labels": c.labels,
    });
    if let Some(s) = &c.stop_signal {
        config["StopSignal"] = json!(s);
    }
    if let Some(t) = c.stop_timeout {
        config["StopTimeout"] = json!(t);
    }
    if let Some(h) = &c.healthcheck {
        config["Healthcheck"] = json!(h);
    }
    let mut doc = json!({
        "Id": c.id,
        "Created": c.created,
        "Path": c.command.first().cloned().unwrap_or_default(),
        "Args": c.command.get(1..).unwrap_or_default(),
        "State": {
            "Status": state,
            "Running": running,
            "Paused": state == "paused",
            "Restarting": state == "restarting",
            "OOMKilled": c.oom_killed,
            "Dead": false,
            "Pid": if running { c.pid.unwrap_or(0) } else { 0 },
            "ExitCode": view::exit_code(c),
            "Error": "",
            "StartedAt": c.started.as_deref().unwrap_or(ZERO_TIME),
            "FinishedAt": c.finished.as_deref().unwrap_or(ZERO_TIME),
        },
        "Image": c.image_id,
        "LogPath": log_path,
        "Name": format!("/{}", c.name),
        "RestartCount": c.restart_count,
        "Platform": "linux",
        "HostConfig": {
            "LogConfig": {"Type": log_type, "Config": log_opts},
            "RestartPolicy": {"Name": c.restart.name(), "MaximumRetryCount": restart_max},
            "AutoRemove": c.auto_remove,
            "NetworkMode": if c.network.is_empty() { "none" } else { c.network.as_str() },
        },
        "Config": config,
        "NetworkSettings": network_settings(engine, c),
    });
    // Docker's State.Health: there once a container with a healthcheck
    // has started, kept when it stops.
    if let (true, Some(h)) = (view::health(c) != "none", &c.health) {
        doc["State"]["Health"] = json!(h);
    }
    if let Some((rw, rootfs)) = size {
        doc["SizeRw"] = json!(rw);
        doc["SizeRootFs"] = json!(rootfs);
    }
    doc
}

/// What to look for: containers, images, or either (container first).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Any,
    Container,
    Image,
}

/// `inspect [--type T] [-f TEMPLATE] [-s] NAME…`: the documents as a JSON
/// array (or each through the template), then one line per name not
/// found; exit 1 if any was not.
pub fn inspect(
    engine: &Engine,
    names: &[String],
    kind: Kind,
    format: Option<&str>,
    size: bool,
) -> Result<u8> {
    berth_engine::remove::reap_for_readers(engine);
    let template = match format {
        None | Some("" | "json") => None,
        Some(f) => match Template::parse(f) {
            Ok(t) => Some(t),
            Err(e) => {
                // The docker CLI's status for a template it cannot parse.
                errln!("template parsing error: {e}");
                return Ok(64);
            }
        },
    };
    let records = engine.records()?;
    let mut docs = Vec::new();
    let mut errors = Vec::new();
    for name in names {
        let container = match kind {
            Kind::Image => None,
            _ => match records.find(name) {
                Ok(c) => Some(c),
                Err(e) if e.downcast_ref::<NoSuchContainer>().is_some() => None,
                Err(e) => return Err(e),
            },
        };
        if let Some(c) = container {
            let sizes = size.then(|| {
                let rw = berth_engine::prune::container_size(engine, &c.id);
                let image = engine.store.resolve(&c.image_id).map_or(0, |i| i.size);
                (rw, rw + image)
            });
            docs.push(document(engine, &c, sizes));
            continue;
        }
        let image = match kind {
            Kind::Container => None,
            _ => engine
                .store
                .resolve(name)
                .and_then(|i| engine.store.inspect(&i))
                .ok(),
        };
        match (image, kind) {
            (Some(doc), _) => docs.push(doc),
            (None, Kind::Any) => errors.push(format!("Error: No such object: {name}")),
            (None, Kind::Container) => errors.push(format!(
                "Error response from daemon: No such container: {name}"
            )),
            (None, Kind::Image) => {
                errors.push(format!("Error response from daemon: No such image: {name}"))
            }
        }
    }
    match &template {
        None => out!("{}\n", pretty(&docs)?),
        Some(t) => {
            for d in &docs {
                let text = t
                    .execute(d, &Options::default())
                    .map_err(|e| anyhow!("template parsing error: {e}"))?;
                out!("{text}\n");
            }
        }
    }
    for e in &errors {
        errln!("{e}");
    }
    Ok(if errors.is_empty() { 0 } else { 1 })
}

/// JSON indented by four spaces, as docker prints inspect documents.
pub fn pretty(v: &[Value]) -> Result<String> {
    // serde_json indents by two; a JSON string holds no raw newline, so
    // every line's leading spaces are indentation, doubled here.
    let two = serde_json::to_string_pretty(v)?;
    let mut out = String::with_capacity(two.len() * 3 / 2);
    for (i, line) in two.lines().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let body = line.trim_start_matches(' ');
        out.extend(std::iter::repeat_n(' ', 2 * (line.len() - body.len())));
        out.push_str(body);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::record;
    use super::*;
    use berth_engine::records::{RestartPolicy, Status};

    #[test]
    fn document_has_dockers_shape() {
        let root = tempfile::tempdir().unwrap();
        let engine = Engine::open(&berth_engine::Options {
            root: Some(root.path().into()),
            exec_root: Some(root.path().join("run")),
            config: None,
        })
        .unwrap();
        let mut c = record("web", Status::Created, 5);
        c.restart = RestartPolicy::OnFailure { max_retries: 3 };
        c.log.max_size = Some(1000);
        c.stop_signal = Some("SIGINT".into());
        let d = document(&engine, &c, None);
        assert_eq!(d["Name"], "/web");
        assert_eq!(d["State"]["Status"], "created");
        assert_eq!(d["State"]["Running"], false);
        assert_eq!(d["State"]["StartedAt"], ZERO_TIME);
        assert_eq!(
            d["HostConfig"]["RestartPolicy"],
            json!({"Name": "on-failure", "MaximumRetryCount": 3})
        );
        assert_eq!(
            d["HostConfig"]["LogConfig"],
            json!({"Type": "json-file", "Config": {"max-size": "1000"}})
        );
        assert_eq!(d["Config"]["StopSignal"], "SIGINT");
        assert!(d["Config"].get("StopTimeout").is_none());
        assert!(
            d["LogPath"]
                .as_str()
                .unwrap()
                .ends_with(&format!("{0}/{0}-json.log", c.id))
        );
        let t = Template::parse(
            "{{.State.Status}} {{json .Config.Labels}} {{.HostConfig.RestartPolicy.Name}}",
        )
        .unwrap();
        assert_eq!(
            t.execute(&d, &Options::default()).unwrap(),
            r#"created {"app":"web"} on-failure"#
        );
        let c = record("old", Status::Exited, 5);
        let d = document(&engine, &c, Some((2, 10)));
        assert_eq!(
            (
                d["State"]["Status"].as_str(),
                d["State"]["ExitCode"].as_i64()
            ),
            (Some("exited"), Some(3))
        );
        assert_eq!(
            (d["SizeRw"].as_u64(), d["SizeRootFs"].as_u64()),
            (Some(2), Some(10))
        );
        assert_eq!(
            pretty(&[json!({"a": 1})]).unwrap(),
            "[\n    {\n        \"a\": 1\n    }\n]"
        );
    }
}
