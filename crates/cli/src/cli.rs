//! Command-line grammar: Docker's commands and flags, as far as berth has them.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

mod image_args;
pub use image_args::*;

#[derive(Parser, Debug)]
#[command(
    name = "berth",
    version,
    about = "A small Docker-compatible container engine"
)]
pub struct Cli {
    /// Where images, snapshots and containers live.
    #[arg(long, global = true, env = "BERTH_ROOT", value_name = "DIR", value_parser = absolute)]
    pub root: Option<PathBuf>,
    /// Where per-container runtime state lives (runtime state, bundles):
    /// /run/berth for root, `$XDG_RUNTIME_DIR/berth` (or `ROOT/run`) rootless.
    #[arg(long, global = true, env = "BERTH_EXEC_ROOT", value_name = "DIR", value_parser = absolute)]
    pub exec_root: Option<PathBuf>,
    /// Configuration file (registry mirrors, insecure registries, CA dir).
    #[arg(long, global = true, value_name = "FILE", value_parser = absolute)]
    pub config: Option<PathBuf>,
    /// Log level for diagnostics on stderr (error, warn, info, debug, trace).
    #[arg(long, global = true, env = "BERTH_LOG", default_value = "warn")]
    pub log_level: String,
    #[command(subcommand)]
    pub command: Command,
}

