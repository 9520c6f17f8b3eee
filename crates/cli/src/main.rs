//! berth: the command line. Grammar (clap), output (tables, JSON) and exit
//! codes; what each command does is berth-engine's, which stands on the
//! image side (berth-image, berth-snapshot, berth-spec) and the runtime (berth-runtime).

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

mod build;
mod cli;
mod containers;
mod cptop;
mod events;
mod exec;
mod format;
mod healthopts;
mod images;
mod info;
mod lifecycle;
mod logs;
mod network;
mod runc;
mod runopts;
mod system;
mod table;
mod template;

use std::process::ExitCode;

use berth_io::errln;
use clap::Parser;

/// Docker's exit code for the engine's own errors in `run` (and `create`,
/// `exec`, `start -a`), which keep 126, 127 and the container's own codes
/// apart from them; every other command fails with 1.
pub(crate) const ENGINE_ERROR: u8 = 125;

/// The exit code of a failed `c`: 125 for the commands that run a
/// container (their codes are the container's), 1 for the rest.
fn failure_code(c: &cli::Command) -> u8 {
    use cli::{Command, ContainerCommand};
    match c {
        Command::Run(_)
        | Command::Container(ContainerCommand::Run(_) | ContainerCommand::Create(_))
        | Command::Create(_) => ENGINE_ERROR,
        _ => 1,
    }
}

/// An error as one line: the daemon's errors scripts look for (`No such
/// container`, a name conflict) in Docker's words, `Error response from
/// daemon: …`; any other `berth: WHAT: why`.
pub(crate) fn error_line(e: &anyhow::Error, what: &str) -> String {
    use berth_engine::records::{NameConflict, NoSuchContainer};
    let daemon = e.chain().find_map(|c| {
        c.downcast_ref::<NoSuchContainer>()
            .map(ToString::to_string)
            .or_else(|| c.downcast_ref::<NameConflict>().map(ToString::to_string))
    });
    match (daemon, what) {
        (Some(d), "run") => format!("berth: Error response from daemon: {d}"),
        (Some(d), _) => format!("Error response from daemon: {d}"),
        (None, "" | "run") => format!("berth: {e:#}"),
        (None, w) => format!("berth: {w}: {e:#}"),
    }
}

fn main() -> ExitCode {
    // Called by runc's name: runc's grammar (for containerd, dockerd, podman).
    if runc::invoked_as_runc() {
        return runc::main();
    }
    // A monitor is dispatched before anything else runs: it idles for as
    // long as its container, keeping what its stack and heap ever held.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(berth_engine::monitor::SUBCOMMAND))
    {
        return monitor();
    }
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(berth_engine::network::dns::SUBCOMMAND))
    {
        return dns_server();
    }
    // The runtime's createRuntime hook of a rootless container on the
    // bridge: not for users, and never re-executed in a namespace.
    if std::env::args_os().nth(1).as_deref()
        == Some(std::ffi::OsStr::new(berth_engine::pasta::HOOK))
    {
        let Err(e) = berth_engine::pasta::hook_main();
        errln!("berth: {}: {e:#}", berth_engine::pasta::HOOK);
        return ExitCode::from(ENGINE_ERROR);
    }
    front_end()
}

/// Everything but the monitor. Not inlined: main's frame stays small, and
/// a monitor's stack never holds this one's (it idles for days).
#[inline(never)]
fn front_end() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { ENGINE_ERROR } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    init_logging(&cli.log_level);
    let failed = failure_code(&cli.command);
    let what = if failed == ENGINE_ERROR { "run" } else { "" };
    if writes_store(&cli.command)
        && let Err(e) = berth_engine::rootless::reexec_in_userns()
    {
        errln!("{}", error_line(&e, what));
        return ExitCode::from(failed);
    }
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            errln!("{}", error_line(&e, what));
            ExitCode::from(failed)
        }
    }
}

