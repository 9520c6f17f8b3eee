//! `version`, `system df`, `system prune`: Docker's layouts of what
//! berth-engine's `system` module finds.

use anyhow::{Result, anyhow};
use berth_engine::Engine;
use berth_engine::records::Status;
use berth_image::RemoveEvent;
use berth_io::{out, outln};
use serde_json::{Value, json};

use crate::cli::{DfArgs, SystemPruneArgs};
use crate::containers::{PruneFilter, confirm};
use crate::table::{self, human_size_precision};
use crate::template::{Options, Template};

/// The level of Docker's API (and CLI conventions) berth follows; berth
/// itself serves no API.
const API_VERSION: &str = "1.43";

/// `rustc --version` of the build, from build.rs.
const RUSTC_VERSION: &str = env!("BERTH_RUSTC_VERSION");

/// Docker's (Go's) name for this architecture.
fn arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// `docker version`'s document: the Client is this binary; berth has no
/// daemon, so the Server is this same binary's engine and runtime.
fn version_doc() -> Value {
    let v = env!("CARGO_PKG_VERSION");
    let kernel = berth_io::read_capped_string(
        std::path::Path::new("/proc/sys/kernel/osrelease"),
        4096,
        "kernel release",
    )
    .map(|s| s.trim().to_string())
    .unwrap_or_default();
    json!({
        "Client": {
            "Platform": {"Name": "berth"},
            "Version": v,
            "ApiVersion": API_VERSION,
            "DefaultAPIVersion": API_VERSION,
            "RustVersion": RUSTC_VERSION,
            "Os": "linux",
            "Arch": arch(),
        },
        "Server": {
            "Platform": {"Name": "berth (no daemon: the engine is this binary)"},
            "Components": [
                {"Name": "Engine", "Version": v, "Details": {
                    "ApiVersion": API_VERSION, "Arch": arch(), "Os": "linux",
                    "KernelVersion": kernel, "RustVersion": RUSTC_VERSION,
                }},
                {"Name": "berth-runtime", "Version": v, "Details": {}},
            ],
            "Version": v,
            "ApiVersion": API_VERSION,
            "RustVersion": RUSTC_VERSION,
            "Os": "linux",
            "Arch": arch(),
            "KernelVersion": kernel,
        },
    })
}

/// `berth version [--format json|TEMPLATE]`.
pub fn version(format: Option<&str>) -> Result<u8> {
    let doc = version_doc();
    match format.map(str::trim) {
        None | Some("") => out!("{}", version_text(&doc)),
        Some("json" | "{{json .}}") => outln!("{}", serde_json::to_string(&doc)?),
        Some(t) => {
            let t = Template::parse(t).map_err(|e| anyhow!("template parsing error: {e}"))?;
            let opts = Options {
                strict: Some("types.Version"),
                methods: None,
            };
            outln!("{}", t.execute(&doc, &opts)?);
        }
    }
    Ok(0)
}

/// Docker's text layout: values from the 20th column.
fn version_text(doc: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or_default().to_string();
    let (c, sv) = (&doc["Client"], &doc["Server"]);
    let mut out = String::from("Client:\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<19} {v}\n", format!("{k}:")));
    line(" Version", s(&c["Version"]));
    line(" API version", s(&c["ApiVersion"]));
    line(" Rust version", s(&c["RustVersion"]));
    line(" OS/Arch", format!("{}/{}", s(&c["Os"]), s(&c["Arch"])));
    out.push_str("\nServer: berth\n Engine:\n");
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<19} {v}\n", format!("{k}:")));
    line("  Version", s(&sv["Version"]));
    line("  API version", s(&sv["ApiVersion"]));
    line("  Rust version", s(&sv["RustVersion"]));
    line("  OS/Arch", format!("{}/{}", s(&sv["Os"]), s(&sv["Arch"])));
    out.push_str(" berth-runtime:\n");
    out.push_str(&format!("{:<19} {}\n", "  Version:", s(&sv["Version"])));
    out
}

