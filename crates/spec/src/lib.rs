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
//! - [`bundle`]: [`build_spec`], the whole spec from [`RunOptions`].
//! - [`user`]: `--user` against the image's passwd and group files.
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
pub mod seccomp;
pub mod user;

pub use bundle::{BundleSpec, ExecUser, RunOptions, build_spec};
