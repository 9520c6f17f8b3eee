//! Logging in to and out of registries: credentials are checked against the
//! registry before they are stored in the auth file, and forgotten on logout.

use std::path::Path;

use anyhow::{Result, anyhow};

use crate::auth::{self, Credentials};
use crate::reference::DOCKER_HUB;
use crate::registry::{RegistryOptions, Session};

/// Check `username`/`password` against `registry` (a host, `docker.io` by default) and
/// store them in the auth file (`opts.auth_file`, else the default) with mode 0600.
pub fn login(
    opts: &RegistryOptions,
    registry: &str,
    username: &str,
    password: &str,
    auth_file: Option<&Path>,
) -> Result<()> {
    let registry = if registry.is_empty() {
        DOCKER_HUB
    } else {
        registry
    };
    let registry = registry
        .trim_start_matches("https://")
        .trim_start_matches("http://")
        .trim_end_matches('/');
    let api = if matches!(registry, "docker.io" | "index.docker.io") {
        crate::reference::DOCKER_HUB_API
    } else {
        registry
    };
    let creds = Credentials {
        username: username.to_string(),
        password: password.to_string(),
    };
    let session = Session::connect_with(opts, api, None, "", Some(creds.clone()))
        .and_then(|s| s.check_login().map(|_| s))
        .map_err(|e| anyhow!("login {registry}: {e:#}"))?;
    drop(session);
    let file = auth_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| opts.auth_file());
    auth::store(&file, registry, &creds)
}

/// Forget stored credentials for `registry`; returns whether any were stored.
pub fn logout(opts: &RegistryOptions, registry: &str, auth_file: Option<&Path>) -> Result<bool> {
    let registry = if registry.is_empty() {
        DOCKER_HUB
    } else {
        registry
    };
    let file = auth_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| opts.auth_file());
    auth::remove(&file, registry)
}
