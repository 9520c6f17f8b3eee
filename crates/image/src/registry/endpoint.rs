//! Where a registry is reached and how far it is trusted: the URLs to try
//! (plain HTTP only for loopback and insecure registries, as in Docker),
//! where a redirect goes, and the CAs its TLS is checked against.

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use ureq::http::Uri;
use ureq::tls::{Certificate, RootCerts, TlsConfig};

use super::RegistryOptions;

/// Where a session talks to: `https://host:port` or `http://host:port`.
#[derive(Clone, Debug)]
pub(super) struct Endpoint {
    pub(super) base: String,
    pub(super) host: String,
}

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

/// `host` without its `:port`, minding `[v6]:port`.
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

/// `s` as a URL query value.
pub(super) fn percent_encode(s: &str) -> String {
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
    if is_insecure(opts, host) {
        vec![format!("https://{host}"), format!("http://{host}")]
    } else {
        vec![format!("https://{host}")]
    }
}

/// Whether `host[:port]` may be reached without verified TLS: loopback and
/// configured insecure registries (Docker's rule).
fn is_insecure(opts: &RegistryOptions, host: &str) -> bool {
    is_loopback(host) || opts.insecure_registries.iter().any(|r| r == host)
}

/// The TLS configuration for `host`: its CAs added to the system roots when
/// it has any, no verification for an insecure registry, else the platform's
/// verifier.
pub(super) fn tls_config(opts: &RegistryOptions, host: &str) -> Result<TlsConfig> {
    let cas = load_cas(opts, host)?;
    Ok(if !cas.is_empty() {
        let mut roots = system_roots();
        roots.extend(cas);
        TlsConfig::builder()
            .root_certs(RootCerts::new_with_certs(&roots))
            .build()
    } else if is_insecure(opts, host) {
        // Docker's rule for insecure/loopback registries: TLS without verification.
        TlsConfig::builder().disable_verification(true).build()
    } else {
        TlsConfig::builder()
            .root_certs(RootCerts::PlatformVerifier)
            .build()
    })
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

/// Where a redirect to `loc` from `base` goes.
pub(super) fn resolve_url(base: &str, loc: &str) -> Result<String> {
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
}
