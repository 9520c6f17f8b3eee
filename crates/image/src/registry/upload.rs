//! The push side of a session (distribution API v2): whether the registry
//! has a blob (HEAD), starting an upload or mounting a blob from another
//! repository of the same registry (POST), streaming a blob in one PUT (or
//! in PATCH chunks when a proxy limits bodies), and putting a manifest.
//!
//! Requests carry the session's Authorization to its own host only; an
//! upload Location on another host (some registries hand uploads to blob
//! storage) gets none. A 401 fetches a fresh token once, as for pulls.

use std::fs::File;
use std::io::{self, Cursor, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use ureq::SendBody;
use ureq::http::{Method, Request, Response, StatusCode};

use super::challenge::challenge_of;
use super::endpoint::{percent_encode, resolve_url};
use super::{Session, Transient, status_error};
use crate::digest::Digest;

/// What `POST /v2/<name>/blobs/uploads/` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Started {
    /// The blob was mounted from the other repository (201): nothing to upload.
    Mounted,
    /// An upload session, at this absolute URL (the Location, resolved).
    Upload(String),
}

/// What a request sends.
enum Payload<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// `len` bytes of a file from `offset`; `on_bytes` is told of every read.
    File {
        path: &'a Path,
        offset: u64,
        len: u64,
        on_bytes: &'a (dyn Fn(u64) + Sync),
    },
}

/// `location` with `digest=<d>` added to its query (which may carry the
/// registry's `_state` already).
fn digest_url(location: &str, d: &Digest) -> String {
    let sep = if location.contains('?') { '&' } else { '?' };
    format!("{location}{sep}digest={}", percent_encode(d.as_str()))
}

/// Counts what the HTTP client reads of a blob.
struct Counting<'a> {
    inner: File,
    on_bytes: &'a (dyn Fn(u64) + Sync),
}

impl Read for Counting<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        (self.on_bytes)(n as u64);
        Ok(n)
    }
}

impl Session {
    /// `HEAD /v2/<name>/blobs/<digest>`: whether this repository has the blob.
    pub fn has_blob(&self, d: &Digest) -> Result<bool> {
        let url = format!("{}/v2/{}/blobs/{}", self.ep.base, self.repository, d);
        let resp = self.send_push(Method::HEAD, &url, None, &Payload::Empty, true)?;
        let s = resp.status();
        // A redirect means the blob is there, in the registry's blob storage.
        if s.is_success() || s.is_redirection() {
            return Ok(true);
        }
        if s == StatusCode::NOT_FOUND {
            return Ok(false);
        }
        Err(status_error(resp, self.low_speed)).with_context(|| format!("blob {}", d.short()))
    }

    /// Start an upload, or with `mount` = (digest, repository) ask the
    /// registry to mount that blob from the other repository instead. A
    /// registry that cannot mount answers with an upload session (202).
    pub fn start_upload(&self, mount: Option<(&Digest, &str)>) -> Result<Started> {
        let mut url = format!("{}/v2/{}/blobs/uploads/", self.ep.base, self.repository);
        if let Some((d, from)) = mount {
            url.push_str(&format!(
                "?mount={}&from={}",
                percent_encode(d.as_str()),
                percent_encode(from)
            ));
        }
        let resp = self.send_push(Method::POST, &url, None, &Payload::Empty, true)?;
        match resp.status().as_u16() {
            201 if mount.is_some() => Ok(Started::Mounted),
            201 | 202 => Ok(Started::Upload(location(&resp, &url)?)),
            _ => Err(status_error(resp, self.low_speed)),
        }
    }

    /// Upload the `size` bytes of `path` to the session at `location` in one
    /// `PUT <location>?digest=<d>` (the monolithic upload); the registry
    /// checks the digest and answers 201.
    pub fn upload_blob(
        &self,
        location: &str,
        d: &Digest,
        path: &Path,
        size: u64,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        let body = Payload::File {
            path,
            offset: 0,
            len: size,
            on_bytes,
        };
        // Not retried here: the upload session may be spent; the caller starts over.
        let resp = self.send_push(Method::PUT, &digest_url(location, d), None, &body, false)?;
        self.upload_answer(resp, 201, d)
    }

