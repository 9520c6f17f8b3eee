//! The Dockerfile instructions that only change an image's config (CMD,
//! ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
//! WORKDIR), applied to the `config` object of an image config: what
//! `commit -c` and `import -c` take, as Docker's `--change` does, with
//! Docker's word splitting, quoting and `$VAR` / `${VAR:-default}` /
//! `${VAR:+alt}` substitution from the config's own environment.

use anyhow::{Result, bail};
use serde_json::{Map, Value, json};

/// Apply `changes` in order to `config` (the image config's `config`).
pub fn apply(config: &mut Map<String, Value>, changes: &[String]) -> Result<()> {
    let mut cmd_set = false;
    for change in changes {
        apply_one(config, change, &mut cmd_set)
            .map_err(|e| anyhow::anyhow!("invalid change {change:?}: {e}"))?;
    }
    Ok(())
}

fn apply_one(config: &mut Map<String, Value>, change: &str, cmd_set: &mut bool) -> Result<()> {
    apply_instruction(config, change, &[], cmd_set)
}

/// One Dockerfile instruction, its `$VAR`s also taken from `args` (a
/// build's `K=V` ARGs, which the config's own ENV overrides); `cmd_set`:
/// whether a CMD came before it (then an ENTRYPOINT keeps that CMD).
pub fn apply_instruction(
    config: &mut Map<String, Value>,
    change: &str,
    args: &[String],
    cmd_set: &mut bool,
) -> Result<()> {
    let change = change.trim();
    let (word, rest) = change
        .split_once(char::is_whitespace)
        .unwrap_or((change, ""));
    let rest = rest.trim();
    let env = [args, env_of(config).as_slice()].concat();
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), json!(command(rest)?));
            *cmd_set = true;
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), json!(command(rest)?));
            // As in a Dockerfile: a new entrypoint drops the old command
            // unless a CMD came first.
            if !*cmd_set {
                config.insert("Cmd".into(), Value::Null);
            }
        }
        "ENV" => {
            for (k, v) in pairs(rest, &env, "ENV")? {
                let mut list: Vec<String> = env_of(config);
                list.retain(|e| e.split('=').next() != Some(k.as_str()));
                list.push(format!("{k}={v}"));
                config.insert("Env".into(), json!(list));
            }
        }
        "LABEL" => {
            let labels = object(config, "Labels");
            for (k, v) in pairs(rest, &env, "LABEL")? {
                labels.insert(k, json!(v));
            }
        }
        "EXPOSE" => {
            for p in words(rest, &env)? {
                let p = if p.contains('/') {
                    p.to_ascii_lowercase()
                } else {
                    format!("{p}/tcp")
                };
                let (num, proto) = p.split_once('/').unwrap_or((&p, "tcp"));
                if num.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                    bail!("invalid port {p:?}");
                }
                object(config, "ExposedPorts").insert(p.clone(), json!({}));
            }
        }
        "VOLUME" => {
            let vols = match json_array(rest) {
                Some(v) => v,
                None => words(rest, &env)?,
            };
            if vols.is_empty() {
                bail!("VOLUME needs at least one path");
            }
            for v in vols {
                object(config, "Volumes").insert(v, json!({}));
            }
        }
        "USER" => {
            config.insert("User".into(), json!(one(rest, &env, "USER")?));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(one(rest, &env, "STOPSIGNAL")?));
        }
        "WORKDIR" => {
            let dir = one(rest, &env, "WORKDIR")?;
            let cur = config
                .get("WorkingDir")
                .and_then(Value::as_str)
                .unwrap_or("/")
                .to_string();
            let joined = if dir.starts_with('/') {
                dir
            } else {
                format!("{}/{dir}", cur.trim_end_matches('/'))
            };
            config.insert("WorkingDir".into(), json!(joined));
        }
        "ONBUILD" => {
            if rest.is_empty() {
                bail!("ONBUILD needs an instruction");
            }
            let list = config.entry("OnBuild").or_insert_with(|| json!([]));
            if !list.is_array() {
                *list = json!([]);
            }
            if let Some(a) = list.as_array_mut() {
                a.push(json!(rest));
            }
        }
        "" => bail!("empty change"),
        other => bail!("{other} is not a valid change command"),
    }
    Ok(())
}

fn env_of(config: &Map<String, Value>) -> Vec<String> {
    config
        .get("Env")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// The object at `key` (made when missing or null).
fn object<'a>(config: &'a mut Map<String, Value>, key: &str) -> &'a mut Map<String, Value> {
    let v = config.entry(key).or_insert_with(|| json!({}));
    if !v.is_object() {
        *v = json!({});
    }
    v.as_object_mut().expect("just made an object")
}

/// Exec form (a JSON array of strings) or shell form (`/bin/sh -c`).
fn command(rest: &str) -> Result<Vec<String>> {
    if rest.is_empty() {
        bail!("a command is needed");
    }
    Ok(json_array(rest).unwrap_or_else(|| vec!["/bin/sh".into(), "-c".into(), rest.into()]))
}

fn json_array(rest: &str) -> Option<Vec<String>> {
    rest.starts_with('[')
        .then(|| serde_json::from_str::<Vec<String>>(rest).ok())
        .flatten()
}

fn one(rest: &str, env: &[String], what: &str) -> Result<String> {
    match words(rest, env)?.as_slice() {
        [w] => Ok(w.clone()),
        _ => bail!("{what} takes exactly one argument"),
    }
}

