//! `berth events`: Docker's output of the engine's events
//! ([`berth_engine::events`]): `TIME TYPE ACTION ID (ATTRS)` lines, one JSON
//! object a line (`--format json`), or a Go template per event.

use std::io::Write;
use std::os::fd::AsFd;

use anyhow::{Result, anyhow};
use berth_engine::Engine;
use berth_engine::events::read::{Filter, Flow, Query, follow};
use berth_engine::events::{Event, read};
use berth_engine::logs::{now_nanos, parse_bound};
use serde_json::{Value, json};

use crate::cli::EventsArgs;
use crate::template::{Options, Template};

/// How each event is printed.
enum Out {
    Default,
    Json,
    Template(Template),
}

pub fn events(engine: &Engine, args: &EventsArgs) -> Result<u8> {
    let now = now_nanos();
    // `now` is berth's shorthand for `0s`.
    let bound = |flag: &str, s: &str| match s {
        "now" => Ok(now),
        s => parse_bound(flag, s, now),
    };
    let since = args
        .since
        .as_deref()
        .map(|s| bound("since", s))
        .transpose()?;
    let until = args
        .until
        .as_deref()
        .map(|s| bound("until", s))
        .transpose()?;
    let q = Query {
        since,
        until,
        filter: Filter::parse(&args.filter)?,
    };
    let out = match args.format.as_deref().map(str::trim) {
        None | Some("") => Out::Default,
        Some("json" | "{{json .}}") => Out::Json,
        Some(t) => Out::Template(
            Template::parse(&t.replace("\\t", "\t").replace("\\n", "\n"))
                .map_err(|e| anyhow!("template parsing error: {e}"))?,
        ),
    };
    let mut failed = None;
    let mut each = |e: &Event| {
        let line = match render(&out, e) {
            Ok(l) => l,
            Err(err) => {
                failed = Some(err);
                return Flow::Stop;
            }
        };
        let mut o = std::io::stdout().lock();
        // A reader gone (`berth events | head -1`) ends the follow.
        match o.write_all(line.as_bytes()).and_then(|()| o.flush()) {
            Ok(()) => Flow::Go,
            Err(_) => Flow::Stop,
        }
    };
    if until.is_some_and(|u| u <= now) {
        for e in read::past(&engine.root, &q)? {
            if let Flow::Stop = each(&e) {
                break;
            }
        }
    } else {
        follow(&engine.root, &q, &mut each, &stdout_open)?;
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(0),
    }
}

/// Whether stdout still has a reader: a pipe whose reader closed polls
/// as an error, though nothing was written yet.
fn stdout_open() -> bool {
    use rustix::event::{PollFd, PollFlags, Timespec};
    let out = std::io::stdout();
    let fd = out.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::empty())];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    match rustix::event::poll(&mut fds, Some(&zero)) {
        Ok(_) => !fds[0].revents().intersects(PollFlags::ERR | PollFlags::HUP),
        Err(_) => true,
    }
}

fn render(out: &Out, e: &Event) -> Result<String> {
    Ok(match out {
        Out::Default => default_line(e),
        Out::Json => format!("{}\n", serde_json::to_string(e)?),
        Out::Template(t) => {
            let opts = Options {
                strict: Some("events.Message"),
                methods: None,
            };
            format!("{}\n", t.execute(&go_fields(e), &opts)?)
        }
    })
}

/// Docker's default line: `2026-11-30T23:59:59.123456789Z container start
/// ID (image=busybox, name=web)`, attributes sorted by name.
fn default_line(e: &Event) -> String {
    const NANOS: i64 = 1_000_000_000;
    let time = berth_engine::timefmt::format_unix(
        e.time_nano.div_euclid(NANOS),
        e.time_nano.rem_euclid(NANOS) as u32,
    );
    let mut line = format!("{time} {} {} {}", e.kind, e.action, e.actor.id);
    if !e.actor.attributes.is_empty() {
        let attrs: Vec<String> = e
            .actor
            .attributes
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        line.push_str(&format!(" ({})", attrs.join(", ")));
    }
    line.push('\n');
    line
}

/// The event as a template sees it: the Go struct's field names
/// (`{{.Status}}`, `{{.ID}}`, `{{.TimeNano}}`), not its JSON names.
fn go_fields(e: &Event) -> Value {
    json!({
        "Status": e.status.clone().unwrap_or_default(),
        "ID": e.id.clone().unwrap_or_default(),
        "From": e.from.clone().unwrap_or_default(),
        "Type": e.kind,
        "Action": e.action,
        "Actor": {"ID": e.actor.id, "Attributes": e.actor.attributes},
        "Scope": e.scope,
        "Time": e.time,
        "TimeNano": e.time_nano,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_line_is_dockers() {
        let mut e = Event::image("pull", "busybox:latest", "busybox");
        e.time_nano = 1_700_000_000_123_456_789;
        assert_eq!(
            default_line(&e),
            "2023-11-14T22:13:20.123456789Z image pull busybox:latest (name=busybox)\n"
        );
        let t = Template::parse("{{.Type}} {{.Action}} {{.Actor.Attributes.name}}").unwrap();
        assert_eq!(
            render(&Out::Template(t), &e).unwrap(),
            "image pull busybox\n"
        );
        let t = Template::parse("{{.Nope}}").unwrap();
        assert!(render(&Out::Template(t), &e).is_err());
    }
}
