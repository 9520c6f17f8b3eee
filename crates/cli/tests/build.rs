//! `berth build` against the fixture busybox: every instruction of this
//! slice, multi-stage builds, the cache (hits and misses, counted by the
//! steps that say CACHED), `.dockerignore`, a context that tries to reach
//! out of itself, a failing RUN and parse errors.

mod common;

use std::path::{Path, PathBuf};
use std::process::Output;

use common::{BUSYBOX, Root, code, stderr, stdout};

fn berth(root: &Root, args: &[&str]) -> Output {
    root.berth().args(args).output().unwrap()
}

fn ok(root: &Root, args: &[&str]) -> String {
    let o = berth(root, args);
    assert_eq!(code(&o), 0, "{args:?}: {}{}", stdout(&o), stderr(&o));
    stdout(&o)
}

/// A context dir under the root with `files` (path, content) in it.
fn context(root: &Root, name: &str, files: &[(&str, &str)]) -> PathBuf {
    let dir = root.path().join(name);
    for (p, c) in files {
        let p = dir.join(p);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, c).unwrap();
    }
    // Rootless, the context is the building user's, as theirs would be.
    if let Some((uid, gid, _)) = common::test_user() {
        let st = std::process::Command::new("chown")
            .arg("-R")
            .arg(format!("{uid}:{gid}"))
            .arg(&dir)
            .status()
            .unwrap();
        assert!(st.success());
    }
    dir
}

fn build(root: &Root, ctx: &Path, args: &[&str]) -> Output {
    let mut all = vec!["build"];
    all.extend_from_slice(args);
    let c = ctx.display().to_string();
    all.push(&c);
    berth(root, &all)
}

fn built(root: &Root, ctx: &Path, args: &[&str]) -> String {
    let o = build(root, ctx, args);
    assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
    stderr(&o)
}

/// The steps (`RUN …`, `COPY …`) the progress says came from the cache.
fn cached(progress: &str) -> Vec<String> {
    let mut steps = std::collections::HashMap::new();
    let mut out = Vec::new();
    for l in progress.lines() {
        let Some((n, rest)) = l.strip_prefix('#').and_then(|l| l.split_once(' ')) else {
            continue;
        };
        if rest.starts_with('[') {
            let text = rest.split_once("] ").map(|x| x.1).unwrap_or(rest);
            steps.insert(n.to_string(), text.to_string());
        } else if rest == "CACHED" {
            out.push(steps[n].clone());
        }
    }
    out
}

/// `args` (an image and a command) run in a container, entrypoint off.
fn run_in(root: &Root, args: &[&str]) -> String {
    let mut all = vec!["run", "--rm", "--entrypoint", ""];
    all.extend_from_slice(args);
    ok(root, &all)
}

fn cat(root: &Root, image: &str, path: &str) -> String {
    run_in(root, &[image, "cat", path])
}

fn config(root: &Root, image: &str) -> serde_json::Value {
    let v: serde_json::Value =
        serde_json::from_str(&ok(root, &["image", "inspect", image])).unwrap();
    v[0]["Config"].clone()
}

