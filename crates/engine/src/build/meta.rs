//! The instructions that change only the config: those of
//! [`crate::instructions`], SHELL and HEALTHCHECK; each adds a history
//! entry without a layer and moves the cache key on by the config after it.

use anyhow::{Result, anyhow, bail};
use serde_json::{Map, Value, json};

use super::cache::key;
use super::dockerfile::{Args, Instruction};
use super::state::State;

/// A config-only instruction through [`crate::instructions`].
pub(super) fn meta(st: &mut State, inst: &Instruction) -> Result<()> {
    let text = match (&inst.args, inst.keyword.as_str()) {
        (Args::Shell(t), "CMD" | "ENTRYPOINT") if !t.is_empty() => {
            let argv = [st.shell(), vec![t.clone()]].concat();
            format!("{} {}", inst.keyword, serde_json::to_string(&argv)?)
        }
        _ => inst.text(),
    };
    let args = st.args.clone();
    let mut cmd_set = st.cmd_set;
    crate::instructions::apply_instruction(st.inner(), &text, &args, &mut cmd_set)?;
    st.cmd_set = cmd_set || inst.keyword == "CMD";
    // The config after it: the instruction with its `$VAR`s substituted.
    let after = serde_json::to_string(&st.config.get("config"))?;
    st.key = key(&st.key, &[&text, &after]);
    st.push_history(&format!("{text} # buildkit"), true, None);
    st.dirty = true;
    Ok(())
}

/// `HEALTHCHECK [--interval=D …] CMD …` or `HEALTHCHECK NONE`: the
/// config's Healthcheck, durations in nanoseconds, unset ones left out.
pub(super) fn healthcheck(st: &mut State, inst: &Instruction) -> Result<()> {
    let rest = inst.shell_text();
    let (word, cmd) = rest
        .split_once(char::is_whitespace)
        .map(|(w, c)| (w, c.trim()))
        .unwrap_or((rest.as_str(), ""));
    let mut h = Map::new();
    match word.to_ascii_uppercase().as_str() {
        "NONE" if cmd.is_empty() && inst.flags.is_empty() => {
            h.insert("Test".into(), json!(["NONE"]));
        }
        "NONE" => bail!("HEALTHCHECK NONE takes no arguments"),
        "CMD" if !cmd.is_empty() => {
            let test = match super::dockerfile::json_form(cmd) {
                Some(v) => [vec!["CMD".to_string()], v].concat(),
                None => vec!["CMD-SHELL".to_string(), cmd.to_string()],
            };
            h.insert("Test".into(), json!(test));
            for (k, v) in &inst.flags {
                let (name, value) = match k.as_str() {
                    "interval" => ("Interval", json!(crate::health::parse_go_duration(v)?)),
                    "timeout" => ("Timeout", json!(crate::health::parse_go_duration(v)?)),
                    "start-period" => ("StartPeriod", json!(crate::health::parse_go_duration(v)?)),
                    "start-interval" => {
                        ("StartInterval", json!(crate::health::parse_go_duration(v)?))
                    }
                    "retries" => (
                        "Retries",
                        json!(
                            v.parse::<u32>()
                                .map_err(|_| anyhow!("invalid --retries={v}"))?
                        ),
                    ),
                    other => bail!("unknown flag: --{other}"),
                };
                h.insert(name.into(), value);
            }
        }
        _ => bail!("HEALTHCHECK needs CMD and a command, or NONE"),
    }
    st.inner().insert("Healthcheck".into(), Value::Object(h));
    let after = serde_json::to_string(&st.get("Healthcheck"))?;
    st.key = key(&st.key, &[&inst.text(), &after]);
    st.push_history(&format!("{} # buildkit", inst.text()), true, None);
    st.dirty = true;
    Ok(())
}

/// `SHELL ["…", …]` (exec form only, as in Docker).
pub(super) fn shell(st: &mut State, inst: &Instruction) -> Result<()> {
    let Args::Exec(v) = &inst.args else {
        bail!("SHELL requires the arguments to be in JSON form");
    };
    if v.is_empty() {
        bail!("SHELL requires at least one argument");
    }
    st.inner().insert("Shell".into(), json!(v));
    st.key = key(&st.key, &["SHELL", &serde_json::to_string(v)?]);
    st.push_history(&format!("{} # buildkit", inst.text()), true, None);
    st.dirty = true;
    Ok(())
}
