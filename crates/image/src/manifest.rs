//! Manifests: Docker schema2 and OCI image manifests, Docker manifest lists and
//! OCI indexes, and choosing one platform out of a list.

use std::fmt;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::digest::Digest;

/// Media types berth understands.
pub mod media {
    pub const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
    pub const DOCKER_LIST: &str = "application/vnd.docker.distribution.manifest.list.v2+json";
    pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
    pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
    pub const DOCKER_SCHEMA1: &str = "application/vnd.docker.distribution.manifest.v1+json";
    pub const DOCKER_SCHEMA1_SIGNED: &str =
        "application/vnd.docker.distribution.manifest.v1+prettyjws";
    pub const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
    pub const OCI_CONFIG: &str = "application/vnd.oci.image.config.v1+json";
    /// Uncompressed: what Docker's own archives and containerd call a plain tar layer.
    pub const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
    pub const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
    pub const DOCKER_LAYER_ZSTD: &str = "application/vnd.docker.image.rootfs.diff.tar.zstd";
    pub const DOCKER_FOREIGN_LAYER_GZIP: &str =
        "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip";
    pub const OCI_LAYER: &str = "application/vnd.oci.image.layer.v1.tar";
    pub const OCI_LAYER_GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    pub const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";
    pub const OCI_LAYER_ND: &str = "application/vnd.oci.image.layer.nondistributable.v1.tar";
    pub const OCI_LAYER_ND_GZIP: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip";
    pub const OCI_LAYER_ND_ZSTD: &str =
        "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd";

    /// The `Accept` header for manifest requests. All four types, always: a
    /// registry may otherwise 404 OCI content or down-convert to schema1.
    pub const MANIFEST_ACCEPT: &str = "application/vnd.docker.distribution.manifest.v2+json, \
        application/vnd.docker.distribution.manifest.list.v2+json, \
        application/vnd.oci.image.manifest.v1+json, \
        application/vnd.oci.image.index.v1+json";
}

/// Largest manifest berth reads (Docker and containerd use the same bound).
pub const MAX_MANIFEST_BYTES: u64 = 4 * 1024 * 1024;

/// How a layer blob is compressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Zstd,
}

/// The compression of a layer media type, or a clear error for one we cannot unpack.
pub fn layer_compression(media_type: &str) -> Result<Compression> {
    use media::*;
    Ok(match media_type {
        DOCKER_LAYER_GZIP | DOCKER_FOREIGN_LAYER_GZIP | OCI_LAYER_GZIP | OCI_LAYER_ND_GZIP => {
            Compression::Gzip
        }
        DOCKER_LAYER_ZSTD | OCI_LAYER_ZSTD | OCI_LAYER_ND_ZSTD => Compression::Zstd,
        DOCKER_LAYER | OCI_LAYER | OCI_LAYER_ND => Compression::None,
        other => bail!("unsupported layer media type {other:?}"),
    })
}

/// A content descriptor (same shape in Docker and OCI manifests).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: Digest,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
}

/// An image manifest (Docker schema2 or OCI).
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageManifest {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub config: Descriptor,
    pub layers: Vec<Descriptor>,
}

/// A manifest list / image index.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ImageIndex {
    pub schema_version: u32,
    #[serde(default)]
    pub media_type: Option<String>,
    pub manifests: Vec<Descriptor>,
}

/// Either kind of manifest.
#[derive(Clone, Debug)]
pub enum Manifest {
    Image(ImageManifest),
    Index(ImageIndex),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Probe {
    #[serde(default)]
    schema_version: Option<u32>,
    #[serde(default)]
    media_type: Option<String>,
    #[serde(default)]
    manifests: Option<serde_json::Value>,
    #[serde(default)]
    layers: Option<serde_json::Value>,
}

impl Manifest {
    /// Parse manifest bytes; `content_type` is the registry's Content-Type, used
    /// when the body does not name its own media type (OCI allows that).
    pub fn parse(content_type: Option<&str>, bytes: &[u8]) -> Result<Self> {
        use media::*;
        let probe: Probe = serde_json::from_slice(bytes).context("manifest is not valid JSON")?;
        let ct = content_type.map(|c| c.split(';').next().unwrap_or("").trim());
        let mt = probe.media_type.as_deref().or(ct).unwrap_or("");
        if probe.schema_version == Some(1) || mt == DOCKER_SCHEMA1 || mt == DOCKER_SCHEMA1_SIGNED {
            bail!(
                "manifest is Docker schema 1, which berth does not support \
                 (deprecated format; re-push the image with a current client)"
            );
        }
        let kind = match mt {
            DOCKER_MANIFEST | OCI_MANIFEST => "image",
            DOCKER_LIST | OCI_INDEX => "index",
            _ if probe.manifests.is_some() => "index",
            _ if probe.layers.is_some() => "image",
            other => bail!("unsupported manifest media type {other:?}"),
        };
        if probe.schema_version != Some(2) {
            bail!(
                "unsupported manifest schemaVersion {:?}",
                probe.schema_version
            );
        }
        if kind == "index" {
            let idx: ImageIndex = serde_json::from_slice(bytes).context("invalid image index")?;
            Ok(Manifest::Index(idx))
        } else {
            let m: ImageManifest =
                serde_json::from_slice(bytes).context("invalid image manifest")?;
            for l in &m.layers {
                layer_compression(&l.media_type).with_context(|| format!("layer {}", l.digest))?;
            }
            if !m.config.media_type.is_empty()
                && m.config.media_type != DOCKER_CONFIG
                && m.config.media_type != OCI_CONFIG
            {
                bail!(
                    "unsupported config media type {:?} (not a container image)",
                    m.config.media_type
                );
            }
            Ok(Manifest::Image(m))
        }
    }
}

/// A platform: os/architecture[/variant].
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variant: Option<String>,
}

