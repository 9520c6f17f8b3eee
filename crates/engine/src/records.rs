//! Container records: what the engine keeps of each container under its
//! root, `containers/<id>/container.json`, beside the container's rootfs
//! mount point and its upper and work dirs (its bundle lives in the exec
//! root). Also how containers are named: ids, Docker-style names, lookup
//! by id, id prefix or name.
//!
//! A record carries what `ps`, `rm` and `inspect` need (and later `logs`,
//! `exec` and `restart`), and is replaced atomically on every change, so a
//! berth killed mid-run leaves a readable record whose dead supervisor
//! tells the next run's sweep what to clean up. (The runtime keeps its own,
//! OCI, state in the exec root; it is not this.)

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use berth_runtime::process;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    #[default]
    Created,
    Running,
    Exited,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ContainerRecord {
    pub id: String,
    pub name: String,
    /// The image as the user named it, and the id it resolved to.
    pub image: String,
    pub image_id: String,
    pub command: Vec<String>,
    pub created: String,
    #[serde(default)]
    pub started: Option<String>,
    #[serde(default)]
    pub finished: Option<String>,
    pub status: Status,
    #[serde(default)]
    pub exit_code: Option<i32>,
    #[serde(default)]
    pub oom_killed: bool,
    /// PID of the container's init as seen from the host, while running.
    #[serde(default)]
    pub pid: Option<i32>,
    /// Start time of that process (to tell it from a reused PID).
    #[serde(default)]
    pub pid_start: Option<u64>,
    /// The container's cgroupsPath, removed with the container even when
    /// its berth died before the runtime recorded anything.
    #[serde(default)]
    pub cgroup: Option<String>,
    /// PID and start time of the berth process that supervises it: if that
    /// process is gone the container is dead too (its PID 1 was our child).
    #[serde(default)]
    pub supervisor: Option<(i32, u64)>,
    /// Chain ids of the snapshots the rootfs is made of (keeps them alive).
    #[serde(default)]
    pub snapshots: Vec<String>,
    #[serde(default)]
    pub rootfs_mounted: bool,
    #[serde(default)]
    pub auto_remove: bool,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    #[serde(default)]
    pub stop_signal: Option<String>,
    /// `--stop-timeout`: seconds `stop` waits before SIGKILL (None: 10).
    #[serde(default)]
    pub stop_timeout: Option<u32>,

    /// Detached (`run -d`, `create`): a monitor process, not the berth
    /// that made it, holds its stdio and waits for it; `supervisor` is
    /// that monitor.
    #[serde(default)]
    pub detached: bool,
    /// `-t`: its stdio is a pty (the monitor holds the master).
    #[serde(default)]
    pub tty: bool,
    /// `-i`: its stdin stays open (fed by `attach`).
    #[serde(default)]
    pub open_stdin: bool,
    /// `--log-driver` and `--log-opt`s.
    #[serde(default)]
    pub log: LogConfig,
    /// `--restart`.
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Restarts made by its policy since it was last started by hand.
    #[serde(default)]
    pub restart_count: u32,
    /// Waiting out the back-off before its policy restarts it.
    #[serde(default)]
    pub restarting: bool,
    /// Stopped by `stop`/`kill`/`rm -f`: no policy restarts it (Docker's
    /// HasBeenManuallyStopped); `start` clears it.
    #[serde(default)]
    pub manually_stopped: bool,
    /// Frozen by `pause`.
    #[serde(default)]
    pub paused: bool,
    /// What it is checked with (the image's HEALTHCHECK merged with the
    /// `--health-*` flags): Docker's Config.Healthcheck.
    #[serde(default)]
    pub healthcheck: Option<crate::health::Healthcheck>,
    /// What its checks found: Docker's State.Health (kept when it stops).
    #[serde(default)]
    pub health: Option<crate::health::Health>,
    /// `--network` (Docker's NetworkMode): `none`, `host`,
    /// `container:ID` or the first network's name (empty in records of
    /// before it was kept: `none` or `host`, which need nothing).
    #[serde(default)]
    pub network: String,
    /// `-p` and `-P`: the ports asked to be published.
    #[serde(default)]
    pub ports: Vec<crate::ports::PortBinding>,
    /// Where they are published while it runs (empty when it does not).
    #[serde(default)]
    pub published: Vec<crate::ports::Published>,
    /// The networks it is on (`--network NAME`, `network connect`), in
    /// the order of its interfaces.
    #[serde(default)]
    pub networks: Vec<crate::network::Endpoint>,
    /// `--hostname`, when given: one more of its names in a network's DNS.
    #[serde(default)]
    pub hostname: Option<String>,
}