#[test]
fn every_instruction() {
    let root = Root::new();
    let ctx = context(
        &root,
        "ctx",
        &[
            ("src/a.txt", "A\n"),
            ("src/b.txt", "B\n"),
            ("src/c.md", "C\n"),
            ("tool.sh", "echo tool\n"),
            (
                "Dockerfile",
                r#"# syntax and comments are fine
ARG BASE=busybox
FROM ${BASE} AS base
ARG WHO=world
ENV GREETING="hello $WHO" \
    EMPTY=
WORKDIR /app
WORKDIR sub
COPY src/*.txt ./txt/
COPY --chown=1000:1001 --chmod=750 tool.sh /usr/local/bin/tool
run echo "$GREETING in $(pwd) as $(id -u)" > greeting && echo "WHO=$WHO"
SHELL ["/bin/sh", "-e", "-c"]
RUN test "$0" = /bin/sh && ls txt > listing
RUN ["/bin/sh", "-c", "echo exec form > exec"]
USER 1000:1001
EXPOSE 8080 53/udp
LABEL org.example.a=1 "org.example.b"="two words"
VOLUME ["/data"]
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=5s --retries=2 CMD test -e /app/sub/greeting || exit 1
ENTRYPOINT ["/bin/echo"]
CMD ["default", "cmd"]
"#,
            ),
        ],
    );
    let base = BUSYBOX.to_string();
    let arg = format!("BASE={base}");
    let out = built(
        &root,
        &ctx,
        &[
            "-t",
            "every:1",
            "-t",
            "every:2",
            "--build-arg",
            &arg,
            "--build-arg",
            "WHO=berth",
        ],
    );
    assert!(
        out.contains("#1 [base 1/6] FROM 127.0.0.1:5500/busybox:latest"),
        "{out}"
    );
    assert!(
        out.contains("WHO=berth"),
        "the RUN's output is streamed: {out}"
    );
    assert!(out.contains("naming to every:2 done"), "{out}");
    assert_eq!(
        cat(&root, "every:1", "/app/sub/greeting"),
        "hello berth in /app/sub as 0\n"
    );
    assert_eq!(cat(&root, "every:1", "/app/sub/listing"), "a.txt\nb.txt\n");
    assert_eq!(cat(&root, "every:1", "/app/sub/exec"), "exec form\n");
    let st = run_in(
        &root,
        &[
            "every:1",
            "stat",
            "-c",
            "%u:%g %a",
            "/usr/local/bin/tool",
            "/app/sub/txt/a.txt",
        ],
    );
    assert_eq!(st, "1000:1001 750\n0:0 644\n");
    // ENTRYPOINT and CMD: what a plain run prints; the user is 1000.
    assert_eq!(ok(&root, &["run", "--rm", "every:2"]), "default cmd\n");
    assert_eq!(run_in(&root, &["every:1", "id", "-u"]), "1000\n");
    let c = config(&root, "every:1");
    assert_eq!(c["WorkingDir"], "/app/sub");
    assert_eq!(c["User"], "1000:1001");
    assert_eq!(c["Entrypoint"], serde_json::json!(["/bin/echo"]));
    assert_eq!(c["Cmd"], serde_json::json!(["default", "cmd"]));
    assert_eq!(c["Shell"], serde_json::json!(["/bin/sh", "-e", "-c"]));
    assert_eq!(c["StopSignal"], "SIGUSR1");
    assert_eq!(
        c["Healthcheck"],
        serde_json::json!({"Test": ["CMD-SHELL", "test -e /app/sub/greeting || exit 1"], "Interval": 5_000_000_000u64, "Retries": 2})
    );
    assert_eq!(c["Labels"]["org.example.b"], "two words");
    assert_eq!(c["Labels"]["org.example.a"], "1");
    assert!(
        c["ExposedPorts"].get("8080/tcp").is_some() && c["ExposedPorts"].get("53/udp").is_some()
    );
    assert!(c["Volumes"].get("/data").is_some());
    let env: Vec<String> = serde_json::from_value(c["Env"].clone()).unwrap();
    assert!(env.contains(&"GREETING=hello berth".to_string()), "{env:?}");
    assert!(env.contains(&"EMPTY=".to_string()), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("WHO=")),
        "an ARG is not in the image: {env:?}"
    );

    // -q prints the id only; --iidfile writes it; `image build` is the same command.
    let iid = root.path().join("iid");
    let iidfile = iid.display().to_string();
    let c = ctx.display().to_string();
    let o = berth(
        &root,
        &[
            "image",
            "build",
            "-q",
            "--iidfile",
            &iidfile,
            "--build-arg",
            &arg,
            "--build-arg",
            "WHO=berth",
            &c,
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let id = stdout(&o).trim().to_string();
    assert!(id.starts_with("sha256:"), "{id}");
    assert_eq!(std::fs::read_to_string(&iid).unwrap(), id);
    assert_eq!(stderr(&o), "", "quiet");
    let inspect: serde_json::Value =
        serde_json::from_str(&ok(&root, &["image", "inspect", "every:1"])).unwrap();
    assert_eq!(inspect[0]["Id"], id, "fully cached: the same image");
}

#[test]
fn multi_stage_copy_from_and_target() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX} AS build\nRUN mkdir /out && echo built > /out/tool && ln -s tool /out/link\n\
         FROM {BUSYBOX} AS unused\nRUN exit 9\n\
         FROM {BUSYBOX}\nCOPY --from=build /out/ /opt/\nCOPY --from=0 /out/tool /usr/bin/one\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    let out = built(&root, &ctx, &["-t", "multi"]);
    assert!(
        !out.contains("exit 9"),
        "the unused stage is not built: {out}"
    );
    assert_eq!(cat(&root, "multi", "/opt/tool"), "built\n");
    assert_eq!(cat(&root, "multi", "/usr/bin/one"), "built\n");
    assert_eq!(
        ok(&root, &["run", "--rm", "multi", "readlink", "/opt/link"]),
        "tool\n"
    );
    // --target: the build stage only.
    built(&root, &ctx, &["-t", "only", "--target", "build"]);
    assert_eq!(cat(&root, "only", "/out/tool"), "built\n");
    let o = build(&root, &ctx, &["--target", "unused"]);
    assert_eq!(code(&o), 1);
    assert!(stderr(&o).contains("exit code: 9"), "{}", stderr(&o));
    let o = build(&root, &ctx, &["--target", "nope"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("target stage \"nope\" could not be found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn cache_hits_and_misses() {
    let root = Root::new();
    let df = |extra: &str| {
        format!(
            "FROM {BUSYBOX}\nARG V=1\nCOPY a /a\nRUN echo $V > /v\nCOPY b /b\nRUN cat /b > /b2{extra}\nCMD [\"cat\", \"/b2\"]\n"
        )
    };
    let ctx = context(
        &root,
        "ctx",
        &[("a", "a1"), ("b", "b1"), ("Dockerfile", &df(""))],
    );
    let all = vec![
        "COPY a /a",
        "RUN echo $V > /v",
        "COPY b /b",
        "RUN cat /b > /b2",
    ];
    let first = built(&root, &ctx, &["-t", "c"]);
    assert!(cached(&first).is_empty(), "{first}");
    // The intermediate images are the cache: hidden unless -a, as in Docker.
    assert_eq!(ok(&root, &["images", "-q"]).lines().count(), 2);
    assert_eq!(ok(&root, &["images", "-aq"]).lines().count(), 6);
    let id = config_id(&root, "c");
    let again = built(&root, &ctx, &["-t", "c"]);
    assert_eq!(cached(&again), all, "{again}");
    assert_eq!(
        config_id(&root, "c"),
        id,
        "a fully cached build is the same image"
    );

    // An mtime alone changes nothing.
    let t = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(ctx.join("a"))
        .unwrap()
        .set_modified(t)
        .unwrap();
    assert_eq!(cached(&built(&root, &ctx, &["-t", "c"])), all);

    // A changed file: from its COPY on.
    std::fs::write(ctx.join("b"), "b2").unwrap();
    let out = built(&root, &ctx, &["-t", "c"]);
    assert_eq!(cached(&out), all[..2], "{out}");
    assert_eq!(ok(&root, &["run", "--rm", "c"]), "b2");

    // A changed ARG: from the RUN that sees it on.
    let out = built(&root, &ctx, &["-t", "c", "--build-arg", "V=2"]);
    assert_eq!(cached(&out), all[..1], "{out}");
    assert_eq!(cat(&root, "c", "/v"), "2\n");

    // A changed instruction: from it on.
    std::fs::write(ctx.join("Dockerfile"), df(" && true")).unwrap();
    let out = built(&root, &ctx, &["-t", "c"]);
    assert_eq!(cached(&out), all[..3], "{out}");

    // Modes count.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(ctx.join("a"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(cached(&built(&root, &ctx, &["-t", "c"])).is_empty());

    // --no-cache: nothing from the cache, the same files.
    let out = built(&root, &ctx, &["-t", "c", "--no-cache"]);
    assert!(cached(&out).is_empty(), "{out}");
    assert_eq!(ok(&root, &["run", "--rm", "c"]), "b2");
    assert!(
        root.container_ids().is_empty(),
        "no step's container is left"
    );

    // builder prune: the cache and its images go, the tagged image stays.
    let pruned = ok(&root, &["builder", "prune", "-f"]);
    assert!(pruned.contains("deleted: sha256:"), "{pruned}");
    // (--no-cache left the images it replaced in the cache dangling: shown,
    // for image prune.)
    assert_eq!(ok(&root, &["images", "-aq"]), ok(&root, &["images", "-q"]));
    assert_eq!(ok(&root, &["run", "--rm", "c"]), "b2");
    assert!(cached(&built(&root, &ctx, &["-t", "c"])).is_empty());
}

fn config_id(root: &Root, image: &str) -> String {
    let v: serde_json::Value =
        serde_json::from_str(&ok(root, &["image", "inspect", image])).unwrap();
    v[0]["Id"].as_str().unwrap().to_string()
}

/// The chain id of each layer of `image`, bottom first.
fn chain_ids(root: &Root, image: &str) -> Vec<String> {
    use sha2::Digest;
    let v: serde_json::Value =
        serde_json::from_str(&ok(root, &["image", "inspect", image])).unwrap();
    let mut out: Vec<String> = Vec::new();
    for d in v[0]["RootFS"]["Layers"].as_array().unwrap() {
        let d = d.as_str().unwrap();
        let next = match out.last() {
            None => d.to_string(),
            Some(p) => format!("sha256:{:x}", sha2::Sha256::digest(format!("{p} {d}"))),
        };
        out.push(next);
    }
    out
}

/// A step's upper dir becomes its layer's snapshot rather than being
/// unpacked again: what later steps see must be exactly what unpacking the
/// layers gives (whiteouts, opaque dirs, copied-up files, links, modes),
/// and the skipped engine-made entries must not show.
#[test]
fn steps_see_the_same_tree_from_taken_or_unpacked_snapshots() {
    let df = format!(
        r#"FROM {BUSYBOX}
RUN mkdir -p /t/keep /t/gone /t/opq && echo a > /t/keep/a && echo b > /t/gone/b && echo c > /t/opq/c && ln -s keep/a /t/link && echo h > /t/h1 && ln /t/h1 /t/h2 && mkfifo /t/fifo && rm /bin/tr
RUN rm -rf /t/gone /t/opq && mkdir /t/opq && echo d > /t/opq/d && chmod 0700 /t/keep && echo more >> /t/keep/a && rm /etc/group && chown 7:8 /t/h1
COPY f /t/copied
RUN find / -xdev -path /proc -prune -o -path /sys -prune -o -path /dev -prune -o -print | grep -v -e '^/etc/host' -e '^/etc/resolv.conf' -e '^/listing' | sort | while read p; do stat -c '%n %F %a %u %g %s %h' "$p"; if [ -f "$p" ]; then md5sum "$p"; fi; done > /listing
"#
    );
    let listing = |epoch: Option<&str>| {
        let root = Root::new();
        let ctx = context(&root, "ctx", &[("f", "F"), ("Dockerfile", &df)]);
        let mut args = vec!["-t", "tree"];
        if let Some(e) = epoch {
            args.extend(["--build-arg", e]);
        }
        built(&root, &ctx, &args);
        let chains = chain_ids(&root, "tree");
        let top = root
            .path()
            .join("snapshots")
            .join(chains.last().unwrap().trim_start_matches("sha256:"));
        // (Before anything runs the image, which unpacks what is missing.)
        let had = top.is_dir();
        (cat(&root, "tree", "/listing"), had)
    };
    // Without SOURCE_DATE_EPOCH every step's upper dir is taken (so even
    // the last layer, which no step ran on, has a snapshot); with it none
    // is (their mtimes are not the layers'), and each is unpacked.
    let (taken, last_taken) = listing(None);
    let (unpacked, last_unpacked) = listing(Some("SOURCE_DATE_EPOCH=1700000000"));
    assert!(last_taken && !last_unpacked);
    assert!(taken.contains("/t/opq/d "), "{taken}");
    assert!(!taken.contains("/t/gone"), "{taken}");
    assert!(!taken.contains("/bin/tr "), "{taken}");
    assert!(!taken.contains("/etc/group "), "{taken}");
    // (A copy-up breaks a hardlink: overlayfs without its index.)
    assert!(taken.contains("/t/h1 regular file 644 7 8 2 1"), "{taken}");
    assert!(taken.contains("/t/keep directory 700"), "{taken}");
    assert_eq!(taken, unpacked);
}

/// With berth's root on overlayfs (berth in a container), a step's upper
/// dir is on another filesystem (berth's scratch dir): it cannot be taken
/// as the snapshot, and the layer is unpacked for the next step instead.
#[test]
fn steps_on_an_overlayfs_root_unpack_their_layers() {
    // Rootless there, the rootfs is a copy (no overlay to mount): no
    // upper dir to commit at all.
    if common::rootless() {
        return;
    }
    let root = Root::on_overlayfs();
    let df = format!(
        "FROM {BUSYBOX}\nRUN mkdir /t && echo a > /t/a && rm /bin/tr\nCOPY f /t/f\nRUN cat /t/a /t/f > /t/both && ! test -e /bin/tr\n"
    );
    let ctx = context(&root, "ctx", &[("f", "F\n"), ("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "ovl"]);
    let top = chain_ids(&root, "ovl").pop().unwrap();
    let top = root
        .path()
        .join("snapshots")
        .join(top.trim_start_matches("sha256:"));
    assert!(!top.exists(), "the last step's upper dir was not taken");
    assert_eq!(cat(&root, "ovl", "/t/both"), "a\nF\n");
    assert!(root.container_ids().is_empty());
}

/// The stat cache never hides a change: a file rewritten with the same
/// size, its mtime put back, is read again (its ctime moved).
#[test]
fn a_rewrite_that_keeps_size_and_mtime_is_seen() {
    let root = Root::new();
    let df = format!("FROM {BUSYBOX}\nCOPY f /f\n");
    let ctx = context(&root, "ctx", &[("f", "one"), ("Dockerfile", &df)]);
    let f = ctx.join("f");
    let old = std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(old)
        .unwrap();
    // Settled, so the stat cache remembers its digest.
    std::thread::sleep(std::time::Duration::from_millis(2500));
    built(&root, &ctx, &["-t", "s"]);
    assert_eq!(cached(&built(&root, &ctx, &["-t", "s"])), vec!["COPY f /f"]);
    // Copied again (settled: known by its stat, not hashed again).
    built(&root, &ctx, &["-t", "s", "--no-cache"]);
    assert_eq!(cat(&root, "s", "/f"), "one");
    std::fs::write(&f, "two").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(old)
        .unwrap();
    let out = built(&root, &ctx, &["-t", "s"]);
    assert!(cached(&out).is_empty(), "{out}");
    assert_eq!(cat(&root, "s", "/f"), "two");
}

/// The directories a COPY lands in are made as BuildKit makes them: an
/// empty source directory still makes its destination, every directory
/// made is 0755 and `--chown`'s, and one already there keeps its own.
#[test]
fn copy_makes_missing_destinations_as_buildkit_does() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nCOPY empty /e1\nCOPY --chown=5:6 empty /e2\nCOPY --chown=5:6 full /p/q/r/\nCOPY --chown=7:8 full/x /s/t/x\nRUN mkdir -m 0711 /ex\nCOPY --chown=9:9 full /ex\n"
    );
    // (Made first: context() gives the whole dir to a rootless builder.)
    let empty = root.path().join("ctx/empty");
    std::fs::create_dir_all(&empty).unwrap();
    std::fs::set_permissions(&empty, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    let ctx = context(&root, "ctx", &[("full/x", "x"), ("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "dests"]);
    let paths = [
        "/e1", "/e2", "/p", "/p/q", "/p/q/r", "/p/q/r/x", "/s", "/s/t", "/s/t/x", "/ex", "/ex/x",
    ];
    let mut args = vec!["dests", "stat", "-c", "%n %a %u:%g"];
    args.extend(paths);
    assert_eq!(
        run_in(&root, &args),
        "/e1 755 0:0\n/e2 755 5:6\n/p 755 5:6\n/p/q 755 5:6\n/p/q/r 755 5:6\n/p/q/r/x 644 5:6\n\
         /s 755 7:8\n/s/t 755 7:8\n/s/t/x 644 7:8\n/ex 711 0:0\n/ex/x 644 9:9\n"
    );
}

#[test]
fn dockerignore() {
    let root = Root::new();
    let df = format!("FROM {BUSYBOX}\nCOPY . /ctx/\nRUN cd /ctx && find . | sort > /list\n");
    let ctx = context(
        &root,
        "ctx",
        &[
            ("Dockerfile", &df),
            (
                ".dockerignore",
                "# comment\n*.log\n!keep.log\n/secret/\n**/*.tmp\n",
            ),
            ("a.log", "x"),
            ("keep.log", "x"),
            ("secret/key", "x"),
            ("src/main.c", "x"),
            ("src/deep/x.tmp", "x"),
            ("src/y.tmp", "x"),
        ],
    );
    built(&root, &ctx, &["-t", "ign"]);
    assert_eq!(
        cat(&root, "ign", "/list"),
        ".\n./.dockerignore\n./Dockerfile\n./keep.log\n./src\n./src/deep\n./src/main.c\n"
    );
    let o = build(
        &root,
        &ctx,
        &[
            "-f",
            &write(
                &ctx,
                "Dockerfile.2",
                &format!("FROM {BUSYBOX}\nCOPY secret/key /k\n"),
            ),
        ],
    );
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("excluded by .dockerignore"),
        "{}",
        stderr(&o)
    );
    // A Dockerfile's own `<name>.dockerignore` beside it is taken over
    // the context's, as BuildKit takes it.
    let f = write(
        &ctx,
        "own.Dockerfile",
        &format!("FROM {BUSYBOX}\nCOPY . /ctx/\nRUN cd /ctx && ls > /list\n"),
    );
    write(
        &ctx,
        "own.Dockerfile.dockerignore",
        "src\n*.Dockerfile*\nDockerfile*\n.*\n",
    );
    built(&root, &ctx, &["-f", &f, "-t", "own"]);
    assert_eq!(cat(&root, "own", "/list"), "a.log\nkeep.log\nsecret\n");
}

