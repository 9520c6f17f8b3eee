//! ADD of a URL (`http://`, `https://`), as BuildKit does it:
//!
//! - the file is downloaded before the step's cache key is made, and the
//!   key holds its sha256 (with its name and `Last-Modified`, as
//!   BuildKit's http source keys them), so a changed file is a miss and
//!   the same bytes a hit;
//! - it lands as one file, never unpacked even when it is an archive:
//!   named after the URL path's last component (`__unnamed__` when it has
//!   none) in a directory destination, else as the destination itself;
//!   mode 0600 unless `--chmod`, owned by `--chown` or 0:0, its mtime the
//!   `Last-Modified` header's (the epoch without one);
//! - `--checksum=sha256:…` is checked against the bytes; a mismatch fails
//!   the step before anything lands;
//! - with the build's network `none` nothing is downloaded: the step fails
//!   naming the URL.
//!
//! The download is berth's own, from the host's network namespace (as
//! Docker's daemon and buildkitd download from theirs), never from a step
//! container's: `--network` only decides whether it may happen. It goes
//! through ureq with rustls and the system's roots (a registry's certs.d
//! CA is for that registry, not for ADD), follows up to 10 redirects, gives
//! up on a connection silent for 60 s, and refuses a body over
//! [`MAX_BYTES`], spooled to an unlinked file, never held in memory.

use std::io::{self, Read, Seek, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, anyhow, bail};
use berth_image::Digest;
use berth_image::digest::Hasher;

use super::super::copy::{self, Meta};
use crate::request::Network;

/// The largest file an ADD downloads: 1 GiB, the cap `import` puts on an
/// archive too; larger files belong in a RUN that knows what it fetches.
pub(super) const MAX_BYTES: u64 = 1 << 30;

/// A downloaded file, spooled.
pub(super) struct Download {
    url: String,
    file: std::fs::File,
    /// The name it takes in a directory destination.
    name: String,
    digest: Digest,
    size: u64,
    /// `Last-Modified`, seconds since the epoch (0 without one).
    mtime: u64,
    /// `Last-Modified` as sent, for the key.
    modified: String,
}

/// Whether an ADD source is a URL berth downloads (Docker's test: the
/// scheme, nothing else).
pub(super) fn is_url(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

/// Downloads `url` into a file in `spool`, `want` (`sha256:…`) checked.
pub(super) fn fetch(
    url: &str,
    want: Option<&str>,
    network: &Network,
    spool: &Path,
) -> Result<Download> {
    if matches!(network, Network::None) {
        bail!("ADD {url}: the build's network is none: nothing is downloaded");
    }
    let want = want
        .map(|c| Digest::parse(c).map_err(|e| anyhow!("invalid --checksum={c}: {e}")))
        .transpose()?;
    let resp = agent()
        .get(url)
        .call()
        .map_err(|e| anyhow!("ADD {url}: {e}"))?;
    let status = resp.status();
    if !status.is_success() {
        bail!(
            "ADD {url}: {} {}",
            status.as_u16(),
            status.canonical_reason().unwrap_or("")
        );
    }
    let header = |n: &str| {
        resp.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    if let Some(n) = header("content-length").and_then(|n| n.trim().parse::<u64>().ok())
        && n > MAX_BYTES
    {
        bail!("ADD {url}: {n} bytes is over the {MAX_BYTES}-byte limit of a download");
    }
    let modified = header("last-modified").unwrap_or_default();
    let mut file = copy::spool_file(spool)?;
    let mut hasher = Hasher::new();
    let mut body = resp.into_body().into_reader().take(MAX_BYTES + 1);
    let mut buf = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = body.read(&mut buf).with_context(|| format!("ADD {url}"))?;
        if n == 0 {
            break;
        }
        size += n as u64;
        if size > MAX_BYTES {
            bail!("ADD {url}: the file is over the {MAX_BYTES}-byte limit of a download");
        }
        hasher.update(&buf[..n]);
        file.write_all(&buf[..n])
            .with_context(|| format!("ADD {url}: spooling"))?;
    }
    let digest = hasher.finish();
    if let Some(w) = want
        && w != digest
    {
        bail!("ADD {url}: checksum mismatch: --checksum={w}, the file's is {digest}");
    }
    Ok(Download {
        url: url.to_string(),
        file,
        name: name_of(url),
        digest,
        size,
        mtime: http_date(&modified).unwrap_or(0),
        modified,
    })
}

/// The agent of downloads: redirects followed, the system's roots, a
/// silent connection given up after 60 s and a download after an hour.
fn agent() -> ureq::Agent {
    let tls = ureq::tls::TlsConfig::builder()
        .root_certs(ureq::tls::RootCerts::PlatformVerifier)
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(10)
        .user_agent(concat!("berth/", env!("CARGO_PKG_VERSION")))
        .timeout_connect(Some(Duration::from_secs(30)))
        .timeout_recv_response(Some(Duration::from_secs(60)))
        .timeout_per_read(Some(Duration::from_secs(60)))
        .timeout_global(Some(Duration::from_secs(3600)))
        .tls_config(tls)
        .build()
        .new_agent()
}

impl Download {
    /// What the cache key takes of it: URL, name, bytes and mtime.
    pub(super) fn key(&self) -> String {
        format!(
            "{}\0url\0{}\0{}\0{}",
            self.url, self.name, self.digest, self.modified
        )
    }

    /// The directory the file lands in and its tar there (one entry):
    /// in `dest` when `dir`, else as `dest` itself.
    pub(super) fn tar(
        &self,
        dest: &str,
        dir: bool,
        meta: Meta,
        spool: &Path,
    ) -> Result<(String, std::fs::File)> {
        let dest = dest.trim_end_matches('/');
        let (under, name) = match dest.rsplit_once('/') {
            _ if dir => (dest.to_string(), self.name.as_str()),
            Some((parent, name)) if !name.is_empty() => (parent.to_string(), name),
            _ => bail!("ADD {}: invalid destination {dest:?}", self.url),
        };
        let (uid, gid) = meta.owner.unwrap_or((0, 0));
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Regular);
        h.set_mode(meta.mode.unwrap_or(0o600));
        h.set_uid(uid.into());
        h.set_gid(gid.into());
        h.set_size(self.size);
        h.set_mtime(self.mtime);
        let mut src = &self.file;
        src.seek(io::SeekFrom::Start(0))?;
        let mut out = tar::Builder::new(io::BufWriter::new(copy::spool_file(spool)?));
        out.append_data(&mut h, name, src.take(self.size))?;
        let w = out.into_inner().context("finishing the download's tar")?;
        let mut tar = w.into_inner().map_err(|e| e.into_error())?;
        tar.seek(io::SeekFrom::Start(0))?;
        Ok((if under.is_empty() { "/".into() } else { under }, tar))
    }
}

