//! Evaluating a parsed template against a JSON value, with Go's rules for
//! what prints how (`<no value>`, `<nil>`, `map[k:v]`, `[a b]`) and what is
//! true.

use serde_json::Value;

use super::parse::{Arg, Cmd, Node, Pipeline};
use super::{Error, Options, Val, funcs};

pub struct Exec<'a> {
    pub src: &'a str,
    pub root: &'a Value,
    pub opts: &'a Options<'a>,
    pub vars: Vec<(String, Val)>,
    pub out: String,
}

impl Exec<'_> {
    fn fail(&self, cmd: &Cmd, msg: &str) -> Error {
        let before = &self.src[..cmd.pos.min(self.src.len())];
        let line = 1 + before.matches('\n').count();
        let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1);
        Error(format!(
            "template: :{line}:{col}: executing \"\" at <{}>: {msg}",
            cmd.text
        ))
    }

    pub fn list(&mut self, nodes: &[Node], dot: &Val) -> Result<(), Error> {
        for n in nodes {
            match n {
                Node::Text(t) => self.out.push_str(t),
                Node::Action(p) => {
                    let v = self.pipeline(p, dot)?;
                    if p.decl.is_empty() {
                        print(&mut self.out, &v);
                    }
                }
                Node::If(p, then, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    self.list(if truthy(&v) { then } else { els }, dot)?;
                    self.vars.truncate(mark);
                }
                Node::With(p, body, els) => {
                    let mark = self.vars.len();
                    let v = self.pipeline(p, dot)?;
                    if truthy(&v) {
                        self.list(body, &v)?;
                    } else {
                        self.list(els, dot)?;
                    }
                    self.vars.truncate(mark);
                }
                Node::Range(p, body, els) => self.range(p, body, els, dot)?,
            }
        }
        Ok(())
    }

    fn range(&mut self, p: &Pipeline, body: &[Node], els: &[Node], dot: &Val) -> Result<(), Error> {
        let mark = self.vars.len();
        let v = self.pipeline_value(p, dot)?;
        let items: Vec<(Value, Value)> = match &v {
            Some(Value::Array(a)) => a
                .iter()
                .enumerate()
                .map(|(i, e)| (Value::from(i), e.clone()))
                .collect(),
            Some(Value::Object(m)) => m
                .iter()
                .map(|(k, e)| (Value::String(k.clone()), e.clone()))
                .collect(),
            Some(Value::Number(n)) if n.as_u64().is_some() => (0..n.as_u64().unwrap_or(0))
                .map(|i| (Value::from(i), Value::from(i)))
                .collect(),
            None | Some(Value::Null) => vec![],
            Some(other) => {
                return Err(self.fail(
                    &p.cmds[0],
                    &format!(
                        "range can't iterate over {}",
                        print_string(&Some(other.clone()))
                    ),
                ));
            }
        };
        if items.is_empty() {
            self.list(els, dot)?;
        }
        for (k, e) in items {
            match p.decl.as_slice() {
                [v] => self.vars.push((v.clone(), Some(e.clone()))),
                [kv, vv] => {
                    self.vars.push((kv.clone(), Some(k)));
                    self.vars.push((vv.clone(), Some(e.clone())));
                }
                _ => {}
            }
            self.list(body, &Some(e))?;
            self.vars.truncate(mark);
        }
        self.vars.truncate(mark);
        Ok(())
    }

    /// A pipeline's value, its declarations made.
    fn pipeline(&mut self, p: &Pipeline, dot: &Val) -> Result<Val, Error> {
        let v = self.pipeline_value(p, dot)?;
        if let [name] = p.decl.as_slice() {
            if p.assign {
                match self.vars.iter_mut().rev().find(|(n, _)| n == name) {
                    Some(slot) => slot.1 = v.clone(),
                    None => {
                        return Err(self.fail(&p.cmds[0], &format!("undefined variable: ${name}")));
                    }
                }
            } else {
                self.vars.push((name.clone(), v.clone()));
            }
        }
        Ok(v)
    }

    fn pipeline_value(&mut self, p: &Pipeline, dot: &Val) -> Result<Val, Error> {
        let mut prev: Option<Val> = None;
        for c in &p.cmds {
            prev = Some(self.command(c, dot, prev)?);
        }
        Ok(prev.unwrap_or(None))
    }

    fn command(&mut self, c: &Cmd, dot: &Val, piped: Option<Val>) -> Result<Val, Error> {
        let rest = &c.args[1..];
        let mut args = Vec::with_capacity(rest.len() + 1);
        for a in rest {
            args.push(self.arg(c, a, dot)?);
        }
        args.extend(piped);
        match &c.args[0] {
            Arg::Func(f) => {
                funcs::call(f, args).map_err(|m| self.fail(c, &format!("error calling {f}: {m}")))
            }
            Arg::Field(path) if !args.is_empty() => {
                let name = path.last().cloned().unwrap_or_default();
                let method = (path.len() == 1)
                    .then_some(self.opts.methods)
                    .flatten()
                    .and_then(|m| m(&name, &args));
                match method {
                    Some(r) => r.map_err(|m| self.fail(c, &m)),
                    None => Err(self.fail(c, &format!("{name} is not a method but has arguments"))),
                }
            }
            a if !args.is_empty() => {
                let _ = a;
                Err(self.fail(
                    c,
                    &format!("can't give argument to non-function {}", c.args_text()),
                ))
            }
            a => self.arg(c, a, dot),
        }
    }

    fn arg(&mut self, c: &Cmd, a: &Arg, dot: &Val) -> Result<Val, Error> {
        match a {
            Arg::Field(path) => self.walk(c, dot.clone(), path),
            Arg::Var(name, path) => {
                let v = if name.is_empty() {
                    Some(self.root.clone())
                } else {
                    match self.vars.iter().rev().find(|(n, _)| n == name) {
                        Some((_, v)) => v.clone(),
                        None => return Err(self.fail(c, &format!("undefined variable: ${name}"))),
                    }
                };
                self.walk(c, v, path)
            }
            Arg::Func(f) => {
                funcs::call(f, vec![]).map_err(|m| self.fail(c, &format!("error calling {f}: {m}")))
            }
            Arg::Lit(v) => Ok(Some(v.clone())),
            Arg::Sub(p, path) => {
                let v = self.pipeline(p, dot)?;
                self.walk(c, v, path)
            }
        }
    }

    fn walk(&self, c: &Cmd, mut v: Val, path: &[String]) -> Result<Val, Error> {
        for name in path {
            v = match v {
                Some(Value::Object(mut m)) => match m.remove(name) {
                    Some(x) => Some(x),
                    None => match self.opts.strict {
                        Some(ty) => {
                            return Err(
                                self.fail(c, &format!("can't evaluate field {name} in type {ty}"))
                            );
                        }
                        None => None,
                    },
                },
                None | Some(Value::Null) => None,
                Some(other) => {
                    return Err(self.fail(
                        c,
                        &format!("can't evaluate field {name} in type {}", go_type(&other)),
                    ));
                }
            };
        }
        Ok(v)
    }
}