/// `COPY --exclude` (BuildKit's, now stable): `.dockerignore`'s rules on
/// the paths below each source (a file source by its name), from the
/// context and from another stage; the patterns are in the key.
#[test]
fn copy_exclude() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX} AS other\nRUN mkdir -p /o/sub && touch /o/a.md /o/b.txt /o/sub/c.md /o/sub/keep.md\n\
         FROM {BUSYBOX}\nCOPY --exclude=*.md --exclude=sub/**/*.log src /c/\nCOPY --exclude=*.md hom* /h/\n\
         COPY --from=other --exclude=**/*.md --exclude=!sub/keep.md /o /f/\n\
         RUN cd / && find c h f | sort > /list\n"
    );
    let ctx = context(
        &root,
        "ctx",
        &[
            ("Dockerfile", &df),
            ("src/top.md", "x"),
            ("src/top.txt", "x"),
            ("src/sub/deep.md", "x"),
            ("src/sub/x/y.log", "x"),
            ("src/sub/x/y.txt", "x"),
            ("home.md", "x"),
            ("home.txt", "x"),
        ],
    );
    built(&root, &ctx, &["-t", "excl"]);
    assert_eq!(
        cat(&root, "excl", "/list"),
        "c\nc/sub\nc/sub/deep.md\nc/sub/x\nc/sub/x/y.txt\nc/top.txt\n\
         f\nf/b.txt\nf/sub\nf/sub/keep.md\nh\nh/home.txt\n"
    );
    // Another pattern is another key.
    write(
        &ctx,
        "Dockerfile",
        &df.replace("--exclude=*.md hom*", "--exclude=*.txt hom*"),
    );
    let out = built(&root, &ctx, &["-t", "excl"]);
    assert!(!cached(&out).iter().any(|s| s.contains("hom*")), "{out}");
    assert!(cat(&root, "excl", "/list").contains("h/home.md"));
}

/// `berth build -`: a tar (here gzip) on stdin is the context, anything
/// else the Dockerfile with an empty context; a hostile tar writes nothing
/// outside its own directory, and nothing of either is left after.
#[test]
fn context_from_stdin() {
    let root = Root::new();
    let ctx = context(
        &root,
        "ctx",
        &[
            ("f", "from the tar\n"),
            ("Dockerfile", &format!("FROM {BUSYBOX}\nCOPY f /f\n")),
        ],
    );
    let tar = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("cd {} && tar c . | gzip", ctx.display()))
        .output()
        .unwrap()
        .stdout;
    let o = root.with_stdin(&["build", "-t", "tarctx", "-"], &tar);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(cat(&root, "tarctx", "/f"), "from the tar\n");
    let df = format!("FROM {BUSYBOX}\nRUN echo plain > /p\n");
    let o = root.with_stdin(&["build", "-t", "plain", "-"], df.as_bytes());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(cat(&root, "plain", "/p"), "plain\n");
    // Nothing to COPY from an empty context.
    let df = format!("FROM {BUSYBOX}\nCOPY f /f\n");
    let o = root.with_stdin(&["build", "-"], df.as_bytes());
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    let o = root.with_stdin(&["build", "-f", "-", "-"], df.as_bytes());
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("can't use stdin for both"),
        "{}",
        stderr(&o)
    );
    let hostile = raw_tar(&[
        (
            "Dockerfile",
            tar::EntryType::Regular,
            0o644,
            &format!("FROM {BUSYBOX}\n"),
        ),
        ("../../escaped", tar::EntryType::Regular, 0o644, "x"),
    ]);
    let o = root.with_stdin(&["build", "-"], &hostile);
    assert!(!root.path().join("escaped").exists(), "{}", stderr(&o));
    let tmp = root.path().join("build-tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn nothing_outside_the_context_is_read() {
    let root = Root::new();
    let outside = context(
        &root,
        "outside",
        &[("secret", "OUTSIDE SECRET"), ("dir/f", "OUTSIDE DIR")],
    );
    let ctx = context(&root, "ctx", &[("in", "inside"), ("d/f", "in d")]);
    std::os::unix::fs::symlink(outside.join("secret"), ctx.join("abs")).unwrap();
    std::os::unix::fs::symlink("../outside/secret", ctx.join("rel")).unwrap();
    std::os::unix::fs::symlink(outside.join("dir"), ctx.join("dirlink")).unwrap();
    std::os::unix::fs::symlink("in", ctx.join("inlink")).unwrap();
    std::os::unix::fs::symlink(outside.join("secret"), ctx.join("d/out")).unwrap();
    let df = format!(
        "FROM {BUSYBOX}\nCOPY inlink d /c/\nRUN cat /c/* > /all 2>&1; readlink /c/out > /links\n"
    );
    std::fs::write(ctx.join("Dockerfile"), df).unwrap();
    built(&root, &ctx, &["-t", "links"]);
    // A source named by a symlink is followed, in the context (as buildah
    // and BuildKit do); one below a copied dir is copied as the link it is.
    assert_eq!(cat(&root, "links", "/c/inlink"), "inside");
    assert_eq!(
        cat(&root, "links", "/links"),
        format!("{}\n", outside.join("secret").display())
    );
    assert!(!cat(&root, "links", "/all").contains("OUTSIDE"));
    // Links out, a path through a symlinked dir, ../: resolved in the
    // context (not found) or refused.
    for (name, df) in [
        ("Dockerfile.abs", format!("FROM {BUSYBOX}\nCOPY abs /s\n")),
        ("Dockerfile.rel", format!("FROM {BUSYBOX}\nCOPY rel /s\n")),
        (
            "Dockerfile.dir",
            format!("FROM {BUSYBOX}\nCOPY dirlink/f /f\n"),
        ),
        (
            "Dockerfile.up",
            format!("FROM {BUSYBOX}\nCOPY ../outside/secret /s\n"),
        ),
        (
            "Dockerfile.glob",
            format!("FROM {BUSYBOX}\nCOPY ../*/secret /s\n"),
        ),
    ] {
        let f = write(&ctx, name, &df);
        let o = build(&root, &ctx, &["-t", "bad", "-f", &f]);
        assert_eq!(code(&o), 1, "{name}: {}", stderr(&o));
        assert!(!stdout(&o).contains("OUTSIDE") && !stderr(&o).contains("OUTSIDE"));
    }
    let o = build(
        &root,
        &ctx,
        &["-f", &ctx.join("Dockerfile.up").display().to_string()],
    );
    assert!(
        stderr(&o).contains(
            "Dockerfile.up:2: forbidden path outside the build context: ../outside/secret"
        ),
        "{}",
        stderr(&o)
    );
    assert_eq!(
        code(&berth(&root, &["image", "inspect", "bad"])),
        1,
        "no image"
    );
}

#[test]
fn failing_run_leaves_no_image() {
    let root = Root::new();
    let df = format!("FROM {BUSYBOX}\nRUN echo before\nRUN echo failing; exit 3\nRUN echo never\n");
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    let before = ok(&root, &["images", "-aq"]);
    let o = build(&root, &ctx, &["-t", "fails"]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    assert!(err.contains("failing"), "{err}");
    assert!(!err.contains("never"), "{err}");
    assert!(
        err.contains("process \"/bin/sh -c echo failing; exit 3\" did not complete successfully: exit code: 3"),
        "{err}"
    );
    assert_eq!(code(&berth(&root, &["image", "inspect", "fails"])), 1);
    assert!(
        root.container_ids().is_empty(),
        "the failed step's container is removed"
    );
    // Only the cached first step's image is new.
    let after = ok(&root, &["images", "-aq"]);
    assert_eq!(
        after.lines().count(),
        before.lines().count() + 2,
        "{before}\n{after}"
    );
}

#[test]
fn parse_errors_name_the_line() {
    let root = Root::new();
    let df = format!("FROM {BUSYBOX}\n\n# fine\nRUN true \\\n  && true\n\nRUNN x\n");
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    let o = build(&root, &ctx, &[]);
    assert_eq!(code(&o), 1);
    assert_eq!(
        stderr(&o),
        "berth: Dockerfile:7: unknown instruction: RUNN\n"
    );
    let o = berth(&root, &["build", "/nonexistent-context"]);
    assert_eq!(code(&o), 1);
}

#[test]
fn copy_onto_scratch() {
    let root = Root::new();
    let df = format!(
        "FROM scratch AS files\nCOPY hello /etc/hello\nCMD [\"x\"]\nFROM {BUSYBOX}\nCOPY --from=files /etc/hello /hello\n"
    );
    let ctx = context(
        &root,
        "ctx",
        &[("hello", "from scratch"), ("Dockerfile", &df)],
    );
    built(&root, &ctx, &["-t", "scratchy", "--target", "files"]);
    built(&root, &ctx, &["-t", "usescratch"]);
    assert_eq!(cat(&root, "usescratch", "/hello"), "from scratch");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&root, &["image", "inspect", "scratchy"])).unwrap();
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1, "{v}");
    assert_eq!(v[0]["Config"]["Cmd"], serde_json::json!(["x"]));
}

