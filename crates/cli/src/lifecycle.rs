//! `start`, `stop`, `restart`, `kill`, `wait`, `pause`, `unpause`,
//! `attach`: grammar and output; what they do is berth-engine's
//! `lifecycle` and `attach`. Like Docker, each names the containers it
//! acted on, one a line, and reports the others on stderr, exit code 1.

use anyhow::Result;
use berth_engine::Engine;
use berth_engine::attach::AttachOptions;
use berth_engine::lifecycle;
use berth_engine::monitor::Report;
use berth_io::{errln, outln};

use crate::cli::{AttachArgs, KillArgs, StartArgs, StopArgs};

/// Runs `act` on each container, printing its name as given or the error.
fn each(keys: &[String], mut act: impl FnMut(&str) -> Result<()>) -> Result<u8> {
    let mut failed = false;
    for key in keys {
        match act(key) {
            Ok(()) => outln!("{key}"),
            Err(e) => {
                errln!("Error response from daemon: {e:#}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

pub fn start(engine: &Engine, args: &StartArgs) -> Result<u8> {
    if args.attach || args.interactive {
        let [key] = args.containers.as_slice() else {
            anyhow::bail!("you cannot start and attach multiple containers at once");
        };
        let opts = AttachOptions {
            stdin: args.interactive,
            detach_keys: args.detach_keys.clone(),
            sig_proxy: true,
        };
        return Ok(match lifecycle::start_attached(engine, key, &opts)? {
            lifecycle::Attached::Exited(code) => u8::try_from(code).unwrap_or(crate::ENGINE_ERROR),
            lifecycle::Attached::Detached => 0,
            lifecycle::Attached::Failed { code, message } => {
                errln!("Error response from daemon: {message}");
                u8::try_from(code).unwrap_or(crate::ENGINE_ERROR)
            }
        });
    }
    each(&args.containers, |key| {
        started(lifecycle::start(engine, key)?)
    })
}

fn started(r: Report) -> Result<()> {
    match r {
        Report::Started { .. } => Ok(()),
        Report::Failed { message, .. } => anyhow::bail!("{message}"),
    }
}

fn signal_of(s: &Option<String>) -> Result<Option<i32>> {
    s.as_deref().map(lifecycle::parse_signal).transpose()
}

pub fn stop(engine: &Engine, args: &StopArgs) -> Result<u8> {
    let sig = signal_of(&args.signal)?;
    each(&args.containers, |key| {
        lifecycle::stop(engine, key, args.timeout, sig)
    })
}

pub fn restart(engine: &Engine, args: &StopArgs) -> Result<u8> {
    each(&args.containers, |key| {
        started(lifecycle::restart(engine, key, args.timeout)?)
    })
}

pub fn kill(engine: &Engine, args: &KillArgs) -> Result<u8> {
    let sig = lifecycle::parse_signal(&args.signal)?;
    each(&args.containers, |key| lifecycle::kill(engine, key, sig))
}

pub fn pause(engine: &Engine, keys: &[String], frozen: bool) -> Result<u8> {
    each(keys, |key| lifecycle::pause(engine, key, frozen))
}

pub fn wait(engine: &Engine, keys: &[String]) -> Result<u8> {
    let mut failed = false;
    for key in keys {
        match lifecycle::wait(engine, key) {
            Ok(code) => outln!("{code}"),
            Err(e) => {
                errln!("Error response from daemon: {e:#}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}

pub fn attach(engine: &Engine, args: &AttachArgs) -> Result<u8> {
    let opts = AttachOptions {
        stdin: !args.no_stdin,
        detach_keys: args.detach_keys.clone(),
        sig_proxy: args.sig_proxy,
    };
    Ok(
        match berth_engine::attach::attach(engine, &args.container, &opts) {
            Ok(Some(code)) => u8::try_from(code).unwrap_or(crate::ENGINE_ERROR),
            Ok(None) => 0,
            Err(e) => {
                errln!("Error response from daemon: {e:#}");
                1
            }
        },
    )
}

/// `berth boot`: the names of the containers started, one a line.
pub fn boot(engine: &Engine) -> Result<u8> {
    let mut failed = false;
    for (name, r) in lifecycle::boot(engine)? {
        match r {
            Ok(()) => outln!("{name}"),
            Err(e) => {
                errln!("berth: boot {name}: {e:#}");
                failed = true;
            }
        }
    }
    Ok(u8::from(failed))
}
