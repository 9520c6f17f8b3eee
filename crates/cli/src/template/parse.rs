//! The parser: tokens into a tree of text, actions and `if`/`range`/`with`
//! blocks. Nesting (blocks and parentheses) is capped, so a hostile
//! template cannot overflow the stack here or in the evaluator.

use serde_json::Value;

use super::Error;
use super::funcs;
use super::lex::{Spanned, Tok};

/// Deepest nesting of blocks and parentheses accepted.
const MAX_DEPTH: usize = 64;

#[derive(Debug)]
pub enum Node {
    Text(String),
    Action(Pipeline),
    If(Pipeline, Vec<Node>, Vec<Node>),
    Range(Pipeline, Vec<Node>, Vec<Node>),
    With(Pipeline, Vec<Node>, Vec<Node>),
}

#[derive(Debug)]
pub struct Pipeline {
    /// `$x :=` (or `$k, $v :=` in a range): the variables it declares.
    pub decl: Vec<String>,
    /// `$x = …`: assigns an existing variable rather than declaring one.
    pub assign: bool,
    pub cmds: Vec<Cmd>,
}

#[derive(Debug)]
pub struct Cmd {
    pub args: Vec<Arg>,
    /// Byte offset in the template, for errors.
    pub pos: usize,
    /// The command as written, for errors (`<.Foo>`).
    pub text: String,
}

#[derive(Debug)]
pub enum Arg {
    Field(Vec<String>),
    Var(String, Vec<String>),
    Func(String),
    Lit(Value),
    Sub(Box<Pipeline>, Vec<String>),
}

/// How a list of nodes ended.
enum Stop {
    Eof,
    End,
    Else,
    ElseIf,
}

pub struct Parser<'s> {
    src: &'s str,
    toks: Vec<Spanned>,
    at: usize,
    depth: usize,
}

