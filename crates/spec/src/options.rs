//! What `run` asks for on top of the image config: the one input every
//! part of the spec is decided from.

use std::path::PathBuf;

use oci_spec::runtime::{LinuxDevice, LinuxDeviceCgroup, Mount, PosixRlimit};

use crate::resources::Limits;

/// What `run` asks for on top of the image config.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Host path of the container's rootfs: /etc/passwd, /etc/group and the
    /// working directory are looked up and created inside it.
    pub rootfs: PathBuf,
    /// `root.path` written into the spec (default `rootfs`, relative to the bundle).
    pub spec_root: Option<PathBuf>,
    /// `--entrypoint`: `Some("")` clears the image's entrypoint; any value also drops the image's Cmd.
    pub entrypoint: Option<String>,
    /// Arguments after the image name: replace the image's Cmd.
    pub cmd: Vec<String>,
    /// `-e` values, already resolved to `KEY=VALUE`; a bare `KEY` removes KEY.
    pub env: Vec<String>,
    /// `--user`: `name`, `uid`, `uid:gid`, `name:group`, `uid:group`...
    pub user: Option<String>,
    /// `--workdir`: absolute path.
    pub workdir: Option<String>,
    /// Container hostname (also `HOSTNAME` in the environment).
    pub hostname: String,
    /// `-t`: allocate a terminal (also `TERM=xterm`).
    pub tty: bool,
    /// `--read-only`.
    pub readonly_rootfs: bool,
    /// `--network host`: no network namespace.
    pub host_network: bool,
    /// A network namespace to join (kept on this file) instead of a new one.
    pub network_ns: Option<std::path::PathBuf>,
    /// Extra mounts (volumes, tmpfs, /etc/hosts, ...); one with the same
    /// destination as a default mount replaces it.
    pub mounts: Vec<Mount>,
    /// `--privileged`: every capability, no masked or read-only paths, every
    /// device allowed by the device cgroup, /sys and cgroupfs read-write.
    pub privileged: bool,
    /// `--cap-add`: names with or without `CAP_`, any case, or `ALL`.
    pub cap_add: Vec<String>,
    /// `--cap-drop`: as `cap_add`; `ALL` drops every default first.
    pub cap_drop: Vec<String>,
    /// `linux.cgroupsPath` (`/berth/<id>`, or under `--cgroup-parent`).
    pub cgroups_path: Option<String>,
    /// `--memory`, `--cpus`, `--pids-limit` and friends.
    pub limits: Limits,
    /// `--ulimit`s.
    pub rlimits: Vec<PosixRlimit>,
    /// `--device`s: the nodes to make (`linux.devices`)...
    pub devices: Vec<LinuxDevice>,
    /// ...and the device-cgroup rules that allow them, after Docker's
    /// default allow-list. Apart, because in a user namespace the node is a
    /// bind mount of the host's while the rule still applies.
    pub device_rules: Vec<LinuxDeviceCgroup>,
}
