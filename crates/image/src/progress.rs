//! Pull and push progress on stdout, as Docker prints it: per-layer bars on a terminal,
//! one line per layer event otherwise, nothing in quiet mode.

use std::collections::HashMap;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::digest::Digest;

/// How to report progress.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum ProgressMode {
    /// Bars if stdout is a terminal, else lines.
    #[default]
    Auto,
    /// Per-layer bars.
    Bars,
    /// One line per event.
    Lines,
    /// Nothing.
    Quiet,
}

/// Progress sink shared by the pull's threads.
pub struct Progress {
    mode: ProgressMode,
    multi: Option<MultiProgress>,
    bars: Mutex<HashMap<Digest, ProgressBar>>,
    out: Mutex<Box<dyn Write + Send>>,
}

impl Progress {
    /// Progress to stdout.
    pub fn new(mode: ProgressMode) -> Self {
        let mode = match mode {
            ProgressMode::Auto if std::io::stdout().is_terminal() => ProgressMode::Bars,
            ProgressMode::Auto => ProgressMode::Lines,
            m => m,
        };
        Self::with_writer(mode, Box::new(std::io::stdout()))
    }

    /// Progress to any writer (lines mode; used by tests).
    pub fn with_writer(mode: ProgressMode, out: Box<dyn Write + Send>) -> Self {
        let multi = (mode == ProgressMode::Bars)
            .then(|| MultiProgress::with_draw_target(ProgressDrawTarget::stdout()));
        Progress {
            mode,
            multi,
            bars: Mutex::new(HashMap::new()),
            out: Mutex::new(out),
        }
    }

    /// A quiet sink.
    pub fn quiet() -> Self {
        Self::with_writer(ProgressMode::Quiet, Box::new(std::io::sink()))
    }

    /// A status line (`latest: Pulling from library/busybox`, `Digest: …`).
    pub fn status(&self, line: &str) {
        match (&self.mode, &self.multi) {
            (ProgressMode::Quiet, _) => {}
            (_, Some(m)) => {
                let _ = m.println(line);
            }
            _ => {
                let mut o = self.out.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(o, "{line}");
                let _ = o.flush();
            }
        }
    }

    pub(crate) fn layer_event(&self, d: &Digest, what: &str) {
        if let Some(b) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).get(d) {
            b.set_message(what.to_string());
            return;
        }
        self.status(&format!("{}: {what}", d.short()));
    }

    pub(crate) fn layer_start(&self, d: &Digest, size: u64) {
        if !self.layer_bar(d, size, "Downloading") {
            self.layer_event(d, &format!("Downloading {}", human(size)));
        }
    }

    /// A bar for layer `d` of `size` bytes, labelled `what`, on a terminal;
    /// false (and nothing shown) when lines are printed instead.
    pub(crate) fn layer_bar(&self, d: &Digest, size: u64, what: &str) -> bool {
        if let Some(m) = &self.multi {
            let b = m.add(ProgressBar::new(size));
            b.set_style(
                ProgressStyle::with_template(
                    "{prefix}: {msg:12} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            b.set_prefix(d.short().to_string());
            b.set_message(what.to_string());
            self.bars
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(d.clone(), b);
            true
        } else {
            false
        }
    }

    pub(crate) fn layer_bytes(&self, d: &Digest, n: u64) {
        if let Some(b) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).get(d) {
            b.inc(n);
        }
    }

    pub(crate) fn layer_retry(&self, d: &Digest, why: &str) {
        if let Some(b) = self.bars.lock().unwrap_or_else(|e| e.into_inner()).get(d) {
            b.set_position(0);
        }
        self.layer_event(d, &format!("Retrying ({why})"));
    }

    pub(crate) fn layer_done(&self, d: &Digest, what: &str) {
        if let Some(b) = self
            .bars
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(d)
        {
            b.set_message(what.to_string());
            b.finish();
            return;
        }
        self.layer_event(d, what);
    }
}

/// `12.3 MB`, as Docker counts (powers of 1000).
pub fn human(n: u64) -> String {
    let units = ["B", "kB", "MB", "GB", "TB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1000.0 && u < units.len() - 1 {
        v /= 1000.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", units[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes() {
        assert_eq!(human(999), "999 B");
        assert_eq!(human(12_300_000), "12.3 MB");
        assert_eq!(human(1000), "1.0 kB");
    }
}
