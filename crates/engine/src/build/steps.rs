//! The steps of a build: each stage from its base, one instruction at a
//! time, with the cache and Docker's plain progress lines.

use std::io::Write;
use std::time::Instant;

use anyhow::{Result, anyhow, bail};
use berth_image::{ImageRecord, Progress};
use serde_json::{Value, json};

use super::cache::{Cache, key};
use super::copy::{self, Context};
use super::dockerfile::{Args, Dockerfile, Instruction};
use super::meta::{healthcheck, meta, shell};
use super::progress::Printer;
use super::state::{State, scratch_config};
use super::{BuildRequest, Built, StepFailed};
use crate::Engine;
use crate::request::{Network, PullPolicy, RunRequest};

mod add;
mod copying;
mod glob;
mod mounts;
mod sweep;
mod url;

pub(super) use mounts::{CACHE_MOUNTS, froms as mount_froms};
use sweep::step_label;
pub(super) use sweep::sweep;

pub(super) struct Builder<'a> {
    engine: &'a Engine,
    req: &'a BuildRequest,
    ctx: &'a Context,
    printer: Printer<'a>,
    df: &'a Dockerfile,
    /// The Dockerfile's name in errors.
    file: String,
    globals: &'a [String],
    cache: Cache<'a>,
    done: Vec<Option<State>>,
    cached: usize,
    steps: usize,
}

