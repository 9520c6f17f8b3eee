//! COPY and ADD steps. What a step copies is keyed before anything is
//! copied: context files by the walk's names, modes and content digests
//! (the stat cache's for unchanged files, so a cache hit reads no file), a
//! heredoc by its text, another stage's or an image's files by that
//! image's id. Only on a miss are the files streamed, straight from the
//! context walk through a pipe into the step's container (or a scratch
//! stage's staging dir), whose changes are committed as a layer.

use std::collections::HashMap;
use std::io::Read;

use anyhow::{Result, anyhow, bail};
use serde_json::Value;

use super::super::cache::key;
use super::super::copy::{self, Meta};
use super::super::dockerfile::{Args, Instruction};
use super::super::ignore::Ignore;
use super::super::state::State;
use super::super::walk;
use super::{Builder, add, dest_is_dir, glob};

/// What a COPY lands, resolved.
enum Source {
    /// A heredoc: its tar stream.
    Inline(Vec<u8>),
    /// Context paths, the digests their walk took, their owner and mode
    /// (root's unless `--chown` says otherwise), whether one is a
    /// directory (whose contents land in the destination), and what
    /// `--exclude` leaves out.
    Context(
        Vec<String>,
        HashMap<String, walk::Known>,
        Meta,
        bool,
        Ignore,
    ),
    /// Paths (or globs) in an image (another stage's or a named one).
    Image(berth_image::ImageRecord, Vec<String>, Ignore),
}

impl Source {
    /// Whether a directory's contents land: the destination is one then.
    fn is_dir(&self) -> bool {
        matches!(self, Source::Context(_, _, _, true, _))
    }
}

