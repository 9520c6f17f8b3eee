//! `berth build -`: the context from standard input, as `docker build -`
//! takes it: a tar archive (plain, gzip or zstd) is the context, unpacked
//! through the safe applier into a directory of its own under the
//! engine's root (a name climbing out, an absolute one or a symlink never
//! writes outside it); anything else is the Dockerfile, with an empty
//! context. The directory goes when the build is done.

use std::io::{BufRead, BufReader, Read};
use std::path::Path;

use anyhow::{Context as _, Result, bail};

use crate::Engine;

/// The most a Dockerfile read from stdin may be.
const MAX_DOCKERFILE: u64 = 16 << 20;

/// A context read from stdin: its directory (removed when dropped), and
/// the Dockerfile when stdin was one.
pub struct StdinContext {
    dir: super::copy::TempDir,
    pub dockerfile: Option<String>,
}

impl StdinContext {
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Reads `input`: a tar archive into a fresh context directory, or a
/// Dockerfile (with an empty context).
pub fn read(engine: &Engine, input: impl Read) -> Result<StdinContext> {
    super::private_dirs(engine)?;
    let dir = super::copy::tempdir(engine)?;
    let mut r = BufReader::with_capacity(256 * 1024, input);
    let head = r.fill_buf().context("read the build context from stdin")?;
    let compressed = head.starts_with(&[0x1f, 0x8b])
        || head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd])
        || head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0])
        || head.starts_with(b"BZh");
    let tar = head.len() >= 262 && &head[257..262] == b"ustar";
    if !compressed && !tar {
        let mut text = String::new();
        r.take(MAX_DOCKERFILE + 1)
            .read_to_string(&mut text)
            .context("read the Dockerfile from stdin")?;
        if text.len() as u64 > MAX_DOCKERFILE {
            bail!("the Dockerfile on stdin is larger than {MAX_DOCKERFILE} bytes");
        }
        return Ok(StdinContext {
            dir,
            dockerfile: Some(text),
        });
    }
    // Not as root: no owner, no device node from the archive is made (a
    // COPY makes its files root's anyway).
    let opts = berth_snapshot::ApplyOptions {
        mode: berth_snapshot::ApplyMode::Plain,
        privileged: Some(false),
        ..Default::default()
    };
    let tar = crate::import::decompressed(r).context("the build context on stdin")?;
    berth_snapshot::extract_archive(tar, dir.path(), &opts)
        .context("unpack the build context from stdin")?;
    Ok(StdinContext {
        dir,
        dockerfile: None,
    })
}
