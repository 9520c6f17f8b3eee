//! berth-runtime: runs an OCI bundle (a directory with `config.json` and a
//! root filesystem) as a container. It knows nothing of images.
//!
//! - [`Container`]: the OCI lifecycle (create / start / kill / state /
//!   delete) with state in `<state_dir>/<id>/state.json`.
//! - [`run`]: the foreground path of `berth run`.
//! - [`exec`](fn@exec), [`exec_detached`]: a new process in a running
//!   container (`berth exec`, and the OCI runtime's `exec`).
//! - [`init::init_main`]: the tiny init used for `--init`.
//!
//! How a container comes to life (crun's shape, in one process image; the
//! messages are drawn in `sync`):
//! 1. `create` makes `<state_dir>/<id>/exec.fifo` and a seqpacket socketpair,
//!    compiles the `linux.seccomp` filter (or takes it from the cache, see
//!    [`seccomp`]), makes and limits the container's cgroup, then clone3s
//!    the child straight into its new namespaces (CLONE_NEWPID etc.), so
//!    the command will be PID 1, and on cgroup v2 straight into its cgroup
//!    (CLONE_INTO_CGROUP). A container may have no cgroup of its own: with
//!    the [`cgroups::MODE`] annotation `disabled`, or where none can be made
//!    and it asks for no limits; without a user namespace its root is then
//!    remounted nodev (it has no device cgroup).
//! 2. The runtime writes the maps of a new user namespace and sends `G`.
//!    The child moves itself into its v1 cgroup, joins the spec's existing
//!    namespaces, unshares its cgroup namespace, makes mount propagation
//!    private, binds the rootfs onto itself, mounts the spec's mounts with
//!    targets resolved by openat2(RESOLVE_IN_ROOT), fills /dev, asks the
//!    runtime to run the prestart and createRuntime hooks if there are any
//!    (`H`, answered `G`; see [`hooks`]), pivot_root(".", ".") + detach (or, with [`NO_PIVOT`] or where
//!    pivot_root is refused with EPERM, a move onto / and chroot), then
//!    console, hostname, sysctls, masked/read-only paths, read-only root,
//!    rlimits, the seccomp filter (here without no_new_privs, right before
//!    exec with it), identity and capabilities, and looks the command up in
//!    the spec's PATH. It reports `R` and blocks on the exec fifo, watching
//!    the socket: a `create` that returns hands the container over (`D`,
//!    answered `A`: it drops its parent-death signal), and end-of-file
//!    before that means the runtime died.
//! 3. `start` writes the fifo. The child execs the exec trampoline (see
//!    `trampoline`), a sealed memfd, with its socket end as fd 3; the
//!    trampoline execs the command. End-of-file on the socket means the
//!    command runs; `X` carries the errno of a failed exec, `E` an error
//!    before it (mapped to 127/126/125 by [`Error::exit_code`]). Then
//!    the poststart hooks run; `delete` runs the poststop ones.
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
mod exec;
mod foreground;
pub mod hooks;
pub mod init;
pub mod process;
mod relay;
mod rootfs;
mod run;
pub mod seccomp;
mod setup;
pub mod signals;
mod state;
mod sync;
mod sys;
pub mod terminal;
mod trampoline;
mod userns;

pub use container::{Container, Io, Streams, load_spec, validate_id};

/// Annotation asking for the root switch without pivot_root: the rootfs
/// is moved onto / and chrooted into (runc's `--no-pivot`). Value `true`.
/// Without it the runtime still falls back to this when pivot_root is
/// refused with EPERM (a seccomp filter such as Docker's default profile).
pub const NO_PIVOT: &str = "org.berth.no-pivot";
pub use error::{Error, ErrorKind, Result};
pub use exec::{Detached, DetachedStdio, Exec, exec, exec_detached};
pub use foreground::FORWARDED_SIGNALS;
pub use relay::OutputTap;
pub use run::{Exit, run, run_spec};
pub use state::{State, Status};
pub use userns::new_userns;
