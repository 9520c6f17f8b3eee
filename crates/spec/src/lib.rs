//! berth-spec: image config + run options → the OCI runtime spec.
//!
//! It owns Docker's policy for what a container gets: command, environment,
//! user and working directory from the image and the flags; default
//! namespaces, mounts, masked paths, device rules and capabilities;
//! resource limits; and the seccomp profile, evaluated for the container's
//! capabilities. Its output is a `config.json` (`oci_spec::runtime::Spec`),
//! the seam to the runtime.
//!
//! It reads the image's own files (/etc/passwd, /etc/group) and makes the
//! working directory inside the container's rootfs through berth-snapshot's
//! in-root resolver, and that is all it takes from berth-snapshot. It knows
//! nothing of registries or blobs (berth-image) nor of the runtime that
//! runs the spec (berth-runtime): neither may be imported here.
//!
//! - [`options`]: [`RunOptions`], what `run` asks for.
//! - [`bundle`]: [`build_spec`], the whole spec from the image and the options.
//! - [`process`]: command, environment and working directory by Docker's
//!   rules, checked against what execve(2) takes.
//! - [`user`]: `--user` against the image's passwd and group files.
//! - [`capabilities`]: Docker's default set, `--cap-add`/`--cap-drop`,
//!   `--privileged`, bounded by what berth holds.
//! - [`resources`]: `--memory`, `--cpus`, `--pids-limit`, block IO and
//!   the device cgroup rules.
//! - [`mounts`]: Docker's default mounts, masked and read-only paths.
//! - [`seccomp`]: Docker's seccomp profiles (berth's default, `--security-opt`)
//!   evaluated for one container into the spec's `linux.seccomp`.
//!
//! Typical use by the engine:
//!
//! ```no_run
//! # fn f(image: oci_spec::image::ImageConfiguration, rootfs: std::path::PathBuf) -> anyhow::Result<()> {
//! use berth_spec::{RunOptions, build_spec, seccomp};
//! let opts = RunOptions { rootfs, hostname: "abc".into(), ..Default::default() };
//! let mut bundle = build_spec(&image, &opts)?;
//! seccomp::apply(&mut bundle.spec, &seccomp::SecurityOpts::default(), opts.privileged)?;
//! # Ok(()) }
//! ```
//!
//! Decisions worth knowing:
//! - No inheritable capabilities (Docker ≥ 20.10.14, CVE-2022-24769).
//! - Files read from the image are read inside the rootfs, only when
//!   regular, and capped ([`user::MAX_FILE_BYTES`]).
//! - Unknown fields in a seccomp profile are errors, unlike Docker: a
//!   misspelt key would otherwise silently drop a rule.

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod bundle;
pub mod capabilities;
pub mod mounts;
pub mod options;
pub mod process;
pub mod resources;
pub mod seccomp;
pub mod user;

pub use bundle::{BundleSpec, build_spec};
pub use options::RunOptions;
pub use user::ExecUser;

/// The image root the unit tests share with tests/.
#[cfg(test)]
#[path = "../tests/common/mod.rs"]
mod common;
