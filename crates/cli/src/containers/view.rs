//! What `ps` and `inspect` say of a container record, Docker's way: its
//! state (`running`, `paused`…), its status (`Up 3 seconds`, `Exited (0)
//! 2 minutes ago`), its command (`"sh -c 'echo hi'"`).

use berth_engine::records::{ContainerRecord, Status};
use berth_engine::timefmt;

/// Docker's exit code for a container that died while nobody watched it
/// (its daemon down; here, the berth that ran it).
const UNKNOWN_EXIT: i32 = 255;

/// Docker's State.Status: created, running, paused, restarting, exited.
pub fn state(c: &ContainerRecord) -> &'static str {
    if c.restarting && c.supervisor_alive() {
        return "restarting";
    }
    if c.is_running() {
        return if c.paused { "paused" } else { "running" };
    }
    match c.status {
        Status::Created => "created",
        _ if c.started.is_none() => "created",
        _ => "exited",
    }
}

/// The exit code Docker would show: the recorded one, 255 for a container
/// whose berth died before it could record one.
pub fn exit_code(c: &ContainerRecord) -> i32 {
    match c.exit_code {
        Some(code) => code,
        None if c.status == Status::Running && !c.is_running() => UNKNOWN_EXIT,
        None => 0,
    }
}

/// Docker's STATUS column (its State.String()), `now_ms` being now.
pub fn status(c: &ContainerRecord, now_ms: i64) -> String {
    let ago = |ts: Option<&str>| {
        let t = ts.and_then(timefmt::parse_rfc3339_ms);
        timefmt::human_duration_ms(t.map_or(0, |t| now_ms - t))
    };
    let started = c.started.as_deref().or(Some(c.created.as_str()));
    let finished = c.finished.as_deref().or(started);
    match state(c) {
        "restarting" => format!("Restarting ({}) {} ago", exit_code(c), ago(finished)),
        "paused" => format!("Up {} (Paused)", ago(started)),
        "running" => match health(c) {
            "none" => format!("Up {}", ago(started)),
            "starting" => format!("Up {} (health: starting)", ago(started)),
            h => format!("Up {} ({h})", ago(started)),
        },
        "created" => "Created".into(),
        _ => format!("Exited ({}) {} ago", exit_code(c), ago(finished)),
    }
}

/// Docker's health of a container: `none` without a healthcheck (or
/// before its monitor first started it), else its State.Health.Status.
pub fn health(c: &ContainerRecord) -> &'static str {
    match (&c.healthcheck, &c.health) {
        (Some(hc), Some(h)) if hc.active() => h.status.as_str(),
        _ => "none",
    }
}

/// The daemon's Command of a container: its path and arguments, each
/// argument with a space in single quotes (`sh -c 'echo hi'`).
pub fn command(c: &ContainerRecord) -> String {
    let mut out = c.command.first().cloned().unwrap_or_default();
    for a in c.command.iter().skip(1) {
        out.push(' ');
        if a.contains(' ') {
            out.push('\'');
            out.push_str(a);
            out.push('\'');
        } else {
            out.push_str(a);
        }
    }
    out
}

/// ps's COMMAND: Go's strconv.Quote of [`command`], cut to 20 characters
/// with `…` unless `no_trunc`.
pub fn command_column(c: &ContainerRecord, no_trunc: bool) -> String {
    let cmd = command(c);
    go_quote(&if no_trunc { cmd } else { ellipsis(&cmd, 20) })
}

/// The docker CLI's Ellipsis: at most `max` characters, the last one `…`
/// when cut.
pub fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Go's strconv.Quote: double quotes, `\"` and `\\`, control characters
/// escaped, printable Unicode as is.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in s.chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32))
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's time.Time String() of an RFC 3339 timestamp, in UTC, to the
/// second, as ps's CreatedAt shows it: `2024-01-02 15:04:05 +0000 UTC`.
pub fn go_time(ts: &str) -> String {
    match timefmt::parse_rfc3339(ts) {
        Some(secs) => {
            let s = timefmt::format_unix(secs, 0);
            format!("{} {} +0000 UTC", &s[..10], &s[11..19])
        }
        None => String::new(),
    }
}

#[cfg(test)]
pub mod tests {
    use super::*;