/// The name a URL's file takes: its path's last component, decoded
/// (BuildKit's `path.Base` of the URL's path), `__unnamed__` without one.
fn name_of(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let path = rest.find('/').map_or("", |i| &rest[i..]);
    let path = path.split(['?', '#']).next().unwrap_or("");
    let decoded = percent_decode(path);
    match decoded.trim_end_matches('/').rsplit('/').next() {
        Some(n) if !n.is_empty() && n != "." && n != ".." => n.to_string(),
        _ => "__unnamed__".to_string(),
    }
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// An HTTP date (`Sun, 06 Nov 1994 08:49:37 GMT`, RFC 9110's preferred
/// form) as seconds since the epoch; `None` for anything else.
fn http_date(s: &str) -> Option<u64> {
    let w: Vec<&str> = s.split_whitespace().collect();
    if w.len() != 6 || w[5] != "GMT" {
        return None;
    }
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let day: u64 = w[1].parse().ok()?;
    let month = MONTHS.iter().position(|m| *m == w[2])? as u64 + 1;
    let year: u64 = w[3].parse().ok()?;
    let t: Vec<u64> = w[4]
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    if t.len() != 3
        || !(1970..=9999).contains(&year)
        || !(1..=31).contains(&day)
        || t[0] > 23
        || t[1] > 59
        || t[2] > 60
    {
        return None;
    }
    // Days from the civil date (Howard Hinnant's days_from_civil).
    let (y, m) = if month <= 2 {
        (year - 1, month + 9)
    } else {
        (year, month - 3)
    };
    let era = y / 400;
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(days * 86_400 + t[0] * 3600 + t[1] * 60 + t[2])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_dates() {
        assert_eq!(name_of("http://h:1/a/b/c.tar.gz?x=1#f"), "c.tar.gz");
        assert_eq!(name_of("https://h/dir/"), "dir");
        assert_eq!(name_of("https://h/"), "__unnamed__");
        assert_eq!(name_of("https://h"), "__unnamed__");
        assert_eq!(name_of("http://h/a%20b"), "a b");
        assert_eq!(name_of("http://h/x/.."), "__unnamed__");
        assert_eq!(
            http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784_111_777)
        );
        assert_eq!(http_date("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(
            http_date("Tue, 29 Feb 2000 12:00:00 GMT"),
            Some(951_825_600)
        );
        assert_eq!(http_date("Sunday, 06-Nov-94 08:49:37 GMT"), None);
        assert_eq!(http_date("garbage"), None);
        // A year no arithmetic of ours may overflow on.
        assert_eq!(
            http_date("Sun, 06 Nov 18446744073709551615 08:49:37 GMT"),
            None
        );
        assert!(is_url("http://x") && is_url("https://x") && !is_url("ftp://x"));
    }

    #[test]
    fn no_network_no_download() {
        let d = std::env::temp_dir();
        let e = fetch("http://127.0.0.1:9/x", None, &Network::None, &d)
            .err()
            .unwrap();
        assert_eq!(
            e.to_string(),
            "ADD http://127.0.0.1:9/x: the build's network is none: nothing is downloaded"
        );
    }
}