impl<'a> Builder<'a> {
    pub(super) fn new(
        engine: &'a Engine,
        req: &'a BuildRequest,
        ctx: &'a Context,
        out: &'a mut dyn Write,
        df: &'a Dockerfile,
        file: &str,
        globals: &'a [String],
    ) -> Result<Builder<'a>> {
        Ok(Builder {
            engine,
            req,
            ctx,
            printer: Printer::new(out, req.progress),
            df,
            file: file.to_string(),
            globals,
            cache: Cache::new(engine),
            done: vec![None; df.stages.len()],
            cached: 0,
            steps: 0,
        })
    }

    fn say(&mut self, line: &str) {
        self.printer.say(line);
    }

    fn begin(&mut self, label: &str, what: &str) -> Instant {
        self.steps += 1;
        self.printer.begin(&format!("{label} {what}"))
    }

    fn done_in(&mut self, t: Instant) {
        self.printer
            .end(&format!("DONE {:.1}s", t.elapsed().as_secs_f64()));
    }

    fn hit(&mut self, st: &mut State, k: &str) -> Result<bool> {
        if self.req.no_cache {
            return Ok(false);
        }
        let Some(img) = self.cache.get(k) else {
            return Ok(false);
        };
        st.config = self.engine.store.config_json(&img)?;
        st.image = Some(img);
        st.dirty = false;
        st.key = k.to_string();
        self.cached += 1;
        self.printer.end("CACHED");
        Ok(true)
    }

    /// Builds stage `i`.
    pub(super) fn stage(&mut self, i: usize) -> Result<()> {
        let df = self.df;
        let s = &df.stages[i];
        let n = 1 + s
            .instructions
            .iter()
            .filter(|x| matches!(x.keyword.as_str(), "RUN" | "COPY" | "ADD"))
            .count();
        let label = |k: usize| match &s.name {
            Some(name) => format!("[{name} {k}/{n}]"),
            None => format!("[{k}/{n}]"),
        };
        let file = self.file.clone();
        let at = |e: anyhow::Error, line: usize| anyhow!("{file}:{line}: {e:#}");
        let base =
            crate::instructions::substitute(&s.base, self.globals).map_err(|e| at(e, s.line))?;
        let platform = match s.flags.iter().find(|(k, _)| k == "platform") {
            Some((_, p)) => {
                Some(crate::instructions::substitute(p, self.globals).map_err(|e| at(e, s.line))?)
            }
            None => None,
        };
        let mut st = self
            .from(&base, platform.as_deref(), i, &label(1))
            .map_err(|e| at(e, s.line))?;
        self.onbuild(&mut st, i).map_err(|e| at(e, s.line))?;
        let mut k = 1;
        for inst in &s.instructions {
            if matches!(inst.keyword.as_str(), "RUN" | "COPY" | "ADD") {
                k += 1;
            }
            self.step(&mut st, inst, &label(k), i).map_err(|e| {
                match e.downcast::<StepFailed>() {
                    Ok(f) => anyhow::Error::new(f),
                    Err(e) => at(e, inst.line),
                }
            })?;
        }
        self.done[i] = Some(st);
        Ok(())
    }

    /// The predefined proxy ARGs given with --build-arg: in a RUN's
    /// environment without an ARG, never in the cache key or history.
    fn proxy_args(&self) -> Vec<String> {
        self.req
            .build_args
            .iter()
            .filter(|(k, _)| super::PROXY_ARGS.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }

    /// One instruction of stage `i`.
    fn step(&mut self, st: &mut State, inst: &Instruction, label: &str, i: usize) -> Result<()> {
        match inst.keyword.as_str() {
            "RUN" => self.run(st, inst, label, i),
            "COPY" | "ADD" => self.copy(st, inst, label, i),
            "ARG" => self.arg(st, inst),
            "WORKDIR" => {
                meta(st, inst)?;
                self.mkdir_workdir(st)
            }
            "SHELL" => shell(st, inst),
            "HEALTHCHECK" => healthcheck(st, inst),
            "MAINTAINER" => {
                let who = inst.shell_text();
                st.config["author"] = json!(who);
                st.key = key(&st.key, &["MAINTAINER", &who]);
                st.dirty = true;
                Ok(())
            }
            _ => meta(st, inst),
        }
    }

    /// The base's ONBUILD triggers, run first, as Docker runs them; the
    /// new image does not keep them.
    fn onbuild(&mut self, st: &mut State, i: usize) -> Result<()> {
        let triggers = super::state::strings(st.get("OnBuild"));
        if triggers.is_empty() {
            return Ok(());
        }
        st.inner().remove("OnBuild");
        st.key = key(&st.key, &["ONBUILD", &triggers.join("\n")]);
        st.dirty = true;
        let text = format!("FROM scratch\n{}\n", triggers.join("\n"));
        let parsed = super::dockerfile::parse(&text, "ONBUILD")?;
        let insts = &parsed.stages[0].instructions;
        let m = insts
            .iter()
            .filter(|x| matches!(x.keyword.as_str(), "RUN" | "COPY" | "ADD"))
            .count();
        let mut j = 0;
        for inst in insts {
            if matches!(inst.keyword.as_str(), "ONBUILD" | "FROM" | "MAINTAINER") {
                bail!("{} isn't allowed as an ONBUILD trigger", inst.keyword);
            }
            if matches!(inst.keyword.as_str(), "RUN" | "COPY" | "ADD") {
                j += 1;
            }
            self.step(st, inst, &format!("[onbuild {j}/{m}]"), i)
                .map_err(|e| anyhow!("ONBUILD {}: {e:#}", inst.text()))?;
        }
        Ok(())
    }

    /// The state `FROM base` starts from: an earlier stage, scratch or an
    /// image (pulled when missing).
    fn from(&mut self, base: &str, platform: Option<&str>, i: usize, label: &str) -> Result<State> {
        let t = self.begin(label, &format!("FROM {base}"));
        let lower = base.to_ascii_lowercase();
        let earlier = self.df.stages[..i]
            .iter()
            .position(|s| s.name.as_deref() == Some(lower.as_str()));
        let st = if let Some(j) = earlier {
            let mut st = self.done[j]
                .clone()
                .ok_or_else(|| anyhow!("stage {base} was not built"))?;
            st.args.clear();
            st.cmd_set = false;
            st
        } else if lower == "scratch" {
            State {
                image: None,
                config: scratch_config(),
                key: from_key(self.req, "scratch"),
                dirty: true,
                args: Vec::new(),
                cmd_set: false,
                epoch: super::source_date_epoch(self.req),
            }
        } else {
            let img = self.image(base, platform)?;
            State {
                config: self.engine.store.config_json(&img)?,
                key: from_key(self.req, img.id.as_str()),
                image: Some(img),
                dirty: false,
                args: Vec::new(),
                cmd_set: false,
                epoch: super::source_date_epoch(self.req),
            }
        };
        self.done_in(t);
        Ok(st)
    }

    /// The image `from` names for stage `stage`'s `--from`: an earlier
    /// stage's (its config stored), else an image, pulled when missing.
    fn stage_image(&mut self, from: &str, stage: usize) -> Result<ImageRecord> {
        match super::stage_index(self.df, &from.to_ascii_lowercase()).filter(|j| *j < stage) {
            Some(j) => {
                let mut st = self.done[j]
                    .clone()
                    .ok_or_else(|| anyhow!("stage {from} was not built"))?;
                self.materialize(&mut st)?;
                st.image.ok_or_else(|| anyhow!("stage {from} is empty"))
            }
            None => self.image(from, None),
        }
    }

    /// A local image, else pulled.
    fn image(&self, name: &str, platform: Option<&str>) -> Result<ImageRecord> {
        let rr = RunRequest {
            image: name.to_string(),
            pull: if self.req.pull {
                PullPolicy::Always
            } else {
                PullPolicy::Missing
            },
            platform: platform.or(self.req.platform.as_deref()).map(String::from),
            ..Default::default()
        };
        Ok(crate::run::resolve_image(self.engine, &rr, &Progress::quiet())?.0)
    }

    fn arg(&mut self, st: &mut State, inst: &Instruction) -> Result<()> {
        for (k, v) in super::arg_pairs(inst, &st.vars(), &self.req.build_args)? {
            let global = self
                .globals
                .iter()
                .rev()
                .find_map(|g| g.strip_prefix(k.as_str())?.strip_prefix('='))
                .map(String::from);
            st.args.retain(|a| a.split('=').next() != Some(k.as_str()));
            if let Some(v) = v.or(global) {
                // Not in the key: a RUN sees the ARGs (its key has them),
                // other steps their values substituted in their text.
                st.args.push(format!("{k}={v}"));
            }
        }
        Ok(())
    }

    fn run(&mut self, st: &mut State, inst: &Instruction, label: &str, i: usize) -> Result<()> {
        let argv = match &inst.args {
            Args::Exec(v) => v.clone(),
            Args::Shell(t) => [st.shell(), vec![inst.script(t)]].concat(),
        };
        let shown = argv.join(" ");
        let t = self.begin(label, &format!("RUN {}", inst.shell_text()));
        let plan = self.plan(st, inst, i)?;
        let argv_text = serde_json::to_string(&argv)?;
        let args = st.args.join("\n");
        let mut parts = vec!["RUN", &argv_text, &args];
        // The flags as written (and each bind's content); none, the key
        // a RUN had before berth read them.
        if !plan.key.is_empty() {
            parts.push(&plan.key);
        }
        let k = key(&st.key, &parts);
        if self.hit(st, &k)? {
            return Ok(());
        }
        let img = st.image.clone().ok_or_else(|| {
            anyhow!("RUN in an empty stage (FROM scratch): there is nothing to run")
        })?;
        let nonempty = |v: Option<&Value>| {
            v.and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(String::from)
        };
        let mounts = self.prepare(&plan)?;
        let rr = RunRequest {
            image: img.id.to_string(),
            pull: PullPolicy::Never,
            command: argv.clone(),
            entrypoint: Some(String::new()),
            // The ENV over the ARGs of the same name, as in Docker.
            env: [st.vars(), self.proxy_args(), mounts.env.clone()].concat(),
            user: nonempty(st.get("User")),
            workdir: nonempty(st.get("WorkingDir")),
            network: plan.network.clone(),
            labels: step_label(),
            mounts: mounts.mounts.clone(),
            ..Default::default()
        };
        // Each line of its output goes to the progress, `#N 0.123 line`.
        let tap = Some(&mut self.printer as &mut dyn berth_runtime::OutputTap);
        let finished = crate::run::run_tapped(self.engine, &rr, &Progress::quiet(), tap)?;
        let made = if finished.code != 0 {
            Err(anyhow::Error::new(StepFailed {
                command: shown.clone(),
                code: finished.code,
            }))
        } else {
            self.tidy(&finished.id, &mounts.targets)
                .and_then(|()| self.commit(st, &finished.id, &format!("RUN {shown} # buildkit")))
        };
        drop(mounts);
        let removed = crate::remove::remove(self.engine, &finished.id, true);
        if let Err(e) = &made {
            self.printer.fail(&e.to_string());
        }
        made?;
        removed?;
        self.cache
            .put(&k, st.image.as_ref().expect("just committed"))?;
        st.key = k;
        self.done_in(t);
        Ok(())
    }

    /// The mount points of a step's `--mount`s out of its upper dir.
    fn tidy(&self, id: &str, targets: &[String]) -> Result<()> {
        if targets.is_empty() {
            return Ok(());
        }
        let records = self.engine.records()?;
        let c = records.find(id)?;
        let upper = crate::commit::upper_dir(self.engine, &c)?;
        let _fs = records.fs_lock(&c.id)?;
        mounts::tidy(&upper, targets)
    }

    /// The container's changes as a new layer over `st`.
    fn commit(&mut self, st: &mut State, id: &str, created_by: &str) -> Result<()> {
        let records = self.engine.records()?;
        let c = records.find(id)?;
        let upper = crate::commit::upper_dir(self.engine, &c)?;
        let _fs = records.fs_lock(&c.id)?;
        let report = self.layer(st, &upper, created_by)?;
        // The upper dir holds exactly the layer (but for what the engine
        // put there, which adopt removes): it becomes the layer's snapshot,
        // so the next step does not unpack what this one just wrote. Not
        // under SOURCE_DATE_EPOCH: the layer's mtimes are clamped, the
        // upper dir's are not, and later steps must see the layer's.
        if report.not_in_layer == 0 && st.epoch.is_none() {
            let img = st.image.as_ref().expect("just committed");
            if let Some(chain) = img.chain_ids().last() {
                crate::rootfs_prep::adopt(self.engine, chain.as_str(), &upper)?;
            }
        }
        Ok(())
    }

    /// `dir` (an upper dir, or a staging dir of a scratch stage) as a new
    /// layer over `st`, stored as an untagged image.
    fn layer(
        &mut self,
        st: &mut State,
        dir: &std::path::Path,
        created_by: &str,
    ) -> Result<berth_snapshot::UpperReport> {
        let guard = self.engine.store.write_guard()?;
        let epoch = st.epoch.map(|s| s.max(0) as u64);
        let (blob, diff_id, report) =
            crate::commit::write_layer(self.engine, dir, self.req.compression, epoch)?;
        st.push_history(created_by, false, Some(&diff_id.to_string()));
        let rec = crate::commit::store_image(
            self.engine,
            st.image.as_ref(),
            &st.config,
            Some(&blob),
            self.req.compression,
            None,
        )?;
        drop(guard);
        st.image = Some(rec);
        st.dirty = false;
        Ok(report)
    }

    /// A WORKDIR that does not exist is made (root's, 0755), as Docker
    /// makes it, in a layer of its own; cached like a step.
    fn mkdir_workdir(&mut self, st: &mut State) -> Result<()> {
        let Some(dir) = st
            .get("WorkingDir")
            .and_then(Value::as_str)
            .map(String::from)
        else {
            return Ok(());
        };
        let k = key(&st.key, &["mkdir", &dir]);
        if !self.req.no_cache
            && let Some(img) = self.cache.get(&k)
        {
            st.config = self.engine.store.config_json(&img)?;
            st.image = Some(img);
            st.dirty = false;
            st.key = k;
            return Ok(());
        }
        let mut h = tar::Header::new_gnu();
        h.set_entry_type(tar::EntryType::Directory);
        h.set_mode(0o755);
        h.set_uid(0);
        h.set_gid(0);
        h.set_size(0);
        let mut b = tar::Builder::new(Vec::new());
        b.append_data(
            &mut h,
            format!("{}/", dir.trim_matches('/')),
            std::io::empty(),
        )?;
        let tar = b.into_inner()?;
        let created_by = format!("WORKDIR {dir} # buildkit");
        match st.image.clone() {
            Some(img) => {
                let id = self.container(&img)?;
                let made = match crate::cp::is_dir(self.engine, &id, &dir) {
                    Ok(true) => Ok(false),
                    Ok(false) => crate::cp::copy_in(
                        self.engine,
                        &id,
                        "/",
                        crate::cp::HostSrc::Stream(&mut tar.as_slice()),
                        crate::cp::CpOptions {
                            archive: true,
                            follow_link: false,
                        },
                    )
                    .and_then(|()| self.commit(st, &id, &created_by))
                    .map(|()| true),
                    Err(e) => Err(e),
                };
                let removed = crate::remove::remove(self.engine, &id, true);
                if !made? {
                    // There already: the same image, its config stored.
                    self.materialize(st)?;
                }
                removed?;
            }
            None => {
                let staging = copy::tempdir(self.engine)?;
                berth_snapshot::extract_archive(tar.as_slice(), staging.path(), &plain())?;
                self.layer(st, staging.path(), &created_by)?;
            }
        }
        self.cache.put(&k, st.image.as_ref().expect("stored"))?;
        st.key = k;
        Ok(())
    }

    /// The text of `path` in `img` (empty when it has none).
    fn image_file(&self, img: &ImageRecord, path: &str) -> Result<String> {
        let id = self.container(img)?;
        let mut raw = Vec::new();
        let opts = crate::cp::CpOptions {
            archive: true,
            follow_link: true,
        };
        let got = crate::cp::copy_out(
            self.engine,
            &id,
            path,
            crate::cp::HostDst::Stream(&mut raw),
            opts,
        );
        crate::remove::remove(self.engine, &id, true)?;
        if got.is_err() {
            return Ok(String::new());
        }
        let mut text = String::new();
        if let Some(e) = tar::Archive::new(raw.as_slice()).entries()?.next() {
            std::io::Read::read_to_string(&mut std::io::Read::take(e?, 16 << 20), &mut text)?;
        }
        Ok(text)
    }

    /// A container made (not started) from `img`, for its filesystem.
    fn container(&self, img: &ImageRecord) -> Result<String> {
        let rr = RunRequest {
            image: img.id.to_string(),
            pull: PullPolicy::Never,
            command: vec!["/".into()],
            entrypoint: Some(String::new()),
            network: Network::None,
            labels: step_label(),
            ..Default::default()
        };
        Ok(crate::run::create_only(self.engine, &rr, &Progress::quiet())?.id)
    }

    /// An image with `st`'s config, when the last one stored has not got it.
    fn materialize(&mut self, st: &mut State) -> Result<()> {
        if !st.dirty && st.image.is_some() {
            return Ok(());
        }
        let k = key(&st.key, &["config"]);
        if !self.req.no_cache
            && let Some(img) = self.cache.get(&k)
        {
            st.image = Some(img);
            st.dirty = false;
            return Ok(());
        }
        let guard = self.engine.store.write_guard()?;
        let rec = crate::commit::store_image(
            self.engine,
            st.image.as_ref(),
            &st.config,
            None,
            self.req.compression,
            None,
        )?;
        drop(guard);
        self.cache.put(&k, &rec)?;
        st.image = Some(rec);
        st.dirty = false;
        Ok(())
    }

    /// The target stage's image, tagged.
    pub(super) fn finish(mut self, target: usize) -> Result<Built> {
        let mut st = self.done[target]
            .take()
            .ok_or_else(|| anyhow!("the target stage was not built"))?;
        if !self.req.labels.is_empty() {
            let labels = st.inner().entry("Labels").or_insert_with(|| json!({}));
            if !labels.is_object() {
                *labels = json!({});
            }
            for (k, v) in &self.req.labels {
                labels[k] = json!(v);
            }
            st.key = key(
                &st.key,
                &["--label", &serde_json::to_string(&self.req.labels)?],
            );
            st.dirty = true;
        }
        self.materialize(&mut st)?;
        let img = st.image.expect("materialized");
        self.printer.shown += 1;
        self.say(&format!("writing image {} done", img.id));
        for t in &self.req.tags {
            let _guard = self.engine.store.write_guard()?;
            self.engine.store.add_image(&img.manifest_digest, Some(t))?;
            self.say(&format!("naming to {t} done"));
        }
        let image = self
            .engine
            .store
            .resolve(&img.id.to_string())
            .unwrap_or(img);
        Ok(Built {
            image,
            cached: self.cached,
            steps: self.steps,
        })
    }
}

/// A stage's first key: its base and, when set, `SOURCE_DATE_EPOCH`
/// (the mtimes its layers hold depend on it).
fn from_key(req: &BuildRequest, base: &str) -> String {
    match super::source_date_epoch(req) {
        Some(e) => key("", &["FROM", base, &format!("SOURCE_DATE_EPOCH={e}")]),
        None => key("", &["FROM", base]),
    }
}

/// Extracting into a scratch stage's staging dir: a plain tree.
fn plain() -> berth_snapshot::ApplyOptions {
    berth_snapshot::ApplyOptions {
        mode: berth_snapshot::ApplyMode::Plain,
        ..Default::default()
    }
}

/// A destination named as a directory.
fn dest_is_dir(dest: &str) -> bool {
    dest.ends_with('/') || dest.ends_with("/.") || dest == "."
}
