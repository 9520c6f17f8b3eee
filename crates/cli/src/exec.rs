//! `berth exec`: its flags to an [`ExecRequest`], and Docker's messages and
//! exit codes: the command's own; 126 when it cannot be run, 127 when it
//! is not found; 1 when the daemon would refuse (no such container, not
//! running, paused).

use std::io::IsTerminal;

use anyhow::Result;
use berth_engine::{Engine, ExecEnded, ExecRequest, Refused};
use berth_io::errln;

use crate::ENGINE_ERROR;
use crate::cli::ExecArgs;
use crate::runopts;

/// The docker CLI's exit code for its own and the daemon's errors.
const CLI_ERROR: u8 = 1;

pub fn exec(engine: &Engine, args: &ExecArgs) -> Result<u8> {
    if args.interactive && args.tty && !std::io::stdin().is_terminal() {
        errln!("the input device is not a TTY");
        return Ok(CLI_ERROR);
    }
    let mut env = Vec::new();
    for f in &args.env_file {
        env.extend(runopts::read_env_file(f)?);
    }
    for e in &args.env {
        env.extend(runopts::parse_env(e)?);
    }
    let req = ExecRequest {
        container: args.container.clone(),
        command: args.command.clone(),
        env,
        user: args.user.clone(),
        workdir: args.workdir.clone(),
        // Docker's `-d` runs without a terminal: no one would hold it.
        tty: args.tty && !args.detach,
        interactive: args.interactive && !args.detach,
        detach: args.detach,
        privileged: args.privileged,
    };
    match berth_engine::exec::exec(engine, &req) {
        Ok(ExecEnded {
            error: Some(why),
            code,
            ..
        }) => {
            errln!(
                "OCI runtime exec failed: exec failed: unable to start container process: {why}: unknown"
            );
            // Docker: 127 when the command is not there, 126 for any other
            // failure to start it.
            Ok(if code == 127 { 127 } else { 126 })
        }
        // Detached: 0, and nothing printed, as Docker.
        Ok(ExecEnded { code, .. }) => Ok(u8::try_from(code).unwrap_or(ENGINE_ERROR)),
        Err(e) => match e.downcast_ref::<Refused>() {
            Some(r) => {
                errln!("Error response from daemon: {r}");
                Ok(CLI_ERROR)
            }
            None => Err(e),
        },
    }
}
