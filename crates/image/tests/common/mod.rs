//! Shared helpers for the integration tests: the real fixture registries and a
//! fault-injecting TCP proxy placed in front of the real plain registry.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use berth_image::{Progress, PullOptions, RegistryOptions, Store};

pub const PLAIN: &str = "127.0.0.1:5500";
pub const BASIC: &str = "127.0.0.1:5501";
pub const TOKEN: &str = "127.0.0.1:5502";
pub const TLS: &str = "127.0.0.1:5504";

/// Bring the fixture up once per test binary.
pub fn fixture() -> PathBuf {
    static UP: OnceLock<PathBuf> = OnceLock::new();
    UP.get_or_init(|| {
        let ws = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let st = std::process::Command::new("bash")
            .arg(ws.join("fixture/registry.sh"))
            .arg("up")
            .status()
            .expect("run fixture/registry.sh");
        assert!(st.success(), "fixture/registry.sh up failed");
        PathBuf::from(
            std::env::var("BERTH_FIXTURE_DIR").unwrap_or_else(|_| "/var/tmp/berth-fixture".into()),
        )
    })
    .clone()
}

/// Pull options isolated from the host: an auth file of our own, few retries.
pub fn opts(dir: &Path) -> PullOptions {
    PullOptions {
        registry: RegistryOptions {
            auth_file: Some(dir.join("auth.json")),
            ..RegistryOptions::default()
        },
        ..PullOptions::default()
    }
}

pub fn quiet() -> Progress {
    Progress::quiet()
}

/// Fresh temp dir holding a store at `<tmp>/root`.
pub fn new_store() -> (tempfile::TempDir, Store) {
    let d = tempfile::tempdir().unwrap();
    let s = Store::open(d.path().join("root")).unwrap();
    (d, s)
}

/// The store holds only verified blobs, no temp files, and the index is `before`.
pub fn assert_intact(store: &Store, before: &[berth_image::ImageRecord]) {
    assert_eq!(
        store.verify_blobs().unwrap(),
        Vec::<String>::new(),
        "a blob does not match its name"
    );
    assert_eq!(
        store.temp_names().unwrap(),
        Vec::<String>::new(),
        "temp files left behind"
    );
    assert_eq!(store.images().unwrap(), before, "image index changed");
}

/// Error chain as one line.
pub fn err_text<T: std::fmt::Debug>(r: anyhow::Result<T>) -> String {
    format!("{:#}", r.expect_err("expected an error"))
}

// ------------------------------------------------------------------ proxy

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Flip one byte in the middle of the body.
    FlipByte,
    /// Send the headers and half the body, then close.
    Truncate,
    /// Announce a Content-Length 10 bytes short.
    ShortLength,
    /// Answer with this status and an error body instead of forwarding.
    Status(u16),
    /// Reset the connection (RST) right after reading the request.
    Reset,
    /// Replace the first space in the body with a tab (valid JSON, other digest).
    AlterWhitespace,
    /// Answer 200 with an endless manifest-typed body, chunked (no Content-Length).
    EndlessChunked,
    /// Answer 401 with a bearer challenge, as a registry does when a token expired.
    Unauthorized,
    /// Answer 307 to the same path on another host (`host:port`), like blob storage.
    RedirectTo(String),
    /// Forward the answer, but send its body `chunk` bytes at a time, one chunk
    /// every `every`: a slow or stalling registry.
    Trickle { chunk: usize, every: Duration },
}

struct Rule {
    path_contains: String,
    fault: Fault,
    remaining: usize,
}

/// A one-connection-at-a-time-per-thread HTTP/1.1 proxy to the plain registry.
pub struct Proxy {
    pub addr: String,
    pub upstream: String,
    rules: Arc<Mutex<Vec<Rule>>>,
    pub requests: Arc<Mutex<Vec<String>>>,
    stop: Arc<AtomicBool>,
    pub served: Arc<AtomicUsize>,
}

impl Proxy {
    /// A proxy to the plain registry.
    pub fn start() -> Proxy {
        Self::start_to(PLAIN)
    }