    /// Upload `path` in PATCH requests of at most `chunk` bytes (halved, down
    /// to 256 KiB, while a proxy in front of the registry answers 413 Payload
    /// Too Large), each to the Location the previous one answered with, then
    /// close it with `PUT <location>?digest=<d>` and no body.
    pub fn upload_blob_chunked(
        &self,
        location: &str,
        d: &Digest,
        path: &Path,
        size: u64,
        mut chunk: u64,
        on_bytes: &(dyn Fn(u64) + Sync),
    ) -> Result<()> {
        const MIN_CHUNK: u64 = 256 * 1024;
        let mut location = location.to_string();
        let mut offset = 0;
        while offset < size {
            let len = chunk.min(size - offset);
            let body = Payload::File {
                path,
                offset,
                len,
                on_bytes,
            };
            let resp = self.send_push(Method::PATCH, &location, None, &body, false)?;
            if resp.status() == StatusCode::PAYLOAD_TOO_LARGE && chunk > MIN_CHUNK {
                chunk = (chunk / 2).max(MIN_CHUNK);
                continue;
            }
            if resp.status() != StatusCode::ACCEPTED {
                return self.upload_answer(resp, 202, d);
            }
            location = self::location(&resp, &location)?;
            offset += len;
        }
        let url = digest_url(&location, d);
        let resp = self.send_push(Method::PUT, &url, None, &Payload::Empty, false)?;
        self.upload_answer(resp, 201, d)
    }

    /// An upload request's answer: `want`, a transient server error, or the registry's error.
    fn upload_answer(&self, resp: Response<ureq::Body>, want: u16, d: &Digest) -> Result<()> {
        match resp.status().as_u16() {
            s if s == want => Ok(()),
            s @ 500.. => {
                Err(Transient(format!("upload of {}: server error ({s})", d.short())).into())
            }
            _ => Err(status_error(resp, self.low_speed)),
        }
    }

    /// `PUT /v2/<name>/manifests/<reference>` with `bytes` exactly as given;
    /// returns the digest the registry names (checked against ours).
    pub fn put_manifest(&self, reference: &str, media_type: &str, bytes: &[u8]) -> Result<Digest> {
        let url = format!(
            "{}/v2/{}/manifests/{}",
            self.ep.base, self.repository, reference
        );
        let resp = self.send_push(
            Method::PUT,
            &url,
            Some(media_type),
            &Payload::Bytes(bytes),
            true,
        )?;
        if resp.status() != StatusCode::CREATED {
            return Err(status_error(resp, self.low_speed));
        }
        let ours = Digest::of(bytes);
        let theirs = resp
            .headers()
            .get("docker-content-digest")
            .and_then(|v| v.to_str().ok());
        if let Some(theirs) = theirs
            && theirs != ours.as_str()
        {
            bail!("registry stored the manifest as {theirs}, expected {ours}");
        }
        Ok(ours)
    }

    /// One request with the session's auth (fetching a fresh token once on
    /// 401). With `retry`, connection failures and 5xx are tried again up to
    /// `attempts` times; the answer is returned whatever its status.
    fn send_push(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: &Payload<'_>,
        retry: bool,
    ) -> Result<Response<ureq::Body>> {
        let mut refreshed = false;
        let attempts = if retry { self.attempts } else { 1 };
        let mut attempt = 0;
        loop {
            let resp = match self.send_push_once(method.clone(), url, content_type, body) {
                Ok(r) if r.status().is_server_error() && attempt + 1 < attempts => None,
                Ok(r) => Some(r),
                Err(_) if attempt + 1 < attempts => None,
                Err(e) => return Err(e),
            };
            let Some(resp) = resp else {
                std::thread::sleep(Duration::from_millis(200 << attempt.min(5)));
                attempt += 1;
                continue;
            };
            if resp.status() == StatusCode::UNAUTHORIZED && self.same_host(url) && !refreshed {
                refreshed = true;
                if let Some(ch) = challenge_of(&resp) {
                    self.apply_challenge(ch)?;
                    continue;
                }
            }
            return Ok(resp);
        }
    }

