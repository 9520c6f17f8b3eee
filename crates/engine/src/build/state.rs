//! A stage as far as it is built: its last stored image, its config as it
//! is now and its cache key.

use berth_image::ImageRecord;
use serde_json::{Map, Value, json};

/// A stage as far as it is built.
#[derive(Clone)]
pub(super) struct State {
    /// The last image stored (None: scratch, nothing yet).
    pub(super) image: Option<ImageRecord>,
    /// The image config as it is now.
    pub(super) config: Value,
    /// The cache key of everything so far.
    pub(super) key: String,
    /// Whether `config` has changes `image` has not.
    pub(super) dirty: bool,
    /// This stage's ARGs, `K=V`.
    pub(super) args: Vec<String>,
    /// Whether a CMD came earlier in the stage.
    pub(super) cmd_set: bool,
    /// `SOURCE_DATE_EPOCH`, when set: history times, and the latest
    /// mtime a layer holds.
    pub(super) epoch: Option<i64>,
}

impl State {
    pub(super) fn inner(&mut self) -> &mut Map<String, Value> {
        let obj = self
            .config
            .as_object_mut()
            .expect("an image config is an object");
        let inner = obj.entry("config").or_insert_with(|| json!({}));
        if !inner.is_object() {
            *inner = json!({});
        }
        inner.as_object_mut().expect("an object")
    }

    pub(super) fn get(&self, k: &str) -> Option<&Value> {
        self.config.get("config").and_then(|c| c.get(k))
    }

    pub(super) fn env(&self) -> Vec<String> {
        strings(self.get("Env"))
    }

    /// The ARGs, then the ENV over them: what `$VAR`s see.
    pub(super) fn vars(&self) -> Vec<String> {
        [self.args.clone(), self.env()].concat()
    }

    pub(super) fn shell(&self) -> Vec<String> {
        let s = strings(self.get("Shell"));
        if s.is_empty() {
            vec!["/bin/sh".into(), "-c".into()]
        } else {
            s
        }
    }

    pub(super) fn push_history(&mut self, created_by: &str, empty: bool, diff_id: Option<&str>) {
        let now = created(self.epoch);
        let obj = self.config.as_object_mut().expect("an object");
        if let Some(d) = diff_id {
            crate::commit::push_diff_id(obj, d);
        }
        let mut e = Map::new();
        e.insert("created".into(), json!(now));
        e.insert("created_by".into(), json!(created_by));
        e.insert("comment".into(), json!("buildkit.dockerfile.v0"));
        if empty {
            e.insert("empty_layer".into(), json!(true));
        }
        let h = obj.entry("history").or_insert_with(|| json!([]));
        if let Some(h) = h.as_array_mut() {
            h.push(Value::Object(e));
        }
        obj.insert("created".into(), json!(now));
    }
}

pub(super) use crate::commit::strings;

pub(super) fn scratch_config() -> Value {
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        other => other,
    };
    json!({
        "architecture": arch,
        "os": "linux",
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
        "rootfs": {"type": "layers", "diff_ids": []},
        "history": [],
    })
}

/// The time history entries and the image record: `SOURCE_DATE_EPOCH`
/// when set (reproducible builds), else now.
pub(super) fn created(epoch: Option<i64>) -> String {
    match epoch {
        Some(secs) => crate::timefmt::format_unix(secs, 0),
        None => crate::timefmt::now_rfc3339(),
    }
}
