//! berth: the command-line engine. It wires the image side (berth-image,
//! berth-rootfs) to the runtime (berth-runtime) and holds container state.

mod cli;
mod config;
mod runopts;
mod state;
mod timefmt;

use std::process::ExitCode;

use clap::Parser;

/// Docker's exit code for the engine's own errors.
const ENGINE_ERROR: u8 = 125;

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { ENGINE_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.log_level);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("berth: {e:#}");
            ExitCode::from(ENGINE_ERROR)
        }
    }
}

fn init_logging(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(level)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .without_time()
        .with_target(false)
        .try_init();
}

fn run(cli: cli::Cli) -> anyhow::Result<u8> {
    let _ = (cli.root, cli.config);
    anyhow::bail!("not implemented yet")
}
