//! berth-runtime: runs an OCI bundle (a directory with `config.json` and a
//! root filesystem) as a container. It knows nothing of images.
//!
//! - [`Container`]: the OCI lifecycle (create / start / kill / state /
//!   delete) with state in `<state_dir>/<id>/state.json`.
//! - [`run`]: the foreground path of `berth run`.
//! - [`init::init_main`]: the tiny init used for `--init`.
//!
//! The runtime forks with raw clone3 and must be used from a
//! single-threaded process.

mod capabilities;
pub mod cgroups;
mod container;
mod error;
pub mod init;
mod rootfs;
mod run;
mod setup;
mod state;
mod sync;
mod sys;
mod terminal;

pub use container::{Container, Io};
pub use error::{Error, ErrorKind, Result};
pub use run::{FORWARDED_SIGNALS, run};
pub use state::{State, Status};
