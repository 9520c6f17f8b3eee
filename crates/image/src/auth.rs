//! Credentials in Docker's `config.json` (`auths` map), and the parsing of
//! `WWW-Authenticate` challenges.

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

/// A username and password (or token used as one).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for Credentials {
    // Never print the secret, even in debug logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Credentials {
    /// The `Authorization: Basic` value.
    pub fn basic_header(&self) -> String {
        format!(
            "Basic {}",
            B64.encode(format!("{}:{}", self.username, self.password))
        )
    }
}

/// `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
pub fn default_auth_file() -> PathBuf {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir).join("config.json");
    }
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/root"));
    home.join(".docker").join("config.json")
}

/// The key Docker uses in `auths` for a registry host.
pub fn auth_key(registry: &str) -> String {
    if is_docker_hub(registry) {
        "https://index.docker.io/v1/".to_string()
    } else {
        registry.to_string()
    }
}

fn is_docker_hub(host: &str) -> bool {
    matches!(
        host,
        "docker.io" | "index.docker.io" | "registry-1.docker.io"
    )
}

/// `https://host:port/v1/` → `host:port`; Docker accepts these spellings as keys.
fn normalise_key(key: &str) -> String {
    let k = key
        .strip_prefix("https://")
        .or_else(|| key.strip_prefix("http://"))
        .unwrap_or(key);
    let k = k.split('/').next().unwrap_or(k);
    if is_docker_hub(k) {
        "docker.io".to_string()
    } else {
        k.to_string()
    }
}

fn read_config(path: &Path) -> Result<serde_json::Map<String, serde_json::Value>> {
    // Bounded: a file of many registries' tokens is a few KiB.
    match berth_io::read_capped(path, 4 * berth_io::MIB, "credentials file") {
        Ok(b) if b.iter().all(u8::is_ascii_whitespace) => Ok(Default::default()),
        Ok(b) => {
            let v: serde_json::Value =
                serde_json::from_slice(&b).with_context(|| format!("parse {}", path.display()))?;
            match v {
                serde_json::Value::Object(m) => Ok(m),
                _ => bail!("{}: not a JSON object", path.display()),
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Default::default()),
        Err(e) => Err(e.into()), // names the file already
    }
}

/// Credentials for `registry` from the auth file, if any.
pub fn lookup(auth_file: &Path, registry: &str) -> Result<Option<Credentials>> {
    let cfg = read_config(auth_file)?;
    let Some(auths) = cfg.get("auths").and_then(|a| a.as_object()) else {
        return Ok(None);
    };
    let want = normalise_key(registry);
    for (key, entry) in auths {
        if normalise_key(key) != want {
            continue;
        }
        if let Some(auth) = entry
            .get("auth")
            .and_then(|a| a.as_str())
            .filter(|a| !a.is_empty())
        {
            let raw = B64.decode(auth.trim()).with_context(|| {
                format!("{}: auths[{key:?}].auth is not base64", auth_file.display())
            })?;
            let s = String::from_utf8(raw).with_context(|| {
                format!("{}: auths[{key:?}].auth is not UTF-8", auth_file.display())
            })?;
            let Some((u, p)) = s.split_once(':') else {
                bail!(
                    "{}: auths[{key:?}].auth is not user:password",
                    auth_file.display()
                );
            };
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
        let u = entry.get("username").and_then(|v| v.as_str());
        let p = entry.get("password").and_then(|v| v.as_str());
        if let (Some(u), Some(p)) = (u, p) {
            return Ok(Some(Credentials {
                username: u.to_string(),
                password: p.to_string(),
            }));
        }
    }
    Ok(None)
}

fn write_config(path: &Path, cfg: &serde_json::Map<String, serde_json::Value>) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("create {}", dir.display()))?;
    let tmp = dir.join(format!(".config.json.{}.tmp", std::process::id()));
    let res = (|| -> Result<()> {
        // 0600 from the start: the file holds passwords.
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(&serde_json::to_vec_pretty(cfg)?)?;
        f.write_all(b"\n")?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        Ok(())
    })();
    if res.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    res.with_context(|| format!("write {}", path.display()))
}

/// Store credentials for `registry` (keeps every other key of the file).
pub fn store(auth_file: &Path, registry: &str, creds: &Credentials) -> Result<()> {
    let mut cfg = read_config(auth_file)?;
    let auths = cfg.entry("auths").or_insert_with(|| serde_json::json!({}));
    let Some(auths) = auths.as_object_mut() else {
        bail!("{}: \"auths\" is not an object", auth_file.display());
    };
    let want = normalise_key(registry);
    auths.retain(|k, _| normalise_key(k) != want);
    let auth = B64.encode(format!("{}:{}", creds.username, creds.password));
    auths.insert(auth_key(registry), serde_json::json!({ "auth": auth }));
    write_config(auth_file, &cfg)
}

