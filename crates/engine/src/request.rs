//! What `run` is asked for, as plain data. A front end (berth's command
//! line, later a runtime command line or a build step) fills a
//! [`RunRequest`] in from its own grammar, values already parsed; the
//! engine checks what depends on the host and carries it out.

use std::path::PathBuf;

use anyhow::Result;
pub use berth_spec::resources::{IoLimits, Limits};
pub use berth_spec::seccomp::SecurityOpts;
use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, Mount, MountBuilder, PosixRlimit};

/// A container to run in the foreground, from an image.
#[derive(Debug, Clone, Default)]
pub struct RunRequest {
    /// The image as the user names it (`busybox`, `registry:5000/x:tag`).
    pub image: String,
    /// `--platform`: `linux/arm64`, `linux/arm/v7`.
    pub platform: Option<String>,
    pub pull: PullPolicy,
    /// `--name` (checked against Docker's rule); None: an `adjective_noun`.
    pub name: Option<String>,
    /// `--rm`: removed when it exits.
    pub rm: bool,

    /// Arguments after the image name: replace the image's Cmd.
    pub command: Vec<String>,
    /// `--entrypoint` (`Some("")` clears the image's).
    pub entrypoint: Option<String>,
    /// `KEY=VALUE`s (`--env-file` then `-e`); a bare `KEY` removes KEY.
    pub env: Vec<String>,
    /// `-p`, in order.
    pub publish: Vec<crate::ports::PortBinding>,
    /// `-P`: every port the image exposes, to a free host port.
    pub publish_all: bool,
    /// `--dns`, `--dns-search`, `--dns-option`, `--add-host`.
    pub dns: crate::etc_files::DnsOptions,
    /// `--label-file` then `--label`: over the image's labels.
    pub labels: std::collections::BTreeMap<String, String>,
    /// `--user`: `name|uid[:group|gid]`.
    pub user: Option<String>,
    /// `--workdir`.
    pub workdir: Option<String>,
    /// `--hostname`; None: the first 12 characters of the id.
    pub hostname: Option<String>,
    /// `--init`: berth's tiny init is PID 1.
    pub init: bool,
    /// `-t` and `-i`.
    pub io: IoMode,

    /// `-v`, `--mount` and `--tmpfs`, in that order, checked.
    pub mounts: Vec<Mount>,
    /// `--read-only`.
    pub read_only: bool,

    /// `--memory`, `--cpus`, `--pids-limit`, the block IO flags…
    pub limits: Limits,
    /// `--ulimit`s.
    pub ulimits: Vec<Ulimit>,
    /// `--cgroup-parent`: `/PATH`, or a systemd `NAME.slice`.
    pub cgroup_parent: Option<String>,
    /// `--cgroups`; None: the configuration's, else enabled.
    pub cgroups: Option<CgroupsMode>,

    /// `--privileged`.
    pub privileged: bool,
    /// `--cap-add` and `--cap-drop`: names with or without `CAP_`, any
    /// case, or `ALL`.
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `--device`s.
    pub devices: Vec<Device>,
    /// `--security-opt`: the seccomp profile and no-new-privileges.
    pub security: SecurityOpts,
    /// `--userns`.
    pub userns: Userns,
    /// `--network`.
    pub network: Network,
    /// `--network-alias`: more names on a user-defined network's DNS.
    pub network_aliases: Vec<String>,
    /// `--ip`: the address on the network (else the first free one).
    pub ip: Option<std::net::Ipv4Addr>,
    /// `--no-pivot` (the configuration may also ask for it).
    pub no_pivot: bool,

    /// `-d`/`create`: a monitor looks after it; the caller gets it running.
    pub detach: bool,
    /// `--restart`.
    pub restart: crate::records::RestartPolicy,
    /// `--log-driver`, `--log-opt`.
    pub log: crate::records::LogConfig,
    /// `--stop-signal` (None: the image's StopSignal, else SIGTERM).
    pub stop_signal: Option<String>,
    /// `--stop-timeout` in seconds (None: 10).
    pub stop_timeout: Option<u32>,
    /// `--detach-keys` of `run -it` (None: ctrl-p,ctrl-q).
    pub detach_keys: Option<String>,
    /// `--health-*` (unset fields 0: the image's, else Docker's
    /// defaults); `--no-healthcheck` is `Test: ["NONE"]`.
    pub healthcheck: Option<crate::health::Healthcheck>,
}

/// `--pull`: when to pull the image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum PullPolicy {
    Always,
    /// Only when there is no local image (of the platform asked for).
    #[default]
    Missing,
    Never,
}

/// `--network`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Network {
    /// A network namespace of its own with loopback only.
    #[default]
    None,
    /// The host's network namespace.
    Host,
    /// A bridge network by name: Docker's default `bridge` or one of
    /// `network create`'s (see [`crate::network`]).
    Bridge(String),
    /// `container:NAME`: the network namespace of that running container.
    Container(String),
}

impl Network {
    /// `--network`'s value: a mode, or a network's name.
    pub fn parse(s: &str) -> Network {
        match s {
            "none" => Network::None,
            "host" => Network::Host,
            n => match n.strip_prefix("container:") {
                Some(c) => Network::Container(c.to_string()),
                None => Network::Bridge(n.to_string()),
            },
        }
    }

    /// Whether it is a bridge network (the container gets an address).
    pub fn is_bridge(&self) -> bool {
        matches!(self, Network::Bridge(_))
    }

    /// Its name, as `--network` takes it and the record keeps it (for a
    /// container's, its id once resolved).
    pub fn name(&self) -> String {
        match self {
            Network::None => "none".into(),
            Network::Host => "host".into(),
            Network::Bridge(n) => n.clone(),
            Network::Container(c) => format!("container:{c}"),
        }
    }
}

/// `--cgroups` (podman's name) and the configuration key `cgroups`:
/// whether the container gets a cgroup of its own.
#[derive(serde::Deserialize, Clone, Copy, Debug, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum CgroupsMode {
    /// The default; without a writable cgroup filesystem, a container that
    /// asks for no limits runs without.
    Enabled,
    /// It stays in berth's cgroup.
    Disabled,
}

/// `--userns`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Userns {
    /// The host's user namespace (rootless berth still makes one).
    #[default]
    Host,
    /// `remap[:USER]`: the container's ids 0..N are USER's subordinate
    /// range (None: the user `berth`).
    Remap { user: Option<String> },
}

/// How the container's standard streams are given.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct IoMode {
    /// `-t`: a pseudo-terminal of its own.
    pub tty: bool,
    /// `-i`: berth's stdin is relayed to it.
    pub interactive: bool,
}

/// One `--ulimit`.
#[derive(Debug, Clone)]
pub struct Ulimit {
    /// As given (`nofile=1024:2048`), for messages.
    pub spec: String,
    pub rlimit: PosixRlimit,
}

/// One `--device`: the host's node, the node to make in the container
/// (type, numbers and mode of the host's) and the device-cgroup rule that
/// lets it be used.
#[derive(Debug, Clone)]
pub struct Device {
    pub host: PathBuf,
    pub node: LinuxDevice,
    pub rule: LinuxDeviceCgroup,
}

impl Device {
    /// In a user namespace no node can be made: the host's is bound instead
    /// (podman's way), from the host path given, whatever the container
    /// path is.
    pub fn bind_mount(&self) -> Result<Mount> {
        Ok(MountBuilder::default()
            .typ("bind")
            .source(&self.host)
            .destination(self.node.path())
            .options(vec!["bind".to_string(), "nosuid".into(), "noexec".into()])
            .build()?)
    }
}
