//! A build's progress, as BuildKit's `--progress` shows it.
//!
//! - plain: one line per event, `#N [2/4] RUN …`, `#N DONE 0.3s`,
//!   `#N CACHED`, and each line a RUN writes (stdout or stderr) as
//!   `#N 0.123 line`: seconds since its step began, as BuildKit's plain
//!   output has them since v0.11.
//! - tty: a live view at the bottom of a terminal: the running step's
//!   header, its timer and its last [`LIVE`] lines, redrawn in place (the
//!   cursor moved up over it, the screen below it erased); a finished step
//!   leaves its header and `#N DONE 0.3s` (or `CACHED`, `ERROR`) behind.
//!
//! A failed RUN shows, after its `#N ERROR: …`, the last [`TAIL`] lines of
//! its output between BuildKit's `------` rules, in both modes.
//!
//! Memory is bounded whatever a RUN writes: a line is cut into pieces of
//! [`MAX_LINE`] bytes, and only the last [`TAIL`] lines are kept.

use std::collections::VecDeque;
use std::io::Write;
use std::time::{Duration, Instant};

/// How progress is shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProgressMode {
    /// BuildKit's `--progress=plain`.
    #[default]
    Plain,
    /// A live view on a terminal `width` columns wide.
    Tty { width: usize },
}

/// The longest line shown whole; a longer one is shown in pieces.
const MAX_LINE: usize = 64 * 1024;
/// The lines of a failed RUN shown after its error.
const TAIL: usize = 10;
/// The lines of a running step the live view shows.
const LIVE: usize = 6;
/// How often the live view is redrawn at most (its timer ticks with it).
const TICK: Duration = Duration::from_millis(100);

/// Where a build's progress goes; the running RUN's output comes in as
/// an [`OutputTap`](berth_runtime::OutputTap).
pub(super) struct Printer<'a> {
    out: &'a mut dyn Write,
    mode: ProgressMode,
    /// The `#N` of the last step begun.
    pub(super) shown: usize,
    step: Option<Step>,
    /// Lines of the live view on the screen (tty).
    drawn: usize,
    last_draw: Instant,
}

/// The step running.
struct Step {
    n: usize,
    /// `[2/4] RUN false`.
    header: String,
    started: Instant,
    /// Each stream's (stdout, stderr) last line while it is incomplete.
    partial: [Vec<u8>; 2],
    /// The last lines, with their seconds since `started`.
    tail: VecDeque<(f64, String)>,
}

