//! Reading the events file: the events of a time range, and following it
//! (`berth events` without `--until`) as berths append to it, across
//! rotations. Follow sleeps on inotify (the root directory) with a one
//! second timeout as the way out, like `logs -f`.

use std::collections::BTreeMap;
use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use anyhow::{Context, Result, bail};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::inotify::{self, CreateFlags, WatchFlags};

use super::{Event, MAX_LINE, path, rotated_path};
use crate::logs::now_nanos;

/// What one events file may hold when read: it is rotated at 1 MiB, and
/// only berths racing a rotation write past that.
const READ_CAP: u64 = 16 << 20;

/// Docker's event types (only container and image events happen here).
const TYPES: &[&str] = &[
    "builder",
    "config",
    "container",
    "daemon",
    "image",
    "network",
    "node",
    "plugin",
    "secret",
    "service",
    "volume",
];

/// `--filter`s of `events`: the same key twice matches either value
/// (`label` excepted: every one must match), different keys must all.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    by_key: BTreeMap<String, Vec<String>>,
}

impl Filter {
    /// `type=`, `event=`, `container=`, `image=`, `label=`, `scope=`.
    pub fn parse(args: &[String]) -> Result<Filter> {
        let mut by_key: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for a in args {
            let Some((k, v)) = a.split_once('=') else {
                bail!("bad format of filter (expected name=value)");
            };
            let k = k.trim().to_lowercase();
            match k.as_str() {
                "type" if !TYPES.contains(&v) => bail!("invalid filter 'type={v}'"),
                "scope" if v != "local" && v != "swarm" => bail!("invalid filter 'scope={v}'"),
                "type" | "event" | "container" | "image" | "label" | "scope" => {}
                _ => bail!("invalid filter '{k}'"),
            }
            by_key.entry(k).or_default().push(v.to_string());
        }
        Ok(Filter { by_key })
    }

    /// Whether key `k` is absent or some value of it satisfies `f`.
    fn any(&self, k: &str, f: impl Fn(&str) -> bool) -> bool {
        self.by_key.get(k).is_none_or(|vs| vs.iter().any(|v| f(v)))
    }

    pub fn matches(&self, e: &Event) -> bool {
        let attrs = &e.actor.attributes;
        let name = attrs.get("name").map_or("", String::as_str);
        // `exec_start: sh -c …` is an exec_start.
        let action = e.action.split(':').next().unwrap_or("");
        let image_name = match e.kind.as_str() {
            "image" => name,
            _ => attrs.get("image").map_or("", String::as_str),
        };
        let image_ok = |v: &str| {
            [e.actor.id.as_str(), image_name]
                .iter()
                .any(|s| !s.is_empty() && (*s == v || strip_tag(s) == v))
        };
        self.any("type", |v| v == e.kind)
            && self.any("scope", |v| v == e.scope)
            && self.any("event", |v| v == e.action || v == action)
            && self.any("container", |v| {
                e.kind == "container"
                    && (e.actor.id.starts_with(v) || (!name.is_empty() && name.starts_with(v)))
            })
            && self.any("image", image_ok)
            && self.by_key.get("label").is_none_or(|ls| {
                ls.iter().all(|l| match l.split_once('=') {
                    Some((k, v)) => attrs.get(k).is_some_and(|have| have == v),
                    None => attrs.contains_key(l),
                })
            })
    }
}

/// `busybox:latest` → `busybox`; `host:5000/x` stays as it is.
fn strip_tag(s: &str) -> &str {
    if s.contains('@') {
        return s;
    }
    let last = s.rfind('/').map_or(0, |i| i + 1);
    match s[last..].rfind(':') {
        Some(i) => &s[..last + i],
        None => s,
    }
}

/// Which events `berth events` shows: a time range (nanoseconds since the
/// epoch, both ends included) and the filters.
#[derive(Debug, Default, Clone)]
pub struct Query {
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub filter: Filter,
}

impl Query {
    fn wants(&self, e: &Event) -> bool {
        self.since.is_none_or(|s| e.time_nano >= s)
            && self.until.is_none_or(|u| e.time_nano <= u)
            && self.filter.matches(e)
    }

    /// Docker shows past events only when asked for a time range.
    fn wants_past(&self) -> bool {
        self.since.is_some() || self.until.is_some()
    }

    /// Whether new events are to be waited for: until `--until` passes.
    fn follows(&self) -> bool {
        self.until.is_none_or(|u| u > now_nanos())
    }
}

/// The recorded events `q` selects, oldest first.
pub fn past(root: &Path, q: &Query) -> Result<Vec<Event>> {
    let cur = File::open(path(root)).ok();
    let mut pos = 0;
    let mut out = Vec::new();
    read_past(root, cur.as_ref(), &mut pos, q, &mut out)?;
    Ok(out)
}

