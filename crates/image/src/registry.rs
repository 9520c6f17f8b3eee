//! A client for the distribution (registry) API v2 over ureq.
//!
//! One [`Session`] serves one repository on one endpoint for a whole pull: it
//! probes `/v2/` once, learns the auth scheme, fetches one bearer token and
//! reuses it (fetching a fresh one once if the registry answers 401).
//! Sessions are `Sync`; layers are fetched from several threads.
//!
//! Which URLs and CAs a registry gets is `endpoint`'s, answering its auth
//! challenge `challenge`'s, and the low-speed limit on bodies `low_speed`'s.

use std::collections::HashMap;
use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Result, anyhow, bail};
use ureq::Agent;
use ureq::http::{Response, StatusCode, Uri};
use ureq::tls::{RootCerts, TlsConfig};

use crate::auth::{self, Credentials};
use crate::digest::Digest;
use crate::manifest::{MAX_MANIFEST_BYTES, media};
use challenge::{AuthState, challenge_of};
use endpoint::{Endpoint, resolve_url, tls_config};
pub use endpoint::{base_urls, is_loopback};
use low_speed::LowSpeed;

mod challenge;
mod endpoint;
mod low_speed;
mod upload;

pub use upload::Started;

/// How to reach registries. The CLI fills this from its config and flags.
#[derive(Clone, Debug)]
pub struct RegistryOptions {
    /// Mirrors for Docker Hub only, tried in order before Docker Hub itself,
    /// e.g. `https://mirror.example.com` or `http://127.0.0.1:5500`.
    pub mirrors: Vec<String>,
    /// `host[:port]` of registries that may be reached over plain HTTP
    /// (or HTTPS without verification). Loopback registries always are.
    pub insecure_registries: Vec<String>,
    /// Extra CA certificates (PEM) per registry `host[:port]`.
    pub ca_files: HashMap<String, PathBuf>,
    /// Docker's certs.d layout: `<dir>/<host[:port]>/*.crt` are CAs for that registry.
    pub certs_d: Option<PathBuf>,
    /// The docker `config.json` holding `auths`; `None` means [`auth::default_auth_file`].
    pub auth_file: Option<PathBuf>,
    /// Attempts per request on 5xx and connection failures (at least 1).
    pub attempts: u32,
    /// Give up on a connection that sends nothing for this long, and on
    /// response headers that take longer than this to arrive.
    pub read_timeout: Duration,
    /// Low-speed limit (curl's `--speed-limit`/`--speed-time`): a body that
    /// brings fewer than `low_speed_bytes` bytes in any `low_speed_time` is
    /// stalled, given up and retried like a reset connection. Without it, a
    /// registry sending a byte now and then keeps a pull going for days.
    pub low_speed_bytes: u64,
    /// See `low_speed_bytes`; also caps how long one read may block.
    pub low_speed_time: Duration,
}

impl Default for RegistryOptions {
    fn default() -> Self {
        RegistryOptions {
            mirrors: Vec::new(),
            insecure_registries: Vec::new(),
            ca_files: HashMap::new(),
            certs_d: None,
            auth_file: None,
            attempts: 3,
            read_timeout: Duration::from_secs(60),
            // 1 KiB/s over 30 s: far below any usable link (a 1 MiB layer
            // would take 17 minutes), far above a trickle.
            low_speed_bytes: 30 * 1024,
            low_speed_time: Duration::from_secs(30),
        }
    }
}

impl RegistryOptions {
    /// The auth file in effect.
    pub fn auth_file(&self) -> PathBuf {
        self.auth_file
            .clone()
            .unwrap_or_else(auth::default_auth_file)
    }
}

/// A registry or token service answered with an error status: callers
/// tell denials (401/403) from the rest by type, never by the text.
#[derive(Debug, thiserror::Error)]
#[error("{message} ({status}){after}")]
pub struct StatusError {
    pub status: u16,
    pub message: String,
    /// Words after the status, such as which token service answered.
    pub after: String,
}

impl StatusError {
    fn new(status: u16, message: impl Into<String>) -> StatusError {
        StatusError {
            status,
            message: message.into(),
            after: String::new(),
        }
    }

    /// Whether the answer was a denial: log in, or no such repository.
    pub fn is_denied(&self) -> bool {
        matches!(self.status, 401 | 403)
    }
}

/// A retryable failure (connection reset, 5xx, short body): the caller may try again.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Transient(pub String);