impl<'a> Printer<'a> {
    pub(super) fn new(out: &'a mut dyn Write, mode: ProgressMode) -> Printer<'a> {
        Printer {
            out,
            mode,
            shown: 0,
            step: None,
            drawn: 0,
            last_draw: Instant::now(),
        }
    }

    /// A line of the last step begun, not ending it: `#N text`.
    pub(super) fn say(&mut self, text: &str) {
        self.erase();
        let _ = writeln!(self.out, "#{} {text}", self.shown);
        self.draw();
    }

    /// A new step, `#N header`; its start.
    pub(super) fn begin(&mut self, header: &str) -> Instant {
        self.close();
        self.shown += 1;
        let started = Instant::now();
        self.step = Some(Step {
            n: self.shown,
            header: header.to_string(),
            started,
            partial: [Vec::new(), Vec::new()],
            tail: VecDeque::new(),
        });
        if self.mode == ProgressMode::Plain {
            let _ = writeln!(self.out, "#{} {header}", self.shown);
        }
        self.draw();
        started
    }

    /// The step running ends: `#N status` (`DONE 0.3s`, `CACHED`).
    pub(super) fn end(&mut self, status: &str) {
        let Some(step) = self.finish_step() else {
            return;
        };
        let _ = writeln!(self.out, "#{} {status}", step.n);
        let _ = self.out.flush();
    }

    /// The step running failed: `#N ERROR: why`, then its last lines
    /// in BuildKit's block.
    pub(super) fn fail(&mut self, why: &str) {
        let Some(step) = self.finish_step() else {
            return;
        };
        let mut text = format!("#{} ERROR: {why}\n------\n > {}:\n", step.n, step.header);
        for (t, line) in &step.tail {
            text.push_str(&format!("{t:.3} {line}\n"));
        }
        text.push_str("------\n");
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
    }

    /// The step running, its last lines out and (tty) its live view
    /// replaced by its header.
    fn finish_step(&mut self) -> Option<Step> {
        for i in 0..2 {
            if self.step.as_ref().is_some_and(|s| !s.partial[i].is_empty()) {
                self.line(i);
            }
        }
        self.erase();
        let step = self.step.take()?;
        if self.mode != ProgressMode::Plain {
            let _ = writeln!(self.out, "#{} {}", step.n, step.header);
        }
        Some(step)
    }

    /// A step left running (its build failed in berth, not in the RUN):
    /// its last lines out, its header left on the screen.
    fn close(&mut self) {
        if self.step.is_some() {
            self.finish_step();
            let _ = self.out.flush();
        }
    }

    /// Stream `i`'s line, complete or cut.
    fn line(&mut self, i: usize) {
        let Some(step) = self.step.as_mut() else {
            return;
        };
        let raw = std::mem::take(&mut step.partial[i]);
        let raw = raw.strip_suffix(b"\r").unwrap_or(&raw);
        let text = String::from_utf8_lossy(raw).into_owned();
        let t = step.started.elapsed().as_secs_f64();
        if self.mode == ProgressMode::Plain {
            let _ = writeln!(self.out, "#{} {t:.3} {text}", step.n);
        }
        if step.tail.len() == TAIL {
            step.tail.pop_front();
        }
        step.tail.push_back((t, text));
    }

    /// Moves the cursor up over the live view and erases it (tty).
    fn erase(&mut self) {
        if self.drawn > 0 {
            let _ = write!(self.out, "\x1b[{}A\r\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    /// Draws the live view of the step running (tty): each line cut to
    /// the width, so that none wraps and the count to move up over holds.
    fn draw(&mut self) {
        let ProgressMode::Tty { width } = self.mode else {
            let _ = self.out.flush();
            return;
        };
        let Some(step) = self.step.as_mut() else {
            let _ = self.out.flush();
            return;
        };
        let fit = width.saturating_sub(1).max(20);
        let secs = step.started.elapsed().as_secs_f64();
        let header = format!("#{} {}", step.n, step.header);
        let mut lines = vec![format!("{} {secs:.1}s", cut(&header, fit - 7))];
        let skip = step.tail.len().saturating_sub(LIVE);
        for (t, line) in step.tail.iter().skip(skip) {
            lines.push(cut(&format!("#{} {t:.3} {line}", step.n), fit));
        }
        let mut text = String::new();
        for l in &lines {
            text.push_str(l);
            text.push('\n');
        }
        let _ = self.out.write_all(text.as_bytes());
        let _ = self.out.flush();
        self.drawn = lines.len();
        self.last_draw = Instant::now();
    }
}

impl berth_runtime::OutputTap for Printer<'_> {
    fn output(&mut self, fd: u8, mut bytes: &[u8]) {
        let i = usize::from(fd == 2);
        while !bytes.is_empty() {
            let Some(step) = self.step.as_mut() else {
                return;
            };
            let partial = &mut step.partial[i];
            let room = MAX_LINE - partial.len();
            match memchr::memchr(b'\n', bytes) {
                Some(p) if p <= room => {
                    partial.extend_from_slice(&bytes[..p]);
                    bytes = &bytes[p + 1..];
                    self.line(i);
                }
                _ => {
                    let k = bytes.len().min(room);
                    partial.extend_from_slice(&bytes[..k]);
                    bytes = &bytes[k..];
                    if partial.len() == MAX_LINE {
                        self.line(i);
                    }
                }
            }
        }
    }

    fn idle(&mut self) {
        match self.mode {
            ProgressMode::Plain => {
                let _ = self.out.flush();
            }
            ProgressMode::Tty { .. } => {
                if self.last_draw.elapsed() >= TICK {
                    self.erase();
                    self.draw();
                }
            }
        }
    }

    fn alone(&self) -> bool {
        true
    }

    fn tick(&self) -> Option<Duration> {
        match self.mode {
            ProgressMode::Plain => None,
            ProgressMode::Tty { .. } => Some(TICK),
        }
    }
}

impl Drop for Printer<'_> {
    fn drop(&mut self) {
        self.close();
    }
}

/// `text` without control characters and escape sequences (a RUN's own
/// colours and cursor movements would break the live view), cut to
/// `width` characters.
fn cut(text: &str, width: usize) -> String {
    let mut kept = String::new();
    let mut n = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let c = match c {
            // CSI: parameters up to a final byte in @..~; else ESC and
            // the one character after it (`ESC (B`: its intermediate too).
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
                continue;
            }
            '\x1b' => {
                while chars.next().is_some_and(|c| (' '..='/').contains(&c)) {}
                continue;
            }
            '\t' => ' ',
            c if c.is_control() => continue,
            c => c,
        };
        kept.push(c);
        n += 1;
        if n > width {
            break;
        }
    }
    if n > width {
        kept = kept.chars().take(width.saturating_sub(1)).collect();
        kept.push('…');
    }
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_runtime::OutputTap;