/// The events of the rotated file and of `cur` (read to its end, `pos`
/// left there), those `q` selects, sorted by time (a berth that wrote to
/// the old file just as another rotated it may have put a later event
/// there).
fn read_past(
    root: &Path,
    cur: Option<&File>,
    pos: &mut u64,
    q: &Query,
    out: &mut Vec<Event>,
) -> Result<()> {
    let cur_ino = cur.and_then(|f| f.metadata().ok()).map(|m| m.ino());
    let mut tail = Vec::new();
    if let Ok(old) = File::open(rotated_path(root))
        && old.metadata().ok().map(|m| m.ino()) != cur_ino
    {
        let mut p = 0;
        read_lines(&old, &mut p, &mut tail, &mut |e| {
            if q.wants(&e) {
                out.push(e);
            }
        })?;
        tail.clear();
    }
    if let Some(f) = cur {
        read_lines(f, pos, &mut tail, &mut |e| {
            if q.wants(&e) {
                out.push(e);
            }
        })?;
    }
    out.sort_by_key(|e| e.time_nano);
    Ok(())
}

/// Reads `f` from `pos` to its end (at most [`READ_CAP`] at a time),
/// handing each whole line's event to `each`; a line still being written
/// waits in `tail`. Lines that are not events are skipped.
fn read_lines(
    f: &File,
    pos: &mut u64,
    tail: &mut Vec<u8>,
    each: &mut dyn FnMut(Event),
) -> Result<bool> {
    let len = f.metadata().context("stat the events file")?.len();
    if len <= *pos {
        return Ok(false);
    }
    let want = (len - *pos).min(READ_CAP);
    let mut buf = vec![0u8; want as usize];
    let n = read_full_at(f, &mut buf, *pos)?;
    buf.truncate(n);
    *pos += n as u64;
    tail.extend_from_slice(&buf);
    let mut start = 0;
    while let Some(i) = memchr::memchr(b'\n', &tail[start..]) {
        let line = &tail[start..start + i];
        match serde_json::from_slice::<Event>(line) {
            Ok(e) => each(e),
            Err(e) => tracing::debug!("skip a line of the events file: {e}"),
        }
        start += i + 1;
    }
    tail.drain(..start);
    if tail.len() > 2 * MAX_LINE {
        // No line is that long: not an event.
        tail.clear();
    }
    Ok(n > 0)
}

fn read_full_at(f: &File, buf: &mut [u8], at: u64) -> Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], at + n as u64) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).context("read the events file"),
        }
    }
    Ok(n)
}

/// What the follower does with each event, and whether to go on.
pub enum Flow {
    Go,
    Stop,
}

/// `berth events`: the past events `q` asks for, then (unless `--until`
/// has passed) each new one as it is written, until `--until` passes,
/// `each` says stop, or `alive` (asked at least once a second) says the
/// reader has gone.
pub fn follow(
    root: &Path,
    q: &Query,
    each: &mut dyn FnMut(&Event) -> Flow,
    alive: &dyn Fn() -> bool,
) -> Result<()> {
    let watch = watch(root);
    let p = path(root);
    let mut cur = File::open(&p).ok();
    let mut pos = 0;
    let mut past_events = Vec::new();
    if q.wants_past() {
        read_past(root, cur.as_ref(), &mut pos, q, &mut past_events)?;
    } else {
        pos = cur
            .as_ref()
            .and_then(|f| f.metadata().ok())
            .map_or(0, |m| m.len());
    }
    for e in &past_events {
        if let Flow::Stop = each(e) {
            return Ok(());
        }
    }
    drop(past_events);
    let mut tail = Vec::new();
    let stop = std::cell::Cell::new(false);
    let mut pass = |e: Event| {
        if !stop.get() && q.wants(&e) && matches!(each(&e), Flow::Stop) {
            stop.set(true);
        }
    };
    while q.follows() && alive() {
        let mut any = false;
        if let Some(f) = &cur {
            any |= read_lines(f, &mut pos, &mut tail, &mut pass)?;
        }
        let ino = std::fs::metadata(&p).ok().map(|m| m.ino());
        if ino.is_some()
            && ino
                != cur
                    .as_ref()
                    .and_then(|f| f.metadata().ok())
                    .map(|m| m.ino())
        {
            // Rotated (or made at last): the old file has had all it gets.
            if let Some(f) = &cur {
                read_lines(f, &mut pos, &mut tail, &mut pass)?;
            }
            tail.clear();
            cur = File::open(&p).ok();
            pos = 0;
            any = true;
        }
        if stop.get() {
            return Ok(());
        }
        if !any {
            wait(watch.as_ref());
        }
    }
    Ok(())
}

