//! ADD of local tar archives, Docker's rule: a context file that is a tar
//! (plain, gzip or zstd, known by its bytes, never by its name) is
//! unpacked into the destination directory instead of copied; any other
//! file is copied as COPY copies it.
//!
//! The unpacking is the safe applier's ([`berth_snapshot::extract_archive`],
//! [`berth_snapshot::ApplyMode::Plain`], the destination as `under`): an
//! entry naming `..` never climbs above the destination, an absolute name
//! lands below it, and a symlink (planted earlier in the archive or already
//! in the image) is resolved inside the step's rootfs, so nothing is ever
//! written outside it.

use std::io::{BufRead, BufReader, Cursor, Read};

use anyhow::{Context as _, Result, anyhow, bail};

use super::super::copy::{self, Context, Meta};
use super::super::dockerfile::Instruction;
use super::super::state::State;
use super::super::walk;
use super::Builder;

/// A COPY's or ADD's sources, and the archives an ADD of context files
/// (not a heredoc's) unpacks instead; a URL refused.
pub(super) fn sources(
    ctx: &Context,
    inst: &Instruction,
    srcs: &[String],
    dest: &str,
    heredoc: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    if inst.keyword != "ADD" {
        return Ok((srcs.to_vec(), Vec::new()));
    }
    copy::refuse_add(srcs)?;
    if heredoc || inst.flag("from").is_some() {
        return Ok((srcs.to_vec(), Vec::new()));
    }
    split(ctx, srcs, super::dest_is_dir(dest))
}

/// An ADD's context sources, split into those copied and the archives
/// unpacked (both as context paths, globs expanded); several need a
/// directory destination (`dest_dir`), as in Docker.
pub(super) fn split(
    ctx: &Context,
    srcs: &[String],
    dest_dir: bool,
) -> Result<(Vec<String>, Vec<String>)> {
    let (mut files, mut archives) = (Vec::new(), Vec::new());
    for s in srcs {
        for p in ctx.sources(s)? {
            if open(ctx, &p)?.is_some() {
                archives.push(p);
            } else {
                files.push(p);
            }
        }
    }
    if !archives.is_empty() && files.len() + archives.len() > 1 && !dest_dir {
        bail!(
            "When using ADD with more than one source file, the destination must be a directory and end with a /"
        );
    }
    Ok((files, archives))
}

/// The context file `path` as a decompressed tar stream, when it is a tar
/// archive; `None` for anything else (copied as it is).
fn open(ctx: &Context, path: &str) -> Result<Option<Box<dyn Read>>> {
    let Some(f) = ctx.open_file(path)? else {
        return Ok(None);
    };
    let mut r = BufReader::new(f);
    let head = r.fill_buf().with_context(|| format!("read {path}"))?;
    if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0]) || head.starts_with(b"BZh91") {
        bail!(
            "ADD {path}: xz and bzip2 archives are not supported by berth build: use a plain, gzip or zstd tar"
        );
    }
    let Ok(mut d) = crate::import::decompressed(r) else {
        return Ok(None);
    };
    let mut block = vec![0u8; 512];
    let mut n = 0;
    while n < block.len() {
        match d.read(&mut block[n..]) {
            Ok(0) | Err(_) => return Ok(None),
            Ok(k) => n += k,
        }
    }
    // A ustar, pax or GNU header: "ustar" at its magic field.
    if &block[257..262] != b"ustar" {
        return Ok(None);
    }
    Ok(Some(Box::new(Cursor::new(block).chain(d))))
}

/// What the cache key takes of `archives`: their names, modes and
/// content digests (the stat cache's when unchanged).
pub(super) fn hash(ctx: &Context, archives: &[String]) -> Result<String> {
    let mut parts = Vec::new();
    for p in archives {
        let (h, _) = walk::digest(ctx, std::slice::from_ref(p), ("", false), Meta::default())?;
        parts.push(format!("{p}\0{h}"));
    }
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    Ok(super::super::cache::key("archives", &parts))
}

