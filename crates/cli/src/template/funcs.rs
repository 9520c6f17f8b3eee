//! The functions a template may call: the docker CLI's (json, join,
//! split, title, lower, upper, pad, truncate) and Go's builtins berth has
//! (index, len, print, printf, println, eq, ne, lt, le, gt, ge, and, or, not).

use serde_json::Value;

use super::Val;
use super::exec::{go_type, print_string, truthy};

const NAMES: &[&str] = &[
    "json", "join", "split", "title", "lower", "upper", "pad", "truncate", "index", "len", "print",
    "printf", "println", "eq", "ne", "lt", "le", "gt", "ge", "and", "or", "not",
];

pub fn exists(name: &str) -> bool {
    NAMES.contains(&name)
}

fn want(args: &[Val], n: usize) -> Result<(), String> {
    if args.len() != n {
        return Err(format!("wrong number of args: want {n} got {}", args.len()));
    }
    Ok(())
}

fn string_arg(v: &Val) -> Result<String, String> {
    match v {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => Err(format!(
            "wrong type for value; expected string; got {}",
            go_type(other)
        )),
        None => Err("invalid value; expected string".into()),
    }
}

fn int_arg(v: &Val) -> Result<i64, String> {
    match v {
        Some(Value::Number(n)) => n.as_i64().ok_or_else(|| "expected an integer".into()),
        Some(other) => Err(format!(
            "wrong type for value; expected int; got {}",
            go_type(other)
        )),
        None => Err("invalid value; expected int".into()),
    }
}

fn s(v: String) -> Result<Val, String> {
    Ok(Some(Value::String(v)))
}

pub fn call(name: &str, args: Vec<Val>) -> Result<Val, String> {
    match name {
        "json" => {
            want(&args, 1)?;
            s(
                serde_json::to_string(args[0].as_ref().unwrap_or(&Value::Null))
                    .map_err(|e| e.to_string())?,
            )
        }
        "join" => {
            want(&args, 2)?;
            let sep = string_arg(&args[1])?;
            match &args[0] {
                Some(Value::Array(a)) => s(a
                    .iter()
                    .map(|e| print_string(&Some(e.clone())))
                    .collect::<Vec<_>>()
                    .join(&sep)),
                Some(Value::Null) | None => s(String::new()),
                Some(o) => Err(format!(
                    "wrong type for value; expected []string; got {}",
                    go_type(o)
                )),
            }
        }
        "split" => {
            want(&args, 2)?;
            let (text, sep) = (string_arg(&args[0])?, string_arg(&args[1])?);
            let parts: Vec<Value> = if sep.is_empty() {
                text.chars().map(|c| Value::String(c.to_string())).collect()
            } else {
                text.split(sep.as_str())
                    .map(|p| Value::String(p.into()))
                    .collect()
            };
            Ok(Some(Value::Array(parts)))
        }
        "title" => {
            want(&args, 1)?;
            s(title(&string_arg(&args[0])?))
        }
        "lower" => {
            want(&args, 1)?;
            s(string_arg(&args[0])?.to_lowercase())
        }
        "upper" => {
            want(&args, 1)?;
            s(string_arg(&args[0])?.to_uppercase())
        }
        "pad" => {
            want(&args, 3)?;
            let (l, r) = (
                int_arg(&args[1])?.clamp(0, 4096),
                int_arg(&args[2])?.clamp(0, 4096),
            );
            s(format!(
                "{}{}{}",
                " ".repeat(l as usize),
                string_arg(&args[0])?,
                " ".repeat(r as usize)
            ))
        }
        "truncate" => {
            want(&args, 2)?;
            let n = int_arg(&args[1])?.max(0) as usize;
            s(string_arg(&args[0])?.chars().take(n).collect())
        }
        "index" => index(args),
        "len" => {
            want(&args, 1)?;
            let n = match &args[0] {
                Some(Value::String(t)) => t.len(),
                Some(Value::Array(a)) => a.len(),
                Some(Value::Object(m)) => m.len(),
                Some(o) => return Err(format!("len of type {}", go_type(o))),
                None => return Err("len of nil pointer".into()),
            };
            Ok(Some(Value::from(n)))
        }
        "print" => s(sprint(&args)),
        "println" => {
            let parts: Vec<String> = args.iter().map(print_string).collect();
            s(parts.join(" ") + "\n")
        }
        "printf" => {
            let Some((f, rest)) = args.split_first() else {
                return Err("wrong number of args: want at least 1 got 0".into());
            };
            s(printf(&string_arg(f)?, rest))
        }
        "eq" | "ne" | "lt" | "le" | "gt" | "ge" => compare(name, &args),
        "and" => Ok(args
            .iter()
            .find(|a| !truthy(a))
            .or(args.last())
            .cloned()
            .flatten()),
        "or" => Ok(args
            .iter()
            .find(|a| truthy(a))
            .or(args.last())
            .cloned()
            .flatten()),
        "not" => {
            want(&args, 1)?;
            Ok(Some(Value::Bool(!truthy(&args[0]))))
        }
        _ => Err(format!("function {name:?} not defined")),
    }
}

