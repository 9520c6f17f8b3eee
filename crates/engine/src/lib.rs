//! berth-engine: what berth does between a front end and the runtime, as a
//! library. Its input is plain data ([`RunRequest`], a container's key),
//! never a command line: berth's CLI is one front end; detached
//! containers, exec, a runc-compatible command line and builds will be
//! others.
//!
//! - [`Engine`] (`roots`): the root, the exec root, the configuration
//!   ([`config`]), the image store.
//! - [`run`](mod@run): the run sequence, one function per step (check → resolve
//!   image → create → prepare rootfs → build spec → write bundle → start
//!   and wait → record exit → tear down); [`spec`]: the container's OCI
//!   spec, finished in one place.
//! - [`exec`](mod@exec): a new process in a running container.
//! - [`records`]: container records, names and ids; [`remove`]: removal
//!   and the sweep of runs whose berth died; `trash`: deletion in the
//!   background; [`logs`]: containers' logs in Docker's json-file format.
//! - [`rootfs_prep`]: an image's snapshots prepared, a container's rootfs
//!   mounted (the snapshot store itself is berth-rootfs's).
//! - [`cp`]: files in and out of a container, resolved in its root;
//!   [`top`]: its processes (`ps` cut down to them); [`stats`]: its usage,
//!   from its cgroup and /proc.
//! - [`rootless`]: berth run by an ordinary user (its re-exec into a user
//!   namespace, id maps, `--userns remap`); [`pasta`]: its `--network
//!   bridge`; [`host`]: what this host lets berth do; [`info`]: the data
//!   behind `berth info`.
//! - [`build`](mod@build): images from a Dockerfile, each RUN a container
//!   of [`run`](mod@run), each layer written as [`commit`] writes one.
//! - [`events`]: Docker's events, appended to a file under the root by
//!   whichever berth acts, read and followed by `berth events`;
//!   [`system`]: disk usage, prunes and image removal.
//!
//! Crates: cli → engine → {image, rootfs, runtime} (and io, which all may
//! use). The engine never prints a table or maps an exit code; image,
//! rootfs and runtime never import each other or the engine.

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod attach;
pub mod build;
pub mod commit;
pub mod config;
pub mod cp;
pub mod diff;
pub mod etc_files;
pub mod events;
pub mod exec;
pub mod health;
pub mod host;
pub mod import;
pub mod info;
pub mod instructions;
pub mod lifecycle;
pub mod logs;
pub mod monitor;
pub mod network;
pub mod pasta;
pub mod ports;
pub mod prune;
pub mod records;
pub mod remove;
pub mod rename;
pub mod request;
pub mod rootfs_prep;
pub mod rootless;
mod roots;
pub mod run;
pub mod spec;
pub mod stats;
pub mod system;
pub mod timefmt;
pub mod top;
mod trash;

pub use exec::{ExecEnded, ExecRequest, Refused};
pub use request::{
    CgroupsMode, Device, IoLimits, IoMode, Limits, Network, PullPolicy, RunRequest, SecurityOpts,
    Ulimit, Userns,
};
pub use roots::{Engine, Options};
pub use run::{Finished, run};

/// The tiny init `--init` runs as a container's PID 1, for the front
/// end's hidden `init` subcommand (berth's own binary is the init).
pub use berth_runtime::init::init_main;