impl Cmd {
    fn args_text(&self) -> &str {
        self.text.split_whitespace().next().unwrap_or("")
    }
}

/// Go's name of a JSON value's type, for errors.
pub fn go_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "interface {}",
        Value::Bool(_) => "bool",
        Value::Number(_) => "float64",
        Value::String(_) => "string",
        Value::Array(_) => "[]interface {}",
        Value::Object(_) => "map[string]interface {}",
    }
}

/// Go's truth: false, 0, nil, and empty strings, arrays and maps are false.
pub fn truthy(v: &Val) -> bool {
    match v {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|f| f != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(Value::Array(a)) => !a.is_empty(),
        Some(Value::Object(m)) => !m.is_empty(),
    }
}

pub fn print_string(v: &Val) -> String {
    let mut s = String::new();
    print(&mut s, v);
    s
}

/// What Go's fmt prints for a value (`{{.X}}`): strings bare, maps as
/// `map[k:v …]` (keys sorted), arrays as `[a b]`.
pub fn print(out: &mut String, v: &Val) {
    match v {
        None => out.push_str("<no value>"),
        Some(v) => print_value(out, v),
    }
}

fn print_value(out: &mut String, v: &Value) {
    match v {
        Value::Null => out.push_str("<nil>"),
        Value::String(s) => out.push_str(s),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&n.to_string()),
        Value::Array(a) => {
            out.push('[');
            for (i, e) in a.iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                print_value(out, e);
            }
            out.push(']');
        }
        Value::Object(m) => {
            out.push_str("map[");
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(' ');
                }
                out.push_str(k);
                out.push(':');
                print_value(out, &m[k]);
            }
            out.push(']');
        }
    }
}