/// `RECLAIMABLE`: the bytes and their share of the total, as Docker
/// writes them (`11.63MB (70%)`; without a total, the bytes alone).
fn reclaimable(bytes: u64, total: u64) -> String {
    match total {
        0 => human_size_precision(bytes, 4),
        t => format!(
            "{} ({}%)",
            human_size_precision(bytes, 4),
            (bytes as f64 * 100.0 / t as f64) as u64
        ),
    }
}

/// `system df [-v] [--format]`.
pub fn df(engine: &Engine, args: &DfArgs) -> Result<u8> {
    berth_engine::remove::reap_for_readers(engine);
    let du = berth_engine::system::disk_usage(engine)?;
    let img_total: u64 = du.images.iter().map(|i| i.image.size).sum();
    let img_active = du.images.iter().filter(|i| i.containers > 0).count();
    let img_free: u64 = du
        .images
        .iter()
        .filter(|i| i.containers == 0)
        .map(|i| i.image.size)
        .sum();
    let c_total: u64 = du.containers.iter().map(|c| c.size).sum();
    let running = |c: &berth_engine::system::ContainerUsage| c.record.status == Status::Running;
    let c_active = du.containers.iter().filter(|c| running(c)).count();
    let c_free: u64 = du
        .containers
        .iter()
        .filter(|c| !running(c))
        .map(|c| c.size)
        .sum();
    let row = |t: &str, n: usize, a: usize, size: u64, free: String| {
        json!({"Type": t, "TotalCount": n.to_string(), "Active": a.to_string(),
               "Size": human_size_precision(size, 4), "Reclaimable": free})
    };
    let items = [
        row(
            "Images",
            du.images.len(),
            img_active,
            img_total,
            reclaimable(img_free, img_total),
        ),
        row(
            "Containers",
            du.containers.len(),
            c_active,
            c_total,
            reclaimable(c_free, c_total),
        ),
        row("Local Volumes", 0, 0, 0, reclaimable(0, 0)),
        row("Build Cache", 0, 0, 0, "0B".into()),
    ];
    if args.verbose && args.format.is_none() {
        out!("{}", verbose(&du));
        return Ok(0);
    }
    let format = crate::format::Format::parse(
        args.format.as_deref(),
        "{{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}",
    )?;
    let headers = json!({"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE",
                         "Size": "SIZE", "Reclaimable": "RECLAIMABLE"});
    let none = |_: usize, _: &str, _: &[crate::template::Val]| None;
    out!(
        "{}",
        format.render(&items, &headers, "*formatter.diskUsageContext", &none)?
    );
    Ok(0)
}

/// `system df -v`: each image and container, as Docker lists them.
fn verbose(du: &berth_engine::system::DiskUsage) -> String {
    let mut out = String::from("Images space usage:\n\n");
    let mut t = String::from(
        "REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS\n",
    );
    for i in &du.images {
        let img = &i.image;
        let created = img.created.as_deref().map_or_else(
            || "N/A".into(),
            |c| format!("{} ago", berth_engine::timefmt::since(c)),
        );
        let size = human_size_precision(img.size, 4);
        let names: Vec<(String, String)> = match img.repo_tags.is_empty() {
            true => vec![("<none>".into(), "<none>".into())],
            false => img
                .repo_tags
                .iter()
                .map(
                    |rt| match rt.rsplit_once(':').filter(|(_, t)| !t.contains('/')) {
                        Some((r, t)) => (r.to_string(), t.to_string()),
                        None => (rt.clone(), "<none>".into()),
                    },
                )
                .collect(),
        };
        for (repo, tag) in names {
            t.push_str(&format!(
                "{repo}\t{tag}\t{}\t{created}\t{size}\t0B\t{size}\t{}\n",
                img.short_id(),
                i.containers
            ));
        }
    }
    out.push_str(&table::tabwriter(&t));
    out.push_str("\nContainers space usage:\n\n");
    let mut t =
        String::from("CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES\n");
    for c in &du.containers {
        let r = &c.record;
        let command = format!("\"{}\"", r.command.join(" "));
        t.push_str(&format!(
            "{}\t{}\t{command}\t0\t{}\t{} ago\t{}\t{}\n",
            &r.id[..12.min(r.id.len())],
            r.image,
            human_size_precision(c.size, 4),
            berth_engine::timefmt::since(&r.created),
            status_word(r.status),
            r.name
        ));
    }
    out.push_str(&table::tabwriter(&t));
    out.push_str("\nLocal Volumes space usage:\n\n");
    out.push_str(&table::tabwriter("VOLUME NAME\tLINKS\tSIZE\n"));
    out.push_str("\nBuild cache usage: 0B\n\n");
    out.push_str(&table::tabwriter(
        "CACHE ID\tCACHE TYPE\tSIZE\tCREATED\tLAST USED\tUSAGE\tSHARED\n",
    ));
    out
}