    /// What `f` prints, each time (`0.123`, `0.1s`) as `T`: they vary.
    fn shown(mode: ProgressMode, f: impl FnOnce(&mut Printer<'_>)) -> String {
        let mut out = Vec::new();
        f(&mut Printer::new(&mut out, mode));
        let text = String::from_utf8(out).unwrap();
        let time = |w: &str| {
            let w = w.strip_suffix('s').unwrap_or(w);
            w.split_once('.').is_some_and(|(a, b)| {
                [a, b]
                    .iter()
                    .all(|d| !d.is_empty() && d.bytes().all(|c| c.is_ascii_digit()))
            })
        };
        let lines: Vec<String> = text
            .split('\n')
            .map(|l| {
                let words: Vec<&str> = l
                    .split(' ')
                    .map(|w| if time(w) { "T" } else { w })
                    .collect();
                words.join(" ")
            })
            .collect();
        lines.join("\n")
    }

    #[test]
    fn plain_lines_per_stream_and_partial_last_lines() {
        let text = shown(ProgressMode::Plain, |p| {
            p.begin("[2/2] RUN x");
            p.output(1, b"a\nb");
            p.output(2, b"e1\n\ne");
            p.output(1, b"c\r\n");
            p.end("DONE 0.1s");
        });
        assert_eq!(
            text,
            "#1 [2/2] RUN x\n#1 T a\n#1 T e1\n#1 T \n#1 T bc\n#1 T e\n#1 DONE T\n"
        );
    }

    #[test]
    fn a_long_line_comes_in_pieces() {
        let mut out = Vec::new();
        let mut p = Printer::new(&mut out, ProgressMode::Plain);
        p.begin("[2/2] RUN x");
        let long = vec![b'a'; MAX_LINE * 2 + 10];
        for chunk in long.chunks(1000) {
            p.output(1, chunk);
        }
        p.output(1, b"\n");
        p.end("DONE");
        drop(p);
        let text = String::from_utf8(out).unwrap();
        let pieces: Vec<usize> = text
            .lines()
            .filter(|l| l.ends_with('a'))
            .map(|l| l.rsplit(' ').next().unwrap().len())
            .collect();
        assert_eq!(pieces, [MAX_LINE, MAX_LINE, 10]);
    }

    #[test]
    fn a_failure_shows_the_last_lines() {
        let text = shown(ProgressMode::Plain, |p| {
            p.begin("[2/2] RUN x");
            for i in 0..15 {
                p.output(1, format!("l{i}\n").as_bytes());
            }
            p.fail("exit code: 1");
        });
        let block: Vec<&str> = text
            .split("#1 ERROR: exit code: 1\n")
            .nth(1)
            .unwrap()
            .lines()
            .collect();
        let want: Vec<String> = ["------", " > [2/2] RUN x:"]
            .into_iter()
            .map(String::from)
            .chain((5..15).map(|i| format!("T l{i}")))
            .chain(["------".to_string()])
            .collect();
        assert_eq!(block, want);
    }

    #[test]
    fn tty_redraws_in_place_and_leaves_the_finished_step() {
        let text = shown(ProgressMode::Tty { width: 40 }, |p| {
            p.begin("[1/2] FROM x");
            p.end("DONE 0.0s");
            p.begin("[2/2] RUN x");
            for i in 0..8 {
                p.output(1, format!("l{i}\x1b[2J!\n").as_bytes());
            }
            p.erase();
            p.draw();
            p.end("DONE 0.2s");
            p.say("writing image done");
        });
        // Each step drawn, moved up over and erased; the running step's
        // last 6 lines, control characters out; then the finished lines.
        assert_eq!(
            text,
            "#1 [1/2] FROM x T\n\x1b[1A\r\x1b[J#1 [1/2] FROM x\n#1 DONE T\n\
             #2 [2/2] RUN x T\n\x1b[1A\r\x1b[J#2 [2/2] RUN x T\n\
             #2 T l2!\n#2 T l3!\n#2 T l4!\n#2 T l5!\n#2 T l6!\n#2 T l7!\n\
             \x1b[7A\r\x1b[J#2 [2/2] RUN x\n#2 DONE T\n#2 writing image done\n"
        );
    }

    #[test]
    fn cut_fits_the_width() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("ab\tc\x07", 4), "ab c");
        assert_eq!(cut("\x1b[1;31mred\x1b[0m\x1b(B!", 9), "red!");
        assert_eq!(cut("\x1b[1;31mred\x1b[0m!", 4), "red!");
    }
}
