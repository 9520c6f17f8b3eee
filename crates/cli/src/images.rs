//! Image commands: pull, push, images, rmi, tag, history, save, load, image
//! inspect, image prune, login, logout, and the images made here: commit,
//! import.

use std::collections::HashSet;
use std::io::{BufRead, IsTerminal, Read};

use anyhow::{Context, Result, bail};
use berth_engine::{Engine, rootfs_prep, timefmt};
use berth_image::{Progress, ProgressMode, RemoveEvent};
use berth_io::{errln, outln};

use crate::cli::{
    CommitArgs, HistoryArgs, ImagesArgs, ImportArgs, LoadArgs, LoginArgs, PruneArgs, PullArgs,
    PushArgs, RmiArgs, SaveArgs, TagArgs,
};
use crate::table;

pub fn pull(engine: &Engine, args: &PullArgs) -> Result<u8> {
    let opts = engine.pull_options(args.platform.as_deref())?;
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    let r = berth_image::Reference::parse(&args.image)?;
    if !args.quiet && r.tag.is_none() && r.digest.is_none() {
        outln!("Using default tag: latest");
    }
    rootfs_prep::pull(engine, &args.image, &opts, &Progress::new(mode))?;
    // Docker ends with the full reference pulled, quiet or not.
    outln!("{}", r.with_default_tag());
    Ok(0)
}

/// `push [-a] [-q] NAME[:TAG]`: Docker's lines (`The push refers to
/// repository [...]`, one per layer, `TAG: digest: … size: N`).
pub fn push(engine: &Engine, args: &PushArgs) -> Result<u8> {
    let mode = if args.quiet {
        ProgressMode::Quiet
    } else {
        ProgressMode::Auto
    };
    let r = berth_image::Reference::parse(&args.name)?;
    if !args.quiet && !args.all_tags && r.tag.is_none() && r.digest.is_none() {
        outln!("Using default tag: latest");
    }
    let opts = berth_image::PushOptions {
        registry: engine.registry_options(),
        all_tags: args.all_tags,
        ..Default::default()
    };
    berth_image::push(&engine.store, &args.name, &opts, &Progress::new(mode))?;
    Ok(0)
}

/// `save [-o FILE] IMAGE…`: Docker's archive (with an OCI layout inside),
/// to stdout or written whole to FILE.
pub fn save(engine: &Engine, args: &SaveArgs) -> Result<u8> {
    let done = crate::cptop::to_output(args.output.as_deref(), "save", |w| {
        berth_image::archive::save(&engine.store, &args.images, w)
    })
    .context("save")?;
    Ok(if done.is_some() { 0 } else { 1 })
}

/// `load [-i FILE] [-q]`: Docker's archives (old and new) and OCI layouts
/// in a tar, from stdin or FILE; Docker's `Loaded image…` lines.
pub fn load(engine: &Engine, args: &LoadArgs) -> Result<u8> {
    let loaded = (|| {
        let mut input: Box<dyn Read> = match &args.input {
            Some(p) => Box::new(std::io::BufReader::with_capacity(
                1 << 20,
                std::fs::File::open(p).with_context(|| format!("open {}", p.display()))?,
            )),
            None => {
                if std::io::stdin().is_terminal() {
                    bail!("requested load from stdin, but stdin is empty");
                }
                Box::new(std::io::BufReader::with_capacity(1 << 20, std::io::stdin()))
            }
        };
        berth_image::archive::load(&engine.store, &mut input)
    })()
    .context("load")?;
    for l in loaded {
        if l.tags.is_empty() {
            outln!("Loaded image ID: {}", l.id);
        }
        for t in &l.tags {
            outln!("Loaded image: {t}");
        }
    }
    Ok(0)
}

