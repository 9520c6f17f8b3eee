//! runc's logging: lines appended to `--log` (stderr without it), as
//! logrus writes them, text (`time="…" level=error msg="…"`) or JSON
//! (`{"level":"error","msg":"…","time":"…"}`). A failed command's error
//! is the last line: containerd's shim reads it back for its own message.
//! The runtime's warnings (and with --debug its debug lines) go the same way.

use berth_io::errln;
use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex};

#[derive(Clone)]
pub struct Log {
    inner: Arc<Inner>,
}

struct Inner {
    /// The --log file (opened O_APPEND), or None for stderr.
    file: Option<Mutex<std::fs::File>>,
    json: bool,
}

impl Log {
    /// A log that cannot be opened falls back to stderr (and says so).
    pub fn open(path: Option<&Path>, json: bool, _debug: bool) -> Log {
        let file = path.and_then(|p| {
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| errln!("{}: open log {}: {e}", super::NAME, p.display()))
                .ok()
        });
        Log {
            inner: Arc::new(Inner {
                file: file.map(Mutex::new),
                json,
            }),
        }
    }

    fn line(&self, level: &str, msg: &str) -> String {
        let time = berth_engine::timefmt::now_rfc3339();
        if self.inner.json {
            let v = serde_json::json!({ "level": level, "msg": msg, "time": time });
            format!("{v}\n")
        } else {
            format!("time={time:?} level={level} msg={msg:?}\n")
        }
    }

    pub fn write(&self, level: &str, msg: &str) {
        let line = self.line(level, msg);
        match &self.inner.file {
            Some(f) => {
                if let Ok(mut f) = f.lock() {
                    let _ = f.write_all(line.as_bytes());
                }
            }
            None => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }

    /// A failed command: the log's last line, and stderr's one line (runc
    /// prints it on both).
    pub fn error(&self, msg: &str) {
        if self.inner.file.is_some() {
            self.write("error", msg);
        }
        errln!("{}: {msg}", super::NAME);
    }
}

/// Route the runtime's tracing events (warnings; with --debug, debug lines)
/// into the log.
pub fn install(log: &Log, debug: bool) {
    use tracing_subscriber::layer::SubscriberExt;
    let level = if debug {
        tracing::Level::DEBUG
    } else {
        tracing::Level::WARN
    };
    let layer = Layer {
        log: log.clone(),
        level,
    };
    let _ = tracing::subscriber::set_global_default(tracing_subscriber::registry().with(layer));
}

struct Layer {
    log: Log,
    level: tracing::Level,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for Layer {
    fn enabled(
        &self,
        meta: &tracing::Metadata<'_>,
        _: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        *meta.level() <= self.level
    }

    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        let mut msg = Message(String::new());
        event.record(&mut msg);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        self.log.write(&level, &msg.0);
    }
}

/// An event's fields as one line: the message, then `key=value`s.
struct Message(String);

impl tracing::field::Visit for Message {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        use std::fmt::Write as _;
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, "{}={value:?}", field.name());
        }
    }
}
