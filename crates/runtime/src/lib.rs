//! berth-runtime: runs an OCI bundle (a directory with `config.json` and a
//! root filesystem) as a container. It knows nothing of images.
//!
//! - [`Container`]: the OCI lifecycle (create / start / kill / state /
//!   delete) with state in `<state_dir>/<id>/state.json`.
//! - [`run`]: the foreground path of `berth run`.
//! - [`init::init_main`]: the tiny init used for `--init`.
//!
//! How a container comes to life (crun's shape, in one process image):
//! 1. `create` makes `<state_dir>/<id>/exec.fifo` and a seqpacket socketpair,
//!    then clone3s the child straight into its new namespaces
//!    (CLONE_NEWPID etc.), so the command will be PID 1.
//! 2. The container's cgroup is made and limited before the clone (v2: the
//!    child is cloned into it; v1: the runtime moves it in). The child waits
//!    for `G` (user-namespace maps will go there too), unshares its cgroup
//!    namespace, makes mount propagation private, binds the rootfs onto
//!    itself, mounts the spec's mounts with targets resolved by
//!    openat2(RESOLVE_IN_ROOT), fills /dev, pivot_root(".", ".") + detach
//!    (or, refused or [`NO_PIVOT`], a move onto / and chroot), then
//!    console, masked/read-only paths, read-only root, hostname, rlimits,
//!    identity and capabilities, and looks the command up in the spec's
//!    PATH. It reports `R` and blocks reading the exec fifo.
//!    A `linux.seccomp` filter is compiled (or taken from the cache, see
//!    [`seccomp`]) before clone and installed by the child: before the
//!    identity change without no_new_privs, otherwise right before exec.
//! 3. `start` writes the fifo; the child execs. Its sync socket end is
//!    close-on-exec: end-of-file means exec worked, an `E` message carries
//!    the error (mapped to 127/126/125 by [`Error::exit_code`]).
//!
//! The runtime forks with raw clone3 and must be used from a
//! single-threaded process (tests drive it through the
//! `berth-runtime-test` helper binary for that reason).

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod capabilities;
pub mod cgroups;
mod container;
mod error;
pub mod exe;
pub mod init;
pub mod process;
mod relay;
mod rootfs;
mod run;
pub mod seccomp;
mod setup;
mod state;
mod sync;
mod sys;
mod terminal;
mod trampoline;
mod userns;

pub use container::{Container, Io, load_spec};

/// Annotation asking for the root switch without pivot_root: the rootfs
/// is moved onto / and chrooted into (runc's `--no-pivot`). Value `true`.
/// Without it the runtime still falls back to this when pivot_root is
/// refused (a seccomp filter such as Docker's default profile).
pub const NO_PIVOT: &str = "org.berth.no-pivot";
pub use error::{Error, ErrorKind, Result};
pub use run::{Exit, FORWARDED_SIGNALS, run, run_spec};
pub use state::{State, Status};
pub use userns::new_userns;
