//! Events, as Docker's daemon reports them (`docker events`), without a
//! daemon: each berth process that acts appends one JSON line to
//! `<root>/events.jsonl` (podman's file events backend does the same), and
//! `berth events` reads and follows that file ([`read`]).
//!
//! Each line goes out in one `write` on an `O_APPEND` descriptor, so lines
//! of concurrent berths never interleave. The file is rotated to
//! `events.jsonl.1` past [`ROTATE_AT`], one old file kept: the log stays
//! bounded. Emitting never fails the action it reports: an event that
//! cannot be written is logged at debug level and dropped.

pub mod read;

use std::collections::BTreeMap;
use std::os::fd::AsFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::Engine;
use crate::logs::now_nanos;
use crate::records::ContainerRecord;

/// The events file past which it is rotated.
pub const ROTATE_AT: u64 = 1 << 20;

/// Nanoseconds in a second.
const NANOS: i64 = 1_000_000_000;

/// The longest line written: labels could make one huge.
const MAX_LINE: usize = 64 << 10;

/// One event, in Docker's wire shape (API 1.43 `events.Message`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Event {
    /// Docker's deprecated copies of Action, Actor.ID and the image, kept
    /// for the scripts that still read them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `container` or `image`.
    #[serde(rename = "Type")]
    pub kind: String,
    #[serde(rename = "Action")]
    pub action: String,
    #[serde(rename = "Actor")]
    pub actor: Actor,
    pub scope: String,
    /// Seconds and nanoseconds since the Unix epoch.
    pub time: i64,
    #[serde(rename = "timeNano")]
    pub time_nano: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "Attributes", default)]
    pub attributes: BTreeMap<String, String>,
}

impl Event {
    /// An event of `kind` about `id`, now.
    pub fn new(kind: &str, action: &str, id: &str, attributes: BTreeMap<String, String>) -> Event {
        let t = now_nanos();
        Event {
            status: Some(action.to_string()),
            id: Some(id.to_string()),
            from: None,
            kind: kind.to_string(),
            action: action.to_string(),
            actor: Actor {
                id: id.to_string(),
                attributes,
            },
            scope: "local".into(),
            time: t.div_euclid(NANOS),
            time_nano: t,
        }
    }

    /// A container's event: Docker's attributes are its labels, its image
    /// and its name, and `extra` (`exitCode`, `signal`, …).
    pub fn container(c: &ContainerRecord, action: &str, extra: &[(&str, &str)]) -> Event {
        let mut attrs = c.labels.clone();
        attrs.insert("image".into(), c.image.clone());
        attrs.insert("name".into(), c.name.clone());
        for (k, v) in extra {
            attrs.insert((*k).to_string(), (*v).to_string());
        }
        let mut e = Event::new("container", action, &c.id, attrs);
        e.from = Some(c.image.clone());
        e
    }

    /// An image's event: `id` is what Docker names (the reference pulled,
    /// the image id deleted), `name` its `name` attribute.
    pub fn image(action: &str, id: &str, name: &str) -> Event {
        let attrs = BTreeMap::from([("name".to_string(), name.to_string())]);
        Event::new("image", action, id, attrs)
    }
}

/// `<root>/events.jsonl`.
pub fn path(root: &Path) -> PathBuf {
    root.join("events.jsonl")
}

/// The rotated file, `<root>/events.jsonl.1`.
pub fn rotated_path(root: &Path) -> PathBuf {
    root.join("events.jsonl.1")
}

/// Appends `ev` to the events file under `root`. Never fails: the action
/// it reports has happened whether or not it could be recorded.
pub fn emit(root: &Path, ev: &Event) {
    if let Err(e) = append(root, ev) {
        tracing::debug!("record event {} {}: {e:#}", ev.kind, ev.action);
    }
}

/// [`emit`] of a container's event (one line at each place it happens).
pub fn container(engine: &Engine, c: &ContainerRecord, action: &str) {
    emit(&engine.root, &Event::container(c, action, &[]));
}