pub fn images(engine: &Engine, args: &ImagesArgs) -> Result<u8> {
    let mut rows = engine.store.list()?;
    if !args.all {
        // A build's intermediate images (its cache), untagged, as Docker
        // hides them.
        let cached = berth_engine::build::cache::Cache::new(engine).image_ids();
        rows.retain(|r| r.repository != "<none>" || !cached.contains(&r.id.to_string()));
    }
    if let Some(repo) = &args.repository {
        rows.retain(|r| &r.repository == repo);
    }
    if args.quiet {
        let mut seen = HashSet::new();
        for r in rows.iter().filter(|r| seen.insert(r.id.clone())) {
            outln!(
                "{}",
                if args.no_trunc {
                    r.id.as_str()
                } else {
                    r.id.short()
                }
            );
        }
        return Ok(0);
    }
    let default = if args.digests {
        "{{.Repository}}\t{{.Tag}}\t{{.Digest}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    } else {
        "{{.Repository}}\t{{.Tag}}\t{{.ID}}\t{{.CreatedSince}}\t{{.Size}}"
    };
    let format = crate::format::Format::parse(args.format.as_deref(), default)?;
    // `name@digest` of each image, for the DIGEST column: the one of the
    // row's repository (what the registry served for that name).
    let records = engine.store.images()?;
    let digest_of = |r: &berth_image::ImageSummary| {
        records
            .iter()
            .find(|rec| rec.id == r.id)
            .and_then(|rec| {
                rec.repo_digests.iter().find_map(|d| {
                    let (name, digest) = d.split_once('@')?;
                    (name == r.repository).then(|| digest.to_string())
                })
            })
            .unwrap_or_else(|| "<none>".into())
    };
    let items: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            // Docker's ImageContext: every field a string.
            serde_json::json!({
                "Containers": "N/A",
                "CreatedAt": r.created.as_deref().map(crate::containers::go_time).unwrap_or_default(),
                "CreatedSince": r.created.as_deref().map_or_else(|| "N/A".into(), |c| format!("{} ago", timefmt::since(c))),
                "Digest": digest_of(r),
                "ID": if args.no_trunc { r.id.as_str() } else { r.id.short() },
                "Repository": r.repository,
                "SharedSize": "N/A",
                "Size": table::human_size(r.size),
                "Tag": r.tag,
                "UniqueSize": "N/A",
                "VirtualSize": table::human_size(r.size),
            })
        })
        .collect();
    let headers = serde_json::json!({
        "Containers": "CONTAINERS", "CreatedAt": "CREATED AT", "CreatedSince": "CREATED",
        "Digest": "DIGEST", "ID": "IMAGE ID", "Repository": "REPOSITORY",
        "SharedSize": "SHARED SIZE", "Size": "SIZE", "Tag": "TAG",
        "UniqueSize": "UNIQUE SIZE", "VirtualSize": "VIRTUAL SIZE",
    });
    let none = |_: usize, _: &str, _: &[crate::template::Val]| None;
    berth_io::out!(
        "{}",
        format.render(&items, &headers, "*formatter.ImageContext", &none)?
    );
    Ok(0)
}

/// `tag SOURCE TARGET`: Docker prints nothing.
pub fn tag(engine: &Engine, args: &TagArgs) -> Result<u8> {
    engine.store.tag(&args.source, &args.target)?;
    Ok(0)
}

/// `commit CONTAINER [REPO[:TAG]]`: prints the new image's id.
pub fn commit(engine: &Engine, args: &CommitArgs) -> Result<u8> {
    use berth_engine::commit::{CommitRequest, commit};
    let req = CommitRequest {
        container: args.container.clone(),
        reference: args.reference.clone(),
        message: args.message.clone(),
        author: args.author.clone(),
        changes: args.change.clone(),
        pause: args.pause,
        compression: if args.compress == "zstd" {
            berth_image::Compression::Zstd
        } else {
            berth_image::Compression::Gzip
        },
    };
    let rec = commit(engine, &req)?;
    outln!("{}", rec.id);
    Ok(0)
}

