//! Answering a registry's auth challenge: Basic with the session's credentials,
//! or a bearer token for pulling the repository from its token service.

use anyhow::{Context, Result, anyhow, bail};
use ureq::http::Response;

use super::endpoint::percent_encode;
use super::{Session, StatusError, Transient, error_message, status_error};
use crate::auth::{self, Challenge};

/// The Authorization a session sends to its registry, learnt from its challenge.
#[derive(Clone, Debug)]
pub(super) enum AuthState {
    None,
    Basic(String),
    Bearer(String),
}

impl Session {
    /// Authenticate as the registry's challenge asks: Basic with the
    /// session's credentials, or a bearer token from the token service.
    pub(super) fn apply_challenge(&self, ch: Challenge) -> Result<()> {
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

    /// A bearer token for the session's scopes (pulling its repository, or
    /// pushing to it), from the challenge's realm, as an Authorization value.
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
        for ours in &self.scopes {
            q.push(format!("scope={}", percent_encode(ours)));
        }
        if let Some(s) = ch.params.get("scope").filter(|s| !self.scopes.contains(s)) {
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

    /// The Authorization value to send to the registry, if any.
    pub(super) fn auth_header(&self) -> Option<String> {
        match &*self.auth.lock().unwrap_or_else(|e| e.into_inner()) {
            AuthState::None => None,
            AuthState::Basic(h) => Some(h.clone()),
            AuthState::Bearer(h) => Some(h.clone()),
        }
    }
}

/// The first Bearer or Basic challenge of a 401 answer.
pub(super) fn challenge_of<B>(resp: &Response<B>) -> Option<Challenge> {
    resp.headers()
        .get_all("www-authenticate")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(auth::parse_challenge)
        .find(|c| c.scheme == "bearer" || c.scheme == "basic")
}