/// `k=v k2="v 2"`, or the old `k some value` form (one pair).
fn pairs(rest: &str, env: &[String], what: &str) -> Result<Vec<(String, String)>> {
    let ws = words(rest, env)?;
    if ws.is_empty() {
        bail!("{what} needs at least one argument");
    }
    if !ws[0].contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or_else(|| anyhow::anyhow!("{what} {} needs a value", ws[0]))?;
        return Ok(vec![(k.to_string(), substitute(v.trim(), env)?)]);
    }
    ws.into_iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => bail!("{what} names must be followed by '=' and a value: {w:?}"),
        })
        .collect()
}

/// Split on blanks, with `"…"`, `'…'` and backslash escapes as a
/// Dockerfile has them; `$VAR`s substituted outside single quotes.
pub fn words(s: &str, env: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => bail!("unterminated single quote"),
                    }
                }
            }
            '"' => {
                in_word = true;
                let mut raw = String::new();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\' | '$')) => raw.push_str(&format!("\\{c}")),
                            Some(c) => {
                                raw.push('\\');
                                raw.push(c);
                            }
                            None => bail!("unterminated double quote"),
                        },
                        Some(c) => raw.push(c),
                        None => bail!("unterminated double quote"),
                    }
                }
                cur.push_str(&substitute(&raw, env)?);
            }
            _ => {
                in_word = true;
                let mut raw = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n.is_whitespace() || n == '"' || n == '\'' {
                        break;
                    }
                    raw.push(n);
                    chars.next();
                }
                cur.push_str(&substitute(&raw, env)?);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

/// `$VAR`, `${VAR}`, `${VAR:-default}`, `${VAR:+alt}`; `\$` and `\\` escaped.
pub fn substitute(s: &str, env: &[String]) -> Result<String> {
    let lookup = |name: &str| {
        env.iter()
            .rev()
            .find_map(|e| e.strip_prefix(name)?.strip_prefix('='))
            .map(String::from)
    };
    let mut out = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => out.push(n),
                None => out.push('\\'),
            },
            '$' if chars.peek() == Some(&'{') => {
                chars.next();
                let mut inner = String::new();
                loop {
                    match chars.next() {
                        Some('}') => break,
                        Some(c) => inner.push(c),
                        None => bail!("missing '}}' in {s:?}"),
                    }
                }
                let (name, op) = match inner.find(':') {
                    Some(i) => (&inner[..i], Some(&inner[i..])),
                    None => (inner.as_str(), None),
                };
                let val = lookup(name).filter(|v| !v.is_empty());
                out.push_str(&match op {
                    None => val.unwrap_or_default(),
                    Some(o) if o.starts_with(":-") => val.unwrap_or_else(|| o[2..].to_string()),
                    Some(o) if o.starts_with(":+") => {
                        val.map(|_| o[2..].to_string()).unwrap_or_default()
                    }
                    Some(o) => bail!("unsupported modifier {o:?} in {s:?}"),
                });
            }
            '$' if chars
                .peek()
                .is_some_and(|n| n.is_ascii_alphabetic() || *n == '_') =>
            {
                let mut name = String::new();
                while let Some(&n) = chars.peek() {
                    if !(n.is_ascii_alphanumeric() || n == '_') {
                        break;
                    }
                    name.push(n);
                    chars.next();
                }
                out.push_str(&lookup(&name).unwrap_or_default());
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn applied(base: Value, changes: &[&str]) -> Value {
        let mut m = base.as_object().unwrap().clone();
        let changes: Vec<String> = changes.iter().map(|s| s.to_string()).collect();
        apply(&mut m, &changes).unwrap();
        Value::Object(m)
    }

    #[test]
    fn changes_set_the_config_as_docker_does() {
        let c = applied(
            json!({"Env": ["PATH=/bin", "HOME=/root"], "Cmd": ["sh"], "WorkingDir": "/srv"}),
            &[
                "ENV GREETING=\"hello world\" HOME=/home/x",
                "ENV OLD some value",
                "LABEL a=1 \"b c\"=${GREETING:-none} d=${NOPE:-dflt} e=${HOME:+set}",
                "EXPOSE 80 53/UDP",
                "VOLUME [\"/data\", \"/logs\"]",
                "workdir app",
                "USER nobody",
                "STOPSIGNAL SIGINT",
                "CMD [\"echo\", \"hi\"]",
                "ENTRYPOINT /bin/run $HOME",
            ],
        );
        assert_eq!(
            c["Env"],
            json!([
                "PATH=/bin",
                "GREETING=hello world",
                "HOME=/home/x",
                "OLD=some value"
            ])
        );
        assert_eq!(
            c["Labels"],
            json!({"a": "1", "b c": "hello world", "d": "dflt", "e": "set"})
        );
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["Volumes"], json!({"/data": {}, "/logs": {}}));
        assert_eq!(c["WorkingDir"], "/srv/app");
        assert_eq!(c["User"], "nobody");
        assert_eq!(c["StopSignal"], "SIGINT");
        // CMD came first, so ENTRYPOINT keeps it; shell form unexpanded.
        assert_eq!(c["Cmd"], json!(["echo", "hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/run $HOME"]));
    }

    #[test]
    fn an_entrypoint_alone_drops_the_old_command() {
        let c = applied(json!({"Cmd": ["sh"]}), &["ENTRYPOINT [\"top\"]"]);
        assert_eq!(c["Cmd"], Value::Null);
    }

    #[test]
    fn bad_changes_are_named() {
        let mut m = Map::new();
        for (bad, why) in [
            ("RUN make", "RUN is not a valid change command"),
            ("EXPOSE http", "invalid port"),
            ("LABEL =x", "must be followed by '='"),
            ("ENV A=\"open", "unterminated double quote"),
            ("USER a b", "exactly one argument"),
        ] {
            let e = apply(&mut m, &[bad.to_string()]).unwrap_err().to_string();
            assert!(
                e.contains(why) && e.contains(&format!("{bad:?}")),
                "{bad}: {e}"
            );
        }
    }
}