/// `import FILE|- [REPO[:TAG]]`: prints the new image's id. URLs are not
/// fetched (berth reads files and stdin only).
pub fn import(engine: &Engine, args: &ImportArgs) -> Result<u8> {
    use berth_engine::import::{ImportRequest, import};
    let req = ImportRequest {
        reference: args.reference.clone(),
        message: args.message.clone(),
        changes: args.change.clone(),
        source: args.file.clone(),
    };
    let rec = if args.file == "-" {
        import(engine, std::io::stdin().lock(), &req)?
    } else if args.file.contains("://") {
        bail!(
            "import {}: importing from a URL is not supported: download it and import the file",
            args.file
        );
    } else {
        let f = std::fs::File::open(&args.file).with_context(|| format!("import {}", args.file))?;
        import(engine, f, &req).with_context(|| format!("import {}", args.file))?
    };
    outln!("{}", rec.id);
    Ok(0)
}

/// `history IMAGE`: the config's history, newest first, each entry that
/// made a layer with that layer's size (`<missing>` for every entry but
/// the image's own, as Docker shows pulled images).
pub fn history(engine: &Engine, args: &HistoryArgs) -> Result<u8> {
    let img = engine.store.resolve(&args.image)?;
    let config = engine.store.config_json(&img)?;
    let mut sizes = img.layers.iter().map(|l| l.unpacked_size);
    let mut rows: Vec<serde_json::Value> = Vec::new();
    let entries = config["history"].as_array().cloned().unwrap_or_default();
    for h in &entries {
        let empty = h["empty_layer"].as_bool().unwrap_or(false);
        let size = if empty { 0 } else { sizes.next().unwrap_or(0) };
        rows.push(history_row(h, size, args));
    }
    // Layers the history does not account for (or no history at all).
    for size in sizes {
        rows.push(history_row(&serde_json::Value::Null, size, args));
    }
    rows.reverse();
    let id = if args.no_trunc {
        img.id.as_str()
    } else {
        img.id.short()
    };
    for (i, r) in rows.iter_mut().enumerate() {
        r["ID"] = serde_json::json!(if i == 0 { id } else { "<missing>" });
    }
    if args.quiet {
        for r in &rows {
            outln!("{}", r["ID"].as_str().unwrap_or_default());
        }
        return Ok(0);
    }
    let format = crate::format::Format::parse(
        args.format.as_deref(),
        "{{.ID}}\t{{.CreatedSince}}\t{{.CreatedBy}}\t{{.Size}}\t{{.Comment}}",
    )?;
    let headers = serde_json::json!({
        "ID": "IMAGE", "CreatedSince": "CREATED", "CreatedAt": "CREATED AT",
        "CreatedBy": "CREATED BY", "Size": "SIZE", "Comment": "COMMENT",
    });
    let none = |_: usize, _: &str, _: &[crate::template::Val]| None;
    berth_io::out!(
        "{}",
        format.render(&rows, &headers, "*formatter.historyContext", &none)?
    );
    Ok(0)
}

/// One row of `history`, Docker's historyContext: every field a string.
fn history_row(h: &serde_json::Value, size: u64, args: &HistoryArgs) -> serde_json::Value {
    let created = h["created"].as_str();
    let created_by = h["created_by"]
        .as_str()
        .unwrap_or_default()
        .replace('\t', " ");
    let created_by = if args.no_trunc {
        created_by
    } else {
        ellipsis(&created_by, 45)
    };
    let (since, at, size) = if args.human {
        (
            created.map_or_else(|| "N/A".into(), |c| format!("{} ago", timefmt::since(c))),
            created.map(crate::containers::go_time).unwrap_or_default(),
            table::human_size(size),
        )
    } else {
        let at = created.unwrap_or_default().to_string();
        (at.clone(), at, size.to_string())
    };
    serde_json::json!({
        "CreatedSince": since,
        "CreatedAt": at,
        "CreatedBy": created_by,
        "Size": size,
        "Comment": h["comment"].as_str().unwrap_or_default(),
    })
}

/// Docker's Ellipsis: `s` cut to `max` characters, the last one `…`.
fn ellipsis(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut out: String = s.chars().take(max - 1).collect();
    out.push('…');
    out
}