/// [`emit`] of a container's event with attributes of its own
/// (`exitCode` of `die`, `signal` of `kill`, `oldName` of `rename`). Also
/// the hook for `health_status: healthy` and the like.
pub fn container_with(engine: &Engine, c: &ContainerRecord, action: &str, extra: &[(&str, &str)]) {
    emit(&engine.root, &Event::container(c, action, extra));
}

/// A container's end: `oom` when the kernel's OOM killer took it, then
/// `die` with its exit code, as the record now says.
pub fn died(engine: &Engine, c: &ContainerRecord) {
    if c.oom_killed {
        container(engine, c, "oom");
    }
    let code = c.exit_code.unwrap_or(0).to_string();
    container_with(engine, c, "die", &[("exitCode", &code)]);
}

/// [`emit`] of an image's event.
pub fn image(engine: &Engine, action: &str, id: &str, name: &str) {
    emit(&engine.root, &Event::image(action, id, name));
}

fn append(root: &Path, ev: &Event) -> anyhow::Result<()> {
    let mut line = serde_json::to_vec(ev)?;
    if line.len() > MAX_LINE {
        // Labels made it too long: the event without them.
        let mut lean = ev.clone();
        lean.actor
            .attributes
            .retain(|k, _| matches!(k.as_str(), "image" | "name" | "exitCode" | "signal"));
        line = serde_json::to_vec(&lean)?;
    }
    line.push(b'\n');
    let p = path(root);
    let mut f = open_append(&p)?;
    if f.metadata()?.len() >= ROTATE_AT {
        f = rotate(root, f)?;
    }
    // One write: O_APPEND places it whole at the end, whoever else writes.
    let n = rustix::io::write(&f, &line)?;
    if n != line.len() {
        anyhow::bail!("short write to {} ({n} of {})", p.display(), line.len());
    }
    Ok(())
}

fn open_append(p: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o600)
        .custom_flags(libc::O_CLOEXEC)
        .open(p)
}

/// Moves the full events file `f` (opened at `<root>/events.jsonl`) to
/// `.1` and returns the new one. Under a lock on the old file, so that of
/// two berths that both found it full only one renames: the other finds
/// the name moved on to a new file and writes there.
fn rotate(root: &Path, f: std::fs::File) -> anyhow::Result<std::fs::File> {
    let p = path(root);
    rustix::fs::flock(f.as_fd(), rustix::fs::FlockOperation::LockExclusive)?;
    let same = std::fs::metadata(&p).is_ok_and(|m| m.ino() == f.metadata().map_or(0, |o| o.ino()));
    if same {
        std::fs::rename(&p, rotated_path(root))?;
    }
    drop(f);
    Ok(open_append(&p)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docker_wire_shape() {
        let mut e = Event::image("pull", "busybox:latest", "busybox");
        e.time = 1;
        e.time_nano = 1_000_000_001;
        let v = serde_json::to_value(&e).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"status":"pull","id":"busybox:latest","Type":"image",
                "Action":"pull","Actor":{"ID":"busybox:latest","Attributes":{"name":"busybox"}},
                "scope":"local","time":1,"timeNano":1_000_000_001i64})
        );
        let back: Event = serde_json::from_value(v).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn rotation_keeps_one_old_file() {
        let dir = tempfile::tempdir().unwrap();
        let ev = Event::image("pull", &"x".repeat(1000), "x");
        let per = serde_json::to_vec(&ev).unwrap().len() as u64 + 1;
        let n = 3 * ROTATE_AT / per;
        for _ in 0..n {
            emit(dir.path(), &ev);
        }
        let cur = std::fs::metadata(path(dir.path())).unwrap().len();
        let old = std::fs::metadata(rotated_path(dir.path())).unwrap().len();
        assert!(cur <= ROTATE_AT + per, "{cur}");
        assert!(old <= ROTATE_AT + per && old >= ROTATE_AT, "{old}");
        assert_eq!(cur % per, 0);
        assert!(!dir.path().join("events.jsonl.2").exists());
    }
}