/// A path flag made absolute against the current directory as it is
/// parsed: berth later resolves paths from other directories (the runtime
/// runs from the bundle's, the container's rootfs is named from the exec
/// root), where a relative one would point elsewhere.
pub fn absolute(s: &str) -> Result<PathBuf, String> {
    if s.is_empty() {
        return Err("empty path".into());
    }
    std::path::absolute(s).map_err(|e| format!("{s}: {e}"))
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// List images.
    Images(ImagesArgs),
    /// Remove one or more images.
    Rmi(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(LoadArgs),
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Manage builds.
    #[command(subcommand)]
    Builder(BuilderCommand),
    /// Manage images.
    #[command(subcommand)]
    Image(ImageCommand),
    /// Log in to a registry (writes ~/.docker/config.json).
    Login(LoginArgs),
    /// Log out from a registry.
    Logout { server: Option<String> },
    /// Run a command in a new container.
    #[command(disable_help_flag = true)]
    Run(Box<RunArgs>),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// List containers.
    Ps(PsArgs),
    /// Remove one or more containers.
    Rm(RmArgs),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(Box<RunArgs>),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pause all processes within one or more containers.
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers.
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach local standard input, output, and error streams to a running container.
    Attach(AttachArgs),
    /// Start every container whose restart policy asks to run again after
    /// a reboot (always; unless-stopped and on-failure unless stopped by
    /// hand). For a boot unit to call: berth has no daemon.
    Boot,
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Low-level information on containers or images, as JSON or a template.
    Inspect(InspectArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container.
    Port(PortArgs),
    /// Copy files/folders between a container and the local filesystem
    /// (CONTAINER:SRC_PATH DEST_PATH|- or SRC_PATH|- CONTAINER:DEST_PATH).
    Cp(CpArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff { container: String },
    /// Export a container's filesystem as a tar archive.
    Export {
        /// Write to a file, instead of STDOUT.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        container: String,
    },
    /// Display a live stream of containers' resource usage.
    Stats(StatsArgs),
    /// Manage containers.
    #[command(subcommand)]
    Container(ContainerCommand),
    /// Manage networks.
    #[command(subcommand)]
    Network(crate::network::NetworkCommand),
    /// Show what berth runs on, and what it had to do without here.
    Info {
        /// Output format: table (default) or json (also `{{json .}}`).
        #[arg(short, long, value_enum, default_value = "table")]
        format: Format,
    },
    /// Get real time events from the server (berth: every berth's actions).
    Events(EventsArgs),
    /// Show the berth version information.
    Version {
        /// Format output: json, or a Go template (`{{.Client.Version}}`).
        #[arg(short, long)]
        format: Option<String>,
    },
    /// Manage berth: disk usage, prune, events.
    #[command(subcommand)]
    System(SystemCommand),
    /// Tiny init run as a container's PID 1 (`--init`); not for direct use.
    #[command(hide = true)]
    Init {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
}

/// `berth exec`: Docker's flags.
#[derive(Args, Debug)]
pub struct ExecArgs {
    /// Detached mode: run the command in the background.
    #[arg(short, long)]
    pub detach: bool,
    /// Accepted for Docker's sake; berth has no detach sequence yet.
    #[arg(long, value_name = "KEYS")]
    pub detach_keys: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass berth's own).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    /// Read in a file of environment variables.
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Keep STDIN open.
    #[arg(short, long)]
    pub interactive: bool,
    /// Give the command all capabilities.
    #[arg(long)]
    pub privileged: bool,
    /// Allocate a pseudo-TTY.
    #[arg(short, long)]
    pub tty: bool,
    /// Username or UID (format: "<name|uid>[:<group|gid>]").
    #[arg(short, long)]
    pub user: Option<String>,
    /// Working directory inside the container.
    #[arg(short, long)]
    pub workdir: Option<String>,
    pub container: String,
    #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}

/// `berth builder …`.
#[derive(Subcommand, Debug)]
pub enum BuilderCommand {
    /// Remove the build cache (its entries and the intermediate images no tag and no container keeps).
    Prune(PruneArgs),
}

#[derive(Subcommand, Debug)]
pub enum ImageCommand {
    /// Pull an image from a registry.
    Pull(PullArgs),
    /// Upload an image to a registry.
    Push(PushArgs),
    /// List images.
    #[command(alias = "list")]
    Ls(ImagesArgs),
    /// Remove one or more images.
    Rm(RmiArgs),
    /// Create a tag TARGET_IMAGE that refers to SOURCE_IMAGE.
    Tag(TagArgs),
    /// Show the history of an image.
    History(HistoryArgs),
    /// Save one or more images to a tar archive (streamed to STDOUT by default).
    Save(SaveArgs),
    /// Load an image from a tar archive or STDIN.
    Load(LoadArgs),
    /// Display detailed information on one or more images (JSON).
    Inspect { images: Vec<String> },
    /// Import the contents from a tarball to create a filesystem image.
    Import(ImportArgs),
    /// Build an image from a Dockerfile.
    Build(BuildArgs),
    /// Remove unused images and blobs no image references.
    Prune(PruneArgs),
}

/// `berth system …`.
#[derive(Subcommand, Debug)]
pub enum SystemCommand {
    /// Show disk usage.
    Df(DfArgs),
    /// Remove unused data (stopped containers, dangling images).
    Prune(SystemPruneArgs),
    /// Get real time events from the server.
    Events(EventsArgs),
}

#[derive(Args, Debug)]
pub struct EventsArgs {
    /// Show all events created since timestamp (RFC 3339, Unix seconds, or a duration back from now).
    #[arg(long)]
    pub since: Option<String>,
    /// Stream events until this timestamp.
    #[arg(long)]
    pub until: Option<String>,
    /// Filter output based on conditions provided (type=, event=,
    /// container=, image=, label=, scope=).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: json, or a Go template (`{{.Action}}`, `{{json .}}`).
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct DfArgs {
    /// Show detailed information on space usage.
    #[arg(short, long)]
    pub verbose: bool,
    /// Format output: table, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
}

#[derive(Args, Debug)]
pub struct SystemPruneArgs {
    /// Remove all unused images, not just dangling ones.
    #[arg(short, long)]
    pub all: bool,
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (`until=24h`, `label=k`, `label!=k=v`).
    #[arg(long)]
    pub filter: Vec<String>,
}

/// `berth container …`: Docker's names for the container commands.
#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// List containers.
    #[command(visible_aliases = ["ps", "list"])]
    Ls(PsArgs),
    /// Remove one or more containers.
    #[command(alias = "remove")]
    Rm(RmArgs),
    /// Display detailed information on one or more containers.
    Inspect(ContainerInspectArgs),
    /// Rename a container.
    Rename(RenameArgs),
    /// List port mappings or a specific mapping for the container.
    Port(PortArgs),
    /// Remove all stopped containers.
    Prune(ContainerPruneArgs),
    /// Fetch the logs of a container.
    Logs(LogsArgs),
    /// Copy files/folders between a container and the local filesystem.
    Cp(CpArgs),
    /// Display the running processes of a container.
    Top(TopArgs),
    /// Create a new image from a container's changes.
    Commit(CommitArgs),
    /// Inspect changes to files or directories on a container's filesystem.
    Diff { container: String },
    /// Export a container's filesystem as a tar archive.
    Export {
        /// Write to a file, instead of STDOUT.
        #[arg(short, long)]
        output: Option<std::path::PathBuf>,
        container: String,
    },
    /// Display a live stream of containers' resource usage.
    Stats(StatsArgs),
    /// Execute a command in a running container.
    Exec(ExecArgs),
    /// Create a container without starting it.
    #[command(disable_help_flag = true)]
    Create(Box<RunArgs>),
    /// Start one or more stopped containers.
    Start(StartArgs),
    /// Stop one or more running containers.
    Stop(StopArgs),
    /// Restart one or more containers.
    Restart(StopArgs),
    /// Kill one or more running containers.
    Kill(KillArgs),
    /// Block until one or more containers stop, then print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pause all processes within one or more containers.
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Unpause all processes within one or more containers.
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Attach local standard input, output, and error streams to a running container.
    Attach(AttachArgs),
    /// Run a command in a new container.
    #[command(disable_help_flag = true)]
    Run(Box<RunArgs>),
}

#[derive(Args, Debug)]
pub struct InspectArgs {
    #[arg(required = true)]
    pub names: Vec<String>,
    /// Format output using a Go template (or `json`).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes (SizeRw, SizeRootFs) of containers.
    #[arg(short, long)]
    pub size: bool,
    /// Only inspect objects of this type: container or image.
    #[arg(long = "type", value_parser = ["container", "image"])]
    pub kind: Option<String>,
}

#[derive(Args, Debug)]
pub struct ContainerInspectArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Format output using a Go template (or `json`).
    #[arg(short, long)]
    pub format: Option<String>,
    /// Display total file sizes.
    #[arg(short, long)]
    pub size: bool,
}

#[derive(Args, Debug)]
pub struct RenameArgs {
    pub container: String,
    pub new_name: String,
}

#[derive(Args, Debug)]
pub struct PortArgs {
    pub container: String,
    /// PRIVATE_PORT[/PROTO]
    pub port: Option<String>,
}

#[derive(Args, Debug)]
pub struct ContainerPruneArgs {
    /// Do not prompt for confirmation.
    #[arg(short, long)]
    pub force: bool,
    /// Provide filter values (`until=24h`, `label=k`, `label!=k=v`).
    #[arg(long)]
    pub filter: Vec<String>,
}

#[derive(Args, Debug)]
pub struct LogsArgs {
    /// Follow log output (until the container stops).
    #[arg(short, long)]
    pub follow: bool,
    /// Number of lines to show from the end of the logs ("all": every line).
    #[arg(short = 'n', long, default_value = "all", allow_hyphen_values = true)]
    pub tail: String,
    /// Show timestamps.
    #[arg(short, long)]
    pub timestamps: bool,
    /// Show logs since a timestamp (2013-01-02T13:23:37Z) or relative (42m).
    #[arg(long)]
    pub since: Option<String>,
    /// Show logs before a timestamp (2013-01-02T13:23:37Z) or relative (42m).
    #[arg(long)]
    pub until: Option<String>,
    /// Show extra details provided to logs.
    #[arg(long)]
    pub details: bool,
    pub container: String,
}

#[derive(Args, Debug)]
pub struct CpArgs {
    /// Archive mode (copy all uid/gid information).
    #[arg(short, long)]
    pub archive: bool,
    /// Always follow a symbolic link in SRC_PATH.
    #[arg(short = 'L', long)]
    pub follow_link: bool,
    /// Suppress progress output during copy.
    #[arg(short, long)]
    pub quiet: bool,
    pub src: String,
    pub dst: String,
}

#[derive(Args, Debug)]
pub struct TopArgs {
    pub container: String,
    /// Options for ps (default -ef).
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

#[derive(Args, Debug)]
pub struct StatsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Disable streaming stats and only pull the first result.
    #[arg(long)]
    pub no_stream: bool,
    /// Do not truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Format output: table, json, or a Go-like template
    /// (`table {{.Name}}\t{{.CPUPerc}}`, `{{json .}}`).
    #[arg(long)]
    pub format: Option<String>,
    pub containers: Vec<String>,
}

#[derive(Args, Debug)]
pub struct PsArgs {
    /// Show all containers (default shows just running).
    #[arg(short, long)]
    pub all: bool,
    /// Only show ids.
    #[arg(short, long)]
    pub quiet: bool,
    /// Don't truncate output.
    #[arg(long)]
    pub no_trunc: bool,
    /// Filter output based on conditions provided (status=, name=, id=,
    /// label=, ancestor=, exited=, before=, since=).
    #[arg(short, long)]
    pub filter: Vec<String>,
    /// Format output: table, `table TEMPLATE`, json, or a Go template.
    #[arg(long)]
    pub format: Option<String>,
    /// Show n last created containers (includes all states).
    #[arg(short = 'n', long, default_value_t = -1, allow_hyphen_values = true)]
    pub last: i64,
    /// Show the latest created container (includes all states).
    #[arg(short, long)]
    pub latest: bool,
    /// Display total file sizes.
    #[arg(short, long)]
    pub size: bool,
}

#[derive(Args, Debug)]
pub struct StartArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Attach STDOUT/STDERR and forward signals.
    #[arg(short, long)]
    pub attach: bool,
    /// Attach container's STDIN.
    #[arg(short, long)]
    pub interactive: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long)]
    pub detach_keys: Option<String>,
}

#[derive(Args, Debug)]
pub struct StopArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Seconds to wait before killing the container.
    #[arg(short, long, visible_alias = "time")]
    pub timeout: Option<u32>,
    /// Signal to send to the container.
    #[arg(short, long)]
    pub signal: Option<String>,
}