/// An HTTP client under the options' timeouts, following no redirect by itself.
fn agent(opts: &RegistryOptions, tls: TlsConfig) -> Agent {
    Agent::config_builder()
        .http_status_as_error(false)
        // Redirects are followed by hand so Authorization never leaks to blob storage.
        .max_redirects(0)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        // A silent connection must not outlast the low-speed window, and
        // headers trickled a byte at a time must not outlast read_timeout.
        .timeout_per_read(Some(opts.read_timeout.min(opts.low_speed_time)))
        .timeout_recv_response(Some(opts.read_timeout))
        .tls_config(tls)
        .build()
        .new_agent()
}

/// One repository on one registry endpoint, authenticated.
pub struct Session {
    agent: Agent,
    foreign: Agent,
    ep: Endpoint,
    repository: String,
    creds: Option<Credentials>,
    /// The token scopes asked for: `repository:<repo>:pull` (and `push`, and
    /// `pull` on the repositories a push may mount blobs from).
    scopes: Vec<String>,
    auth: Mutex<AuthState>,
    attempts: u32,
    low_speed: LowSpeed,
}

/// What a manifest GET returned.
#[derive(Debug, Clone)]
pub struct FetchedManifest {
    pub bytes: Vec<u8>,
    pub content_type: Option<String>,
    pub digest: Digest,
}

impl Session {
    /// Connect to `host` (a registry as named in references, e.g. `127.0.0.1:5500`
    /// or `registry-1.docker.io`), pick the scheme, and authenticate for pulling `repository`.
    pub fn connect(opts: &RegistryOptions, host: &str, repository: &str) -> Result<Session> {
        let creds = auth::lookup(&opts.auth_file(), host)?;
        Self::connect_with(opts, host, None, repository, creds)
    }

    /// Like [`Session::connect`] with explicit credentials and optionally a fixed base URL (mirrors).
    pub fn connect_with(
        opts: &RegistryOptions,
        host: &str,
        base: Option<&str>,
        repository: &str,
        creds: Option<Credentials>,
    ) -> Result<Session> {
        let scopes = if repository.is_empty() {
            Vec::new()
        } else {
            vec![format!("repository:{repository}:pull")]
        };
        Self::connect_scoped(opts, host, base, repository, creds, scopes)
    }

    /// Connect for pushing to `repository`: the token asks for `pull,push` on
    /// it and `pull` on each of `mount_from` (repositories on the same
    /// registry that blobs may be mounted from).
    pub fn connect_push(
        opts: &RegistryOptions,
        host: &str,
        repository: &str,
        mount_from: &[String],
    ) -> Result<Session> {
        let creds = auth::lookup(&opts.auth_file(), host)?;
        let mut scopes = vec![format!("repository:{repository}:pull,push")];
        scopes.extend(mount_from.iter().map(|r| format!("repository:{r}:pull")));
        Self::connect_scoped(opts, host, None, repository, creds, scopes)
    }

    fn connect_scoped(
        opts: &RegistryOptions,
        host: &str,
        base: Option<&str>,
        repository: &str,
        creds: Option<Credentials>,
        scopes: Vec<String>,
    ) -> Result<Session> {
        let tls = tls_config(opts, host)?;
        let foreign = agent(
            opts,
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build(),
        );
        let agent = agent(opts, tls);
        let bases: Vec<String> = match base {
            Some(b) => vec![b.trim_end_matches('/').to_string()],
            None => base_urls(opts, host),
        };
        let mut errors = Vec::new();
        for b in &bases {
            let mut s = Session {
                agent: agent.clone(),
                foreign: foreign.clone(),
                ep: Endpoint {
                    base: b.clone(),
                    host: host.to_string(),
                },
                repository: repository.to_string(),
                creds: creds.clone(),
                scopes: scopes.clone(),
                auth: Mutex::new(AuthState::None),
                attempts: opts.attempts.max(1),
                low_speed: LowSpeed {
                    bytes: opts.low_speed_bytes,
                    time: opts.low_speed_time,
                },
            };
            match s.ping() {
                Ok(()) => return Ok(s),
                Err(e) if e.downcast_ref::<Transient>().is_some() => {
                    errors.push(format!("{b}: {e:#}"))
                }
                Err(e) => return Err(e),
            }
        }
        bail!("cannot reach registry {host}: {}", errors.join("; "))
    }

    /// The base URL in use, e.g. `http://127.0.0.1:5500`.
    pub fn base_url(&self) -> &str {
        &self.ep.base
    }