/// `berth dns-server NAMES LOCK LISTEN`, as berth-engine's network DNS
/// starts it: a user-defined network's name server.
#[inline(never)]
fn dns_server() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(2).collect();
    berth_engine::monitor::warnings::to_stderr();
    match berth_engine::network::dns::main(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("berth: dns-server: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// `berth monitor ID [--held] --root R --exec-root E [--config C]`, as
/// berth-engine's `monitor::spawn` runs it: a grammar of berth's own, not
/// for users, parsed by hand (clap's command tree would stay resident).
#[inline(never)]
fn monitor() -> ExitCode {
    let mut args = std::env::args_os().skip(2);
    let mut opts = berth_engine::Options::default();
    let (mut id, mut held) = (None, false);
    while let Some(a) = args.next() {
        match a.to_str() {
            Some("--held") => held = true,
            Some("--root") => opts.root = args.next().map(Into::into),
            Some("--exec-root") => opts.exec_root = args.next().map(Into::into),
            Some("--config") => opts.config = args.next().map(Into::into),
            _ => id = a.into_string().ok(),
        }
    }
    berth_engine::monitor::warnings::to_stderr();
    let result = id
        .ok_or_else(|| anyhow::anyhow!("monitor: no container id"))
        .and_then(|id| {
            let engine = berth_engine::Engine::open(&opts)?;
            berth_engine::monitor::main(&engine, &id, held)
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            errln!("berth: {e:#}");
            ExitCode::from(ENGINE_ERROR)
        }
    }
}

/// Commands that write the store or run containers: rootless berth runs
/// them inside its own user namespace.
fn writes_store(c: &cli::Command) -> bool {
    use cli::{Command, ContainerCommand, ImageCommand};
    matches!(
        c,
        Command::Pull(_)
            | Command::Push(_)
            | Command::Load(_)
            | Command::Build(_)
            | Command::Builder(_)
            | Command::Rmi(_)
            | Command::Tag(_)
            | Command::Run(_)
            | Command::Create(_)
            | Command::Start(_)
            | Command::Stop(_)
            | Command::Restart(_)
            | Command::Kill(_)
            | Command::Pause { .. }
            | Command::Unpause { .. }
            | Command::Boot
            | Command::Rm(_)
            | Command::System(cli::SystemCommand::Prune(_))
            | Command::Image(
                ImageCommand::Pull(_)
                    | ImageCommand::Build(_)
                    | ImageCommand::Push(_)
                    | ImageCommand::Load(_)
                    | ImageCommand::Rm(_)
                    | ImageCommand::Prune(_)
                    | ImageCommand::Tag(_)
            )
            | Command::Container(
                ContainerCommand::Run(_)
                    | ContainerCommand::Rm(_)
                    | ContainerCommand::Prune(_)
                    | ContainerCommand::Create(_)
                    | ContainerCommand::Start(_)
                    | ContainerCommand::Stop(_)
                    | ContainerCommand::Restart(_)
                    | ContainerCommand::Kill(_)
                    | ContainerCommand::Pause { .. }
                    | ContainerCommand::Unpause { .. }
            )
    )
}

/// `port CONTAINER [PRIVATE_PORT[/PROTO]]`: Docker's `80/tcp -> 0.0.0.0:8080` lines.
fn port(engine: &berth_engine::Engine, a: &cli::PortArgs) -> anyhow::Result<u8> {
    let c = engine.records()?.find(&a.container)?;
    let want = match &a.port {
        None => None,
        Some(p) => {
            let (n, proto) = p.split_once('/').unwrap_or((p, "tcp"));
            let n: u16 = n
                .parse()
                .map_err(|_| anyhow::anyhow!("invalid port {p:?}"))?;
            Some((n, proto.to_string()))
        }
    };
    let mut found = false;
    for p in &c.published {
        if want
            .as_ref()
            .is_some_and(|(n, proto)| (*n, proto.as_str()) != (p.container_port, p.proto.name()))
        {
            continue;
        }
        found = true;
        let host = p.host_ip.unwrap_or(std::net::Ipv4Addr::UNSPECIFIED);
        match &a.port {
            Some(_) => berth_io::outln!("{host}:{}", p.host_port),
            None => berth_io::outln!(
                "{}/{} -> {host}:{}",
                p.container_port,
                p.proto.name(),
                p.host_port
            ),
        }
    }
    if let (Some((n, proto)), false) = (&want, found) {
        anyhow::bail!("No public port '{n}/{proto}' published for {}", c.name);
    }
    Ok(0)
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
    use cli::{Command, ContainerCommand, ImageCommand};
    use containers::inspect::{Kind, inspect};
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
        Command::Push(a) | Command::Image(ImageCommand::Push(a)) => images::push(&engine, a),
        Command::Images(a) | Command::Image(ImageCommand::Ls(a)) => images::images(&engine, a),
        Command::Rmi(a) | Command::Image(ImageCommand::Rm(a)) => images::rmi(&engine, a),
        Command::Tag(a) | Command::Image(ImageCommand::Tag(a)) => images::tag(&engine, a),
        Command::Commit(a) | Command::Container(ContainerCommand::Commit(a)) => {
            images::commit(&engine, a)
        }
        Command::Import(a) | Command::Image(ImageCommand::Import(a)) => images::import(&engine, a),
        Command::Build(a) | Command::Image(ImageCommand::Build(a)) => build::build(&engine, a),
        Command::Builder(cli::BuilderCommand::Prune(_)) => build::prune(&engine),
        Command::History(a) | Command::Image(ImageCommand::History(a)) => {
            images::history(&engine, a)
        }
        Command::Save(a) | Command::Image(ImageCommand::Save(a)) => images::save(&engine, a),
        Command::Load(a) | Command::Image(ImageCommand::Load(a)) => images::load(&engine, a),
        Command::Image(ImageCommand::Inspect { images: names }) => images::inspect(&engine, names),
        Command::Image(ImageCommand::Prune(a)) => images::prune(&engine, a),
        Command::Login(a) => images::login(&engine, a),
        Command::Logout { server } => images::logout(&engine, server.as_deref()),
        Command::Run(a) | Command::Container(ContainerCommand::Run(a)) => {
            containers::run(&engine, a)
        }
        Command::Network(c) => network::run(&engine, c),
        Command::Ps(a) | Command::Container(ContainerCommand::Ls(a)) => containers::ps(&engine, a),
        Command::Rm(a) | Command::Container(ContainerCommand::Rm(a)) => containers::rm(&engine, a),
        Command::Inspect(a) => {
            let kind = match a.kind.as_deref() {
                Some("container") => Kind::Container,
                Some("image") => Kind::Image,
                _ => Kind::Any,
            };
            inspect(&engine, &a.names, kind, a.format.as_deref(), a.size)
        }
        Command::Container(ContainerCommand::Inspect(a)) => inspect(
            &engine,
            &a.containers,
            Kind::Container,
            a.format.as_deref(),
            a.size,
        ),
        Command::Port(a) | Command::Container(ContainerCommand::Port(a)) => port(&engine, a),
        Command::Rename(a) | Command::Container(ContainerCommand::Rename(a)) => {
            containers::rename(&engine, a)
        }
        Command::Container(ContainerCommand::Prune(a)) => containers::prune(&engine, a),
        Command::Create(a) | Command::Container(ContainerCommand::Create(a)) => {
            containers::create(&engine, a)
        }
        Command::Start(a) | Command::Container(ContainerCommand::Start(a)) => {
            lifecycle::start(&engine, a)
        }
        Command::Stop(a) | Command::Container(ContainerCommand::Stop(a)) => {
            lifecycle::stop(&engine, a)
        }
        Command::Restart(a) | Command::Container(ContainerCommand::Restart(a)) => {
            lifecycle::restart(&engine, a)
        }
        Command::Kill(a) | Command::Container(ContainerCommand::Kill(a)) => {
            lifecycle::kill(&engine, a)
        }
        Command::Wait { containers: keys }
        | Command::Container(ContainerCommand::Wait { containers: keys }) => {
            lifecycle::wait(&engine, keys)
        }
        Command::Pause { containers: keys }
        | Command::Container(ContainerCommand::Pause { containers: keys }) => {
            lifecycle::pause(&engine, keys, true)
        }
        Command::Unpause { containers: keys }
        | Command::Container(ContainerCommand::Unpause { containers: keys }) => {
            lifecycle::pause(&engine, keys, false)
        }
        Command::Attach(a) | Command::Container(ContainerCommand::Attach(a)) => {
            lifecycle::attach(&engine, a)
        }
        Command::Boot => lifecycle::boot(&engine),
        Command::Logs(a) | Command::Container(ContainerCommand::Logs(a)) => logs::logs(&engine, a),
        Command::Cp(a) | Command::Container(ContainerCommand::Cp(a)) => cptop::cp(&engine, a),
        Command::Top(a) | Command::Container(ContainerCommand::Top(a)) => cptop::top(&engine, a),
        Command::Diff { container } | Command::Container(ContainerCommand::Diff { container }) => {
            cptop::diff(&engine, container)
        }
        Command::Export { output, container }
        | Command::Container(ContainerCommand::Export { output, container }) => {
            cptop::export(&engine, container, output.as_deref())
        }
        Command::Stats(a) | Command::Container(ContainerCommand::Stats(a)) => {
            cptop::stats(&engine, a)
        }
        Command::Exec(a) | Command::Container(ContainerCommand::Exec(a)) => exec::exec(&engine, a),
        Command::Info { format } => info::info(&engine, *format),
        Command::Events(a) | Command::System(cli::SystemCommand::Events(a)) => {
            events::events(&engine, a)
        }
        Command::Version { format } => system::version(format.as_deref()),
        Command::System(cli::SystemCommand::Df(a)) => system::df(&engine, a),
        Command::System(cli::SystemCommand::Prune(a)) => system::prune(&engine, a),
        Command::Init { .. } => unreachable!("handled above"),
    }
}