/// `--restart`: what the monitor does when the container's command exits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "Name")]
pub enum RestartPolicy {
    #[default]
    No,
    /// Restart after a non-zero exit, at most `max_retries` times (0: no limit).
    OnFailure {
        #[serde(rename = "MaximumRetryCount")]
        max_retries: u32,
    },
    Always,
    UnlessStopped,
}

impl RestartPolicy {
    /// Docker's grammar: `no`, `on-failure[:N]`, `always`, `unless-stopped`.
    pub fn parse(s: &str) -> Result<RestartPolicy> {
        let (name, count) = match s.split_once(':') {
            Some((n, c)) => (n, Some(c)),
            None => (s, None),
        };
        let p = match (name, count) {
            ("no" | "", None) => RestartPolicy::No,
            ("always", None) => RestartPolicy::Always,
            ("unless-stopped", None) => RestartPolicy::UnlessStopped,
            ("on-failure", None) => RestartPolicy::OnFailure { max_retries: 0 },
            ("on-failure", Some(c)) => RestartPolicy::OnFailure {
                max_retries: c.parse().map_err(|_| {
                    anyhow::anyhow!(
                        "invalid restart policy {s:?}: maximum retry count must be a number"
                    )
                })?,
            },
            ("no" | "always" | "unless-stopped", Some(_)) => {
                bail!(
                    "invalid restart policy {s:?}: maximum retry count can only be used with 'on-failure'"
                )
            }
            _ => bail!(
                "invalid restart policy {s:?}: use no, on-failure[:N], always or unless-stopped"
            ),
        };
        Ok(p)
    }

    /// Docker's name for it (`inspect`'s HostConfig.RestartPolicy.Name).
    pub fn name(&self) -> &'static str {
        match self {
            RestartPolicy::No => "no",
            RestartPolicy::OnFailure { .. } => "on-failure",
            RestartPolicy::Always => "always",
            RestartPolicy::UnlessStopped => "unless-stopped",
        }
    }
}

/// `--log-driver` and its `--log-opt`s (see [`crate::logs`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogConfig {
    pub driver: LogDriver,
    /// `max-size`: rotate when the file reaches this many bytes (None: never).
    #[serde(default)]
    pub max_size: Option<u64>,
    /// `max-file`: files kept, the current one included (at least 1).
    #[serde(default = "one")]
    pub max_file: u32,
}

