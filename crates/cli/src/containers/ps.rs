//! `berth ps` (`container ls`): Docker's columns, filters and `--format`.

use std::collections::HashMap;

use anyhow::Result;
use berth_engine::records::ContainerRecord;
use berth_engine::{Engine, prune, timefmt};
use berth_io::out;
use serde_json::{Value, json};

use super::filter::Filters;
use super::view;
use crate::cli::PsArgs;
use crate::format::Format;
use crate::table;
use crate::template::Val;

const DEFAULT_TABLE: &str =
    "{{.ID}}\t{{.Image}}\t{{.Command}}\t{{.RunningFor}}\t{{.Status}}\t{{.Ports}}\t{{.Names}}";

/// The Go type Docker's ps templates run against, named in its errors.
const CONTEXT_TYPE: &str = "*formatter.ContainerContext";

pub fn ps(engine: &Engine, args: &PsArgs) -> Result<u8> {
    berth_engine::remove::reap_for_readers(engine);
    let records = engine.records()?;
    let filters = Filters::new(engine, &records, &args.filter)?;
    let last = if args.latest { 1 } else { args.last };
    let all = args.all || last > 0 || filters.implies_all();
    let mut shown: Vec<ContainerRecord> = records
        .list()?
        .into_iter()
        .filter(|c| all || matches!(view::state(c), "running" | "paused" | "restarting"))
        .filter(|c| filters.matches(c))
        .collect();
    // list() is newest first: -n keeps the N most recently created.
    if last > 0 {
        shown.truncate(last as usize);
    }
    if args.quiet {
        for c in &shown {
            out!("{}\n", short(&c.id, args.no_trunc));
        }
        return Ok(0);
    }
    let default = if args.size {
        format!("{DEFAULT_TABLE}\t{{{{.Size}}}}")
    } else {
        DEFAULT_TABLE.to_string()
    };
    let format = Format::parse(args.format.as_deref(), &default)?;
    let sizes = (args.size || format.uses("Size")).then(|| image_sizes(engine));
    let now = timefmt::now_ms();
    let items: Vec<Value> = shown
        .iter()
        .map(|c| {
            let size = sizes.as_ref().map(|s| size_text(engine, c, s));
            context(c, args.no_trunc, size, now)
        })
        .collect();
    let label = |i: usize, name: &str, a: &[Val]| -> Option<Result<Val, String>> {
        (name == "Label").then(|| {
            let key = match a {
                [Some(Value::String(k))] => k,
                _ => return Err("wrong number of args for Label: want 1".into()),
            };
            Ok(Some(json!(
                shown[i].labels.get(key).cloned().unwrap_or_default()
            )))
        })
    };
    out!(
        "{}",
        format.render(&items, &headers(), CONTEXT_TYPE, &label)?
    );
    Ok(0)
}

/// The id as ps shows it: 12 characters unless `--no-trunc`.
pub fn short(id: &str, no_trunc: bool) -> &str {
    if no_trunc {
        id
    } else {
        &id[..12.min(id.len())]
    }
}

/// Column headers of the fields a ps template may name.
fn headers() -> Value {
    json!({
        "Command": "COMMAND", "CreatedAt": "CREATED AT", "ID": "CONTAINER ID",
        "Image": "IMAGE", "Labels": "LABELS", "LocalVolumes": "LOCAL VOLUMES",
        "Mounts": "MOUNTS", "Names": "NAMES", "Networks": "NETWORKS", "Ports": "PORTS",
        "RunningFor": "CREATED", "Size": "SIZE", "State": "STATE", "Status": "STATUS",
    })
}

/// What a ps template sees of one container (and `{{json .}}` prints):
/// the docker CLI's ContainerContext, every field a string.
pub fn context(c: &ContainerRecord, no_trunc: bool, size: Option<String>, now_ms: i64) -> Value {
    let created = timefmt::parse_rfc3339_ms(&c.created).unwrap_or(now_ms);
    let labels: Vec<String> = c.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
    json!({
        "Command": view::command_column(c, no_trunc),
        "CreatedAt": view::go_time(&c.created),
        "ID": short(&c.id, no_trunc),
        "Image": c.image,
        "Labels": labels.join(","),
        "LocalVolumes": "0",
        "Mounts": "",
        "Names": c.name,
        "Networks": "",
        "Ports": berth_engine::ports::Published::list(&c.published),
        "RunningFor": format!("{} ago", timefmt::human_duration_ms(now_ms - created)),
        "Size": size.unwrap_or_else(|| "0B".into()),
        "State": view::state(c),
        "Status": view::status(c, now_ms),
    })
}

/// Image sizes by id, for the virtual sizes.
fn image_sizes(engine: &Engine) -> HashMap<String, u64> {
    engine
        .store
        .images()
        .map(|v| {
            v.into_iter()
                .map(|i| (i.id.as_str().to_string(), i.size))
                .collect()
        })
        .unwrap_or_default()
}

/// Docker's SIZE: what the container wrote, and with its image below it
/// (`2B (virtual 4.26MB)`).
fn size_text(engine: &Engine, c: &ContainerRecord, images: &HashMap<String, u64>) -> String {
    let rw = prune::container_size(engine, &c.id);
    let image = images.get(&c.image_id).copied().unwrap_or(0);
    let virt = rw + image;
    if virt > 0 && image > 0 {
        format!(
            "{} (virtual {})",
            table::human_size(rw),
            table::human_size(virt)
        )
    } else {
        table::human_size(rw)
    }
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::{NOW, record};
    use super::*;
    use berth_engine::records::Status;

    #[test]
    fn context_is_dockers_container_context() {
        let c = record("web", Status::Exited, 300);
        let v = context(&c, false, None, NOW);
        assert_eq!(v["ID"], json!(&c.id[..12]));
        assert_eq!(v["Command"], json!("\"sh -c 'echo hi'\""));
        assert_eq!(v["RunningFor"], json!("5 minutes ago"));
        assert_eq!(v["Status"], json!("Exited (3) 2 minutes ago"));
        assert_eq!(v["State"], json!("exited"));
        assert_eq!(v["Labels"], json!("app=web"));
        assert_eq!(v["Size"], json!("0B"));
        // Every field a template may name has a header.
        let h = headers();
        for k in v.as_object().unwrap().keys() {
            assert!(h.get(k).is_some(), "{k} has no header");
        }
        // The default table: Docker's columns, PORTS empty.
        let f = Format::parse(None, DEFAULT_TABLE).unwrap();
        let none = |_: usize, _: &str, _: &[Val]| None;
        let t = f.render(&[v], &h, CONTEXT_TYPE, &none).unwrap();
        let mut lines = t.lines();
        assert_eq!(
            lines.next().unwrap(),
            "CONTAINER ID   IMAGE     COMMAND             CREATED         STATUS                     PORTS     NAMES"
        );
        assert_eq!(
            lines.next().unwrap(),
            format!(
                "{}   busybox   \"sh -c 'echo hi'\"   5 minutes ago   Exited (3) 2 minutes ago             web",
                &c.id[..12]
            )
        );
    }
}