impl Builder<'_> {
    pub(super) fn copy(
        &mut self,
        st: &mut State,
        inst: &Instruction,
        label: &str,
        stage: usize,
    ) -> Result<()> {
        refuse_unsupported(inst)?;
        let t = self.begin(label, &inst.text());
        let vars = st.vars();
        let words = match &inst.args {
            Args::Exec(v) => v
                .iter()
                .map(|w| crate::instructions::substitute(w, &vars))
                .collect::<Result<Vec<_>>>()?,
            Args::Shell(s) => crate::instructions::words(s, &vars)?,
        };
        let Some((dest, srcs)) = words.split_last().filter(|(_, s)| !s.is_empty()) else {
            bail!("{} requires at least two arguments", inst.keyword);
        };
        let inline = heredoc_content(inst, srcs, &vars)?;
        let (files, added) = self.add_sources(inst, srcs, dest, inline.is_some())?;
        let workdir = st
            .get("WorkingDir")
            .and_then(Value::as_str)
            .unwrap_or("/")
            .to_string();
        let dest_abs = if dest.starts_with('/') {
            dest.clone()
        } else {
            format!("{}/{dest}", workdir.trim_end_matches('/'))
        };
        let owner = self.chown_flag(st, inst, &vars)?;
        let meta = Meta {
            owner,
            mode: inst.flag("chmod").map(copy::chmod).transpose()?,
        };
        let dir = dest_is_dir(dest);
        let text = format!("{} {}", inst.text(), words.join(" "));
        let (source, what) = match (&inst.heredoc, &inline) {
            (Some(h), Some(content)) => {
                let (tar, k) =
                    copy::pack_inline(&h.name, content.as_bytes(), (&dest_abs, dir), meta)?;
                (Source::Inline(tar), k)
            }
            _ => self.source(inst, &files, (&dest_abs, dest), meta, stage)?,
        };
        let mut parts = vec![text, what];
        parts.extend(added.key(self.ctx, meta)?);
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        let k = key(&st.key, &parts);
        if self.hit(st, &k)? {
            return Ok(());
        }
        let created_by = format!("{} {} {} # buildkit", inst.keyword, srcs.join(" "), dest);
        match st.image.clone() {
            Some(img) => {
                let id = self.container(&img)?;
                let made = (|| {
                    // `COPY f /existing-dir` copies into it, as Docker does
                    // (a key for the same parent always meets the same dir).
                    let dir = dir || crate::cp::is_dir(self.engine, &id, &dest_abs)?;
                    let to = add::Target::Container(self.engine, &id);
                    self.fill(&to, &source, &added, (&dest_abs, dir), meta)?;
                    self.commit(st, &id, &created_by)
                })();
                let removed = crate::remove::remove(self.engine, &id, true);
                made?;
                removed?;
            }
            None => {
                let staging = copy::tempdir(self.engine)?;
                let to = add::Target::Dir(staging.path());
                self.fill(&to, &source, &added, (&dest_abs, dir), meta)?;
                self.layer(st, staging.path(), &created_by)?;
            }
        }
        self.cache
            .put(&k, st.image.as_ref().expect("just stored"))?;
        st.key = k;
        self.done_in(t);
        Ok(())
    }

    /// What the step lands, into `to`: the directories it lands in that
    /// are missing, its files, then what an ADD adds.
    fn fill(
        &self,
        to: &add::Target<'_>,
        source: &Source,
        added: &add::Added,
        (dest, dir): (&str, bool),
        meta: Meta,
    ) -> Result<()> {
        let owner = meta.owner.unwrap_or((0, 0));
        add::make_dirs(to, (dest, dir || source.is_dir()), owner)?;
        self.land(source, (dest, dir), meta, &mut |r| to.extract("/", None, r))?;
        let spool = self.engine.root.join("build-tmp");
        added.land(self.ctx, to, (dest, dir), meta, &spool)
    }

    /// Where a COPY's files come from, and the key part of what lands.
    fn source(
        &mut self,
        inst: &Instruction,
        srcs: &[String],
        (dest_abs, dest): (&str, &str),
        meta: Meta,
        stage: usize,
    ) -> Result<(Source, String)> {
        let Some(from) = inst.flag("from") else {
            let mut paths = Vec::new();
            for s in srcs {
                paths.extend(self.ctx.sources(s)?);
            }
            if paths.len() > 1 && !dest_is_dir(dest) {
                bail!(
                    "When using {} with more than one source file, the destination must be a directory and end with a /",
                    inst.keyword
                );
            }
            let meta = Meta {
                owner: meta.owner.or(Some((0, 0))),
                ..meta
            };
            let dest = (dest_abs, dest_is_dir(dest));
            let exclude = excludes(inst);
            let (hash, digests) = walk::digest(self.ctx, &paths, &exclude, dest, meta)?;
            let dirs = paths.iter().any(|p| self.ctx.is_dir(p));
            return Ok((Source::Context(paths, digests, meta, dirs, exclude), hash));
        };
        let img = self.stage_image(from, stage)?;
        // The image's id says what its files are (and what its globs
        // match): nothing is read to key.
        let k = format!("from {}", img.id);
        Ok((Source::Image(img, srcs.to_vec(), excludes(inst)), k))
    }

    /// `source` as one tar stream landing at `dest`, handed to `sink`.
    fn land(
        &self,
        source: &Source,
        (dest, dir): (&str, bool),
        meta: Meta,
        sink: &mut dyn FnMut(&mut dyn Read) -> Result<()>,
    ) -> Result<()> {
        match source {
            Source::Inline(tar) => sink(&mut tar.as_slice()),
            Source::Context(paths, digests, meta, _, exclude) => {
                let meta = *meta;
                let (mut r, w) = std::io::pipe()?;
                // Fewer, larger hand-overs than the default 64 KiB allows
                // (best effort: a smaller limit only costs syscalls).
                let _ = rustix::pipe::fcntl_setpipe_size(&w, 1 << 20);
                std::thread::scope(|s| {
                    let ctx = self.ctx;
                    let writer = s.spawn(move || {
                        let out = std::io::BufWriter::with_capacity(256 << 10, w);
                        walk::write_tar(ctx, paths, exclude, (dest, dir), meta, digests, out)
                    });
                    let landed = sink(&mut r);
                    // Whatever is left unread, the writer must not wait on.
                    drop(r);
                    let wrote = writer
                        .join()
                        .unwrap_or_else(|_| Err(anyhow!("the COPY stream's writer panicked")));
                    match (wrote, landed) {
                        // The reader stopped first: its error is the cause.
                        (Err(w), Err(l)) if broken_pipe(&w) => Err(l),
                        (wrote, landed) => wrote.and(landed),
                    }
                })
            }
            Source::Image(img, srcs, exclude) => {
                let spool = self.engine.root.join("build-tmp");
                let id = self.container(img)?;
                let packed = glob::from_paths(self.engine, &id, srcs).and_then(|paths| {
                    let dir = dir || paths.len() > 1;
                    copy::pack(
                        self.engine,
                        &id,
                        (&paths, exclude),
                        (dest, dir),
                        meta,
                        &spool,
                    )
                });
                crate::remove::remove(self.engine, &id, true)?;
                sink(&mut packed?)
            }
        }
    }
}

/// A COPY's or ADD's `--exclude` patterns, read as `.dockerignore` lines.
fn excludes(inst: &Instruction) -> Ignore {
    let lines: Vec<&str> = inst
        .flags
        .iter()
        .filter(|(k, _)| k == "exclude")
        .map(|(_, v)| v.as_str())
        .collect();
    Ignore::parse(&lines.join("\n"))
}

/// The flags BuildKit takes that berth does not carry out. `--link`
/// lands the same files (BuildKit's difference is only that it may
/// rebase the layer), and `--keep-git-dir` is only for git URLs, which
/// ADD refuses: both are taken.
fn refuse_unsupported(inst: &Instruction) -> Result<()> {
    match ["parents"].into_iter().find(|f| inst.flag(f).is_some()) {
        Some(f) => bail!("{} --{f} is not supported by berth build", inst.keyword),
        None => Ok(()),
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// A COPY's heredoc text, `$VAR`s expanded unless its word was quoted.
fn heredoc_content(inst: &Instruction, srcs: &[String], vars: &[String]) -> Result<Option<String>> {
    Ok(match &inst.heredoc {
        Some(h) if srcs.len() == 1 && srcs[0].starts_with("<<") => Some(if h.expand {
            crate::instructions::substitute(&h.body, vars)?
        } else {
            h.body.clone()
        }),
        Some(_) => bail!("a heredoc must be the only source of {}", inst.keyword),
        None => None,
    })
}