#[derive(Args, Debug)]
pub struct KillArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Signal to send to the container.
    #[arg(short, long, default_value = "KILL")]
    pub signal: String,
}

#[derive(Args, Debug)]
pub struct AttachArgs {
    pub container: String,
    /// Override the key sequence for detaching a container.
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Do not attach STDIN.
    #[arg(long)]
    pub no_stdin: bool,
    /// Proxy all received signals to the process.
    #[arg(long, default_value = "true", action = clap::ArgAction::Set)]
    pub sig_proxy: bool,
}

#[derive(Args, Debug)]
pub struct RmArgs {
    #[arg(required = true)]
    pub containers: Vec<String>,
    /// Kill and remove a running container.
    #[arg(short, long)]
    pub force: bool,
}

/// `--format` of the listing commands.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    /// JSON; `{{json .}}` is Docker's spelling of it.
    #[value(alias = "{{json .}}")]
    Json,
}

/// `run --pull`: when to pull the image.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    Missing,
    Never,
}

/// `--cgroups` (podman's name; the config key `cgroups` is the engine's).
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum CgroupsMode {
    Enabled,
    Disabled,
}

#[derive(Args, Debug)]
pub struct RunArgs {
    /// Print help (`-h` is --hostname, as in Docker).
    #[arg(long, action = clap::ArgAction::Help)]
    pub help: Option<bool>,
    /// Remove the container when it exits.
    #[arg(long)]
    pub rm: bool,
    /// Run in the background and print the container's id.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Override the key sequence for detaching a container.
    #[arg(long)]
    pub detach_keys: Option<String>,
    /// Restart policy: no, on-failure[:N], always, unless-stopped.
    #[arg(long, value_name = "POLICY")]
    pub restart: Option<String>,
    /// Signal to stop the container (default: the image's, else SIGTERM).
    #[arg(long, value_name = "SIGNAL")]
    pub stop_signal: Option<String>,
    /// Seconds to wait for it to stop before killing it (default 10).
    #[arg(long, value_name = "SECONDS")]
    pub stop_timeout: Option<u32>,
    #[arg(long)]
    pub name: Option<String>,
    /// Set environment variables (KEY=VALUE, or KEY to pass berth's own).
    #[arg(short = 'e', long = "env")]
    pub env: Vec<String>,
    #[arg(long)]
    pub env_file: Vec<PathBuf>,
    /// Set metadata on a container (KEY=VALUE, or KEY for an empty value).
    #[arg(short = 'l', long = "label")]
    pub label: Vec<String>,
    /// Publish a container's port(s) to the host
    /// ([HOSTIP:][HOSTPORT:]CONTAINERPORT[/PROTO]).
    #[arg(short = 'p', long = "publish")]
    pub publish: Vec<String>,
    /// Publish all exposed ports to random ports.
    #[arg(short = 'P', long)]
    pub publish_all: bool,
    /// Set custom DNS servers.
    #[arg(long)]
    pub dns: Vec<String>,
    /// Set custom DNS search domains.
    #[arg(long)]
    pub dns_search: Vec<String>,
    /// Set DNS options.
    #[arg(long, alias = "dns-opt")]
    pub dns_option: Vec<String>,
    /// Add a custom host-to-IP mapping (host:ip, or host:host-gateway).
    #[arg(long)]
    pub add_host: Vec<String>,
    /// Read in a line delimited file of labels.
    #[arg(long)]
    pub label_file: Vec<PathBuf>,
    /// Working directory inside the container.
    #[arg(short = 'w', long)]
    pub workdir: Option<String>,
    /// User: name|uid[:group|gid].
    #[arg(short = 'u', long)]
    pub user: Option<String>,
    #[arg(long, short = 'h')]
    pub hostname: Option<String>,
    /// Override the image's ENTRYPOINT ("" clears it).
    #[arg(long)]
    pub entrypoint: Option<String>,
    /// Bind mount HOST:CONTAINER[:ro].
    #[arg(short = 'v', long = "volume")]
    pub volumes: Vec<String>,
    /// type=bind|tmpfs,source=…,target=…[,readonly]
    #[arg(long = "mount")]
    pub mounts: Vec<String>,
    /// Mount a tmpfs: PATH[:OPTIONS].
    #[arg(long)]
    pub tmpfs: Vec<String>,
    /// Mount the container's root filesystem read-only.
    #[arg(long)]
    pub read_only: bool,
    /// seccomp=unconfined|builtin|PROFILE.json, no-new-privileges[=true|false].
    #[arg(long = "security-opt", value_name = "OPT")]
    pub security_opt: Vec<String>,
    #[arg(long)]
    pub platform: Option<String>,
    /// Pull policy: always, missing, never.
    #[arg(long, value_enum, default_value = "missing")]
    pub pull: PullPolicy,
    /// Run berth's tiny init as PID 1 (reaps zombies, forwards signals).
    #[arg(long)]
    pub init: bool,
    /// Keep stdin open.
    #[arg(short = 'i', long)]
    pub interactive: bool,
    /// Allocate a pseudo-terminal.
    #[arg(short = 't', long)]
    pub tty: bool,
    /// bridge (the default), a network's name, none (loopback only),
    /// host, or container:NAME.
    #[arg(long, alias = "net")]
    pub network: Option<String>,
    /// Add network-scoped aliases for the container.
    #[arg(long, alias = "net-alias")]
    pub network_alias: Vec<String>,
    /// IPv4 address on the network (e.g. 172.30.100.104).
    #[arg(long)]
    pub ip: Option<String>,
    /// Suppress pull progress.
    #[arg(short, long)]
    pub quiet: bool,
    /// Memory limit (e.g. 512m, 1g).
    #[arg(short = 'm', long)]
    pub memory: Option<String>,
    /// Memory plus swap limit (-1: unlimited swap; default twice --memory).
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Memory soft limit.
    #[arg(long)]
    pub memory_reservation: Option<String>,
    /// Number of CPUs (e.g. 0.5).
    #[arg(long)]
    pub cpus: Option<String>,
    /// CPU shares (relative weight, default 1024).
    #[arg(short = 'c', long)]
    pub cpu_shares: Option<u64>,
    /// CPUs the container may run on (0-3, 0,1).
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Maximum number of processes (-1: unlimited).
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Block IO relative weight (10 to 1000; 0: none).
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// Limit reads from a block device: PATH:RATE (e.g. /dev/sda:1mb), per second.
    #[arg(long)]
    pub device_read_bps: Vec<String>,
    /// Limit writes to a block device: PATH:RATE (e.g. /dev/sda:1mb), per second.
    #[arg(long)]
    pub device_write_bps: Vec<String>,
    /// Limit read operations on a block device: PATH:COUNT, per second.
    #[arg(long)]
    pub device_read_iops: Vec<String>,
    /// Limit write operations on a block device: PATH:COUNT, per second.
    #[arg(long)]
    pub device_write_iops: Vec<String>,
    /// Parent cgroup (/path, or name.slice for systemd-style).
    #[arg(long)]
    pub cgroup_parent: Option<String>,
    /// Whether the container gets a cgroup of its own: enabled (default;
    /// without a writable cgroup filesystem and with no limits asked for,
    /// it runs without) or disabled (it stays in berth's cgroup).
    #[arg(long, value_enum, value_name = "MODE")]
    pub cgroups: Option<CgroupsMode>,
    /// Resource limit: NAME=SOFT[:HARD] (nofile, nproc, core, ...).
    #[arg(long)]
    pub ulimit: Vec<String>,
    /// Add a Linux capability (or ALL).
    #[arg(long)]
    pub cap_add: Vec<String>,
    /// Drop a Linux capability (or ALL).
    #[arg(long)]
    pub cap_drop: Vec<String>,
    /// Give the container a host device: HOST[:CONTAINER][:PERMS] (PERMS of rwm).
    #[arg(long)]
    pub device: Vec<String>,
    /// Give the container every capability and device, no seccomp, no masked paths.
    #[arg(long)]
    pub privileged: bool,
    /// Switch to the container's root without pivot_root (runc's
    /// --no-pivot): its root filesystem is moved onto / and chrooted into.
    /// Where pivot_root is refused by a seccomp filter (berth in a Docker
    /// container) berth does this by itself. Weaker than pivot_root: a
    /// container with CAP_SYS_ADMIN can unmount its / and reach the host's
    /// root filesystem beneath (without the host's mounts).
    #[arg(long)]
    pub no_pivot: bool,
    /// Logging driver: json-file (default) or none.
    #[arg(long, value_name = "DRIVER")]
    pub log_driver: Option<String>,
    /// Log driver option: max-size=SIZE, max-file=N (json-file).
    #[arg(long, value_name = "OPT")]
    pub log_opt: Vec<String>,
    /// User namespace: host (default), or remap[:USER] to map the
    /// container's root to USER's /etc/subuid range (USER: berth).
    #[arg(long, default_value = "host")]
    pub userns: String,
    #[command(flatten)]
    pub health: crate::healthopts::HealthArgs,
    pub image: String,
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
}
