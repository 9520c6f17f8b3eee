//! The container's on-disk state, `<state_dir>/<id>/state.json`: the OCI
//! runtime state (what `runc state` prints) plus what the runtime needs to
//! recognise its process again from another invocation.

use crate::error::{Context, Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(rename = "ociVersion")]
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    /// Host PID of the container's first process (0 when it has none).
    #[serde(default)]
    pub pid: i32,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "HashMap::is_empty")]
    pub annotations: HashMap<String, String>,
    /// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field
    /// 22); tells our process apart from a later one that reused the PID.
    #[serde(default, rename = "berthPidStartTime")]
    pub pid_start_time: u64,
    /// When `create` made it, in nanoseconds since the Unix epoch (runc's
    /// `state` shows it as `created`).
    #[serde(default, rename = "berthCreated")]
    pub created: u64,
    /// The container's cgroup, relative to the hierarchy roots, if it has one.
    #[serde(
        default,
        rename = "berthCgroup",
        skip_serializing_if = "Option::is_none"
    )]
    pub cgroup: Option<PathBuf>,
    /// The poststart and poststop hooks, for a `start` or `delete` in
    /// another process (the others have run by the time this is written).
    #[serde(
        default,
        rename = "berthHooks",
        skip_serializing_if = "Option::is_none"
    )]
    pub hooks: Option<oci_spec::runtime::Hooks>,
}

pub(crate) const FILE: &str = "state.json";

impl State {
    pub(crate) fn load(dir: &Path) -> Result<State> {
        let path = dir.join(FILE);
        let data = berth_io::read_capped(&path, berth_io::MIB, "state")
            .map_err(|e| Error::setup(e.to_string()))?;
        serde_json::from_slice(&data)
            .map_err(|e| Error::setup(format!("parse {}: {e}", path.display())))
    }

    /// Write atomically (temp file + rename) so a reader never sees half a file.
    pub(crate) fn save(&self, dir: &Path) -> Result<()> {
        let tmp = dir.join(".state.json.tmp");
        let data = serde_json::to_vec_pretty(self)
            .map_err(|e| Error::setup(format!("encode state: {e}")))?;
        std::fs::write(&tmp, data).step(|| format!("write {}", tmp.display()))?;
        std::fs::rename(&tmp, dir.join(FILE)).step(|| format!("write {}/{FILE}", dir.display()))
    }
}

/// Whether `pid` is still the process described by `state` and not a zombie.
pub(crate) fn is_alive(state: &State) -> bool {
    if state.pid <= 0 {
        return false;
    }
    // A zombie has exited already; it only waits to be reaped.
    berth_linux::stat::Stat::of(state.pid)
        .is_some_and(|s| s.start_time == state.pid_start_time && !s.exited())
}
