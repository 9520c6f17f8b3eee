//! A client for the distribution (registry) API v2 over ureq.
//!
//! One [`Session`] serves one repository on one endpoint for a whole pull: it
//! probes `/v2/` once, learns the auth scheme, fetches one bearer token and
//! reuses it (fetching a fresh one once if the registry answers 401).
//! Sessions are `Sync`; layers are fetched from several threads.

use std::collections::HashMap;
use std::io::{self, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use ureq::Agent;
use ureq::http::{Response, StatusCode, Uri};
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use crate::auth::{self, Challenge, Credentials};
use crate::digest::Digest;
use crate::manifest::{MAX_MANIFEST_BYTES, media};

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

/// Whether `host[:port]` is a loopback address (Docker reaches those insecurely).
pub fn is_loopback(host: &str) -> bool {
    if host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        return true; // a bare IPv6 address such as ::1
    }
    let h = strip_port(host);
    if h.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let h = h.trim_start_matches('[').trim_end_matches(']');
    h.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host
            .split_once(']')
            .map_or(host, |(h, _)| &host[..h.len() + 1]);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
    }
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The URLs to try for `host`, in order: HTTPS always; plain HTTP only after it,
/// and only for loopback and configured insecure registries (Docker's rule).
pub fn base_urls(opts: &RegistryOptions, host: &str) -> Vec<String> {
    if is_loopback(host) || opts.insecure_registries.iter().any(|r| r == host) {
        vec![format!("https://{host}"), format!("http://{host}")]
    } else {
        vec![format!("https://{host}")]
    }
}

/// Read all CA certificates that apply to `host`.
fn load_cas(opts: &RegistryOptions, host: &str) -> Result<Vec<Certificate<'static>>> {
    let mut files = Vec::new();
    if let Some(f) = opts.ca_files.get(host) {
        files.push(f.clone());
    }
    if let Some(dir) = &opts.certs_d {
        let d = dir.join(host);
        if let Ok(rd) = std::fs::read_dir(&d) {
            let mut v: Vec<PathBuf> = rd
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "crt"))
                .collect();
            v.sort();
            files.extend(v);
        }
    }
    let mut certs = Vec::new();
    for f in files {
        let pem = berth_io::read_capped(&f, berth_io::MIB, "CA file")?;
        let before = certs.len();
        for item in ureq::tls::parse_pem(&pem) {
            if let ureq::tls::PemItem::Certificate(c) =
                item.with_context(|| format!("parse CA file {}", f.display()))?
            {
                certs.push(c);
            }
        }
        if certs.len() == before {
            bail!("CA file {} holds no certificate", f.display());
        }
    }
    Ok(certs)
}

/// System roots, so a per-registry CA adds to them as in Docker.
fn system_roots() -> Vec<Certificate<'static>> {
    for f in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
    ] {
        // Debian's bundle is about 200 KiB.
        if let Ok(pem) = berth_io::read_capped(Path::new(f), 16 * berth_io::MIB, "CA bundle") {
            return ureq::tls::parse_pem(&pem)
                .filter_map(|i| match i {
                    Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
                    _ => None,
                })
                .collect();
        }
    }
    Vec::new()
}

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

/// Where a session talks to: `https://host:port` or `http://host:port`.
#[derive(Clone, Debug)]
struct Endpoint {
    base: String,
    host: String,
}

#[derive(Clone, Debug)]
enum AuthState {
    None,
    Basic(String),
    Bearer(String),
}

/// One repository on one registry endpoint, authenticated.
pub struct Session {
    agent: Agent,
    foreign: Agent,
    ep: Endpoint,
    repository: String,
    creds: Option<Credentials>,
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
        let cas = load_cas(opts, host)?;
        let insecure = is_loopback(host) || opts.insecure_registries.iter().any(|r| r == host);
        let tls = if !cas.is_empty() {
            let mut roots = system_roots();
            roots.extend(cas);
            TlsConfig::builder()
                .root_certs(RootCerts::new_with_certs(&roots))
                .build()
        } else if insecure {
            // Docker's rule for insecure/loopback registries: TLS without verification.
            TlsConfig::builder().disable_verification(true).build()
        } else {
            TlsConfig::builder()
                .root_certs(RootCerts::PlatformVerifier)
                .build()
        };
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