    /// A record made by hand, `secs_ago` seconds old at [`NOW`].
    pub fn record(name: &str, status: Status, secs_ago: i64) -> ContainerRecord {
        let at = |s: i64| timefmt::format_unix(NOW / 1000 - s, 0);
        ContainerRecord {
            id: format!(
                "{:0<64}",
                name.bytes().map(|b| format!("{b:02x}")).collect::<String>()
            ),
            name: name.into(),
            image: "busybox".into(),
            image_id: format!("sha256:{}", "ab".repeat(32)),
            command: vec!["sh".into(), "-c".into(), "echo hi".into()],
            created: at(secs_ago),
            started: (status != Status::Created).then(|| at(secs_ago)),
            finished: (status == Status::Exited).then(|| at(secs_ago / 2)),
            status,
            exit_code: (status == Status::Exited).then_some(3),
            labels: [("app".to_string(), "web".to_string())].into(),
            ..Default::default()
        }
    }

    pub const NOW: i64 = 1_700_000_000_000;

    /// This process as a container's live supervisor: the record runs.
    pub fn alive(c: &mut ContainerRecord) {
        let me = std::process::id() as i32;
        c.status = Status::Running;
        c.supervisor = Some((me, berth_linux::stat::start_time(me).unwrap()));
    }

    #[test]
    fn status_strings_are_dockers() {
        let c = record("a", Status::Created, 10);
        assert_eq!(
            (state(&c), status(&c, NOW).as_str()),
            ("created", "Created")
        );
        let c = record("b", Status::Exited, 240);
        assert_eq!(state(&c), "exited");
        assert_eq!(status(&c, NOW), "Exited (3) 2 minutes ago");
        let mut c = record("c", Status::Running, 3);
        alive(&mut c);
        assert_eq!(
            (state(&c), status(&c, NOW).as_str()),
            ("running", "Up 3 seconds")
        );
        assert_eq!(status(&c, NOW - 2500), "Up Less than a second");
        assert_eq!(status(&c, NOW + 60_000), "Up About a minute");
        assert_eq!(status(&c, NOW + 2 * 3_600_000), "Up 2 hours");
        c.healthcheck = Some(berth_engine::health::Healthcheck {
            test: vec!["CMD".into(), "true".into()],
            ..Default::default()
        });
        assert_eq!(status(&c, NOW), "Up 3 seconds");
        c.health = Some(Default::default());
        assert_eq!(status(&c, NOW), "Up 3 seconds (health: starting)");
        c.health = Some(berth_engine::health::Health {
            status: berth_engine::health::HealthStatus::Unhealthy,
            ..Default::default()
        });
        assert_eq!(status(&c, NOW), "Up 3 seconds (unhealthy)");
        assert_eq!(health(&c), "unhealthy");
        c.healthcheck.as_mut().unwrap().test = vec!["NONE".into()];
        assert_eq!(
            (status(&c, NOW).as_str(), health(&c)),
            ("Up 3 seconds", "none")
        );
        c.healthcheck = None;
        c.paused = true;
        assert_eq!(
            (state(&c), status(&c, NOW).as_str()),
            ("paused", "Up 3 seconds (Paused)")
        );
        c.paused = false;
        c.restarting = true;
        c.exit_code = Some(1);
        c.finished = Some(timefmt::format_unix(NOW / 1000 - 5, 0));
        assert_eq!(
            (state(&c), status(&c, NOW).as_str()),
            ("restarting", "Restarting (1) 5 seconds ago")
        );
        // Recorded running, but its berth is gone: exited, code unknown.
        let mut c = record("d", Status::Running, 60);
        c.supervisor = Some((i32::MAX - 1, 1));
        assert_eq!(state(&c), "exited");
        assert_eq!(status(&c, NOW), "Exited (255) About a minute ago");
    }

    #[test]
    fn command_is_quoted_and_cut_as_docker_does() {
        let mut c = record("a", Status::Created, 1);
        assert_eq!(command(&c), "sh -c 'echo hi'");
        assert_eq!(command_column(&c, false), "\"sh -c 'echo hi'\"");
        c.command = vec![
            "sh".into(),
            "-c".into(),
            "while true; do sleep 1; done".into(),
        ];
        assert_eq!(command_column(&c, false), "\"sh -c 'while true; …\"");
        assert_eq!(
            command_column(&c, true),
            "\"sh -c 'while true; do sleep 1; done'\""
        );
        c.command = vec!["echo".into(), "a\"b\\c\td".into()];
        assert_eq!(command_column(&c, true), r#""echo a\"b\\c\td""#);
        assert_eq!(
            go_time("2023-11-14T22:13:20.123Z"),
            "2023-11-14 22:13:20 +0000 UTC"
        );
    }
}
