//! `berth-runc`: runc's command line on berth's runtime, so that
//! containerd's runc shim, dockerd (through containerd) and podman (through
//! conmon) can run their containers with berth. The same binary, called by
//! the name [`NAME`] (the link `scripts/setup.sh` installs beside `berth`),
//! speaks this grammar instead of berth's: the busybox way, one static
//! binary and no second build.
//!
//! Grammar and output only: each command is a few calls into
//! `berth_runtime` on the state under `--root`. What the shims rely on is
//! runc's, kept here on purpose: the error texts they match
//! ("container not running", "does not exist"), the last JSON line of
//! `--log` that containerd reports on a failure, exit code 1 for an error,
//! `state`'s JSON shape, a `--pid-file` written before `create` returns.

mod cgroup;
mod exec;
mod info;
mod lifecycle;
mod log;

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The name under which the binary speaks runc's command line.
pub const NAME: &str = "berth-runc";

/// Whether this process was started as [`NAME`].
pub fn invoked_as_runc() -> bool {
    std::env::args_os()
        .next()
        .as_deref()
        .map(Path::new)
        .and_then(Path::file_name)
        .is_some_and(|n| n == NAME)
}

#[derive(Parser, Debug)]
#[command(
    name = NAME,
    about = "berth's runtime with runc's command line (for containerd, dockerd and podman)",
    disable_version_flag = true
)]
struct Cli {
    /// Where containers' state is kept: two callers with different roots
    /// never see each other's containers.
    #[arg(long)]
    root: Option<PathBuf>,
    /// Append log lines (and the error of a failed command) to this file.
    #[arg(long)]
    log: Option<PathBuf>,
    #[arg(long, value_enum, default_value = "text")]
    log_format: LogFormat,
    /// Log debug lines too.
    #[arg(long)]
    debug: bool,
    /// systemd's cgroup driver: refused where systemd does not run.
    #[arg(long)]
    systemd_cgroup: bool,
    /// Accepted as runc takes it (true, false, auto); berth finds out itself.
    #[arg(long, default_value = "auto")]
    rootless: String,
    /// Accepted and unused (checkpoints are not supported).
    #[arg(long, hide = true)]
    criu: Option<String>,
    #[arg(short = 'v', long)]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Create a container: set up and parked until `start`.
    Create(CreateArgs),
    /// Let a created container run its command.
    Start { id: String },
    /// Create and start a container; without --detach, wait for it.
    Run(RunArgs),
    /// The container's state as JSON.
    State { id: String },
    /// Send a signal (default SIGTERM) to the container's process.
    Kill {
        /// Every process of the container, not only the first.
        #[arg(short, long)]
        all: bool,
        id: String,
        signal: Option<String>,
    },
    /// Remove a stopped container (--force: kill it first).
    Delete {
        #[arg(short, long)]
        force: bool,
        id: String,
    },
    /// Run a new process in a running container.
    Exec(exec::ExecArgs),
    /// The container's processes.
    Ps {
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        id: String,
        /// Options for ps(1) (default -ef).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_args: Vec<String>,
    },
    /// The containers under --root.
    List {
        #[arg(short, long, value_enum, default_value = "table")]
        format: ListFormat,
        #[arg(short, long)]
        quiet: bool,
    },
    /// The container's resource use (and OOM kills) as JSON lines.
    Events {
        /// Once, then exit.
        #[arg(long)]
        stats: bool,
        /// Between two stats lines (Go's duration syntax, e.g. 5s).
        #[arg(long, default_value = "5s")]
        interval: String,
        id: String,
    },
    /// Freeze every process of the container.
    Pause { id: String },
    /// Thaw a paused container.
    Resume { id: String },
    /// Change the container's resource limits.
    Update(cgroup::UpdateArgs),
    /// What this runtime supports, as the runtime-spec's features JSON.
    Features,
    /// Write a default config.json.
    Spec {
        /// A spec for an unprivileged user.
        #[arg(long = "rootless", id = "spec_rootless")]
        rootless: bool,
        #[arg(short, long)]
        bundle: Option<PathBuf>,
    },
    /// Not supported (runc's CRIU commands).
    Checkpoint {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
    Restore {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        rest: Vec<String>,
    },
}

#[derive(Copy, Clone, Debug, PartialEq, Eq, ValueEnum)]
enum ListFormat {
    Table,
    Json,
}

#[derive(Args, Debug)]
struct CreateArgs {
    /// The bundle directory (default: the current one).
    #[arg(short, long)]
    bundle: Option<PathBuf>,
    /// A unix socket to send the pty master to (with process.terminal).
    #[arg(long)]
    console_socket: Option<PathBuf>,
    /// Write the container's host PID here before returning.
    #[arg(long)]
    pid_file: Option<PathBuf>,
    /// Switch root by moving it onto / (for a ramdisk root).
    #[arg(long)]
    no_pivot: bool,
    /// Accepted as runc takes it: berth never makes a session keyring.
    #[arg(long)]
    no_new_keyring: bool,
    /// Keep fds 3..3+N open into the container.
    #[arg(long, default_value_t = 0)]
    preserve_fds: u32,
    id: String,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    create: CreateArgs,
    /// Return once the command runs.
    #[arg(short, long)]
    detach: bool,
    /// Keep the container after it exits (without --detach).
    #[arg(long)]
    keep: bool,
}

/// Global options as each command needs them.
struct Global {
    /// `<root>/containers`: the runtime's state dir (its seccomp cache sits
    /// beside it, in the root too).
    state_dir: PathBuf,
}

/// A JSON document from a file, or from stdin for `-` (`update -r -`),
/// bounded: a process or a set of resources is a few KiB.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> anyhow::Result<T> {
    use anyhow::Context;
    let data = if path == Path::new("-") {
        let mut buf = Vec::new();
        std::io::Read::read_to_end(
            &mut std::io::Read::take(std::io::stdin(), berth_io::MIB),
            &mut buf,
        )
        .with_context(|| format!("read {what} from stdin"))?;
        buf
    } else {
        berth_io::read_capped(path, berth_io::MIB, what).map_err(|e| anyhow::anyhow!("{e}"))?
    };
    serde_json::from_slice(&data).with_context(|| format!("parse {what} {}", path.display()))
}