pub fn rmi(engine: &Engine, args: &RmiArgs) -> Result<u8> {
    let mut failed = false;
    for name in &args.images {
        let res = (|| -> Result<()> {
            for ev in berth_engine::system::remove_image(engine, name, args.force)? {
                match ev {
                    RemoveEvent::Untagged(t) => outln!("Untagged: {t}"),
                    RemoveEvent::Deleted(d) => outln!("Deleted: {d}"),
                }
            }
            Ok(())
        })();
        if let Err(e) = res {
            errln!("berth: rmi {name}: {e:#}");
            failed = true;
        }
    }
    Ok(u8::from(failed))
}

pub fn inspect(engine: &Engine, names: &[String]) -> Result<u8> {
    let mut out = Vec::new();
    let mut failed = false;
    for n in names {
        match engine
            .store
            .resolve(n)
            .and_then(|img| engine.store.inspect(&img))
        {
            Ok(v) => out.push(v),
            Err(e) => {
                errln!("berth: image inspect {n}: {e:#}");
                failed = true;
            }
        }
    }
    outln!("{}", crate::containers::inspect::pretty(&out)?);
    Ok(u8::from(failed))
}

pub fn prune(engine: &Engine, args: &PruneArgs) -> Result<u8> {
    // Docker prunes dangling (untagged) images; -a also tagged ones no container uses.
    let pruned = berth_engine::system::prune_images(engine, args.all, |_| true)?;
    let deleted: Vec<String> = pruned
        .events
        .iter()
        .filter_map(|ev| match ev {
            RemoveEvent::Deleted(d) => Some(d.to_string()),
            RemoveEvent::Untagged(_) => None,
        })
        .collect();
    let (blobs, bytes) = engine.store.prune_blobs()?;
    let snaps = rootfs_prep::prune(engine)?;
    for d in &deleted {
        outln!("deleted: {d}");
    }
    outln!(
        "Total reclaimed space: {} ({blobs} blobs, {snaps} snapshots)",
        table::human_size(bytes)
    );
    Ok(0)
}

pub fn login(engine: &Engine, args: &LoginArgs) -> Result<u8> {
    let server = args.server.clone().unwrap_or_default();
    let user = match &args.username {
        Some(u) => u.clone(),
        None => bail!("login {server}: a username is required (-u)"),
    };
    let password = match (&args.password, args.password_stdin) {
        (Some(_), true) => bail!("--password and --password-stdin are mutually exclusive"),
        (Some(p), false) => {
            errln!("WARNING! Using --password via the CLI is insecure. Use --password-stdin.");
            p.clone()
        }
        (None, true) => {
            // Bounded like every input: `< /dev/zero` has no end of line.
            const CAP: u64 = 64 << 10;
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .take(CAP + 1)
                .read_line(&mut line)
                .context("--password-stdin")?;
            if line.len() as u64 > CAP {
                bail!("--password-stdin: larger than 64 KiB");
            }
            line.trim_end_matches(['\n', '\r']).to_string()
        }
        (None, false) if std::io::stdin().is_terminal() => {
            bail!("login {server}: give the password with --password-stdin")
        }
        (None, false) => bail!("login {server}: no password given (-p or --password-stdin)"),
    };
    if password.is_empty() {
        bail!("login {server}: empty password");
    }
    let opts = engine.registry_options();
    berth_image::login(&opts, &server, &user, &password, None)?;
    outln!("Login Succeeded");
    Ok(0)
}

pub fn logout(engine: &Engine, server: Option<&str>) -> Result<u8> {
    let server = server.unwrap_or("");
    let opts = engine.registry_options();
    if berth_image::logout(&opts, server, None)? {
        outln!(
            "Removing login credentials for {}",
            if server.is_empty() {
                "docker.io"
            } else {
                server
            }
        );
    } else {
        outln!(
            "Not logged in to {}",
            if server.is_empty() {
                "docker.io"
            } else {
                server
            }
        );
    }
    Ok(0)
}