/// Remove stored credentials; returns whether there were any.
pub fn remove(auth_file: &Path, registry: &str) -> Result<bool> {
    let mut cfg = read_config(auth_file)?;
    let Some(auths) = cfg.get_mut("auths").and_then(|a| a.as_object_mut()) else {
        return Ok(false);
    };
    let want = normalise_key(registry);
    let before = auths.len();
    auths.retain(|k, _| normalise_key(k) != want);
    if auths.len() == before {
        return Ok(false);
    }
    write_config(auth_file, &cfg)?;
    Ok(true)
}

/// A parsed `WWW-Authenticate` challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    /// `bearer` or `basic` (lowercased).
    pub scheme: String,
    pub params: BTreeMap<String, String>,
}

/// Parse `Bearer realm="…",service="…",scope="…"` (quoted values may hold commas).
pub fn parse_challenge(header: &str) -> Option<Challenge> {
    let header = header.trim();
    let (scheme, rest) = header.split_once(' ').unwrap_or((header, ""));
    if scheme.is_empty() {
        return None;
    }
    let mut params = BTreeMap::new();
    let mut s = rest.trim();
    while !s.is_empty() {
        let Some(eq) = s.find('=') else { break };
        let key = s[..eq]
            .trim()
            .trim_start_matches(',')
            .trim()
            .to_ascii_lowercase();
        s = &s[eq + 1..];
        let value;
        if let Some(q) = s.strip_prefix('"') {
            let mut v = String::new();
            let mut chars = q.char_indices();
            let mut end = q.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, n)) = chars.next() {
                            v.push(n);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => v.push(c),
                }
            }
            value = v;
            s = &q[end.min(q.len())..];
        } else {
            let end = s.find(',').unwrap_or(s.len());
            value = s[..end].trim().to_string();
            s = &s[end..];
        }
        s = s.trim_start().trim_start_matches(',').trim_start();
        params.insert(key, value);
    }
    Some(Challenge {
        scheme: scheme.to_ascii_lowercase(),
        params,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn challenge_parsing() {
        let c = parse_challenge(
            r#"Bearer realm="http://127.0.0.1:5503/token",service="berth-fixture",scope="repository:a/b:pull,push""#,
        )
        .unwrap();
        assert_eq!(c.scheme, "bearer");
        assert_eq!(c.params["realm"], "http://127.0.0.1:5503/token");
        assert_eq!(c.params["service"], "berth-fixture");
        assert_eq!(c.params["scope"], "repository:a/b:pull,push");
        let c = parse_challenge(r#"Basic realm="Registry Realm""#).unwrap();
        assert_eq!(c.scheme, "basic");
        assert_eq!(c.params["realm"], "Registry Realm");
        assert!(parse_challenge("").is_none());
    }

    #[test]
    fn config_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("sub/config.json");
        assert_eq!(lookup(&f, "docker.io").unwrap(), None);
        fs::create_dir_all(f.parent().unwrap()).unwrap();
        fs::write(
            &f,
            format!(
                r#"{{"auths":{{"https://index.docker.io/v1/":{{"auth":"{}"}},"h:1":{{"username":"u","password":"p"}}}},"credsStore":"x"}}"#,
                B64.encode("bob:s3:cret")
            ),
        )
        .unwrap();
        let c = lookup(&f, "docker.io").unwrap().unwrap();
        assert_eq!(
            (c.username.as_str(), c.password.as_str()),
            ("bob", "s3:cret")
        );
        assert_eq!(lookup(&f, "h:1").unwrap().unwrap().password, "p");
        assert_eq!(lookup(&f, "other").unwrap(), None);
        let creds = Credentials {
            username: "alice".into(),
            password: "pw".into(),
        };
        store(&f, "127.0.0.1:5502", &creds).unwrap();
        assert_eq!(
            fs::metadata(&f).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(lookup(&f, "127.0.0.1:5502").unwrap(), Some(creds));
        let raw: serde_json::Value = serde_json::from_slice(&fs::read(&f).unwrap()).unwrap();
        assert_eq!(raw["credsStore"], "x", "other keys are kept");
        assert!(remove(&f, "127.0.0.1:5502").unwrap());
        assert!(!remove(&f, "127.0.0.1:5502").unwrap());
        assert_eq!(lookup(&f, "127.0.0.1:5502").unwrap(), None);
        assert!(lookup(&f, "docker.io").unwrap().is_some());
        assert!(!format!("{:?}", c).contains("cret"));
    }

    #[test]
    fn bad_auth_field_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("config.json");
        fs::write(&f, r#"{"auths":{"h":{"auth":"!!!"}}}"#).unwrap();
        let e = format!("{:#}", lookup(&f, "h").unwrap_err());
        assert!(e.contains("not base64"), "{e}");
    }
}
