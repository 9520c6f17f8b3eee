//! What every command needs: the root, the configuration, the image store.

use std::path::PathBuf;

use anyhow::Result;
use berth_image::{RegistryOptions, Store};

use crate::cli::Cli;
use crate::config::{self, Config};

pub struct Engine {
    pub root: PathBuf,
    pub config: Config,
    pub store: Store,
}

/// Default root: /var/lib/berth for root, `$XDG_DATA_HOME/berth` otherwise.
fn default_root() -> PathBuf {
    if !crate::rootless::active() {
        return PathBuf::from("/var/lib/berth");
    }
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("/tmp"))
        .join("berth")
}

impl Engine {
    pub fn open(cli: &Cli) -> Result<Engine> {
        let root = cli.root.clone().unwrap_or_else(default_root);
        let config = match &cli.config {
            Some(p) => Config::load(p, true)?,
            None => Config::load(&config::default_path(), false)?,
        };
        let store = Store::open(&root)?;
        Ok(Engine {
            root,
            config,
            store,
        })
    }

    pub fn registry_options(&self) -> RegistryOptions {
        RegistryOptions {
            mirrors: self.config.registry_mirrors.clone(),
            insecure_registries: self.config.insecure_registries.clone(),
            certs_d: Some(self.config.certs_dir()),
            ..RegistryOptions::default()
        }
    }
}