    /// A proxy to `upstream`. `/token…` goes to the fixture's token issuer, and
    /// bearer realms in answers are rewritten to point here, so token fetches are seen too.
    pub fn start_to(upstream: &str) -> Proxy {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let up = upstream.to_string();
        let me = addr.clone();
        let rules: Arc<Mutex<Vec<Rule>>> = Arc::default();
        let requests: Arc<Mutex<Vec<String>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let served = Arc::new(AtomicUsize::new(0));
        let (r2, q2, s2, sv2) = (
            rules.clone(),
            requests.clone(),
            stop.clone(),
            served.clone(),
        );
        let ctx = Arc::new((up, me));
        std::thread::spawn(move || {
            for c in l.incoming() {
                if s2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let (r3, q3, sv3, ctx3) = (r2.clone(), q2.clone(), sv2.clone(), ctx.clone());
                std::thread::spawn(move || {
                    let _ = serve(c, &r3, &q3, &ctx3.0, &ctx3.1);
                    sv3.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        Proxy {
            addr,
            upstream: upstream.to_string(),
            rules,
            requests,
            stop,
            served,
        }
    }

    /// Apply `fault` to the next `times` requests whose path contains `path_contains`.
    pub fn fault(&self, path_contains: &str, fault: Fault, times: usize) {
        self.rules.lock().unwrap().push(Rule {
            path_contains: path_contains.into(),
            fault,
            remaining: times,
        });
    }

    /// Request lines seen (e.g. `GET /v2/busybox/blobs/sha256:…`).
    pub fn seen(&self, needle: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|l| l.contains(needle))
            .count()
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve(
    mut c: TcpStream,
    rules: &Mutex<Vec<Rule>>,
    requests: &Mutex<Vec<String>>,
    upstream: &str,
    me: &str,
) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut first = [0u8; 1];
    c.peek(&mut first)?;
    if first[0] == 0x16 {
        // A TLS ClientHello (the client probing HTTPS first): we only speak HTTP.
        return Ok(());
    }
    let mut r = BufReader::new(c.try_clone()?);
    let mut head = Vec::new();
    let mut line = String::new();
    r.read_line(&mut line)?;
    let request_line = line.trim_end().to_string();
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(());
        }
        if line == "\r\n" || line == "\n" {
            break;
        }
        let lower = line.to_ascii_lowercase();
        if lower.starts_with("connection:") || lower.starts_with("host:") {
            continue;
        }
        head.push(line.clone());
    }
    // A request body (blob uploads, manifest PUTs) is read whole, then forwarded.
    let body_len = head
        .iter()
        .find_map(|h| {
            let (k, v) = h.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .unwrap_or(0);
    let mut request_body = vec![0u8; body_len];
    r.read_exact(&mut request_body)?;
    // Lets the proxy stand in for a Docker Hub mirror: library/x is served from x.
    let request_line = request_line.replace(" /v2/library/", " /v2/");
    let authed = head
        .iter()
        .any(|h| h.to_ascii_lowercase().starts_with("authorization:"));
    requests.lock().unwrap().push(format!(
        "{request_line}{}",
        if authed { " +auth" } else { "" }
    ));
    let path = request_line.split(' ').nth(1).unwrap_or("").to_string();
    let upstream = if path.starts_with("/token") {
        ISSUER
    } else {
        upstream
    };
    let fault = {
        let mut rs = rules.lock().unwrap();
        rs.iter_mut()
            .find(|r| r.remaining > 0 && path.contains(&r.path_contains))
            .map(|r| {
                r.remaining -= 1;
                r.fault.clone()
            })
    };
    match &fault {
        Some(Fault::Reset) => {
            rustix::net::sockopt::set_socket_linger(&c, Some(Duration::ZERO))?;
            return Ok(());
        }
        Some(Fault::EndlessChunked) => {
            write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            )?;
            let chunk = vec![b' '; 64 * 1024];
            // Stop at 64 MiB or when the client hangs up, whichever comes first.
            for _ in 0..1024 {
                write!(c, "{:x}\r\n", chunk.len())?;
                c.write_all(&chunk)?;
                c.write_all(b"\r\n")?;
            }
            return Ok(());
        }
        Some(Fault::Unauthorized) => {
            let body = r#"{"errors":[{"code":"UNAUTHORIZED","message":"token expired"}]}"#;
            write!(
                c,
                "HTTP/1.1 401 Unauthorized\r\nWww-Authenticate: Bearer realm=\"http://{me}/token\",service=\"berth-fixture\"\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        Some(Fault::RedirectTo(host)) => {
            write!(
                c,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: http://{host}{path}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )?;
            return Ok(());
        }
        Some(Fault::Status(code)) => {
            let body = format!(
                r#"{{"errors":[{{"code":"{}","message":"injected {code}"}}]}}"#,
                if *code == 429 {
                    "TOOMANYREQUESTS"
                } else {
                    "UNKNOWN"
                }
            );
            write!(
                c,
                "HTTP/1.1 {code} Injected\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )?;
            return Ok(());
        }
        _ => {}
    }
    let mut up = TcpStream::connect(upstream)?;
    write!(
        up,
        "{request_line}\r\nHost: {upstream}\r\nConnection: close\r\n"
    )?;
    for h in &head {
        up.write_all(h.as_bytes())?;
    }
    up.write_all(b"\r\n")?;
    up.write_all(&request_body)?;
    let mut resp = Vec::new();
    up.read_to_end(&mut resp)?;
    let split = resp
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
        .unwrap_or(resp.len());
    let (rhead, body) = resp.split_at(split);
    // Upload Locations too, so uploads come back through here.
    let mut rhead = String::from_utf8_lossy(rhead)
        .replace(
            &format!("http://{ISSUER}/token"),
            &format!("http://{me}/token"),
        )
        .replace(
            &format!("http://{upstream}/v2/"),
            &format!("http://{me}/v2/"),
        );
    let mut body = body.to_vec();
    let set_len = |h: &str, n: usize| {
        h.lines()
            .map(|l| {
                if l.to_ascii_lowercase().starts_with("content-length:") {
                    format!("Content-Length: {n}")
                } else {
                    l.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join("\r\n")
    };
    match fault {
        Some(Fault::FlipByte) if !body.is_empty() => {
            let mid = body.len() / 2;
            body[mid] ^= 0xFF;
        }
        Some(Fault::AlterWhitespace) => {
            if let Some(i) = body.iter().position(|b| *b == b' ') {
                body[i] = b'\t';
            }
        }
        Some(Fault::ShortLength) => {
            let n = body.len().saturating_sub(10);
            rhead = set_len(&rhead, n) + "\r\n";
            body.truncate(n);
        }
        Some(Fault::Trickle { chunk, every }) => {
            c.write_all(rhead.as_bytes())?;
            // Ends when the client hangs up (a write fails) or the body is sent.
            for piece in body.chunks(chunk.max(1)) {
                c.write_all(piece)?;
                c.flush()?;
                std::thread::sleep(every);
            }
            let _ = c.shutdown(Shutdown::Write);
            return Ok(());
        }
        Some(Fault::Truncate) => {
            c.write_all(rhead.as_bytes())?;
            c.write_all(&body[..body.len() / 2])?;
            c.flush()?;
            c.shutdown(Shutdown::Both)?;
            return Ok(());
        }
        _ => {}
    }
    if !rhead.to_ascii_lowercase().contains("connection: close") {
        rhead = rhead.trim_end().to_string() + "\r\nConnection: close\r\n\r\n";
    }
    c.write_all(rhead.as_bytes())?;
    c.write_all(&body)?;
    c.flush()?;
    let _ = c.shutdown(Shutdown::Write);
    Ok(())
}

const ISSUER: &str = "127.0.0.1:5503";

// ------------------------------------------------------------------ layer checks

/// Paths in a decompressed layer tar, and the content of `want` if present.
pub fn tar_paths(
    store: &Store,
    layer: &berth_image::LayerInfo,
    want: &str,
) -> (Vec<String>, Option<Vec<u8>>) {
    let r = store.open_layer(layer).unwrap();
    let mut a = tar::Archive::new(r);
    let mut paths = Vec::new();
    let mut content = None;
    for e in a.entries().unwrap() {
        let mut e = e.unwrap();
        let p = e
            .path()
            .unwrap()
            .to_string_lossy()
            .trim_start_matches("./")
            .to_string();
        if p == want {
            let mut v = Vec::new();
            e.read_to_end(&mut v).unwrap();
            content = Some(v);
        }
        paths.push(p);
    }
    (paths, content)
}

// ------------------------------------------------------------------ static registry

/// A one-image registry on loopback serving content made by the test
/// (e.g. a decompression bomb the fixture must not hold): `/v2/`, the
/// manifest by tag `latest` or digest, and the blobs; 404 otherwise.
pub struct StaticRegistry {
    pub addr: String,
    stop: Arc<AtomicBool>,
}

impl StaticRegistry {
    /// Serve `repo:latest`: an OCI image of the given config and gzip layers.
    pub fn start(repo: &str, config: &[u8], layers: &[Vec<u8>]) -> StaticRegistry {
        use berth_image::Digest;
        let desc = |media: &str, b: &[u8]| serde_json::json!({"mediaType": media, "digest": Digest::of(b).to_string(), "size": b.len()});
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": desc("application/vnd.oci.image.config.v1+json", config),
            "layers": layers.iter().map(|l| desc("application/vnd.oci.image.layer.v1.tar+gzip", l)).collect::<Vec<_>>(),
        }))
        .unwrap();
        let mut paths = std::collections::HashMap::new();
        let m = Arc::new(manifest);
        paths.insert(format!("/v2/{repo}/manifests/latest"), m.clone());
        paths.insert(format!("/v2/{repo}/manifests/{}", Digest::of(&m)), m);
        for b in std::iter::once(config).chain(layers.iter().map(Vec::as_slice)) {
            paths.insert(
                format!("/v2/{repo}/blobs/{}", Digest::of(b)),
                Arc::new(b.to_vec()),
            );
        }
        let paths = Arc::new(paths);
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap().to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        std::thread::spawn(move || {
            for c in l.incoming() {
                if stop2.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(c) = c else { continue };
                let paths = paths.clone();
                std::thread::spawn(move || {
                    let _ = serve_static(c, &paths);
                });
            }
        });
        StaticRegistry { addr, stop }
    }
}

impl Drop for StaticRegistry {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
    }
}

fn serve_static(
    mut c: TcpStream,
    paths: &std::collections::HashMap<String, Arc<Vec<u8>>>,
) -> std::io::Result<()> {
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut first = [0u8; 1];
    c.peek(&mut first)?;
    if first[0] == 0x16 {
        return Ok(()); // TLS probe: plain HTTP only
    }
    let mut r = BufReader::new(c.try_clone()?);
    let mut line = String::new();
    r.read_line(&mut line)?;
    let path = line.split(' ').nth(1).unwrap_or("").to_string();
    loop {
        let mut h = String::new();
        if r.read_line(&mut h)? == 0 || h == "\r\n" || h == "\n" {
            break;
        }
    }
    let (status, body, kind) = match paths.get(&path) {
        Some(b) if path.contains("/manifests/") => (
            "200 OK",
            b.to_vec(),
            "application/vnd.oci.image.manifest.v1+json",
        ),
        Some(b) => ("200 OK", b.to_vec(), "application/octet-stream"),
        None if path == "/v2/" => ("200 OK", b"{}".to_vec(), "application/json"),
        None => (
            "404 Not Found",
            br#"{"errors":[{"code":"NOT_FOUND","message":"not here"}]}"#.to_vec(),
            "application/json",
        ),
    };
    write!(
        c,
        "HTTP/1.1 {status}\r\nContent-Type: {kind}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )?;
    // The client may hang up early (it refused the layer): not an error here.
    let _ = c.write_all(&body);
    let _ = c.shutdown(Shutdown::Write);
    Ok(())
}

/// A gzip layer of one file `name` of `size` zero bytes (a decompression
/// bomb when large: about 1000:1), and its diff_id.
pub fn zero_layer(name: &str, size: u64) -> (Vec<u8>, String) {
    use std::io::Read;
    let mut b = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Regular);
    h.set_mode(0o644);
    h.set_uid(0);
    h.set_gid(0);
    h.set_mtime(0);
    h.set_size(size);
    b.append_data(&mut h, name, std::io::repeat(0).take(size))
        .unwrap();
    let tar = b.into_inner().unwrap();
    let diff_id = berth_image::Digest::of(&tar).to_string();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&tar).unwrap();
    (gz.finish().unwrap(), diff_id)
}

/// An image config for `diff_ids` (linux/amd64).
pub fn config_for(diff_ids: &[String]) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "architecture": "amd64",
        "os": "linux",
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "config": {},
    }))
    .unwrap()
}
