//! berth's configuration file: Docker daemon.json's registry keys, so a
//! Docker user's knowledge carries over.
//!
//! ```json
//! { "registry-mirrors": ["http://127.0.0.1:5500"],
//!   "insecure-registries": ["registry.lan:5000"],
//!   "certs-dir": "/etc/berth/certs.d" }
//! ```
//!
//! Berth's own keys: `"registry-low-speed-time": 30` (seconds; the
//! default) gives up on a registry transfer that brings less than 1 KiB a
//! second over that long, and retries it (curl's `--speed-time`);
//! `"cgroups": "disabled"` runs containers without cgroups of their own
//! (`run --cgroups`); `"no-pivot": true` is `run --no-pivot` always.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Debug, Default, Clone, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    /// Mirrors tried in order for docker.io before Docker Hub itself.
    #[serde(default)]
    pub registry_mirrors: Vec<String>,
    /// Registries reached over plain HTTP (loopback always is).
    #[serde(default)]
    pub insecure_registries: Vec<String>,
    /// Per-registry CA certificates: `<certs-dir>/<host[:port]>/ca.crt`.
    #[serde(default)]
    pub certs_dir: Option<PathBuf>,
    /// Seconds a registry transfer may stay under 1 KiB/s before it is
    /// given up and retried (berth's own key).
    #[serde(default)]
    pub registry_low_speed_time: Option<u64>,
    /// `enabled` or `disabled`: the default of `run --cgroups` (podman's
    /// containers.conf has the same key).
    #[serde(default)]
    pub cgroups: Option<crate::request::CgroupsMode>,
    /// Always switch a container's root by move and chroot, as
    /// `run --no-pivot` (podman's containers.conf has `no_pivot_root`).
    #[serde(default)]
    pub no_pivot: bool,
    /// The default bridge's address and prefix (Docker's key):
    /// `172.17.0.1/16` unless set.
    #[serde(default)]
    pub bip: Option<String>,
    /// Where `network create` takes subnets from when not given one
    /// (Docker's key): `[{"base": "10.10.0.0/16", "size": 24}]`.
    #[serde(default)]
    pub default_address_pools: Option<Vec<AddressPool>>,
    /// The network of `run` without `--network` (berth's key): `bridge`
    /// unless set, as in Docker; `none` keeps containers off every network.
    #[serde(default)]
    pub default_network: Option<String>,
}

/// One of `default-address-pools`: subnets of prefix `size` cut from `base`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct AddressPool {
    pub base: String,
    pub size: u8,
}

/// Where the config file is when `--config` is not given.
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("BERTH_CONFIG") {
        // Relative to the current directory, as `--config` is.
        return std::path::absolute(&p).unwrap_or_else(|_| PathBuf::from(p));
    }
    if rustix::process::geteuid().is_root() {
        PathBuf::from("/etc/berth/config.json")
    } else {
        let base = std::env::var_os("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
            .unwrap_or_else(|| PathBuf::from("/etc"));
        base.join("berth/config.json")
    }
}

impl Config {
    /// Loads the file; a missing default file is an empty config, while a
    /// file named explicitly must exist.
    pub fn load(path: &Path, explicit: bool) -> Result<Config> {
        let text = match berth_io::read_capped_string(path, berth_io::MIB, "config") {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {
                return Ok(Config::default());
            }
            Err(e) => return Err(e.into()), // names the file already
        };
        serde_json::from_str(&text).with_context(|| format!("config {}", path.display()))
    }

    /// `opts` with the low-speed limit of `registry-low-speed-time`, if set:
    /// 1 KiB a second over that many seconds.
    pub fn low_speed(
        &self,
        mut opts: berth_image::RegistryOptions,
    ) -> berth_image::RegistryOptions {
        if let Some(secs) = self.registry_low_speed_time {
            let secs = secs.max(1);
            opts.low_speed_time = std::time::Duration::from_secs(secs);
            opts.low_speed_bytes = 1024 * secs;
        }
        opts
    }

    pub fn certs_dir(&self) -> PathBuf {
        self.certs_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("/etc/berth/certs.d"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_style_keys() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(
            &p,
            r#"{"registry-mirrors":["http://127.0.0.1:5500"],"insecure-registries":["r:5000"]}"#,
        )
        .unwrap();
        let c = Config::load(&p, true).unwrap();
        assert_eq!(c.registry_mirrors, vec!["http://127.0.0.1:5500"]);
        assert_eq!(c.insecure_registries, vec!["r:5000"]);
        assert_eq!(c.registry_low_speed_time, None);
    }

    #[test]
    fn low_speed_time_sets_the_registry_stall_limit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, r#"{"registry-low-speed-time": 5}"#).unwrap();
        let c = Config::load(&p, true).unwrap();
        let o = c.low_speed(berth_image::RegistryOptions::default());
        assert_eq!(o.low_speed_time, std::time::Duration::from_secs(5));
        assert_eq!(o.low_speed_bytes, 5 * 1024);
        let d = Config::default().low_speed(berth_image::RegistryOptions::default());
        assert_eq!(d.low_speed_time, std::time::Duration::from_secs(30));
    }

    #[test]
    fn missing_default_is_empty_but_missing_explicit_is_an_error() {
        let p = Path::new("/nonexistent/berth.json");
        assert_eq!(Config::load(p, false).unwrap(), Config::default());
        assert!(Config::load(p, true).is_err());
    }

    #[test]
    fn unknown_key_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.json");
        std::fs::write(&p, r#"{"registry-mirror":["x"]}"#).unwrap();
        let e = format!("{:#}", Config::load(&p, true).unwrap_err());
        assert!(e.contains("registry-mirror"), "{e}");
    }
}
