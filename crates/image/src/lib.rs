//! berth-image: the image side of berth — references, the registry client, the
//! content-addressed store, pulling and pushing. berth-engine stands on it (and the
//! CLI, for listings and pull progress); it imports none of berth's crates
//! but berth-io: not rootfs, not the runtime, not the engine.
//!
//! # API for the engine
//!
//! ```text
//! // references
//! Reference::parse(&str) -> Result<Reference, ReferenceError>   // normalised: docker.io/library/alpine
//! Reference::with_default_tag(self) -> Reference                // adds :latest when no tag/digest
//! Reference::familiar(&self) -> String                          // "alpine:latest"
//! Platform::parse("linux/arm/v7") -> Result<Platform>;  Platform::host()
//!
//! // store (root: /var/lib/berth by default, chosen by the engine)
//! Store::open(root) -> Result<Store>
//! pull(&Store, reference: &str, &PullOptions, &Progress) -> Result<Pulled>    // Pulled.image: ImageRecord
//! pull_with_unpack(.., Option<LayerSink>) -> Result<Pulled>  // also streams each decompressed layer to a sink
//! push(&Store, "host/repo[:tag]", &PushOptions, &Progress) -> Result<Vec<Pushed>> // one per tag (--all-tags)
//! Store::tag(&self, source, target) -> Result<ImageRecord>                    // docker tag
//! Store::resolve(&self, name_or_id: &str) -> Result<ImageRecord>              // name[:tag], repo@digest, id, short id
//! Store::list(&self) -> Result<Vec<ImageSummary>>                             // docker images rows
//! Store::images(&self) -> Result<Vec<ImageRecord>>
//! Store::inspect(&self, &ImageRecord) -> Result<serde_json::Value>            // docker image inspect object
//! Store::config(&self, &ImageRecord) -> Result<oci_spec::image::ImageConfiguration>
//! Store::remove(&self, name, force: bool, in_use: bool) -> Result<Vec<RemoveEvent>>
//! Store::prune_blobs(&self) -> Result<(usize, u64)>
//! Store::layers(&self, &ImageRecord) -> Vec<LayerInfo>                        // bottom first; path, media_type, diff_id
//! ImageRecord::chain_ids(&self) -> Vec<Digest>                                // snapshot keys, bottom first
//! Store::open_layer(&self, &LayerInfo) -> Result<Box<dyn Read + Send>>        // DECOMPRESSED tar stream
//!
//! // writing images (commit, import, load, build): hold a write guard throughout
//! Store::write_guard(&self) -> Result<WriteGuard>                             // image prune waits
//! Store::blob_writer(&self) -> Result<BlobWriter>   // io::Write; .commit(&store, expect) -> Blob
//! Store::put_blob(&self, &mut dyn Read, expect: Option<&Digest>, max) -> Result<Blob>
//! Store::put_blob_bytes(&self, &[u8]) -> Result<Blob>
//! Store::record_layer(&self, blob, diff_id, unpacked_size)                    // facts its writer checked
//! Store::add_image(&self, manifest: &Digest, tag: Option<&str>) -> Result<ImageRecord>
//!
//! // image archives (docker save / load, oci-archive); see archive's doc
//! archive::save(&Store, names: &[String], &mut dyn Write) -> Result<()>
//! archive::load(&Store, &mut dyn Read) -> Result<Vec<Loaded>>              // Loaded: id, tags
//!
//! // registry credentials
//! login(&RegistryOptions, registry, user, pass, auth_file: Option<&Path>) -> Result<()>
//! logout(&RegistryOptions, registry, auth_file: Option<&Path>) -> Result<bool>
//! ```
//!
//! Options: [`RegistryOptions`] (mirrors for docker.io, insecure registries, CA
//! files per host, a certs.d dir, auth file, attempts, read timeout, low-speed
//! limit) inside [`PullOptions`] (plus `--platform`, layer parallelism and the
//! inflate ratio limit). Progress goes to
//! stdout like Docker's ([`ProgressMode`]: bars on a TTY, lines otherwise, quiet).
//!
//! Errors are one line, e.g. `pull docker.io/library/nope:latest: manifest unknown (404)`
//! (print them with `{:#}`).
//!
//! # Guarantees
//! - Every blob's size and sha256 are checked while it streams; layers are
//!   decompressed in the same pass and their diff_id checked against the config.
//!   Nothing unverified is ever renamed into `<root>/blobs`.
//! - Manifests are capped at 4 MiB while reading; a digest reference must match
//!   the bytes served. Schema 1 and unknown layer media types are refused.
//! - Pulls from several processes into one root are safe (flock'ed index, atomic
//!   renames); a killed pull leaves only temp files, reaped by the next open.
//! - Pull threads (parallel layers) are all joined before `pull` returns.
//! - Retries: each HTTP request up to `attempts` times on connection errors and
//!   5xx (backoff 200 ms, 400 ms, ...); a body cut short is fetched again, also up
//!   to `attempts` times, and so is a body slower than the low-speed limit
//!   (1 KiB/s over 30 s by default; the error names the blob and registry).
//!   A digest mismatch, 401/403/404/429 are not retried.
//! - A failed pull reports the first real failure, never the cancellation it
//!   caused in sibling layers.
//! - A layer inflating past 100 times its compressed size (and past 1 GiB) is
//!   refused while it streams; inflating stops as soon as a layer's sink failed.
//! - Transport: HTTPS with system roots by default; a per-registry CA (ca_files or
//!   `certs.d/<host:port>/*.crt`) is added to them. Loopback and configured insecure
//!   registries try HTTPS (unverified unless a CA is configured) then plain HTTP.
//!   Redirects are followed by hand; Authorization is never sent to another host.
//!
//! - Push: blobs the repository has are skipped (HEAD), blobs of an image
//!   known in another repository of the same registry are mounted from it,
//!   the rest uploaded in one PUT (PATCH chunks if a proxy answers 413),
//!   5 at a time; the manifest goes last, byte for byte as stored, so its
//!   digest is the pulled one and a killed push leaves no half image.
//!   Transient failures start a blob over, up to `attempts` times; 401/403
//!   are never retried and name the repository.
//!
//! # Not done
//! - Schema 1 manifests, foreign-layer `urls`, client certificates in certs.d,
//!   CIDR ranges in `insecure_registries`, credential helpers (`credsStore`),
//!   identity tokens, pushing a multi-platform index (berth stores only the
//!   pulled platform's manifest, so that is what a push sends).

// println!/eprintln! panic on a closed pipe (`berth … | head`): berth_io's
// outln!/errln! drop what a closed reader cannot take.
#![deny(clippy::print_stdout, clippy::print_stderr)]

pub mod archive;
pub mod auth;
pub mod compress;
pub mod digest;
pub mod login;
pub mod manifest;
pub mod progress;
pub mod pull;
pub mod push;
pub mod reference;
pub mod registry;
pub mod store;

pub use auth::Credentials;
pub use digest::Digest;
pub use login::{login, logout};
pub use manifest::{Compression, Platform};
pub use progress::{Progress, ProgressMode};
pub use pull::{LayerSink, PullOptions, Pulled, SinkLayer, pull, pull_with_unpack};
pub use push::{PushOptions, Pushed, push};
pub use reference::{Reference, ReferenceError};
pub use registry::RegistryOptions;
pub use store::{
    Blob, BlobWriter, ImageRecord, ImageSummary, LayerInfo, RemoveEvent, Store, WriteGuard,
};