fn status_word(s: Status) -> &'static str {
    match s {
        Status::Created => "Created",
        Status::Running => "Running",
        Status::Exited => "Exited",
    }
}

/// `system prune [-a] [-f] [--filter until=|label=]`: stopped
/// containers, the networks none is on, then the images none uses (dangling only, or all with
/// `-a`), then the blobs and snapshots left over.
pub fn prune(engine: &Engine, args: &SystemPruneArgs) -> Result<u8> {
    let select = PruneFilter::new(&args.filter)?;
    let images = match args.all {
        true => "  - all images without at least one container associated to them",
        false => "  - all dangling images",
    };
    let warning = format!(
        "WARNING! This will remove:\n  - all stopped containers\n  - all networks not used by at least one container\n{images}\n"
    );
    if !args.force && !confirm(&warning)? {
        return Ok(0);
    }
    berth_engine::remove::reap_dead_runs(engine)?;
    let containers = berth_engine::prune::prune_containers(engine, |c| select.matches(c))?;
    let networks = berth_engine::network::manage::prune(engine)?;
    let images = berth_engine::system::prune_images(engine, args.all, |img| {
        let labels = engine
            .store
            .config(img)
            .ok()
            .and_then(|c| c.config().as_ref().and_then(|c| c.labels().clone()))
            .unwrap_or_default();
        select.selects(
            img.created.as_deref().unwrap_or(""),
            &labels.into_iter().collect(),
        )
    })?;
    let (_, blob_bytes) = engine.store.prune_blobs()?;
    berth_engine::rootfs_prep::prune(engine)?;
    if !containers.is_empty() {
        outln!("Deleted Containers:");
        for c in &containers {
            outln!("{}", c.id);
        }
        outln!("");
    }
    if !networks.is_empty() {
        outln!("Deleted Networks:");
        for n in &networks {
            outln!("{n}");
        }
        outln!("");
    }
    if !images.events.is_empty() {
        outln!("Deleted Images:");
        for ev in &images.events {
            match ev {
                RemoveEvent::Untagged(t) => outln!("untagged: {t}"),
                RemoveEvent::Deleted(d) => outln!("deleted: {d}"),
            }
        }
        outln!("");
    }
    let total = containers.iter().map(|c| c.size).sum::<u64>() + images.reclaimed + blob_bytes;
    outln!("Total reclaimed space: {}", human_size_precision(total, 4));
    Ok(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_layout_and_template() {
        let text = version_text(&version_doc());
        let v = env!("CARGO_PKG_VERSION");
        assert!(
            text.starts_with(&format!("Client:\n Version:           {v}\n")),
            "{text}"
        );
        assert!(
            text.contains("\nServer: berth\n Engine:\n  Version:          "),
            "{text}"
        );
        assert!(text.contains(" OS/Arch:           linux/"), "{text}");
        assert_eq!(reclaimable(50, 200), "50B (25%)");
        assert_eq!(reclaimable(0, 0), "0B");
    }
}