    fn apply_challenge(&self, ch: Challenge) -> Result<()> {
        let state = match ch.scheme.as_str() {
            "basic" => match &self.creds {
                Some(c) => AuthState::Basic(c.basic_header()),
                None => {
                    return Err(StatusError::new(
                        401,
                        format!("unauthorized: registry {} requires a login", self.ep.host),
                    )
                    .into());
                }
            },
            "bearer" => {
                let header = self.fetch_token(&ch)?;
                AuthState::Bearer(header)
            }
            other => bail!(
                "registry {} asks for unsupported auth scheme {other:?}",
                self.ep.host
            ),
        };
        *self.auth.lock().unwrap_or_else(|e| e.into_inner()) = state;
        Ok(())
    }

    fn fetch_token(&self, ch: &Challenge) -> Result<String> {
        let realm = ch
            .params
            .get("realm")
            .ok_or_else(|| anyhow!("registry {} bearer challenge has no realm", self.ep.host))?;
        let mut url = realm.clone();
        let mut q = Vec::new();
        if let Some(s) = ch.params.get("service") {
            q.push(format!("service={}", percent_encode(s)));
        }
        let ours = format!("repository:{}:pull", self.repository);
        let ours = if self.repository.is_empty() {
            String::new()
        } else {
            ours
        };
        if !ours.is_empty() {
            q.push(format!("scope={}", percent_encode(&ours)));
        }
        if let Some(s) = ch.params.get("scope").filter(|s| **s != ours) {
            q.push(format!("scope={}", percent_encode(s)));
        }
        url.push(if url.contains('?') { '&' } else { '?' });
        url.push_str(&q.join("&"));
        let auth = self.creds.as_ref().map(|c| c.basic_header());
        let resp = self.send_retrying(&self.foreign_or_own(&url), &url, None, auth.as_deref())?;
        let status = resp.status().as_u16();
        let what = format!("token service {realm}");
        if status == 401 || status == 403 {
            let body = self
                .low_speed
                .read_small(resp, 64 * 1024, "answer".into())
                .unwrap_or_default();
            let body = String::from_utf8_lossy(&body);
            let why = error_message(&body)
                .unwrap_or_else(|| "incorrect username or password".to_string());
            return Err(StatusError {
                status,
                message: format!("unauthorized: {why}"),
                after: format!(" from token service {realm}"),
            }
            .into());
        }
        if !(200..300).contains(&status) {
            return Err(status_error(resp, self.low_speed)).context(what);
        }
        #[derive(serde::Deserialize)]
        struct Tok {
            token: Option<String>,
            access_token: Option<String>,
        }
        const MAX_TOKEN_BYTES: u64 = 1024 * 1024;
        let body = self
            .low_speed
            .read_small(resp, MAX_TOKEN_BYTES + 1, "answer".into())
            .map_err(|e| Transient(format!("{what}: {e}")))?;
        if body.len() as u64 > MAX_TOKEN_BYTES {
            bail!("{what}: answer larger than 1 MiB");
        }
        let t: Tok = serde_json::from_slice(&body)
            .with_context(|| format!("token service {realm}: bad JSON"))?;
        let token = t
            .token
            .or(t.access_token)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("token service {realm} returned no token"))?;
        Ok(format!("Bearer {token}"))
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

    fn auth_header(&self) -> Option<String> {
        match &*self.auth.lock().unwrap_or_else(|e| e.into_inner()) {
            AuthState::None => None,
            AuthState::Basic(h) => Some(h.clone()),
            AuthState::Bearer(h) => Some(h.clone()),
        }
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

/// The low-speed limit of [`RegistryOptions`].
#[derive(Clone, Copy, Debug)]
struct LowSpeed {
    bytes: u64,
    time: Duration,
}

impl LowSpeed {
    /// At most `limit` bytes of a small body (a token, an error), read
    /// under the limit too: a trickled 64 KiB would otherwise take hours.
    fn read_small(
        self,
        resp: Response<ureq::Body>,
        limit: u64,
        what: String,
    ) -> io::Result<Vec<u8>> {
        let mut v = Vec::new();
        self.guard(resp.into_body().into_reader(), what)
            .take(limit)
            .read_to_end(&mut v)?;
        Ok(v)
    }

    fn guard<R: Read>(self, inner: R, what: String) -> Guarded<R> {
        Guarded {
            inner,
            what,
            limit: self,
            since: Instant::now(),
            got: 0,
        }
    }
}

/// A response body under the low-speed limit, whose I/O errors are
/// transient (retryable). Counting in fixed windows is enough: a stalled
/// body is caught within two windows, and the per-read timeout (at most one
/// window) wakes a read that gets nothing at all.
struct Guarded<R> {
    inner: R,
    /// What is being read, from where, for the error.
    what: String,
    limit: LowSpeed,
    since: Instant,
    got: u64,
}

impl<R> Guarded<R> {
    fn stalled(&self) -> io::Error {
        let secs = self.limit.time.as_secs_f64();
        io::Error::new(
            io::ErrorKind::TimedOut,
            Transient(format!(
                "{} stalled: {} bytes in {secs:.0} s, under the low-speed limit of {} bytes per {secs:.0} s",
                self.what, self.got, self.limit.bytes
            )),
        )
    }
}

impl<R: Read> Read for Guarded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let res = self.inner.read(buf);
        let window_over = self.since.elapsed() >= self.limit.time;
        match res {
            Ok(0) => Ok(0),
            Ok(n) => {
                self.got += n as u64;
                if window_over {
                    if self.got < self.limit.bytes {
                        return Err(self.stalled());
                    }
                    self.since = Instant::now();
                    self.got = 0;
                }
                Ok(n)
            }
            Err(_) if window_over && self.got < self.limit.bytes => Err(self.stalled()),
            Err(e) => Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                Transient(format!("{}: {e}", self.what)),
            )),
        }
    }
}

