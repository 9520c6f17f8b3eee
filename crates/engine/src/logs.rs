//! Container logs in Docker's `json-file` format: the monitor writes them,
//! `logs` reads them back. (Interim writer: one JSON object per chunk.)

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::records::{LogConfig, LogDriver};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// `<container dir>/<id>-json.log`, as Docker names it.
pub fn log_path(container_dir: &Path, id: &str) -> PathBuf {
    container_dir.join(format!("{id}-json.log"))
}

pub struct LogWriter {
    out: Option<std::io::BufWriter<std::fs::File>>,
}

impl LogWriter {
    pub fn open(path: &Path, cfg: &LogConfig) -> std::io::Result<LogWriter> {
        if cfg.driver == LogDriver::None {
            return Ok(LogWriter { out: None });
        }
        let f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(LogWriter {
            out: Some(std::io::BufWriter::with_capacity(1 << 16, f)),
        })
    }

    pub fn write(&mut self, stream: Stream, bytes: &[u8]) -> std::io::Result<()> {
        let Some(out) = &mut self.out else {
            return Ok(());
        };
        let line = serde_json::json!({
            "log": String::from_utf8_lossy(bytes),
            "stream": if stream == Stream::Stdout { "stdout" } else { "stderr" },
            "time": crate::timefmt::now_rfc3339(),
        });
        serde_json::to_writer(&mut *out, &line)?;
        out.write_all(b"\n")?;
        out.flush()
    }

    pub fn finish(&mut self) -> std::io::Result<()> {
        match &mut self.out {
            Some(out) => out.flush(),
            None => Ok(()),
        }
    }
}