/// runc's default root, or `$XDG_RUNTIME_DIR/berth-runc` for a user.
fn default_root() -> PathBuf {
    if rustix::process::geteuid().is_root() {
        return PathBuf::from("/run/berth-runc");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(d) => Path::new(&d).join("berth-runc"),
        None => std::env::temp_dir().join(format!(
            "berth-runc-{}",
            rustix::process::geteuid().as_raw()
        )),
    }
}

/// The runc front end: parse, run, and on failure log the error (the last
/// line of `--log` is what containerd reports) and exit 1, as runc does.
pub fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 1 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let log = log::Log::open(
        cli.log.as_deref(),
        cli.log_format == LogFormat::Json,
        cli.debug,
    );
    log::install(&log, cli.debug);
    match run(cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            log.error(&format!("{e:#}"));
            ExitCode::from(1)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<u8> {
    if cli.version {
        info::version();
        return Ok(0);
    }
    if cli.systemd_cgroup && !Path::new("/run/systemd/system").exists() {
        anyhow::bail!(
            "systemd cgroup flag passed, but systemd support for managing cgroups is not \
             available: systemd is not running here (use the cgroupfs driver)"
        );
    }
    let Some(command) = cli.command else {
        anyhow::bail!("no command given (try --help)");
    };
    let root = cli.root.unwrap_or_else(default_root);
    let g = Global {
        state_dir: root.join("containers"),
    };
    match command {
        Command::Create(a) => lifecycle::create(&g, &a).map(|()| 0),
        Command::Start { id } => lifecycle::start(&g, &id).map(|()| 0),
        Command::Run(a) => lifecycle::run(&g, &a),
        Command::State { id } => lifecycle::state(&g, &id).map(|()| 0),
        Command::Kill { all, id, signal } => {
            lifecycle::kill(&g, &id, signal.as_deref().unwrap_or("TERM"), all).map(|()| 0)
        }
        Command::Delete { force, id } => lifecycle::delete(&g, &id, force).map(|()| 0),
        Command::Exec(a) => exec::exec(&g, &a),
        Command::Ps {
            format,
            id,
            ps_args,
        } => lifecycle::ps(&g, &id, format == ListFormat::Json, &ps_args).map(|()| 0),
        Command::List { format, quiet } => {
            lifecycle::list(&g, format == ListFormat::Json, quiet).map(|()| 0)
        }
        Command::Events {
            stats,
            interval,
            id,
        } => cgroup::events(&g, &id, stats, &interval).map(|()| 0),
        Command::Pause { id } => cgroup::pause(&g, &id, true).map(|()| 0),
        Command::Resume { id } => cgroup::pause(&g, &id, false).map(|()| 0),
        Command::Update(a) => cgroup::update(&g, &a).map(|()| 0),
        Command::Features => info::features().map(|()| 0),
        Command::Spec { rootless, bundle } => info::spec(rootless, bundle.as_deref()).map(|()| 0),
        Command::Checkpoint { .. } | Command::Restore { .. } => {
            anyhow::bail!("checkpoint and restore are not supported by {NAME}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_grammar_is_consistent() {
        Cli::command().debug_assert();
    }

    /// The command lines containerd's go-runc, conmon and dockerd send.
    #[test]
    fn callers_command_lines_parse() {
        let parse = |s: &str| Cli::try_parse_from(s.split_whitespace());
        let c = parse(
            "berth-runc --root /run/containerd/runc/default --log /b/log.json --log-format json \
             create --bundle /b --pid-file /b/init.pid --console-socket /tmp/s.sock abc",
        )
        .unwrap();
        assert_eq!(c.log_format, LogFormat::Json);
        let Some(Command::Create(a)) = c.command else {
            panic!("not create")
        };
        assert_eq!(a.id, "abc");
        assert_eq!(a.pid_file.as_deref(), Some(Path::new("/b/init.pid")));
        let c = parse("berth-runc --root /r exec --process /tmp/p.json --detach --pid-file /p abc")
            .unwrap();
        assert!(matches!(c.command, Some(Command::Exec(_))));
        let c = parse("berth-runc --root /r kill --all abc 9").unwrap();
        let Some(Command::Kill { all, id, signal }) = c.command else {
            panic!("not kill")
        };
        assert!(all && id == "abc" && signal.as_deref() == Some("9"));
        let c = parse("berth-runc --root /r ps --format json abc").unwrap();
        assert!(matches!(
            c.command,
            Some(Command::Ps {
                format: ListFormat::Json,
                ..
            })
        ));
        assert!(parse("berth-runc --systemd-cgroup --root=/r update -r - abc").is_ok());
        assert!(parse("berth-runc spec --rootless").is_ok());
        assert!(parse("berth-runc delete --force abc").is_ok());
        assert!(parse("berth-runc exec -t abc sh -c 'echo hi'").is_ok());
    }
}