/// Go's strings.Title: each word's first letter upper-cased.
fn title(t: &str) -> String {
    let mut out = String::with_capacity(t.len());
    let mut start = true;
    for c in t.chars() {
        if start && c.is_alphabetic() {
            out.extend(c.to_uppercase());
        } else {
            out.push(c);
        }
        start = !(c.is_alphanumeric() || c == '_' || c == '\'');
    }
    out
}

fn index(args: Vec<Val>) -> Result<Val, String> {
    let mut it = args.into_iter();
    let mut v = it
        .next()
        .ok_or("wrong number of args for index: want at least 1 got 0")?;
    for k in it {
        v = match (v, k) {
            (Some(Value::Object(mut m)), Some(Value::String(k))) => {
                // Go gives a missing key the map's zero value: "" for the
                // string maps (labels) scripts index.
                let strings = m.values().all(Value::is_string);
                Some(m.remove(&k).unwrap_or(if strings {
                    Value::String(String::new())
                } else {
                    Value::Null
                }))
            }
            (Some(Value::Array(mut a)), Some(Value::Number(n))) => {
                let i = n
                    .as_u64()
                    .filter(|&i| (i as usize) < a.len())
                    .ok_or_else(|| format!("index out of range: {n}"))?;
                Some(a.swap_remove(i as usize))
            }
            (Some(Value::String(t)), Some(Value::Number(n))) => {
                let i = n
                    .as_u64()
                    .filter(|&i| (i as usize) < t.len())
                    .ok_or_else(|| format!("index out of range: {n}"))?;
                Some(Value::from(t.as_bytes()[i as usize]))
            }
            (None | Some(Value::Null), _) => return Err("index of untyped nil".into()),
            (Some(o), _) => return Err(format!("can't index item of type {}", go_type(&o))),
        };
    }
    Ok(v)
}

/// Go's fmt.Sprint: a space between operands when neither is a string.
fn sprint(args: &[Val]) -> String {
    let mut out = String::new();
    for (i, a) in args.iter().enumerate() {
        let is_str = |v: &Val| matches!(v, Some(Value::String(_)));
        if i > 0 && !is_str(a) && !is_str(&args[i - 1]) {
            out.push(' ');
        }
        out.push_str(&print_string(a));
    }
    out
}

/// Go's Printf for the verbs scripts use: %s %v %d %q %t %%, with a width
/// and `-` for left alignment.
fn printf(f: &str, args: &[Val]) -> String {
    let mut out = String::new();
    let mut next = args.iter();
    let mut chars = f.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            if d == '-' {
                left = true;
            } else if d.is_ascii_digit() && width.len() < 4 {
                width.push(d);
            } else if !"+ #0".contains(d) {
                break;
            }
            chars.next();
        }
        let Some(verb) = chars.next() else {
            out.push_str("%!(NOVERB)");
            break;
        };
        if verb == '%' {
            out.push('%');
            continue;
        }
        let cell = match next.next() {
            None => format!("%!{verb}(MISSING)"),
            Some(a) => match verb {
                'q' => serde_json::to_string(&print_string(a)).unwrap_or_default(),
                's' | 'v' | 'd' | 't' => print_string(a),
                _ => format!("%!{verb}({})", print_string(a)),
            },
        };
        let w: usize = width.parse().unwrap_or(0);
        let pad = " ".repeat(w.saturating_sub(cell.chars().count()));
        if left {
            out.push_str(&cell);
            out.push_str(&pad);
        } else {
            out.push_str(&pad);
            out.push_str(&cell);
        }
    }
    out
}

fn compare(op: &str, args: &[Val]) -> Result<Val, String> {
    if args.len() < 2 {
        return Err("missing argument for comparison".into());
    }
    let ord = |a: &Val, b: &Val| -> Result<std::cmp::Ordering, String> {
        match (a, b) {
            (Some(Value::Number(x)), Some(Value::Number(y))) => {
                let (x, y) = (x.as_f64().unwrap_or(0.0), y.as_f64().unwrap_or(0.0));
                x.partial_cmp(&y)
                    .ok_or_else(|| "incomparable numbers".into())
            }
            (Some(Value::String(x)), Some(Value::String(y))) => Ok(x.cmp(y)),
            (Some(Value::Bool(x)), Some(Value::Bool(y))) if op == "eq" || op == "ne" => {
                Ok(x.cmp(y))
            }
            (None | Some(Value::Null), None | Some(Value::Null)) if op == "eq" || op == "ne" => {
                Ok(std::cmp::Ordering::Equal)
            }
            _ => Err("incompatible types for comparison".into()),
        }
    };
    use std::cmp::Ordering::*;
    let r = match op {
        // eq a b c: a equals any of b, c.
        "eq" => {
            let mut any = false;
            for b in &args[1..] {
                any |= ord(&args[0], b)? == Equal;
            }
            any
        }
        "ne" => ord(&args[0], &args[1])? != Equal,
        "lt" => ord(&args[0], &args[1])? == Less,
        "le" => ord(&args[0], &args[1])? != Greater,
        "gt" => ord(&args[0], &args[1])? == Greater,
        _ => ord(&args[0], &args[1])? != Less,
    };
    Ok(Some(Value::Bool(r)))
}
