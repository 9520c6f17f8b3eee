//! What ADD adds beyond COPY: URLs, downloaded ([`super::url`]), and
//! local tar archives, Docker's rule: a context file that is a tar
//! (plain, gzip or zstd, known by its bytes, never by its name) is
//! unpacked into the destination directory instead of copied; any other
//! file is copied as COPY copies it.
//!
//! `--chown` applies to an archive's entries (and to the destination
//! directory when the ADD makes it), as BuildKit applies it since v0.23
//! (moby/buildkit#5987, `testAddChownArchive`); `--chmod` does not, as in
//! BuildKit: an archive's entries keep their modes.
//!
//! The unpacking is the safe applier's ([`berth_snapshot::extract_archive`],
//! [`berth_snapshot::ApplyMode::Plain`], the destination as `under`): an
//! entry naming `..` never climbs above the destination, an absolute name
//! lands below it, and a symlink (planted earlier in the archive or already
//! in the image) is resolved inside the step's rootfs, so nothing is ever
//! written outside it.

use std::io::{self, BufRead, BufReader, Cursor, Read};
use std::path::Path;

use anyhow::{Context as _, Result, anyhow, bail};

use super::super::copy::{self, Context, Meta};
use super::super::dockerfile::Instruction;
use super::super::state::State;
use super::super::walk;
use super::Builder;
use super::url::{self, Download};

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
/// content digests (the stat cache's when unchanged), and the `--chown`
/// their entries take.
pub(super) fn hash(
    ctx: &Context,
    archives: &[String],
    owner: Option<(u32, u32)>,
) -> Result<String> {
    let mut parts = Vec::new();
    if let Some((u, g)) = owner {
        parts.push(format!("--chown={u}:{g}"));
    }
    for p in archives {
        let (h, _) = walk::digest(
            ctx,
            std::slice::from_ref(p),
            &Default::default(),
            ("", false),
            Meta::default(),
        )?;
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

/// What an ADD adds besides what it copies: the local archives it
/// unpacks and the URLs it downloaded.
#[derive(Default)]
pub(super) struct Added {
    archives: Vec<String>,
    downloads: Vec<Download>,
}

/// Where a step's files land: a created container, or the staging
/// directory of a scratch stage's first layer.
pub(super) enum Target<'a> {
    Container(&'a crate::Engine, &'a str),
    Dir(&'a Path),
}

impl Target<'_> {
    /// The tar stream `r` extracted below `under` (made when missing),
    /// every entry owned by `owner` when given.
    pub(super) fn extract(
        &self,
        under: &str,
        owner: Option<(u32, u32)>,
        r: &mut dyn Read,
    ) -> Result<()> {
        match self {
            Target::Container(engine, id) => crate::cp::extract_under(engine, id, under, owner, r),
            Target::Dir(dir) => {
                let opts = berth_snapshot::ApplyOptions {
                    mode: berth_snapshot::ApplyMode::Plain,
                    under: crate::cp::in_root(under),
                    owner,
                    ..Default::default()
                };
                berth_snapshot::extract_archive(r, dir, &opts).map(drop)
            }
        }
    }

    /// Whether `path` is a directory there (symlinks resolved inside).
    fn is_dir(&self, path: &str) -> Result<bool> {
        Ok(self.not_dirs(&[crate::cp::in_root(path)])?.is_empty())
    }

    /// Those of `paths` that are not directories there (symlinks resolved
    /// inside), the root opened once.
    fn not_dirs(&self, paths: &[std::path::PathBuf]) -> Result<Vec<std::path::PathBuf>> {
        let flags = rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY;
        let pick = |root: &berth_snapshot::Root| {
            Ok(paths
                .iter()
                .filter(|p| root.open_path(p, flags).is_err())
                .cloned()
                .collect())
        };
        match self {
            Target::Container(engine, id) => crate::cp::in_container(engine, id, pick),
            Target::Dir(dir) => pick(&berth_snapshot::Root::open(dir)?),
        }
    }
}

impl Added {
    /// Its part of the step's cache key; `None` when it adds nothing.
    pub(super) fn key(&self, ctx: &Context, meta: Meta) -> Result<Option<String>> {
        let mut parts = Vec::new();
        if !self.archives.is_empty() {
            parts.push(hash(ctx, &self.archives, meta.owner)?);
        }
        parts.extend(self.downloads.iter().map(|d| d.key()));
        Ok((!parts.is_empty()).then(|| parts.join("\n")))
    }

    /// Lands the archives, unpacked below `dest`, and the downloads, in
    /// `dest` when `dir` (else as it), after what the step copied.
    pub(super) fn land(
        &self,
        ctx: &Context,
        to: &Target<'_>,
        (dest, dir): (&str, bool),
        meta: Meta,
        spool: &Path,
    ) -> Result<()> {
        if let Some(owner) = meta.owner
            && !self.archives.is_empty()
            && crate::cp::in_root(dest) != Path::new(".")
            && !to.is_dir(dest)?
        {
            make_dir(to, dest, owner)?;
        }
        unpack(ctx, &self.archives, &mut |r| {
            to.extract(dest, meta.owner, r)
        })?;
        for d in &self.downloads {
            let (under, mut tar) = d.tar(dest, dir, meta, spool)?;
            to.extract(&under, None, &mut tar)?;
        }
        Ok(())
    }
}

/// The directories a copy lands in that are missing (`dest` itself when
/// `dir`, else its parent, and their parents) made 0755 and owned by
/// `owner`, as BuildKit makes them: an existing one (a symlink to one
/// too) is left as it is, and an empty source directory still makes its
/// destination.
pub(super) fn make_dirs(
    to: &Target<'_>,
    (dest, dir): (&str, bool),
    owner: (u32, u32),
) -> Result<()> {
    let path = crate::cp::in_root(dest);
    let path = if dir {
        path.as_path()
    } else {
        path.parent().unwrap_or(Path::new("."))
    };
    let mut prefixes = Vec::new();
    let mut at = std::path::PathBuf::new();
    for c in path.components() {
        if let std::path::Component::Normal(c) = c {
            at.push(c);
            prefixes.push(at.clone());
        }
    }
    let missing = to.not_dirs(&prefixes)?;
    if missing.is_empty() {
        return Ok(());
    }
    let mut b = tar::Builder::new(Vec::new());
    for dir in &missing {
        b.append_data(&mut dir_header(owner), dir, io::empty())?;
    }
    to.extract("/", None, &mut b.into_inner()?.as_slice())
}

/// A directory's header: 0755, owned by `owner`, made now.
fn dir_header(owner: (u32, u32)) -> tar::Header {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(0o755);
    h.set_uid(owner.0.into());
    h.set_gid(owner.1.into());
    h.set_size(0);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    h.set_mtime(now.map(|d| d.as_secs()).unwrap_or(0));
    h
}

/// `dest` made, 0755 and owned by `owner`, its missing parents root's.
fn make_dir(to: &Target<'_>, dest: &str, owner: (u32, u32)) -> Result<()> {
    let mut b = tar::Builder::new(Vec::new());
    let name = crate::cp::in_root(dest);
    let name = name.strip_prefix(".").unwrap_or(&name);
    b.append_data(&mut dir_header(owner), name, io::empty())?;
    to.extract("/", None, &mut b.into_inner()?.as_slice())
}

impl Builder<'_> {
    /// A COPY's or ADD's sources copied, and what an ADD adds beside them
    /// (not a heredoc's, nor a `--from`'s): URLs downloaded, archives.
    pub(super) fn add_sources(
        &self,
        inst: &Instruction,
        srcs: &[String],
        dest: &str,
        heredoc: bool,
    ) -> Result<(Vec<String>, Added)> {
        if inst.keyword != "ADD" {
            return Ok((srcs.to_vec(), Added::default()));
        }
        let (urls, local): (Vec<String>, Vec<String>) =
            srcs.iter().cloned().partition(|s| url::is_url(s));
        copy::refuse_add(&local)?;
        let checksum = inst.flag("checksum");
        if checksum.is_some() && (urls.len() != 1 || !local.is_empty()) {
            bail!("ADD --checksum needs one source, and that source a URL (http:// or https://)");
        }
        if heredoc || inst.flag("from").is_some() {
            if let Some(u) = urls.first() {
                bail!("ADD {u}: a URL cannot come from another stage or a heredoc");
            }
            return Ok((local, Added::default()));
        }
        let dest_dir = super::dest_is_dir(dest);
        let (files, archives) = split(self.ctx, &local, dest_dir)?;
        if !urls.is_empty() && urls.len() + files.len() + archives.len() > 1 && !dest_dir {
            bail!(
                "When using ADD with more than one source file, the destination must be a directory and end with a /"
            );
        }
        let spool = self.engine.root.join("build-tmp");
        let downloads = urls
            .iter()
            .map(|u| url::fetch(u, checksum, &self.req.network, &spool))
            .collect::<Result<_>>()?;
        Ok((
            files,
            Added {
                archives,
                downloads,
            },
        ))
    }

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
            hash(&ctx, &unpacked[..1], None).unwrap(),
            hash(&ctx, &unpacked[1..2], None).unwrap()
        );
        std::fs::write(d.path().join("x.bz2"), b"BZh91AY&SY").unwrap();
        let e = split(&ctx, &["x.bz2".to_string()], true).unwrap_err();
        assert!(e.to_string().contains("bzip2"), "{e}");
    }
}