    /// `GET /v2/`: learn the auth scheme and authenticate.
    fn ping(&mut self) -> Result<()> {
        let url = format!("{}/v2/", self.ep.base);
        let resp = self.send_once(&self.agent, &url, None, None)?;
        match resp.status().as_u16() {
            200..=299 => Ok(()),
            401 => {
                let ch = challenge_of(&resp).ok_or_else(|| {
                    anyhow!(
                        "registry {} answered 401 without a usable WWW-Authenticate",
                        self.ep.host
                    )
                })?;
                self.apply_challenge(ch)?;
                Ok(())
            }
            s if s >= 500 => {
                Err(Transient(format!("registry {} answered {s} to /v2/", self.ep.host)).into())
            }
            _ => Err(status_error(resp, self.low_speed)),
        }
    }

    /// Verify the session's credentials really work (used by `login`).
    pub fn check_login(&self) -> Result<()> {
        let url = format!("{}/v2/", self.ep.base);
        let resp = self.get(&url, None)?;
        drop(resp);
        Ok(())
    }

    fn foreign_or_own(&self, url: &str) -> Agent {
        if self.same_host(url) {
            self.agent.clone()
        } else {
            self.foreign.clone()
        }
    }

    fn same_host(&self, url: &str) -> bool {
        let Ok(u) = url.parse::<Uri>() else {
            return false;
        };
        let Ok(b) = self.ep.base.parse::<Uri>() else {
            return false;
        };
        u.authority() == b.authority()
    }

    fn send_once(
        &self,
        agent: &Agent,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response<ureq::Body>> {
        let mut req = agent.get(url);
        if let Some(a) = accept {
            req = req.header("Accept", a);
        }
        if let Some(a) = authorization {
            req = req.header("Authorization", a);
        }
        req.call()
            .map_err(|e| Transient(format!("GET {url}: {e}")).into())
    }

    /// GET with retries on connection failures and 5xx, bounded by `attempts`.
    fn send_retrying(
        &self,
        agent: &Agent,
        url: &str,
        accept: Option<&str>,
        authorization: Option<&str>,
    ) -> Result<Response<ureq::Body>> {
        let mut last = None;
        for attempt in 0..self.attempts {
            if attempt > 0 {
                // Exponential backoff: 200 ms, 400 ms, ...
                std::thread::sleep(Duration::from_millis(200 << (attempt - 1).min(5)));
            }
            match self.send_once(agent, url, accept, authorization) {
                Ok(r) if r.status().is_server_error() => {
                    last =
                        Some(Transient(format!("server error ({})", r.status().as_u16())).into());
                }
                Ok(r) => return Ok(r),
                Err(e) => last = Some(e),
            }
        }
        // Retried enough here: callers must not multiply the attempts, so this is final.
        let e = last.unwrap_or_else(|| anyhow!("no attempt made"));
        Err(anyhow!("{e:#} (after {} attempts)", self.attempts))
    }

    /// GET a registry path or absolute URL, with auth, redirects, retries and error mapping.
    pub fn get(&self, url: &str, accept: Option<&str>) -> Result<Response<ureq::Body>> {
        let mut url = url.to_string();
        let mut refreshed = false;
        for _hop in 0..10 {
            let own = self.same_host(&url);
            // The registry's credentials are for the registry only, never for blob storage.
            let auth = if own { self.auth_header() } else { None };
            let agent = if own { &self.agent } else { &self.foreign };
            let resp = self.send_retrying(agent, &url, accept, auth.as_deref())?;
            let status = resp.status();
            if status.is_redirection() {
                let loc = resp
                    .headers()
                    .get("location")
                    .and_then(|l| l.to_str().ok())
                    .ok_or_else(|| {
                        anyhow!("redirect ({}) without Location from {url}", status.as_u16())
                    })?;
                url = resolve_url(&url, loc)?;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED && own && !refreshed {
                refreshed = true;
                // The token may have expired mid-pull: fetch a fresh one, once.
                if let Some(ch) = challenge_of(&resp) {
                    self.apply_challenge(ch)?;
                    continue;
                }
            }
            if status.is_success() {
                return Ok(resp);
            }
            return Err(status_error(resp, self.low_speed));
        }
        bail!("too many redirects fetching {url}")
    }

    /// Fetch a manifest by tag or digest, reading at most 4 MiB, and compute its digest.
    pub fn manifest(&self, reference: &str) -> Result<FetchedManifest> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.ep.base, self.repository, reference
        );
        let resp = self.get(&url, Some(media::MANIFEST_ACCEPT))?;
        let too_big = || {
            anyhow!(
                "manifest is larger than {} MiB, refusing it",
                MAX_MANIFEST_BYTES >> 20
            )
        };
        if resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|n| n > MAX_MANIFEST_BYTES)
        {
            return Err(too_big());
        }
        let content_type = resp
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut bytes = Vec::new();
        // Bounded while reading: a hostile registry cannot make us buffer more than 4 MiB + 1.
        let what = format!("{reference} from {}", self.ep.host);
        self.low_speed
            .guard(resp.into_body().into_reader(), what)
            .take(MAX_MANIFEST_BYTES + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Transient(format!("reading manifest: {e}")))?;
        if bytes.len() as u64 > MAX_MANIFEST_BYTES {
            return Err(too_big());
        }
        let digest = Digest::of(&bytes);
        Ok(FetchedManifest {
            bytes,
            content_type,
            digest,
        })
    }

    /// Start fetching a blob; returns its body reader and announced length.
    pub fn blob(&self, digest: &Digest) -> Result<(Box<dyn Read + Send>, Option<u64>)> {
        let url = format!("{}/v2/{}/blobs/{}", self.ep.base, self.repository, digest);
        let resp = self.get(&url, None)?;
        let len = resp
            .headers()
            .get("content-length")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let what = format!("{digest} from {}", self.ep.host);
        let r = self.low_speed.guard(resp.into_body().into_reader(), what);
        Ok((Box::new(r), len))
    }
}