/// Each of `archives`, decompressed, to `into` (which extracts it).
pub(super) fn unpack(
    ctx: &Context,
    archives: &[String],
    into: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
) -> Result<()> {
    for p in archives {
        let mut r = open(ctx, p)?.ok_or_else(|| anyhow!("ADD {p}: no longer a tar archive"))?;
        into(&mut r).with_context(|| format!("ADD {p}: unpacking"))?;
    }
    Ok(())
}

/// Options extracting an ADD's archive below `dest` of a rootfs.
pub(super) fn under(dest: &str) -> berth_snapshot::ApplyOptions {
    berth_snapshot::ApplyOptions {
        mode: berth_snapshot::ApplyMode::Plain,
        under: crate::cp::in_root(dest),
        ..Default::default()
    }
}

impl Builder<'_> {
    /// The owner a COPY's or ADD's `--chown` names, names looked up in
    /// the image's `/etc/passwd` and `/etc/group`.
    pub(super) fn chown_flag(
        &self,
        st: &State,
        inst: &Instruction,
        vars: &[String],
    ) -> Result<Option<(u32, u32)>> {
        let Some(v) = inst.flag("chown") else {
            return Ok(None);
        };
        let v = crate::instructions::substitute(v, vars)?;
        let img = st.image.clone();
        let mut lookup = |file: &str, name: &str| -> Result<u32> {
            let text = match &img {
                Some(img) => self.image_file(img, &format!("/etc/{file}"))?,
                None => String::new(),
            };
            copy::id_in(&text, name)
                .ok_or_else(|| anyhow!("unable to find {name} in the image's /etc/{file}"))
        };
        Ok(Some(copy::chown(&v, &mut lookup)?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use berth_image::Compression;
    use berth_image::compress::Compressor;
    use std::io::Write;

    fn tar_of(name: &str, body: &[u8]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        let mut h = tar::Header::new_ustar();
        h.set_size(body.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, body).unwrap();
        b.into_inner().unwrap()
    }

    fn compressed(bytes: &[u8], c: Compression) -> Vec<u8> {
        let mut w = Compressor::new(Vec::new(), c).unwrap();
        w.write_all(bytes).unwrap();
        w.finish().unwrap()
    }

    #[test]
    fn archives_known_by_their_bytes() {
        let d = tempfile::tempdir().unwrap();
        let tar = tar_of("in", b"inside");
        let files: [(&str, Vec<u8>); 5] = [
            ("plain.bin", tar.clone()),
            ("gz.bin", compressed(&tar, Compression::Gzip)),
            ("zst.bin", compressed(&tar, Compression::Zstd)),
            ("text.tar.gz", compressed(b"not a tar", Compression::Gzip)),
            ("short.tar", b"ustar".to_vec()),
        ];
        for (n, b) in &files {
            std::fs::write(d.path().join(n), b).unwrap();
        }
        let ctx = Context::open(d.path()).unwrap();
        let srcs: Vec<String> = files.iter().map(|(n, _)| n.to_string()).collect();
        let (copied, unpacked) = split(&ctx, &srcs, true).unwrap();
        assert!(split(&ctx, &srcs, false).is_err());
        assert_eq!(copied, vec!["text.tar.gz", "short.tar"]);
        assert_eq!(unpacked, vec!["plain.bin", "gz.bin", "zst.bin"]);
        for a in &unpacked {
            let mut names = Vec::new();
            unpack(&ctx, std::slice::from_ref(a), &mut |r| {
                for e in tar::Archive::new(r).entries()? {
                    names.push(e?.path()?.to_string_lossy().into_owned());
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(names, vec!["in"], "{a}");
        }
        assert_ne!(
            hash(&ctx, &unpacked[..1]).unwrap(),
            hash(&ctx, &unpacked[1..2]).unwrap()
        );
        std::fs::write(d.path().join("x.bz2"), b"BZh91AY&SY").unwrap();
        let e = split(&ctx, &["x.bz2".to_string()], true).unwrap_err();
        assert!(e.to_string().contains("bzip2"), "{e}");
    }
}