#[test]
fn copy_destinations_and_arg_env_precedence() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nARG X=arg\nENV X=env\nCOPY f /tmp\nCOPY f /new/file\nCOPY f g /multi/\n\
         WORKDIR /w\nCOPY g .\nRUN echo $X > /x && stat -c %a /tmp > /tmpmode\n"
    );
    let ctx = context(&root, "ctx", &[("f", "F"), ("g", "G"), ("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "dests"]);
    assert_eq!(cat(&root, "dests", "/tmp/f"), "F", "into the existing dir");
    assert_eq!(
        cat(&root, "dests", "/tmpmode"),
        "1777\n",
        "which keeps its mode"
    );
    assert_eq!(cat(&root, "dests", "/new/file"), "F");
    assert_eq!(cat(&root, "dests", "/multi/f"), "F");
    assert_eq!(cat(&root, "dests", "/multi/g"), "G");
    assert_eq!(cat(&root, "dests", "/w/g"), "G");
    assert_eq!(cat(&root, "dests", "/x"), "env\n", "ENV over ARG");
    let f = write(
        &ctx,
        "Dockerfile.two",
        &format!("FROM {BUSYBOX}\nCOPY f g /file\n"),
    );
    let o = build(&root, &ctx, &["-f", &f]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("Dockerfile.two:2: When using COPY with more than one source file"),
        "{}",
        stderr(&o)
    );
}

/// The same Dockerfile built by Podman (buildah's builder as a library):
/// images whose configs and file trees (both unpacked by umoci) match berth's.
#[test]
fn same_image_as_podman_build() {
    same_image_as_peer(
        "podman",
        &["--cgroup-manager=cgroupfs", "--events-backend=none"],
        "build",
    );
}

/// Issue 17's own comparison: Debian's `buildah bud`, with its own vfs
/// storage and chroot isolation, base pulled from the fixture registry.
#[test]
fn same_image_as_buildah_bud() {
    same_image_as_peer("buildah", &["--storage-driver=vfs"], "bud");
}

/// Builds one Dockerfile (multi-stage COPY --from, ARG/ENV, WORKDIR, USER,
/// EXPOSE, LABEL, ENTRYPOINT/CMD, RUN creating and removing files) with
/// berth and with `peer` (podman or buildah), and compares the configs and
/// the umoci-unpacked trees. Known differences: the empty mount points
/// buildah leaves from RUN, and its io.buildah.version label.
fn same_image_as_peer(peer: &str, global: &[&str], build_cmd: &str) {
    if std::process::Command::new(peer)
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("{peer} not installed: skipped");
        return;
    }
    let root = Root::new();
    let df = format!(
        "ARG BASE={BUSYBOX}\nFROM $BASE AS build\nRUN mkdir -p /out && echo built > /out/bin && chmod 755 /out/bin\n\
         FROM $BASE\nARG WHO=someone\nENV A=1 B=\"two words\" WHO=$WHO\nWORKDIR /app\n\
         COPY src/ ./src/\nCOPY --chown=1000:1000 top.txt /etc/top.txt\nCOPY --from=build /out/bin /usr/local/bin/tool\nCOPY link /etc/linked\n\
         RUN echo \"$A $WHO\" > made && mkdir -p /var/x && ln -s /app/made /var/x/link && rm /etc/motd 2>/dev/null; true\n\
         USER 1000:1000\nEXPOSE 8080 53/udp\nLABEL a=1 b=\"x y\"\nSTOPSIGNAL SIGTERM\n\
         ENTRYPOINT [\"/bin/sh\", \"-c\"]\nCMD [\"cat /app/made\"]\n"
    );
    let ctx = context(
        &root,
        "ctx",
        &[
            ("Dockerfile", &df),
            ("src/a", "a\n"),
            ("src/sub/b", "b\n"),
            ("top.txt", "top\n"),
        ],
    );
    std::os::unix::fs::symlink("top.txt", ctx.join("link")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One repository per peer: the two tests run at once, and a tag the
    // other pushed meanwhile would not be this build's image.
    let repo = format!("{}/built-{peer}-{}", common::PLAIN, std::process::id());
    let target = format!("{repo}:v1");
    built(&root, &ctx, &["-t", &target, "--build-arg", "WHO=cmp"]);
    ok(&root, &["push", "-q", &target]);
    let berth_layout = dir.path().join("berth");
    let st = std::process::Command::new("skopeo")
        .args(["copy", "-q", "--src-tls-verify=false"])
        .arg(format!("docker://{target}"))
        .arg(format!("oci:{}:v1", berth_layout.display()))
        .status()
        .unwrap();
    assert!(st.success(), "skopeo copy");

    let pm = dir.path().join(peer);
    std::fs::create_dir_all(&pm).unwrap();
    let conf = pm.join("storage.conf");
    std::fs::write(
        &conf,
        format!(
            "[storage]\ndriver = \"vfs\"\nrunroot = \"{0}/run\"\ngraphroot = \"{0}/root\"\n",
            pm.display()
        ),
    )
    .unwrap();
    let podman = |args: &[&str]| {
        let o = std::process::Command::new(peer)
            .env("CONTAINERS_STORAGE_CONF", &conf)
            .args(global)
            .args(args)
            .output()
            .unwrap();
        assert!(o.status.success(), "{peer} {args:?}: {}", stderr(&o));
    };
    let c = ctx.display().to_string();
    podman(&[
        build_cmd,
        "-q",
        "--tls-verify=false",
        "--isolation=chroot",
        "--build-arg",
        "WHO=cmp",
        "-t",
        "cmp",
        &c,
    ]);
    let podman_layout = dir.path().join("podman-layout");
    podman(&[
        "push",
        "-q",
        "cmp",
        &format!("oci:{}:v1", podman_layout.display()),
    ]);

    let (b_cfg, b_tree) = unpacked(&berth_layout, &dir.path().join("b"));
    let (p_cfg, p_tree) = unpacked(&podman_layout, &dir.path().join("p"));
    for k in [
        "Entrypoint",
        "Cmd",
        "Env",
        "WorkingDir",
        "User",
        "ExposedPorts",
        "StopSignal",
    ] {
        assert_eq!(b_cfg[k], p_cfg[k], "{k}");
    }
    let mut p_labels = p_cfg["Labels"].clone();
    p_labels
        .as_object_mut()
        .unwrap()
        .remove("io.buildah.version");
    assert_eq!(b_cfg["Labels"], p_labels);
    // Buildah leaves its RUN mount points in the image, empty: not ours.
    let mut p_tree = p_tree;
    for k in [
        "/dev",
        "/proc",
        "/sys",
        "/run",
        "/etc/hostname",
        "/etc/hosts",
        "/etc/resolv.conf",
    ] {
        if !b_tree.contains_key(k)
            && let Some(v) = p_tree.remove(k)
        {
            assert!(v.starts_with("dir") || v.starts_with("file 0 "), "{k}: {v}");
        }
    }
    let keys =
        |m: &std::collections::BTreeMap<String, String>| m.keys().cloned().collect::<Vec<_>>();
    assert_eq!(keys(&b_tree), keys(&p_tree));
    for (k, v) in &b_tree {
        assert_eq!(v, &p_tree[k], "{k}");
    }
}

/// umoci's unpack of `layout:v1`: the image's `config` and its tree,
/// path → kind, mode, owner, bytes' hash, link target (no mtimes).
fn unpacked(
    layout: &Path,
    bundle: &Path,
) -> (
    serde_json::Value,
    std::collections::BTreeMap<String, String>,
) {
    let o = std::process::Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:v1", layout.display()))
        .arg(bundle)
        .output()
        .unwrap();
    assert!(o.status.success(), "umoci: {}", stderr(&o));
    let index: serde_json::Value =
        serde_json::from_slice(&std::fs::read(layout.join("index.json")).unwrap()).unwrap();
    let blob = |d: &str| {
        layout
            .join("blobs/sha256")
            .join(d.trim_start_matches("sha256:"))
    };
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(index["manifests"][0]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let config: serde_json::Value = serde_json::from_slice(
        &std::fs::read(blob(manifest["config"]["digest"].as_str().unwrap())).unwrap(),
    )
    .unwrap();
    let mut tree = std::collections::BTreeMap::new();
    walk(&bundle.join("rootfs"), "", &mut tree);
    (config["config"].clone(), tree)
}

fn walk(dir: &Path, rel: &str, out: &mut std::collections::BTreeMap<String, String>) {
    use std::os::unix::fs::MetadataExt;
    for e in std::fs::read_dir(dir).unwrap() {
        let e = e.unwrap();
        let name = format!("{rel}/{}", e.file_name().to_string_lossy());
        let m = std::fs::symlink_metadata(e.path()).unwrap();
        let what = if m.file_type().is_symlink() {
            format!("link {}", std::fs::read_link(e.path()).unwrap().display())
        } else if m.is_file() {
            let data = std::fs::read(e.path()).unwrap();
            let h = data
                .iter()
                .fold(0u64, |a, b| a.wrapping_mul(31).wrapping_add(*b as u64));
            format!("file {} {h:x}", data.len())
        } else if m.is_dir() {
            "dir".to_string()
        } else {
            "other".to_string()
        };
        out.insert(
            name.clone(),
            format!("{what} {:o} {}:{}", m.mode() & 0o7777, m.uid(), m.gid()),
        );
        if m.is_dir() {
            walk(&e.path(), &name, out);
        }
    }
}

#[test]
fn killed_midway_then_rebuilt() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nRUN echo one > /one\nRUN --mount=type=secret,id=s sleep 30 && echo two > /two\nCMD [\"cat\", \"/one\"]\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df), ("s.txt", "secret")]);
    let secret = format!("id=s,src={}", ctx.join("s.txt").display());
    let mut child = root
        .berth()
        .args(["build", "-t", "killed", "--secret", &secret])
        .arg(&ctx)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Until the sleeping step has started.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while std::io::BufRead::read_line(&mut err, &mut line).unwrap() > 0
        && !line.contains("RUN sleep")
    {
        line.clear();
    }
    std::thread::sleep(std::time::Duration::from_millis(500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert_eq!(
        code(&berth(&root, &["image", "inspect", "killed"])),
        1,
        "no image"
    );
    // The killed step's secret copy is still on disk…
    let tmp = |root: &Root| -> Vec<std::ffi::OsString> {
        std::fs::read_dir(root.path().join("build-tmp"))
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default()
    };
    assert!(!tmp(&root).is_empty());
    // …until the rebuild sweeps it with the killed step's container, and
    // reuses the first step.
    std::fs::write(ctx.join("Dockerfile"), df.replace("sleep 30", "sleep 0")).unwrap();
    let out = built(&root, &ctx, &["-t", "killed", "--secret", &secret]);
    assert_eq!(cached(&out), vec!["RUN echo one > /one"], "{out}");
    assert_eq!(tmp(&root), Vec::<std::ffi::OsString>::new());
    assert!(
        root.container_ids().is_empty(),
        "{:?}",
        root.container_ids()
    );
    assert_eq!(ok(&root, &["run", "--rm", "killed"]), "one\n");
}

#[test]
fn copy_chown_by_name() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nARG WHO=daemon\nCOPY --chown=app:staff f /a\nCOPY --chown=nobody f /b\nCOPY --chown=$WHO f /c\n\
         RUN stat -c '%u:%g' /a /b /c > /owners\n"
    );
    let ctx = context(&root, "ctx", &[("f", "F"), ("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "owned"]);
    assert_eq!(
        cat(&root, "owned", "/owners"),
        "1000:50\n65534:65534\n1:1\n"
    );
    let f = write(
        &ctx,
        "Dockerfile.bad",
        &format!("FROM {BUSYBOX}\nCOPY --chown=nosuch f /a\n"),
    );
    let o = build(&root, &ctx, &["-f", &f]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("unable to find nosuch in the image's /etc/passwd"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn onbuild_triggers_run_in_the_child() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nONBUILD COPY f /from-trigger\nONBUILD RUN echo trig > /t\nCMD [\"true\"]\n"
    );
    let ctx = context(&root, "base", &[("f", "base context"), ("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "withtriggers"]);
    let c = config(&root, "withtriggers");
    assert_eq!(
        c["OnBuild"],
        serde_json::json!(["COPY f /from-trigger", "RUN echo trig > /t"])
    );
    // Not run in the build that declares them.
    let o = root.run(&["--rm", "withtriggers", "ls", "/t"]);
    assert_ne!(code(&o), 0);
    let child = context(
        &root,
        "child",
        &[
            ("f", "child context"),
            ("Dockerfile", "FROM withtriggers\nRUN cat /t\n"),
        ],
    );
    let out = built(&root, &child, &["-t", "child"]);
    assert!(out.contains("[onbuild 2/2] RUN echo trig > /t"), "{out}");
    assert_eq!(cat(&root, "child", "/from-trigger"), "child context");
    assert_eq!(cat(&root, "child", "/t"), "trig\n");
    assert!(
        config(&root, "child")
            .get("OnBuild")
            .is_none_or(|v| v.is_null()),
        "not inherited"
    );
    // Cached the second time, triggers included.
    let out = built(&root, &child, &["-t", "child"]);
    assert_eq!(cached(&out).len(), 3, "{out}");
}

#[test]
fn stdin_dockerfile_proxy_args_and_source_date_epoch() {
    let root = Root::new();
    let ctx = context(&root, "ctx", &[("f", "F")]);
    let df = format!("FROM {BUSYBOX}\nCOPY f /f\nRUN echo \"proxy=$http_proxy\" > /p\n");
    let mut c = root
        .berth()
        .args([
            "build",
            "-f",
            "-",
            "-t",
            "fromstdin",
            "--build-arg",
            "http_proxy=http://127.0.0.1:9",
        ])
        .args(["--build-arg", "UNUSED=1"])
        .arg(&ctx)
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut c.stdin.take().unwrap(), df.as_bytes()).unwrap();
    let o = c.wait_with_output().unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains("[Warning] One or more build-args [UNUSED] were not consumed"),
        "{}",
        stderr(&o)
    );
    // A predefined proxy ARG reaches the RUN, not the image.
    assert_eq!(cat(&root, "fromstdin", "/p"), "proxy=http://127.0.0.1:9\n");
    let v: serde_json::Value =
        serde_json::from_str(&ok(&root, &["image", "inspect", "fromstdin"])).unwrap();
    assert!(!v[0]["Config"]["Env"].to_string().contains("proxy"));
    let created = v[0]["Created"].as_str().unwrap();
    assert!(created.starts_with("2023-11-14T22:13:20"), "{created}");
    let h = ok(&root, &["history", "--no-trunc", "fromstdin"]);
    assert!(!h.contains("127.0.0.1:9"), "{h}");
}

#[test]
fn labels_pull_and_platform() {
    let root = Root::new();
    let arch = if cfg!(target_arch = "x86_64") {
        "amd64"
    } else {
        "arm64"
    };
    let df = format!("FROM --platform=linux/{arch} {BUSYBOX}\nLABEL from=file\n");
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    let out = built(
        &root,
        &ctx,
        &[
            "-t",
            "labelled",
            "--pull",
            "--label",
            "a=b",
            "--label",
            "from=flag",
            "--label",
            "c",
        ],
    );
    assert!(out.contains("FROM 127.0.0.1:5500/busybox:latest"), "{out}");
    let c = config(&root, "labelled");
    assert_eq!(c["Labels"]["a"], "b");
    assert_eq!(c["Labels"]["c"], "");
    assert_eq!(
        c["Labels"]["from"], "flag",
        "--label over LABEL, as in Docker"
    );
    let v: serde_json::Value =
        serde_json::from_str(&ok(&root, &["image", "inspect", "labelled"])).unwrap();
    assert_eq!(v[0]["Architecture"], arch);
}

#[test]
fn workdir_is_made() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nWORKDIR /tmp\nWORKDIR /srv/app\nUSER 1000\nCMD [\"pwd\"]\n\
         FROM scratch AS s\nWORKDIR /w\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "wd", "--target", "0"]);
    let o = ok(
        &root,
        &[
            "run",
            "--rm",
            "--user",
            "0",
            "--entrypoint",
            "",
            "wd",
            "stat",
            "-c",
            "%a %u",
            "/srv/app",
            "/tmp",
        ],
    );
    assert_eq!(
        o, "755 0\n1777 0\n",
        "made root's 0755; an existing one untouched"
    );
    let again = built(&root, &ctx, &["-t", "wd", "--target", "0"]);
    assert!(
        !again.contains("DONE") || again.matches("DONE").count() == 1,
        "{again}"
    );
    built(&root, &ctx, &["-t", "wds", "--target", "s"]);
    let v: serde_json::Value =
        serde_json::from_str(&ok(&root, &["image", "inspect", "wds"])).unwrap();
    assert_eq!(v[0]["RootFS"]["Layers"].as_array().unwrap().len(), 1);
}

#[test]
fn add_local_files_and_copy_from_an_image() {
    let root = Root::new();
    let df = format!(
        "FROM scratch\nCOPY --from={BUSYBOX} /bin/busybox /bin/sh\nADD [\"a file\", \"/dst/\"]\nCOPY [\"a file\", \"/x y\"]\n"
    );
    let ctx = context(&root, "ctx", &[("a file", "spaced"), ("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "fromimage"]);
    let o = run_in(
        &root,
        &["fromimage", "/bin/sh", "-c", "cat '/dst/a file' '/x y'"],
    );
    assert_eq!(o, "spacedspaced");
    for (name, df, want) in [
        (
            "Dockerfile.url",
            "FROM scratch\nADD ftp://127.0.0.1:9/x /x\n",
            "ADD of a remote URL (ftp://127.0.0.1:9/x) is not supported",
        ),
        (
            "Dockerfile.tar",
            "FROM scratch\nADD a.tar.gz /x/\n",
            "file not found in build context",
        ),
    ] {
        let f = write(&ctx, name, df);
        let o = build(&root, &ctx, &["-f", &f]);
        assert_eq!(code(&o), 1);
        assert!(stderr(&o).contains(want), "{}", stderr(&o));
    }
}

#[test]
fn heredocs() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nARG WHO=berth\nRUN <<EOF\nset -e\necho one > /one\n# a comment in the script\necho \"$WHO\" >> /one\nEOF\n\
         RUN cat <<-\"END\" > /two\n\tliteral $WHO\n\tEND\n\
         COPY <<EOF /etc/conf\nwho=$WHO\nEOF\n\
         COPY --chmod=755 <<EOF /usr/local/bin/\n#!/bin/sh\necho hi\nEOF\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "here"]);
    assert_eq!(cat(&root, "here", "/one"), "one\nberth\n");
    assert_eq!(cat(&root, "here", "/two"), "literal $WHO\n");
    assert_eq!(cat(&root, "here", "/etc/conf"), "who=berth\n");
    assert_eq!(run_in(&root, &["here", "/usr/local/bin/EOF"]), "hi\n");
    let out = built(&root, &ctx, &["-t", "here", "--build-arg", "WHO=other"]);
    assert_eq!(cached(&out), Vec::<String>::new(), "{out}");
    assert_eq!(cat(&root, "here", "/etc/conf"), "who=other\n");
}

/// A `.dockerignore` that is a symlink to a file outside the context is
/// resolved inside the context (where nothing is), never read from the
/// host: here the host file would have excluded the file the build copies.
#[test]
fn a_dockerignore_symlink_is_not_followed_out_of_the_context() {
    let root = Root::new();
    let outside = root.path().join("outside-ignore");
    std::fs::write(&outside, "keep\n").unwrap();
    let df = format!("FROM {BUSYBOX}\nCOPY keep /keep\n");
    let ctx = context(&root, "ctx", &[("Dockerfile", &df), ("keep", "kept\n")]);
    std::os::unix::fs::symlink(&outside, ctx.join(".dockerignore")).unwrap();
    built(&root, &ctx, &["-t", "ign:v1"]);
    let o = root.run(&["--rm", "ign:v1", "cat", "/keep"]);
    assert_eq!(stdout(&o), "kept\n", "{}", stderr(&o));
}

/// A tar of `entries` (name as raw bytes, kind, mode, link target or
/// content), names written as given: `..` and absolute ones too.
fn raw_tar(entries: &[(&str, tar::EntryType, u32, &str)]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (name, kind, mode, body) in entries {
        let mut h = tar::Header::new_old();
        h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
        h.set_entry_type(*kind);
        h.set_mode(*mode);
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(1_600_000_000);
        let data: &[u8] = if *kind == tar::EntryType::Symlink {
            h.as_old_mut().linkname[..body.len()].copy_from_slice(body.as_bytes());
            b""
        } else {
            body.as_bytes()
        };
        h.set_size(data.len() as u64);
        // Old headers have no magic; a ustar one is what ADD recognises.
        h.as_old_mut().pad[..6].copy_from_slice(b"ustar\0");
        h.set_cksum();
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

#[test]
fn add_unpacks_local_archives_safely() {
    use std::io::Write as _;
    let root = Root::new();
    let ctx = context(&root, "ctx", &[("plain.txt", "not an archive")]);
    let reg = tar::EntryType::Regular;
    let good = raw_tar(&[
        ("app/", tar::EntryType::Directory, 0o750, ""),
        ("app/run.sh", reg, 0o755, "echo hi"),
        ("app/data", reg, 0o600, "data"),
    ]);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(&good).unwrap();
    std::fs::write(ctx.join("good.tgz.bin"), gz.finish().unwrap()).unwrap();
    let u = format!("berth-add-{}", std::process::id());
    let hostile = raw_tar(&[
        ("evil", tar::EntryType::Symlink, 0o777, "/"),
        (&format!("evil/tmp/{u}-x"), reg, 0o644, "x"),
        (&format!("/tmp/{u}-abs"), reg, 0o644, "abs"),
    ]);
    std::fs::write(ctx.join("hostile.tar"), hostile).unwrap();
    let climb = raw_tar(&[(&format!("../../../../../../tmp/{u}-up"), reg, 0o644, "up")]);
    std::fs::write(ctx.join("climb.tar"), climb).unwrap();
    let df = format!("FROM {BUSYBOX}\nADD good.tgz.bin plain.txt /dest/\nADD hostile.tar /h/\n");
    write(&ctx, "Dockerfile", &df);
    built(&root, &ctx, &["-t", "added"]);
    let sh = |cmd: &str| run_in(&root, &["added", "sh", "-c", cmd]);
    let got = sh("stat -c '%n %a' /dest/app /dest/app/run.sh /dest/app/data; cat /dest/plain.txt");
    assert_eq!(
        got,
        "/dest/app 750\n/dest/app/run.sh 755\n/dest/app/data 600\nnot an archive"
    );
    // The symlink resolves inside the image; the absolute name lands below /h.
    let got = sh(&format!(
        "cat /tmp/{u}-x /h/tmp/{u}-abs; [ -L /h/evil ] && echo link"
    ));
    assert_eq!(got, "xabslink\n");
    for p in [
        format!("/tmp/{u}-x"),
        format!("/tmp/{u}-abs"),
        format!("/tmp/{u}-up"),
    ] {
        assert!(!Path::new(&p).exists(), "{p} written on the host");
    }
    // `..` above the destination is refused, and nothing lands anywhere.
    let f = write(
        &ctx,
        "Dockerfile.climb",
        &format!("FROM {BUSYBOX}\nADD climb.tar /c/\n"),
    );
    let o = build(&root, &ctx, &["-f", &f]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(!Path::new(&format!("/tmp/{u}-up")).exists());
    // The archive's content is in the cache key.
    assert_eq!(cached(&built(&root, &ctx, &["-t", "added"])).len(), 2);
    std::fs::write(ctx.join("hostile.tar"), raw_tar(&[("y", reg, 0o644, "y")])).unwrap();
    let again = cached(&built(&root, &ctx, &["-t", "added2"]));
    assert_eq!(again.len(), 1, "{again:?}");
    // bzip2 is refused, clearly.
    std::fs::write(ctx.join("b.tar.bz2"), b"BZh91AY&SY").unwrap();
    let f = write(
        &ctx,
        "Dockerfile.bz",
        &format!("FROM {BUSYBOX}\nADD b.tar.bz2 /b/\n"),
    );
    let o = build(&root, &ctx, &["-f", &f]);
    assert!(
        stderr(&o).contains("bzip2 archives are not supported"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn source_date_epoch_gives_the_same_layers() {
    let df = format!(
        "FROM {BUSYBOX}\nRUN mkdir -p /d/e && echo hi > /d/f && touch /d/e/g\nCOPY f /app/f\n"
    );
    // The layers' digests, the image id and the manifest's digest.
    let build_in = |root: &Root, epoch: Option<(&str, bool)>| {
        let ctx = context(root, "ctx", &[("f", "F"), ("Dockerfile", &df)]);
        let mut c = root.berth();
        c.args(["build", "--no-cache", "-t", "repro"]);
        match epoch {
            Some((e, true)) => {
                c.env("SOURCE_DATE_EPOCH", e);
            }
            Some((e, false)) => {
                c.args(["--build-arg", &format!("SOURCE_DATE_EPOCH={e}")]);
            }
            None => {
                c.env_remove("SOURCE_DATE_EPOCH");
            }
        }
        let o = c.arg(&ctx).output().unwrap();
        assert_eq!(code(&o), 0, "{}", stderr(&o));
        assert!(!stderr(&o).contains("not consumed"), "{}", stderr(&o));
        let v: serde_json::Value =
            serde_json::from_str(&ok(root, &["image", "inspect", "repro"])).unwrap();
        let layers: Vec<String> = v[0]["RootFS"]["Layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l.as_str().unwrap().to_string())
            .collect();
        (layers, v[0]["Id"].clone(), blobs(root.path()))
    };
    let (a, b, c) = (Root::new(), Root::new(), Root::new());
    let one = build_in(&a, Some(("1700000000", true)));
    std::thread::sleep(std::time::Duration::from_millis(1100));
    let two = build_in(&b, Some(("1700000000", false)));
    assert_eq!(one.0, two.0);
    assert_eq!(one.1, two.1);
    let n = one.0.len();
    assert!(n >= 3, "{one:?}");
    // Every blob, the manifests too, the same: so the manifest digest.
    assert_eq!(one.2, two.2);
    assert!(one.2.len() > n + 2, "{:?}", one.2);
    // Without it the RUN layer keeps the time its files were made.
    let three = build_in(&c, None);
    assert_ne!(one.0[n - 2], three.0[n - 2]);
    // The epoch is in the cache key: no layer of the build without it
    // is taken, and the layers come out as with it elsewhere.
    let o = c
        .berth()
        .args(["build", "-t", "repro"])
        .env("SOURCE_DATE_EPOCH", "1700000000")
        .arg(c.path().join("ctx"))
        .output()
        .unwrap();
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(cached(&stderr(&o)), Vec::<String>::new());
    let v: serde_json::Value =
        serde_json::from_str(&ok(&c, &["image", "inspect", "repro"])).unwrap();
    assert_eq!(v[0]["Id"], one.1);
    // Mtimes are clamped, not all set: the base's older ones stay.
    let sh = |cmd: &str| run_in(&a, &["repro", "sh", "-c", cmd]);
    assert_eq!(
        sh("stat -c %Y /d/f /d/e/g /app/f"),
        "1700000000\n1700000000\n1700000000\n"
    );
}

/// The names of every blob stored below `dir` (in any `blobs/sha256`).
fn blobs(dir: &Path) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in rd.flatten() {
        let p = e.path();
        if !e.file_type().unwrap().is_dir() {
            continue;
        }
        if p.ends_with("blobs/sha256") {
            for b in std::fs::read_dir(&p).unwrap().flatten() {
                out.insert(b.file_name().to_string_lossy().into_owned());
            }
        } else {
            out.extend(blobs(&p));
        }
    }
    out
}

/// The `#N secs text` lines of step `n` (a RUN's output), their texts.
fn output_lines(progress: &str, n: usize) -> Vec<String> {
    let re = regex::Regex::new(&format!(r"^#{n} \d+\.\d{{3}} (.*)$")).unwrap();
    progress
        .lines()
        .filter_map(|l| re.captures(l).map(|c| c[1].to_string()))
        .collect()
}

#[test]
fn run_output_is_prefixed_with_its_step_and_time() {
    let root = Root::new();
    // stdout and stderr lines, an empty one, one of 70,000 bytes (shown in
    // two pieces, the first of 64 KiB) and a last one with no newline.
    let df = format!(
        "FROM {BUSYBOX}\nRUN echo out1; echo err1 >&2; echo; echo out2; echo err2 >&2; \
         head -c 70000 /dev/zero | tr '\\0' a; echo; printf tail\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    // Not a terminal: auto is plain.
    let out = built(&root, &ctx, &[]);
    let lines = output_lines(&out, 2);
    let short: Vec<&str> = lines
        .iter()
        .filter(|l| !l.starts_with("aaa"))
        .map(String::as_str)
        .collect();
    let mut sorted = short.clone();
    sorted.sort();
    // stdout and stderr are two pipes: their order between them may vary.
    assert_eq!(
        sorted,
        ["", "err1", "err2", "out1", "out2", "tail"],
        "{out}"
    );
    let pos = |w: &str| short.iter().position(|l| *l == w).unwrap();
    assert!(
        pos("out1") < pos("out2") && pos("out2") < pos("tail"),
        "{out}"
    );
    let long: Vec<usize> = lines
        .iter()
        .filter(|l| l.starts_with("aaa"))
        .map(String::len)
        .collect();
    assert_eq!(long, [65536, 70000 - 65536]);
    assert!(out.contains("\n#2 DONE "), "{out}");
    assert!(!out.contains("\nout1\n"), "no raw output: {out}");
}

#[test]
fn failing_run_shows_its_last_lines() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nRUN for i in $(seq 1 15); do echo line$i; done; echo oops >&2; exit 2\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    let o = build(&root, &ctx, &["--progress", "plain"]);
    assert_eq!(code(&o), 1);
    let err = stderr(&o);
    let head = "#2 ERROR: process \"/bin/sh -c for i in $(seq 1 15); do echo line$i; done; \
                echo oops >&2; exit 2\" did not complete successfully: exit code: 2\n------\n \
                > [2/2] RUN for i in $(seq 1 15); do echo line$i; done; echo oops >&2; exit 2:\n";
    let at = err.find(head).unwrap_or_else(|| panic!("{err}"));
    let block = &err[at + head.len()..];
    let block = &block[..block.find("------\n").expect("the block's end")];
    let re = regex::Regex::new(r"^\d+\.\d{3} (.*)$").unwrap();
    let mut shown: Vec<String> = block
        .lines()
        .map(|l| re.captures(l).unwrap_or_else(|| panic!("{l:?}"))[1].to_string())
        .collect();
    // The last ten lines; where stderr's falls among them may vary.
    assert_eq!(shown.len(), 10, "{block}");
    assert!(shown.contains(&"oops".to_string()), "{block}");
    shown.retain(|l| l != "oops");
    let want: Vec<String> = (7..=15).map(|i| format!("line{i}")).collect();
    assert_eq!(shown[shown.len() - 9..], want[..], "{block}");
}

#[test]
fn tty_progress_is_redrawn_in_place() {
    let root = Root::new();
    let df = format!("FROM {BUSYBOX}\nRUN echo one; sleep 0.5; echo two\n");
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    let cmd = format!(
        "{} --root {} build --progress tty -t live:1 {}",
        common::berth_shell(),
        root.path().display(),
        ctx.display()
    );
    // script(1) gives berth a real pty as its terminal.
    let o = std::process::Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let out = stdout(&o).replace('\r', "");
    assert_eq!(code(&o), 0, "{out}");
    let up = regex::Regex::new(r"\x1b\[\d+A").unwrap();
    assert!(up.is_match(&out), "the cursor moves up: {out:?}");
    // The live view showed the output; once done, only the step's lines stay.
    assert!(out.contains("#2 0."), "{out:?}");
    let last = &out[out.rfind("\x1b[J").unwrap() + 3..];
    let re = regex::Regex::new(
        r"^#2 \[2/2\] RUN echo one; sleep 0.5; echo two\n#2 DONE \d+\.\ds\n#3 writing image sha256:[0-9a-f]{64} done\n#3 naming to live:1 done\n$",
    )
    .unwrap();
    assert!(re.is_match(last), "{last:?}");
    assert!(out.contains("#1 DONE "), "{out:?}");
}

#[test]
fn unknown_progress_is_refused() {
    let root = Root::new();
    let ctx = context(&root, "ctx", &[("Dockerfile", "FROM scratch\n")]);
    let o = build(&root, &ctx, &["--progress", "bogus"]);
    assert_eq!(code(&o), 125);
    let err = stderr(&o);
    assert!(
        err.lines()
            .next()
            .unwrap()
            .contains("invalid value 'bogus'"),
        "{err}"
    );
}

/// A plain HTTP server on 127.0.0.1 (an ephemeral port) serving `dir`,
/// the test's own: ADD's downloads never leave this host. Its request log
/// goes to `dir/../http.log`; it is killed when dropped.
struct Http {
    child: std::process::Child,
    port: u16,
    log: PathBuf,
}

impl Http {
    fn serve(dir: &Path) -> Http {
        use std::io::BufRead as _;
        let log = dir.parent().unwrap().join("http.log");
        let mut child = std::process::Command::new("python3")
            .args([
                "-u",
                "-m",
                "http.server",
                "0",
                "--bind",
                "127.0.0.1",
                "--directory",
            ])
            .arg(dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("python3 for a loopback HTTP server");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {line:?}"));
        Http { child, port, log }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/{path}", self.port)
    }

    fn requests(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap()
    }
}

impl Drop for Http {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `dir/name` with `body`, its mtime set (what `Last-Modified` says).
fn served(dir: &Path, name: &str, body: &[u8], mtime: i64) {
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    let st = std::process::Command::new("touch")
        .arg("-d")
        .arg(format!("@{mtime}"))
        .arg(&p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn sha256(b: &[u8]) -> String {
    use sha2::Digest as _;
    format!("sha256:{:x}", sha2::Sha256::digest(b))
}

#[test]
fn add_of_a_url_lands_one_file() {
    let root = Root::new();
    let www = root.path().join("www");
    let archive = raw_tar(&[("app/run.sh", tar::EntryType::Regular, 0o755, "echo hi")]);
    served(&www, "t.tar", &archive, 1_600_000_000);
    served(&www, "plain", b"downloaded bytes", 1_500_000_000);
    let http = Http::serve(&www);
    // The first stage lands its download in a scratch layer's staging dir.
    let df = format!(
        "FROM scratch AS bare\nADD --chmod=640 {0} /dl/\nFROM {BUSYBOX}\nADD {0} /dl/\nADD --chown=7:8 --chmod=640 {1} /named\nADD --checksum={2} {3} /ok/\nCOPY --from=bare /dl/ /bare/\n",
        http.url("t.tar"),
        http.url("plain"),
        sha256(b"downloaded bytes"),
        http.url("plain?x=1"),
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    // The host's default may be no network at all (no bridge here).
    let net = ["--network", "host"];
    built(&root, &ctx, &["-t", "fromurl", net[0], net[1]]);
    let sh = |cmd: &str| run_in(&root, &["fromurl", "sh", "-c", cmd]);
    let got = sh(
        "stat -c '%n %a %u:%g %Y %s' /dl/t.tar /named /ok/plain /bare/t.tar; ls /dl; cat /named",
    );
    let n = archive.len();
    assert_eq!(
        got,
        format!(
            "/dl/t.tar 600 0:0 1600000000 {n}\n/named 640 7:8 1500000000 16\n/ok/plain 600 0:0 1500000000 16\n/bare/t.tar 640 0:0 1600000000 {n}\nt.tar\ndownloaded bytes"
        )
    );
    let sum = sh("sha256sum < /dl/t.tar");
    assert_eq!(Some(&sha256(&archive)[7..]), sum.split_whitespace().next());
    // The same bytes: every ADD cached (after downloading again).
    let again = built(&root, &ctx, &["-t", "fromurl", net[0], net[1]]);
    assert_eq!(cached(&again).len(), 5, "{again}");
    // Other bytes: a miss, for the steps that download them.
    served(&www, "t.tar", b"changed", 1_600_000_000);
    let again = cached(&built(&root, &ctx, &["-t", "fromurl2", net[0], net[1]]));
    assert_eq!(again.len(), 0, "{again:?}");
}

#[test]
fn add_of_a_url_fails_clearly() {
    let root = Root::new();
    let www = root.path().join("www");
    served(&www, "plain", b"bytes", 1_500_000_000);
    let http = Http::serve(&www);
    let ctx = context(&root, "ctx", &[("Dockerfile.local", "")]);
    let host = ["--network", "host"];
    let fails = |name: &str, df: &str, args: &[&str], want: &str| {
        let f = write(&ctx, name, df);
        let mut all = vec!["-t", "failed", "-f", &f];
        all.extend_from_slice(args);
        let o = build(&root, &ctx, &all);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(stderr(&o).contains(want), "{want:?} not in {}", stderr(&o));
    };
    let zero = format!("sha256:{}", "0".repeat(64));
    fails(
        "Dockerfile.sum",
        &format!(
            "FROM {BUSYBOX}\nADD --checksum={zero} {} /x\n",
            http.url("plain")
        ),
        &host,
        &format!(
            "checksum mismatch: --checksum={zero}, the file's is {}",
            sha256(b"bytes")
        ),
    );
    let missing = http.url("missing");
    fails(
        "Dockerfile.404",
        &format!("FROM {BUSYBOX}\nADD {missing} /x\n"),
        &host,
        &format!("ADD {missing}: 404 Not Found"),
    );
    let nonet = http.url("plain?nonet");
    fails(
        "Dockerfile.none",
        &format!("FROM {BUSYBOX}\nADD {nonet} /x\n"),
        &["--network", "none"],
        &format!("ADD {nonet}: the build's network is none: nothing is downloaded"),
    );
    assert!(!http.requests().contains("nonet"), "{}", http.requests());
    fails(
        "Dockerfile.local",
        &format!("FROM {BUSYBOX}\nADD --checksum={zero} Dockerfile.local /x\n"),
        &[],
        "ADD --checksum needs one source, and that source a URL",
    );
    // Nothing is left: no image, no step container, no spooled file.
    assert!(code(&berth(&root, &["image", "inspect", "failed"])) != 0);
    assert_eq!(ok(&root, &["ps", "-aq"]), "");
    let tmp = root.path().join("build-tmp");
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn copy_from_a_stage_with_globs() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX} AS src\nRUN mkdir -p /app/sub && echo a > /app/a.txt && echo b > /app/b.txt && echo c > /app/c.log && echo s > /app/sub/s.txt && ln -s /etc /app/etc.txt && ln -s / /app/up\nFROM {BUSYBOX}\nCOPY --from=src /app/*.txt /app/s*/*.txt /dst/\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    built(&root, &ctx, &["-t", "globbed"]);
    let got = run_in(
        &root,
        &[
            "globbed",
            "sh",
            "-c",
            "ls /dst; cat /dst/a.txt /dst/s.txt; readlink /dst/etc.txt",
        ],
    );
    assert_eq!(got, "a.txt\nb.txt\netc.txt\ns.txt\na\ns\n/etc\n");
    // A glob never walks through a symlink (`up` is one, to /), and one
    // that matches nothing fails, naming itself.
    for (name, pat) in [
        ("Dockerfile.up", "/app/up/*/passwd"),
        ("Dockerfile.none", "/app/*.none"),
    ] {
        let f = write(
            &ctx,
            name,
            &format!(
                "FROM {BUSYBOX} AS src\nRUN mkdir /app && ln -s / /app/up\nFROM {BUSYBOX}\nCOPY --from=src {pat} /dst/\n"
            ),
        );
        let o = build(&root, &ctx, &["-f", &f]);
        assert_eq!(code(&o), 1, "{}", stderr(&o));
        assert!(
            stderr(&o).contains(&format!("{pat}: not found")),
            "{}",
            stderr(&o)
        );
    }
}

#[test]
fn add_chown_applies_to_an_archive_s_entries() {
    let root = Root::new();
    let ctx = context(&root, "ctx", &[("Dockerfile", "")]);
    let tar = raw_tar(&[
        ("app/", tar::EntryType::Directory, 0o750, ""),
        ("app/run.sh", tar::EntryType::Regular, 0o755, "echo hi"),
    ]);
    std::fs::write(ctx.join("t.tar"), tar).unwrap();
    let df = format!(
        "FROM scratch AS bare\nADD --chown=3:4 t.tar /sc/\nFROM {BUSYBOX}\nADD --chown=100:200 --chmod=600 t.tar /out/\nADD t.tar /plain/\nRUN mkdir /there\nADD --chown=5:6 t.tar /there/\nCOPY --from=bare /sc/ /sc/\n"
    );
    write(&ctx, "Dockerfile", &df);
    built(&root, &ctx, &["-t", "chowned"]);
    let got = run_in(
        &root,
        &[
            "chowned",
            "stat",
            "-c",
            "%n %a %u:%g",
            "/out",
            "/out/app",
            "/out/app/run.sh",
            "/plain/app/run.sh",
            "/there",
            "/there/app/run.sh",
            "/sc/app/run.sh",
        ],
    );
    // --chmod leaves the entries' modes, as BuildKit does; a directory
    // that was there keeps its owner.
    assert_eq!(
        got,
        "/out 755 100:200\n/out/app 750 100:200\n/out/app/run.sh 755 100:200\n/plain/app/run.sh 755 0:0\n/there 755 0:0\n/there/app/run.sh 755 5:6\n/sc/app/run.sh 755 3:4\n"
    );
}

// RUN's flags: --mount (cache, tmpfs, bind, secret), --network, and the
// flags no instruction takes.

/// The files of `image` at `paths` that exist, as `ls -d` lists them.
fn present(root: &Root, image: &str, paths: &[&str]) -> String {
    let script = format!(
        "for p in {}; do test -e $p && echo $p; done; true",
        paths.join(" ")
    );
    run_in(root, &[image, "sh", "-c", &script])
}

#[test]
fn run_mount_cache_keeps_files_out_of_the_image() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nRUN --mount=type=cache,target=/root/.cache,id=pip --mount=type=cache,target=/c2,sharing=locked,mode=0700 sh -c 'echo x >> /root/.cache/n && wc -l < /root/.cache/n > /count && stat -c %a /c2 > /mode && echo y > /c2/y'\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    built(&root, &ctx, &["--no-cache", "-t", "c1"]);
    built(&root, &ctx, &["--no-cache", "-t", "c2"]);
    assert_eq!(cat(&root, "c1", "/count").trim(), "1");
    assert_eq!(cat(&root, "c2", "/count").trim(), "2");
    assert_eq!(cat(&root, "c2", "/mode"), "700\n");
    // Neither the cache's files nor the mount points berth made are in
    // the image.
    assert_eq!(present(&root, "c2", &["/root/.cache", "/c2"]), "");
    assert!(root.path().join("build-cache-mounts").exists());
    // A step writes its cache mounts as the container's root: a setuid
    // binary it plants there stays out of other host users' reach (the
    // dirs above it are berth's alone), as do rw binds and secrets.
    let plant = format!(
        "FROM {BUSYBOX}\nRUN --mount=type=cache,target=/c cp /bin/busybox /c/sh && chmod 4755 /c/sh\n"
    );
    let f = write(&ctx, "Dockerfile.plant", &plant);
    built(&root, &ctx, &["-f", &f, "-t", "plant"]);
    use std::os::unix::fs::PermissionsExt;
    for d in ["build-cache-mounts", "build-tmp", "build-cache"] {
        let mode = std::fs::metadata(root.path().join(d))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o077, 0, "{d}: {mode:o}");
    }
    ok(&root, &["builder", "prune", "-f"]);
    assert!(!root.path().join("build-cache-mounts").exists());
    built(&root, &ctx, &["--no-cache", "-t", "c3"]);
    assert_eq!(cat(&root, "c3", "/count").trim(), "1");
}

#[test]
fn run_mount_tmpfs_and_binds() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX} AS s\nRUN echo stage > /made\nFROM {BUSYBOX}\n\
         RUN --mount=type=tmpfs,target=/t,size=1m sh -c 'grep -c \" /t tmpfs\" /proc/mounts > /tmpfs && echo hi > /t/f'\n\
         RUN --mount=type=bind,source=data,target=/d sh -c 'cat /d/hello.txt > /seen; if touch /d/new 2>/dev/null; then echo rw; else echo ro; fi > /ro'\n\
         RUN --mount=type=bind,source=data,target=/d,rw sh -c 'echo w > /d/new && cat /d/new > /rw'\n\
         RUN --mount=type=bind,source=data/hello.txt,target=/one.txt cat /one.txt > /one\n\
         RUN --mount=type=bind,from=s,source=/made,target=/m cat /m > /from-stage\n"
    );
    let ctx = context(
        &root,
        "ctx",
        &[("Dockerfile", &df), ("data/hello.txt", "hello\n")],
    );
    built(&root, &ctx, &["-t", "mounted"]);
    let got = run_in(
        &root,
        &[
            "mounted",
            "cat",
            "/tmpfs",
            "/seen",
            "/ro",
            "/rw",
            "/one",
            "/from-stage",
        ],
    );
    assert_eq!(got, "1\nhello\nro\nw\nhello\nstage\n");
    assert_eq!(
        present(&root, "mounted", &["/t", "/d", "/one.txt", "/m"]),
        ""
    );
    // A bind's content is in the key: a changed file runs the step again.
    let again = built(&root, &ctx, &["-t", "mounted"]);
    assert_eq!(cached(&again).len(), 6, "{again}");
    std::fs::write(ctx.join("data/hello.txt"), "changed\n").unwrap();
    let again = built(&root, &ctx, &["-t", "mounted"]);
    assert_eq!(cached(&again).len(), 2, "{again}");
    assert_eq!(cat(&root, "mounted", "/seen"), "changed\n");
}

#[test]
fn run_mount_bind_of_a_symlink_out_of_the_context() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nRUN --mount=type=bind,source=evil,target=/x sh -c 'cat /x/shadow /x/hostname; ls /x'\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    std::os::unix::fs::symlink("/etc", ctx.join("evil")).unwrap();
    let o = build(&root, &ctx, &["-t", "evil", "--progress", "plain"]);
    let host = std::fs::read_to_string("/etc/hostname").unwrap_or_default();
    let err = stderr(&o);
    // Resolved inside the context, `evil` names its missing `etc`.
    assert_eq!(code(&o), 1, "{err}");
    assert!(err.contains("evil"), "{err}");
    if let Ok(shadow) = std::fs::read_to_string("/etc/shadow") {
        let first = shadow.lines().next().unwrap_or("root:");
        assert!(!err.contains(first), "{err}");
    }
    assert!(
        host.trim().is_empty() || !err.contains(host.trim()),
        "{err}"
    );
}

#[test]
fn run_mount_secret() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nRUN --mount=type=secret,id=tok sh -c 'cut -c1-3 /run/secrets/tok > /head && stat -c %a /run/secrets/tok > /mode'\n\
         RUN --mount=type=secret,id=absent,target=/s true\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    let secret = root.path().join("tok.txt");
    std::fs::write(&secret, "s3cr3t").unwrap();
    if let Some((uid, gid, _)) = common::test_user() {
        std::os::unix::fs::chown(&secret, Some(uid), Some(gid)).unwrap();
    }
    let arg = format!("id=tok,src={}", secret.display());
    built(&root, &ctx, &["--secret", &arg, "-t", "secret"]);
    assert_eq!(cat(&root, "secret", "/head"), "s3c\n");
    assert_eq!(cat(&root, "secret", "/mode"), "400\n");
    assert_eq!(
        present(&root, "secret", &["/run/secrets", "/run/secrets/tok", "/s"]),
        ""
    );
    let history = ok(&root, &["history", "--no-trunc", "secret"]);
    assert!(!history.contains("s3cr3t"), "{history}");
    assert!(history.contains("cut -c1-3 /run/secrets/tok"), "{history}");
    // A changed secret does not invalidate the step, as in BuildKit.
    std::fs::write(&secret, "other").unwrap();
    let again = built(&root, &ctx, &["--secret", &arg, "-t", "secret"]);
    assert_eq!(cached(&again).len(), 2, "{again}");
    // A required secret that was not given fails the step.
    let df = format!("FROM {BUSYBOX}\nRUN --mount=type=secret,id=nope,required=true true\n");
    let f = write(&ctx, "Dockerfile.req", &df);
    let o = build(&root, &ctx, &["-f", &f]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("secret nope not found"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn run_network_and_unknown_flags() {
    let root = Root::new();
    let df = format!(
        "FROM {BUSYBOX}\nRUN --network=none sh -c 'tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" > /none'\nRUN tail -n +3 /proc/net/dev | cut -d: -f1 | tr -d \" \" > /default\n"
    );
    let ctx = context(&root, "ctx", &[("Dockerfile", &df)]);
    built(&root, &ctx, &["--network", "host", "-t", "net"]);
    assert_eq!(cat(&root, "net", "/none"), "lo\n");
    assert_ne!(cat(&root, "net", "/default"), "lo\n");
    let refused = |name: &str, df: String, msg: &str| {
        let f = write(&ctx, name, &df);
        let o = build(&root, &ctx, &["-f", &f]);
        assert_eq!(code(&o), 1, "{name}");
        assert!(stderr(&o).contains(msg), "{name}: {}", stderr(&o));
    };
    refused(
        "Dockerfile.bogus",
        format!("FROM {BUSYBOX}\n\nRUN --bogus true\n"),
        "Dockerfile.bogus:3: unknown flag: bogus\n",
    );
    refused(
        "Dockerfile.copy",
        format!("FROM {BUSYBOX}\nCOPY --mount=x a /b\n"),
        "Dockerfile.copy:2: unknown flag: mount\n",
    );
    refused(
        "Dockerfile.parents",
        format!("FROM {BUSYBOX}\nCOPY --parents Dockerfile /b/\n"),
        "COPY --parents is not supported by berth build",
    );
    refused(
        "Dockerfile.ssh",
        format!("FROM {BUSYBOX}\nRUN --mount=type=ssh true\n"),
        "RUN --mount=type=ssh is not supported by berth build",
    );
    refused(
        "Dockerfile.net",
        format!("FROM {BUSYBOX}\nRUN --network=bridge true\n"),
        "unsupported RUN --network=bridge",
    );
}
