//! `ps --filter`: Docker's keys and rules. The same key given twice
//! matches either value, different keys must all match; `status=` lists
//! stopped containers too (as `-a`).

use std::collections::BTreeMap;

use anyhow::{Result, anyhow, bail};
use berth_engine::Engine;
use berth_engine::records::{ContainerRecord, Records};
use regex::Regex;

use super::view;

const STATES: &[&str] = &[
    "created",
    "restarting",
    "running",
    "removing",
    "paused",
    "exited",
    "dead",
];

/// Filter args as `key → values`, checked for Docker's grammar.
pub fn parse(args: &[String], keys: &[&str]) -> Result<BTreeMap<String, Vec<String>>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for a in args {
        let Some((k, v)) = a.split_once('=') else {
            bail!("bad format of filter (expected name=value)");
        };
        let k = k.trim().to_lowercase();
        if !keys.contains(&k.as_str()) {
            bail!("invalid filter '{k}'");
        }
        out.entry(k).or_default().push(v.to_string());
    }
    Ok(out)
}

/// `label=k`, `label=k=v`: whether `labels` has it.
pub fn label_matches(labels: &BTreeMap<String, String>, want: &str) -> bool {
    match want.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|have| have == v),
        None => labels.contains_key(want),
    }
}

/// The compiled `ps` filters.
pub struct Filters {
    status: Vec<String>,
    /// `health=`: starting, healthy, unhealthy or none.
    health: Vec<String>,
    names: Vec<Regex>,
    ids: Vec<String>,
    labels: Vec<String>,
    /// `ancestor=`: the image id each value resolved to (if any), and the
    /// value as a name with its default tag.
    ancestors: Vec<(Option<String>, String)>,
    exited: Vec<i32>,
    /// Created strictly before / after these timestamps.
    before: Option<String>,
    since: Option<String>,
}

impl Filters {
    pub fn new(engine: &Engine, records: &Records, args: &[String]) -> Result<Filters> {
        const KEYS: &[&str] = &[
            "ancestor", "before", "exited", "health", "id", "label", "name", "since", "status",
        ];
        let m = parse(args, KEYS)?;
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        for s in get("status") {
            if !STATES.contains(&s.as_str()) {
                bail!("invalid filter 'status={s}'");
            }
        }
        for h in get("health") {
            if !["starting", "healthy", "unhealthy", "none"].contains(&h.as_str()) {
                bail!("Unrecognised filter value for health: {h}");
            }
        }
        let names = get("name")
            .iter()
            .map(|n| {
                Regex::new(n)
                    .map_err(|_| anyhow!("invalid filter 'name={n}': not a regular expression"))
            })
            .collect::<Result<_>>()?;
        let exited = get("exited")
            .iter()
            .map(|e| {
                e.parse()
                    .map_err(|_| anyhow!("invalid filter 'exited={e}'"))
            })
            .collect::<Result<_>>()?;
        let ancestors = get("ancestor")
            .iter()
            .map(|a| {
                let id = engine
                    .store
                    .resolve(a)
                    .ok()
                    .map(|i| i.id.as_str().to_string());
                (id, with_tag(a))
            })
            .collect();
        let created_of = |k: &str| -> Result<Option<String>> {
            match get(k).last() {
                Some(key) => Ok(Some(records.find(key)?.created)),
                None => Ok(None),
            }
        };
        Ok(Filters {
            status: get("status"),
            health: get("health"),
            names,
            ids: get("id"),
            labels: get("label"),
            ancestors,
            exited,
            before: created_of("before")?,
            since: created_of("since")?,
        })
    }

    /// Whether `status=` was given: it lists stopped containers as `-a` does.
    pub fn implies_all(&self) -> bool {
        !self.status.is_empty()
    }

