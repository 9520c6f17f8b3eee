//! berth: the command line. Grammar (clap), output (tables, JSON) and exit
//! codes; what each command does is berth-engine's, which stands on the
//! image side (berth-image, berth-snapshot, berth-spec) and the runtime (berth-runtime).

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod cli;
mod containers;
mod exec;
mod images;
mod info;
mod runopts;
mod table;

use std::process::ExitCode;

use berth_io::errln;
use clap::Parser;

/// Docker's exit code for the engine's own errors.
pub(crate) const ENGINE_ERROR: u8 = 125;

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
    if writes_store(&cli.command)
        && let Err(e) = berth_engine::rootless::reexec_in_userns()
    {
        errln!("berth: {e:#}");
        return ExitCode::from(ENGINE_ERROR);
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("berth: {e:#}");
            ExitCode::from(ENGINE_ERROR)
        }
    }
}

/// Commands that write the store or run containers: rootless berth runs
/// them inside its own user namespace.
fn writes_store(c: &cli::Command) -> bool {
    use cli::{Command, ImageCommand};
    matches!(
        c,
        Command::Pull(_)
            | Command::Rmi(_)
            | Command::Run(_)
            | Command::Rm(_)
            | Command::Image(ImageCommand::Pull(_) | ImageCommand::Rm(_) | ImageCommand::Prune(_))
    )
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
    use cli::{Command, ImageCommand};
    // `--init` runs the container's private copy of berth as
    // `/sbin/berth-init init -- CMD…`: chosen by the subcommand berth put
    // in the spec, never by the name an image gives a file.
    if let Command::Init { args } = &cli.command {
        let mut argv = vec![std::ffi::OsString::from("berth-init")];
        argv.extend(args.iter().cloned());
        berth_engine::init_main(&argv);
    }
    let engine = berth_engine::Engine::open(&berth_engine::Options {
        root: cli.root.clone(),
        exec_root: cli.exec_root.clone(),
        config: cli.config.clone(),
    })?;
    match &cli.command {
        Command::Pull(a) | Command::Image(ImageCommand::Pull(a)) => images::pull(&engine, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(&engine, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::rmi(&engine, a),
        Command::Image(ImageCommand::Inspect { images: names }) => images::inspect(&engine, names),
        Command::Image(ImageCommand::Prune(a)) => images::prune(&engine, a),
        Command::Login(a) => images::login(&engine, a),
        Command::Logout { server } => images::logout(&engine, server.as_deref()),
        Command::Run(a) => containers::run(&engine, a),
        Command::Exec(a) => exec::exec(&engine, a),
        Command::Ps(a) => containers::ps(&engine, a),
        Command::Rm(a) => containers::rm(&engine, a),
        Command::Inspect { containers: keys } => containers::inspect(&engine, keys),
        Command::Info { format } => info::info(&engine, *format),
        Command::Init { .. } => unreachable!("handled above"),
    }
}