fn one() -> u32 {
    1
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LogDriver {
    /// Docker's default: `<container dir>/<id>-json.log`, one JSON object a line.
    #[default]
    JsonFile,
    /// Output is discarded; `logs` says so.
    None,
}

impl ContainerRecord {
    /// Running according to the record, and its supervisor or its own
    /// first process still alive: never "exited" while it runs.
    pub fn is_running(&self) -> bool {
        self.status == Status::Running && (self.supervisor_alive() || self.process_alive())
    }

    /// Whether the berth process that ran it is still there.
    pub fn supervisor_alive(&self) -> bool {
        self.supervisor.is_some_and(|(p, t)| process::alive(p, t))
    }

    /// Whether the container's first process is still there.
    pub fn process_alive(&self) -> bool {
        matches!((self.pid, self.pid_start), (Some(p), Some(t)) if process::alive(p, t))
    }
}

/// The records under a root, `<root>/containers`.
pub struct Records {
    dir: PathBuf,
}

impl Records {
    pub fn open(root: &Path) -> Result<Records> {
        let dir = root.join("containers");
        std::fs::create_dir_all(&dir).with_context(|| format!("create {}", dir.display()))?;
        Ok(Records { dir })
    }

    pub fn dir(&self, id: &str) -> PathBuf {
        self.dir.join(id)
    }

    /// Serialises name allocation and removal across berth processes.
    pub fn lock(&self) -> Result<File> {
        let f = File::create(self.dir.join(".lock")).context("container lock")?;
        f.lock().context("container lock")?;
        Ok(f)
    }

    /// Container `id`'s filesystem lock, held while its rootfs is mounted
    /// by `start` or held open by a `cp` into the stopped container: two
    /// overlays over one upper dir are undefined in the kernel.
    pub fn fs_lock(&self, id: &str) -> Result<File> {
        let f = File::create(self.dir(id).join(".fs.lock")).context("container lock")?;
        f.lock().context("container lock")?;
        Ok(f)
    }

    pub fn list(&self) -> Result<Vec<ContainerRecord>> {
        let mut out = Vec::new();
        for e in std::fs::read_dir(&self.dir).context("list containers")? {
            let e = e?;
            if !e.file_type()?.is_dir() {
                continue;
            }
            // A directory without a record is a create that died before
            // writing one; it is cleaned by `rm` of that id or prune.
            if let Ok(c) = self.load(&e.file_name().to_string_lossy()) {
                out.push(c);
            }
        }
        out.sort_by(|a, b| b.created.cmp(&a.created));
        Ok(out)
    }

    pub fn load(&self, id: &str) -> Result<ContainerRecord> {
        let p = self.dir(id).join("container.json");
        let text = berth_io::read_capped(&p, berth_io::MIB, "container record")?;
        serde_json::from_slice(&text).with_context(|| format!("parse {}", p.display()))
    }

    /// Atomic replace: a reader never sees half a record. Not fsynced: a
    /// record describes processes that a power cut ends anyway, and one
    /// lost that way only leaves a directory `list` skips and `rm` removes
    /// (runc does not sync its state either); five syncs were a sixth of a
    /// container's start.
    pub fn save(&self, c: &ContainerRecord) -> Result<()> {
        let dir = self.dir(&c.id);
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(".container.json.tmp");
        let mut f = File::create(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(c)?)?;
        std::fs::rename(&tmp, dir.join("container.json"))
            .with_context(|| format!("save container {}", c.id))
    }

    /// Loads container `id`, lets `change` edit it and saves it, under the
    /// lock: the monitor and the commands that talk to it (stop, pause,
    /// rename…) never overwrite each other's changes.
    pub fn update<T>(
        &self,
        id: &str,
        change: impl FnOnce(&mut ContainerRecord) -> Result<T>,
    ) -> Result<T> {
        let _lock = self.lock()?;
        let mut c = self.load(id)?;
        let out = change(&mut c)?;
        self.save(&c)?;
        Ok(out)
    }

    /// Finds a container by full id, unique id prefix, or name (Docker's rules).
    pub fn find(&self, key: &str) -> Result<ContainerRecord> {
        let all = self.list()?;
        if let Some(c) = all.iter().find(|c| c.id == key || c.name == key) {
            return Ok(c.clone());
        }
        let matches: Vec<_> = all.iter().filter(|c| c.id.starts_with(key)).collect();
        match matches.len() {
            0 => Err(NoSuchContainer(key.to_string()).into()),
            1 => Ok(matches[0].clone()),
            _ => bail!("multiple containers match {key}: use more characters of the id"),
        }
    }

    pub fn name_taken(&self, name: &str) -> Result<Option<String>> {
        Ok(self
            .list()?
            .into_iter()
            .find(|c| c.name == name)
            .map(|c| c.id))
    }
}

/// No container has this id, id prefix or name. Worded as Docker's daemon
/// words it, capital N and all: scripts grep for "No such container".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoSuchContainer(pub String);

impl std::fmt::Display for NoSuchContainer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "No such container: {}", self.0)
    }
}

impl std::error::Error for NoSuchContainer {}

/// A name another container has: Docker's message, which scripts match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameConflict {
    pub name: String,
    /// The full id of the container that has it.
    pub id: String,
}

impl std::fmt::Display for NameConflict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Conflict. The container name \"/{}\" is already in use by container \"{}\". \
             You have to remove (or rename) that container to be able to reuse that name.",
            self.name, self.id
        )
    }
}