/// An inotify watch on the root (where the events file is written,
/// rotated, made); None (its limits reached): follow polls.
fn watch(root: &Path) -> Option<OwnedFd> {
    let fd = inotify::init(CreateFlags::CLOEXEC | CreateFlags::NONBLOCK).ok()?;
    let what = WatchFlags::MODIFY | WatchFlags::CREATE | WatchFlags::MOVED_TO;
    inotify::add_watch(&fd, root, what).ok()?;
    Some(fd)
}

/// Until something happens in the root, one second at most (a tenth
/// without inotify).
fn wait(watch: Option<&OwnedFd>) {
    let Some(fd) = watch else {
        std::thread::sleep(std::time::Duration::from_millis(100));
        return;
    };
    let mut fds = [PollFd::new(fd, PollFlags::IN)];
    let second = Timespec {
        tv_sec: 1,
        tv_nsec: 0,
    };
    let _ = rustix::event::poll(&mut fds, Some(&second));
    // Which file changed does not matter: the next read looks.
    let mut buf = [0u8; 4096];
    while let Ok(n) = rustix::io::read(fd, &mut buf) {
        if n == 0 {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{Event, emit};

    fn ev(kind: &str, action: &str, id: &str, attrs: &[(&str, &str)]) -> Event {
        let a = attrs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Event::new(kind, action, id, a)
    }

    fn f(args: &[&str]) -> Filter {
        Filter::parse(&args.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn filters_like_docker() {
        let start = ev(
            "container",
            "start",
            "abcdef",
            &[("name", "web"), ("image", "busybox:latest"), ("app", "x")],
        );
        let exec = ev(
            "container",
            "exec_start: sh -c true",
            "abcdef",
            &[("name", "web")],
        );
        let pull = ev("image", "pull", "busybox:latest", &[("name", "busybox")]);
        assert!(f(&[]).matches(&start));
        assert!(f(&["type=container"]).matches(&start));
        assert!(!f(&["type=image"]).matches(&start));
        assert!(f(&["type=image", "type=container"]).matches(&start));
        assert!(f(&["event=exec_start"]).matches(&exec));
        assert!(!f(&["event=exec_die"]).matches(&exec));
        assert!(f(&["container=web"]).matches(&start));
        assert!(f(&["container=abc"]).matches(&start));
        assert!(!f(&["container=db"]).matches(&start));
        assert!(!f(&["container=busybox"]).matches(&pull));
        assert!(f(&["image=busybox"]).matches(&start));
        assert!(f(&["image=busybox:latest"]).matches(&pull));
        assert!(f(&["image=busybox"]).matches(&pull));
        assert!(f(&["label=app"]).matches(&start));
        assert!(f(&["label=app=x"]).matches(&start));
        assert!(!f(&["label=app=x", "label=other"]).matches(&start));
        assert!(!f(&["event=start", "type=image"]).matches(&start));
        for bad in ["colour=red", "type=boat", "nonsense"] {
            assert!(Filter::parse(&[bad.to_string()]).is_err(), "{bad}");
        }
        assert_eq!(
            strip_tag("127.0.0.1:5500/busybox:latest"),
            "127.0.0.1:5500/busybox"
        );
        assert_eq!(
            strip_tag("127.0.0.1:5500/busybox"),
            "127.0.0.1:5500/busybox"
        );
    }

    #[test]
    fn past_reads_both_files_in_time_order_and_range() {
        let dir = tempfile::tempdir().unwrap();
        let mut a = ev("container", "create", "a", &[]);
        a.time_nano = 10;
        let mut b = ev("container", "start", "a", &[]);
        b.time_nano = 20;
        let mut c = ev("container", "die", "a", &[]);
        c.time_nano = 30;
        emit(dir.path(), &b);
        std::fs::rename(path(dir.path()), rotated_path(dir.path())).unwrap();
        emit(dir.path(), &c);
        emit(dir.path(), &a);
        // Not an event: skipped.
        std::fs::OpenOptions::new()
            .append(true)
            .open(path(dir.path()))
            .and_then(|mut f| std::io::Write::write_all(&mut f, b"garbage\n"))
            .unwrap();
        let all = past(dir.path(), &Query::default()).unwrap();
        let actions: Vec<_> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!(actions, ["create", "start", "die"]);
        let q = Query {
            since: Some(15),
            until: Some(25),
            ..Query::default()
        };
        assert_eq!(past(dir.path(), &q).unwrap(), vec![b]);
    }
}