    pub fn matches(&self, c: &ContainerRecord) -> bool {
        let any = |v: &[String], f: &dyn Fn(&String) -> bool| v.is_empty() || v.iter().any(f);
        let state = view::state(c);
        any(&self.status, &|s| s == state)
            && any(&self.health, &|h| h == view::health(c))
            && (self.names.is_empty()
                || self
                    .names
                    .iter()
                    .any(|r| r.is_match(&c.name) || r.is_match(&format!("/{}", c.name))))
            && any(&self.ids, &|i| c.id.starts_with(i.as_str()))
            && self.labels.iter().all(|l| label_matches(&c.labels, l))
            && (self.ancestors.is_empty()
                || self.ancestors.iter().any(|(id, name)| {
                    id.as_deref() == Some(c.image_id.as_str()) || *name == with_tag(&c.image)
                }))
            && (self.exited.is_empty()
                || (state == "exited" && self.exited.contains(&view::exit_code(c))))
            && self.before.as_ref().is_none_or(|t| c.created < *t)
            && self.since.as_ref().is_none_or(|t| c.created > *t)
    }
}

/// An image name with Docker's default tag, in its familiar form, so that
/// `busybox`, `busybox:latest` and `docker.io/library/busybox` are one.
fn with_tag(name: &str) -> String {
    berth_image::Reference::parse(name)
        .map(|r| r.with_default_tag().familiar())
        .unwrap_or_else(|_| name.to_string())
}

#[cfg(test)]
mod tests {
    use super::super::view::tests::{NOW, alive, record};
    use super::*;
    use berth_engine::records::Status;

    fn filters(args: &[&str]) -> Filters {
        let m = parse(
            &args.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            &[
                "status", "name", "id", "label", "exited", "ancestor", "health",
            ],
        )
        .unwrap();
        let get = |k: &str| m.get(k).cloned().unwrap_or_default();
        Filters {
            status: get("status"),
            health: get("health"),
            names: get("name").iter().map(|n| Regex::new(n).unwrap()).collect(),
            ids: get("id"),
            labels: get("label"),
            ancestors: get("ancestor")
                .iter()
                .map(|a| (None, with_tag(a)))
                .collect(),
            exited: get("exited").iter().map(|e| e.parse().unwrap()).collect(),
            before: None,
            since: None,
        }
    }

    #[test]
    fn keys_and_values_combine_as_dockers() {
        let _ = NOW;
        let exited = record("web-1", Status::Exited, 100);
        let created = record("db", Status::Created, 100);
        let mut running = record("web-2", Status::Running, 100);
        alive(&mut running);
        let all = [&exited, &created, &running];
        let names = |args: &[&str]| -> Vec<String> {
            let f = filters(args);
            all.iter()
                .filter(|c| f.matches(c))
                .map(|c| c.name.clone())
                .collect()
        };
        assert_eq!(names(&["status=exited"]), ["web-1"]);
        assert_eq!(names(&["status=exited", "status=created"]), ["web-1", "db"]);
        assert_eq!(names(&["name=web"]), ["web-1", "web-2"]);
        assert_eq!(names(&["name=^web-2$"]), ["web-2"]);
        assert_eq!(names(&["name=^/db"]), ["db"]);
        assert_eq!(names(&["name=web", "status=running"]), ["web-2"]);
        assert_eq!(names(&["exited=3"]), ["web-1"]);
        assert!(names(&["exited=0"]).is_empty());
        assert_eq!(names(&["label=app"]).len(), 3);
        assert_eq!(names(&["label=app=web", "name=db"]), ["db"]);
        assert!(names(&["label=app=db"]).is_empty());
        assert_eq!(
            names(&["ancestor=docker.io/library/busybox:latest"]).len(),
            3
        );
        assert!(names(&["ancestor=alpine"]).is_empty());
        assert_eq!(names(&[&format!("id={}", &created.id[..6])]), ["db"]);
        assert_eq!(names(&["health=none"]).len(), 3);
        assert!(names(&["health=starting"]).is_empty());
    }

    #[test]
    fn bad_filters_are_one_line_errors() {
        let p = |a: &str| {
            parse(&[a.to_string()], &["status"])
                .unwrap_err()
                .to_string()
        };
        assert_eq!(p("status"), "bad format of filter (expected name=value)");
        assert_eq!(p("colour=red"), "invalid filter 'colour'");
    }
}