fn challenge_of<B>(resp: &Response<B>) -> Option<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(auth::parse_challenge)
        .find(|c| c.scheme == "bearer" || c.scheme == "basic")
}

fn resolve_url(base: &str, loc: &str) -> Result<String> {
    if loc.starts_with("http://") || loc.starts_with("https://") {
        return Ok(loc.to_string());
    }
    let b: Uri = base.parse().with_context(|| format!("bad URL {base}"))?;
    let scheme = b.scheme_str().unwrap_or("https");
    let auth = b.authority().map(|a| a.as_str()).unwrap_or("");
    if let Some(rest) = loc.strip_prefix("//") {
        return Ok(format!("{scheme}://{rest}"));
    }
    if loc.starts_with('/') {
        return Ok(format!("{scheme}://{auth}{loc}"));
    }
    let path = b.path();
    let dir = &path[..path.rfind('/').map_or(0, |i| i + 1)];
    Ok(format!("{scheme}://{auth}{dir}{loc}"))
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
    use super::*;

    #[test]
    fn ca_files_are_read_up_to_a_cap() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir(d.path().join("reg:5000")).unwrap();
        let ca = d.path().join("reg:5000/ca.crt");
        std::os::unix::fs::symlink("/dev/zero", &ca).unwrap();
        let opts = RegistryOptions {
            certs_d: Some(d.path().to_path_buf()),
            ..RegistryOptions::default()
        };
        let e = load_cas(&opts, "reg:5000").err().unwrap();
        assert_eq!(
            format!("{e:#}"),
            format!("CA file {}: larger than 1 MiB", ca.display())
        );
    }

    #[test]
    fn loopback_detection() {
        assert!(is_loopback("127.0.0.1:5500"));
        assert!(is_loopback("127.9.9.9"));
        assert!(is_loopback("localhost:5000"));
        assert!(is_loopback("[::1]:5000"));
        assert!(is_loopback("::1"));
        assert!(!is_loopback("10.0.0.1:5000"));
        assert!(!is_loopback("docker.io"));
        assert!(!is_loopback("localhost.example.com"));
    }

    #[test]
    fn plain_http_only_for_loopback_and_insecure() {
        let mut o = RegistryOptions::default();
        assert_eq!(
            base_urls(&o, "registry.example.com"),
            ["https://registry.example.com"]
        );
        assert_eq!(base_urls(&o, "10.1.2.3:5000"), ["https://10.1.2.3:5000"]);
        assert_eq!(
            base_urls(&o, "localhost:5000"),
            ["https://localhost:5000", "http://localhost:5000"]
        );
        assert_eq!(base_urls(&o, "127.0.0.1:5500")[1], "http://127.0.0.1:5500");
        o.insecure_registries.push("10.1.2.3:5000".into());
        assert_eq!(base_urls(&o, "10.1.2.3:5000")[1], "http://10.1.2.3:5000");
        assert_eq!(
            base_urls(&o, "10.1.2.3:5001").len(),
            1,
            "insecure is per host:port"
        );
    }

    #[test]
    fn url_resolution() {
        let b = "http://h:1/v2/r/blobs/x";
        assert_eq!(
            resolve_url(b, "https://s3/x?sig").unwrap(),
            "https://s3/x?sig"
        );
        assert_eq!(resolve_url(b, "/other").unwrap(), "http://h:1/other");
        assert_eq!(resolve_url(b, "//cdn/y").unwrap(), "http://cdn/y");
        assert_eq!(resolve_url(b, "z").unwrap(), "http://h:1/v2/r/blobs/z");
    }

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
