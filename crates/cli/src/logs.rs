//! `berth logs`: a container's log read back, as `docker logs` shows it.

use anyhow::{Result, anyhow};
use berth_engine::Engine;
use berth_engine::logs::{ReadOptions, parse_bound, show};
use berth_io::errln;

use crate::cli::LogsArgs;

/// Docker's exit code for a `logs` that fails (the daemon's errors).
const FAILED: u8 = 1;

pub fn logs(engine: &Engine, args: &LogsArgs) -> Result<u8> {
    let opts = match options(args) {
        Ok(o) => o,
        Err(e) => {
            errln!("berth: {e:#}");
            return Ok(FAILED);
        }
    };
    let c = match engine.records()?.find(&args.container) {
        Ok(c) => c,
        Err(e) if e.to_string().starts_with("no such container") => {
            errln!(
                "Error response from daemon: No such container: {}",
                args.container
            );
            return Ok(FAILED);
        }
        Err(e) => {
            errln!("Error response from daemon: {e:#}");
            return Ok(FAILED);
        }
    };
    // `show` buffers and flushes by itself (before a follower sleeps).
    let (mut out, mut err) = (std::io::stdout().lock(), std::io::stderr().lock());
    match show(engine, &c, &opts, &mut out, &mut err) {
        Ok(()) => Ok(0),
        // `berth logs c | head`: the reader has all it wanted.
        Err(e)
            if e.downcast_ref::<std::io::Error>()
                .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) =>
        {
            Ok(0)
        }
        Err(e) => {
            drop(err);
            errln!("Error response from daemon: {e:#}");
            Ok(FAILED)
        }
    }
}

/// The flags as the engine takes them; `--since`/`--until` relative to now.
fn options(args: &LogsArgs) -> Result<ReadOptions> {
    let now = berth_engine::logs::now_nanos();
    let tail = match args.tail.as_str() {
        "all" => None,
        n => match n.parse::<i64>() {
            // Docker: a negative count is every line.
            Ok(n) => usize::try_from(n).ok(),
            Err(_) => {
                return Err(anyhow!(
                    "invalid value for \"tail\": {n:?}: a number or all"
                ));
            }
        },
    };
    let bound = |flag: &str, v: &Option<String>| {
        v.as_deref().map(|s| parse_bound(flag, s, now)).transpose()
    };
    Ok(ReadOptions {
        tail,
        since: bound("since", &args.since)?,
        until: bound("until", &args.until)?,
        timestamps: args.timestamps,
        details: args.details,
        follow: args.follow,
        ..Default::default()
    })
}