impl<'s> Parser<'s> {
    pub fn new(src: &'s str, toks: Vec<Spanned>) -> Parser<'s> {
        Parser {
            src,
            toks,
            at: 0,
            depth: 0,
        }
    }

    pub fn parse(mut self) -> Result<Vec<Node>, Error> {
        let (nodes, end) = self.list()?;
        match end {
            Stop::Eof => Ok(nodes),
            Stop::End => Err(self.err_prev("unexpected {{end}}")),
            Stop::Else | Stop::ElseIf => Err(self.err_prev("unexpected {{else}}")),
        }
    }

    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.at).map(|t| &t.0)
    }

    fn pos(&self) -> usize {
        self.toks
            .get(self.at)
            .or(self.toks.last())
            .map_or(0, |t| t.1)
    }

    fn err(&self, msg: &str) -> Error {
        Error::parse_at(self.src, self.pos()).msg(msg)
    }

    fn err_prev(&self, msg: &str) -> Error {
        let p = self.toks.get(self.at.saturating_sub(1)).map_or(0, |t| t.1);
        Error::parse_at(self.src, p).msg(msg)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.at).map(|t| t.0.clone());
        self.at += 1;
        t
    }

    fn expect_close(&mut self, what: &str) -> Result<(), Error> {
        match self.next() {
            Some(Tok::Close) => Ok(()),
            _ => Err(self.err_prev(&format!("unexpected token in {what}"))),
        }
    }

    fn enter(&mut self) -> Result<(), Error> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("template nests too deeply"));
        }
        Ok(())
    }

    /// Nodes up to the end of the template or of the enclosing block.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), Error> {
        let mut nodes = Vec::new();
        loop {
            match self.next() {
                None => return Ok((nodes, Stop::Eof)),
                Some(Tok::Text(t)) => nodes.push(Node::Text(t)),
                Some(Tok::Open) => {
                    let kw = match self.peek() {
                        Some(Tok::Ident(w)) => w.clone(),
                        _ => String::new(),
                    };
                    match kw.as_str() {
                        "end" => {
                            self.at += 1;
                            self.expect_close("end")?;
                            return Ok((nodes, Stop::End));
                        }
                        "else" => {
                            self.at += 1;
                            if self.peek() == Some(&Tok::Ident("if".into())) {
                                self.at += 1;
                                return Ok((nodes, Stop::ElseIf));
                            }
                            self.expect_close("else")?;
                            return Ok((nodes, Stop::Else));
                        }
                        "if" | "range" | "with" => {
                            self.at += 1;
                            nodes.push(self.block(&kw)?);
                        }
                        "define" | "template" | "block" | "break" | "continue" => {
                            return Err(self.err(&format!("{{{{{kw}}}}} is not supported")));
                        }
                        _ => {
                            let p = self.pipeline("command", false)?;
                            self.expect_close("command")?;
                            nodes.push(Node::Action(p));
                        }
                    }
                }
                Some(_) => return Err(self.err_prev("unexpected token")),
            }
        }
    }

    /// `if`/`range`/`with` after its keyword, through its `{{end}}`.
    fn block(&mut self, kw: &str) -> Result<Node, Error> {
        self.enter()?;
        let cond = self.pipeline(kw, kw == "range")?;
        self.expect_close(kw)?;
        let (body, end) = self.list()?;
        let els = match end {
            Stop::Eof => return Err(self.err("unexpected EOF")),
            Stop::End => vec![],
            Stop::Else => match self.list()? {
                (els, Stop::End) => els,
                (_, Stop::Eof) => return Err(self.err("unexpected EOF")),
                _ => return Err(self.err_prev("expected end; found {{else}}")),
            },
            // `{{else if …}}`: an `if` inside the else that shares the `{{end}}`.
            Stop::ElseIf => vec![self.block("if")?],
        };
        self.depth -= 1;
        Ok(match kw {
            "if" => Node::If(cond, body, els),
            "range" => Node::Range(cond, body, els),
            _ => Node::With(cond, body, els),
        })
    }

    fn pipeline(&mut self, ctx: &str, range: bool) -> Result<Pipeline, Error> {
        let mut decl = Vec::new();
        let mut assign = false;
        // `$x :=`, `$x =`, and in a range `$i, $e :=`.
        let t = &self.toks[self.at.min(self.toks.len())..];
        let var = |i: usize| match t.get(i) {
            Some((Tok::Var(n, f), _)) if f.is_empty() => Some(n.clone()),
            _ => None,
        };
        let tok = |i: usize| t.get(i).map(|t| &t.0);
        if let Some(v) = var(0) {
            match tok(1) {
                Some(Tok::Declare) => {
                    decl.push(v);
                    self.at += 2;
                }
                Some(Tok::Assign) => {
                    decl.push(v);
                    assign = true;
                    self.at += 2;
                }
                Some(Tok::Comma) if range => {
                    let Some(w) = var(2) else {
                        return Err(self.err("range can only initialize variables"));
                    };
                    if tok(3) != Some(&Tok::Declare) {
                        return Err(self.err("range can only initialize variables"));
                    }
                    decl.push(v);
                    decl.push(w);
                    self.at += 4;
                }
                _ => {}
            }
        }
        let mut cmds = Vec::new();
        loop {
            cmds.push(self.command()?);
            if self.peek() == Some(&Tok::Pipe) {
                self.at += 1;
                continue;
            }
            break;
        }
        if cmds.is_empty() {
            return Err(self.err(&format!("missing value for {ctx}")));
        }
        Ok(Pipeline { decl, assign, cmds })
    }

    fn command(&mut self) -> Result<Cmd, Error> {
        let pos = self.pos();
        let mut args = Vec::new();
        loop {
            match self.peek() {
                None | Some(Tok::Close | Tok::RParen | Tok::Pipe) => break,
                _ => args.push(self.operand()?),
            }
        }
        if args.is_empty() {
            return Err(self.err("missing value for command"));
        }
        let end = self.pos().max(pos);
        let text = self.src.get(pos..end).unwrap_or("").trim().to_string();
        Ok(Cmd { args, pos, text })
    }

    fn operand(&mut self) -> Result<Arg, Error> {
        Ok(match self.next() {
            Some(Tok::Field(f)) => Arg::Field(f),
            Some(Tok::Var(n, f)) => Arg::Var(n, f),
            Some(Tok::Str(s)) => Arg::Lit(Value::String(s)),
            Some(Tok::Num(n)) => Arg::Lit(Value::Number(n)),
            Some(Tok::Ident(w)) => match w.as_str() {
                "true" => Arg::Lit(Value::Bool(true)),
                "false" => Arg::Lit(Value::Bool(false)),
                "nil" => Arg::Lit(Value::Null),
                f if funcs::exists(f) => Arg::Func(w),
                _ => return Err(self.err_prev(&format!("function {w:?} not defined"))),
            },
            Some(Tok::LParen) => {
                self.enter()?;
                let p = self.pipeline("parenthesized pipeline", false)?;
                if self.next() != Some(Tok::RParen) {
                    return Err(self.err_prev("unclosed left paren"));
                }
                self.depth -= 1;
                let chain = match self.peek() {
                    Some(Tok::Chain(c)) => {
                        let c = c.clone();
                        self.at += 1;
                        c
                    }
                    _ => vec![],
                };
                Arg::Sub(Box::new(p), chain)
            }
            _ => return Err(self.err_prev("unexpected token in operand")),
        })
    }
}