/// The message of a registry error body (`{"errors":[{"code","message"}]}`).
fn error_message(body: &str) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct E {
        #[serde(default)]
        code: String,
        #[serde(default)]
        message: String,
    }
    #[derive(serde::Deserialize)]
    struct Es {
        errors: Vec<E>,
    }
    let es: Es = serde_json::from_str(body).ok()?;
    let e = es.errors.into_iter().next()?;
    let code = e.code.to_ascii_lowercase().replace('_', " ");
    Some(match (code.is_empty(), e.message.is_empty()) {
        (true, _) => e.message,
        (false, true) => code,
        (false, false) if code == e.message.to_ascii_lowercase() => e.message,
        (false, false) => format!("{}: {}", e.code.to_ascii_lowercase(), e.message),
    })
}

/// Turn a non-success response into a one-line error like `manifest unknown (404)`.
fn status_error(resp: Response<ureq::Body>, low_speed: LowSpeed) -> anyhow::Error {
    let status = resp.status().as_u16();
    let reason = resp.status().canonical_reason();
    let what = format!("error body ({status})");
    // An error body is only a hint: cut at 64 KiB, dropped if unreadable.
    let body = low_speed
        .read_small(resp, 64 * 1024, what)
        .unwrap_or_default();
    let body = String::from_utf8_lossy(&body);
    let msg = error_message(&body).unwrap_or_else(|| match status {
        401 => "unauthorized: authentication required".to_string(),
        403 => "denied: access forbidden".to_string(),
        404 => "not found".to_string(),
        429 => "toomanyrequests: too many requests".to_string(),
        _ => reason.unwrap_or("error").to_ascii_lowercase(),
    });
    let msg = if status == 429 && !msg.starts_with("toomanyrequests") {
        format!("toomanyrequests: {msg}")
    } else {
        msg
    };
    StatusError::new(status, msg).into()
}

/// Whether an error (or its cause chain) is worth retrying.
pub fn is_transient(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<Transient>().is_some()
            || c.downcast_ref::<io::Error>().is_some_and(|io| {
                io.get_ref()
                    .is_some_and(|inner| inner.downcast_ref::<Transient>().is_some())
            })
    })
}

/// Share a session among threads.
pub type SharedSession = Arc<Session>;

#[cfg(test)]
mod tests {
    use super::endpoint::percent_encode;
    use super::*;

    #[test]
    fn error_messages() {
        let m = error_message(
            r#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown","detail":{}}]}"#,
        );
        assert_eq!(m.as_deref(), Some("manifest unknown"));
        let m = error_message(
            r#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#,
        );
        assert_eq!(m.as_deref(), Some("unauthorized: authentication required"));
        assert_eq!(error_message("<html>"), None);
        assert_eq!(
            percent_encode("repository:a/b:pull"),
            "repository%3Aa%2Fb%3Apull"
        );
    }
}