    fn send_push_once(
        &self,
        method: Method,
        url: &str,
        content_type: Option<&str>,
        body: &Payload<'_>,
    ) -> Result<Response<ureq::Body>> {
        let own = self.same_host(url);
        let agent = if own { &self.agent } else { &self.foreign };
        let mut req = Request::builder().method(method.clone()).uri(url);
        if let Some(a) = own.then(|| self.auth_header()).flatten() {
            req = req.header("Authorization", a);
        }
        if let Some(ct) = content_type {
            req = req.header("Content-Type", ct);
        }
        let fail = |e: &dyn std::fmt::Display| Transient(format!("{method} {url}: {e}"));
        let resp = match body {
            Payload::Empty => {
                let req = req.header("Content-Length", "0");
                agent.run(req.body(SendBody::none())?)
            }
            Payload::Bytes(b) => {
                let req = req.header("Content-Length", b.len().to_string());
                let mut r = Cursor::new(*b);
                agent.run(req.body(SendBody::from_reader(&mut r))?)
            }
            Payload::File {
                path,
                offset,
                len,
                on_bytes,
            } => {
                let mut f = File::open(path).with_context(|| format!("open {}", path.display()))?;
                f.seek(SeekFrom::Start(*offset))
                    .with_context(|| format!("seek {}", path.display()))?;
                let mut r = Counting {
                    inner: f,
                    on_bytes: *on_bytes,
                };
                let mut req = req
                    .header("Content-Type", "application/octet-stream")
                    .header("Content-Length", len.to_string());
                if method == Method::PATCH {
                    // distribution's form: no "bytes " unit.
                    let end = (offset + len).saturating_sub(1);
                    req = req.header("Content-Range", format!("{offset}-{end}"));
                }
                let mut limited = (&mut r).take(*len);
                agent.run(req.body(SendBody::from_reader(&mut limited))?)
            }
        };
        resp.map_err(|e| fail(&e).into())
    }
}

/// The upload URL a POST answered with, made absolute against the request's.
fn location(resp: &Response<ureq::Body>, url: &str) -> Result<String> {
    let loc = resp
        .headers()
        .get("location")
        .and_then(|l| l.to_str().ok())
        .ok_or_else(|| anyhow!("registry started an upload without a Location ({url})"))?;
    resolve_url(url, loc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digest_goes_after_the_registry_query() {
        let d = Digest::of(b"");
        let hex = d.hex();
        assert_eq!(
            digest_url("http://r/v2/x/blobs/uploads/u?_state=a%3D", &d),
            format!("http://r/v2/x/blobs/uploads/u?_state=a%3D&digest=sha256%3A{hex}")
        );
        assert_eq!(
            digest_url("http://r/v2/x/blobs/uploads/u", &d),
            format!("http://r/v2/x/blobs/uploads/u?digest=sha256%3A{hex}")
        );
    }

    #[test]
    fn upload_locations_resolve() {
        let post = "http://127.0.0.1:5500/v2/a/b/blobs/uploads/";
        assert_eq!(
            resolve_url(post, "/v2/a/b/blobs/uploads/u-1?_state=x%3D").unwrap(),
            "http://127.0.0.1:5500/v2/a/b/blobs/uploads/u-1?_state=x%3D"
        );
        assert_eq!(
            resolve_url(post, "https://blobs.example/up/1?sig=a&b=c").unwrap(),
            "https://blobs.example/up/1?sig=a&b=c"
        );
        assert_eq!(
            resolve_url(post, "u-2").unwrap(),
            "http://127.0.0.1:5500/v2/a/b/blobs/uploads/u-2"
        );
    }
}