impl std::error::Error for NameConflict {}

/// 64 hex characters from the kernel's random pool, like Docker's ids.
pub fn new_id() -> Result<String> {
    use std::io::Read;
    let mut buf = [0u8; 32];
    File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut buf))
        .context("read /dev/urandom")?;
    Ok(buf.iter().map(|b| format!("{b:02x}")).collect())
}

/// Docker-style `adjective_noun` names, unique among existing containers.
pub fn new_name(records: &Records, id: &str) -> Result<String> {
    const ADJ: &[&str] = &[
        "brave", "calm", "eager", "fond", "gentle", "happy", "keen", "lucid", "merry", "nimble",
        "proud", "quiet", "steady", "tender", "vivid", "witty",
    ];
    const NOUN: &[&str] = &[
        "anchor", "buoy", "cove", "dock", "ferry", "harbor", "jetty", "keel", "lagoon", "mooring",
        "pier", "quay", "reef", "skiff", "tide", "wharf",
    ];
    let b = u8::from_str_radix(&id[..2], 16).unwrap_or(0) as usize;
    let base = format!(
        "{}_{}",
        ADJ[b % ADJ.len()],
        NOUN[(b / ADJ.len()) % NOUN.len()]
    );
    if records.name_taken(&base)?.is_none() {
        return Ok(base);
    }
    Ok(format!("{base}_{}", &id[..6]))
}

/// Docker's rule for user-chosen names: `[a-zA-Z0-9][a-zA-Z0-9_.-]+`.
pub fn validate_name(name: &str) -> Result<()> {
    let mut chars = name.chars();
    let ok = name.len() >= 2
        && chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
    if !ok {
        bail!("invalid container name {name:?}: only [a-zA-Z0-9][a-zA-Z0-9_.-] are allowed");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::timefmt;

    fn sample(id: &str, name: &str) -> ContainerRecord {
        ContainerRecord {
            id: id.into(),
            name: name.into(),
            image: "busybox".into(),
            image_id: "sha256:00".into(),
            command: vec!["sh".into()],
            created: timefmt::now_rfc3339(),
            ..Default::default()
        }
    }

    #[test]
    fn save_load_find_by_id_prefix_and_name() {
        let root = tempfile::tempdir().unwrap();
        let cs = Records::open(root.path()).unwrap();
        cs.save(&sample("abc123", "one")).unwrap();
        cs.save(&sample("abd456", "two")).unwrap();
        assert_eq!(cs.find("one").unwrap().id, "abc123");
        assert_eq!(cs.find("abd").unwrap().name, "two");
        let amb = cs.find("ab").unwrap_err().to_string();
        assert!(amb.contains("multiple"), "{amb}");
        assert!(
            cs.find("zzz")
                .unwrap_err()
                .to_string()
                .contains("No such container: zzz")
        );
    }

    #[test]
    fn dead_supervisor_means_not_running() {
        let mut c = sample("a", "n");
        c.status = Status::Running;
        c.supervisor = Some((i32::MAX - 1, 1));
        assert!(!c.is_running());
        let me = std::process::id() as i32;
        c.supervisor = Some((me, process::start_time(me).unwrap()));
        assert!(c.is_running());
    }

    #[test]
    fn restart_policies_parse_as_docker_does() {
        assert_eq!(
            RestartPolicy::parse("always").unwrap(),
            RestartPolicy::Always
        );
        assert_eq!(
            RestartPolicy::parse("on-failure:3").unwrap(),
            RestartPolicy::OnFailure { max_retries: 3 }
        );
        assert!(RestartPolicy::parse("always:3").is_err());
        assert!(RestartPolicy::parse("sometimes").is_err());
        assert!(RestartPolicy::parse("on-failure:x").is_err());
    }

    #[test]
    fn names_follow_docker_rules() {
        assert!(validate_name("web-1").is_ok());
        assert!(validate_name("a").is_err());
        assert!(validate_name("-x").is_err());
        assert!(validate_name("a/b").is_err());
        assert_eq!(new_id().unwrap().len(), 64);
    }
}