impl Platform {
    /// The platform of this machine (linux/amd64 on the usual build).
    pub fn host() -> Self {
        let arch = match std::env::consts::ARCH {
            "x86_64" => "amd64",
            "aarch64" => "arm64",
            "x86" => "386",
            "powerpc64" => "ppc64le",
            other => other,
        };
        Platform::new("linux", arch, None)
    }

    /// Build a normalised platform.
    pub fn new(os: &str, arch: &str, variant: Option<&str>) -> Self {
        let os = os.to_ascii_lowercase();
        let arch = arch.to_ascii_lowercase();
        let variant = variant.map(str::to_ascii_lowercase);
        let (arch, variant) = match (arch.as_str(), variant.as_deref()) {
            ("x86_64" | "x86-64" | "amd64", v) => ("amd64", v.map(str::to_string)),
            ("aarch64" | "arm64", None | Some("8" | "v8")) => ("arm64", Some("v8".to_string())),
            ("aarch64" | "arm64", Some(v)) => ("arm64", Some(v.to_string())),
            ("armhf", _) => ("arm", Some("v7".to_string())),
            ("armel", _) => ("arm", Some("v6".to_string())),
            ("arm", None) => ("arm", Some("v7".to_string())),
            ("arm", Some(v)) if !v.starts_with('v') => ("arm", Some(format!("v{v}"))),
            ("arm", Some(v)) => ("arm", Some(v.to_string())),
            ("i386" | "386", v) => ("386", v.map(str::to_string)),
            (a, v) => (a, v.map(str::to_string)),
        };
        Platform {
            os,
            architecture: arch.to_string(),
            variant,
        }
    }

    /// Parse `--platform`: `os/arch[/variant]`, or just `arch` (os linux).
    pub fn parse(s: &str) -> Result<Self> {
        let parts: Vec<&str> = s.split('/').collect();
        let ok = |p: &str| {
            !p.is_empty()
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        };
        if !parts.iter().all(|p| ok(p)) {
            bail!("invalid platform {s:?}: want os/arch[/variant]");
        }
        Ok(match parts.as_slice() {
            [arch] if !matches!(*arch, "linux" | "windows" | "darwin") => {
                Platform::new("linux", arch, None)
            }
            [os, arch] => Platform::new(os, arch, None),
            [os, arch, variant] => Platform::new(os, arch, Some(variant)),
            _ => bail!("invalid platform {s:?}: want os/arch[/variant]"),
        })
    }

    /// Whether an image of platform `other` (as found in an index) is what we asked for.
    pub fn matches(&self, other: &Platform) -> bool {
        let o = Platform::new(&other.os, &other.architecture, other.variant.as_deref());
        self.os == o.os
            && self.architecture == o.architecture
            && (self.variant.is_none() || self.variant == o.variant)
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if let Some(v) = &self.variant {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// Choose the manifest for `want` out of an index.
pub fn select_platform<'a>(index: &'a ImageIndex, want: &Platform) -> Result<&'a Descriptor> {
    use media::*;
    let candidates = index.manifests.iter().filter(|d| {
        matches!(d.media_type.as_str(), DOCKER_MANIFEST | OCI_MANIFEST | "")
            && d.platform.as_ref().is_some_and(|p| want.matches(p))
    });
    // Prefer an exact variant match, then the first match (lists are ordered by preference).
    let all: Vec<&Descriptor> = candidates.collect();
    if let Some(d) = all.iter().find(|d| {
        let p = d.platform.as_ref().expect("filtered");
        Platform::new(&p.os, &p.architecture, p.variant.as_deref()).variant == want.variant
    }) {
        return Ok(d);
    }
    if let Some(d) = all.first() {
        return Ok(d);
    }
    let available: Vec<String> = index
        .manifests
        .iter()
        .filter_map(|d| d.platform.as_ref())
        .map(|p| p.to_string())
        .collect();
    bail!(
        "no matching manifest for {want} in the manifest list entries (available: {})",
        if available.is_empty() {
            "none".to_string()
        } else {
            available.join(", ")
        }
    )
}
