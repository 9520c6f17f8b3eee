//! Go text/template's lexer, for the subset berth evaluates: text and
//! `{{…}}` actions (with `{{-`/`-}}` trimming and `/* */` comments), split
//! into tokens in one pass over the template.

use super::Error;

#[derive(Debug, Clone, PartialEq)]
pub enum Tok {
    /// Literal text between actions.
    Text(String),
    /// `{{`
    Open,
    /// `}}`
    Close,
    /// `.A.B` (empty: `.`).
    Field(Vec<String>),
    /// `$name` (empty name: `$`) and the fields after it.
    Var(String, Vec<String>),
    /// `.A.B` right after a `)`.
    Chain(Vec<String>),
    Ident(String),
    Str(String),
    Num(serde_json::Number),
    Pipe,
    LParen,
    RParen,
    Declare,
    Assign,
    Comma,
}

/// A token and the byte offset it starts at (for Go's `:line:col` errors).
pub type Spanned = (Tok, usize);

pub fn lex(src: &str) -> Result<Vec<Spanned>, Error> {
    let mut out = Vec::new();
    let mut rest = 0;
    while rest < src.len() {
        let Some(open) = src[rest..].find("{{").map(|i| i + rest) else {
            push_text(&mut out, &src[rest..], rest);
            break;
        };
        let mut text = &src[rest..open];
        let mut at = open + 2;
        // `{{- ` trims the whitespace before it.
        if src[at..].starts_with('-') && src[at + 1..].starts_with([' ', '\t', '\n', '\r']) {
            text = text.trim_end_matches([' ', '\t', '\n', '\r']);
            at += 1;
        }
        push_text(&mut out, text, rest);
        let (end, trim_after) = action(src, at, open, &mut out)?;
        rest = end;
        if trim_after {
            let t = &src[rest..];
            rest += t.len() - t.trim_start_matches([' ', '\t', '\n', '\r']).len();
        }
    }
    Ok(out)
}

fn push_text(out: &mut Vec<Spanned>, text: &str, at: usize) {
    if !text.is_empty() {
        out.push((Tok::Text(text.to_string()), at));
    }
}

/// Lexes one action from `at` (just past `{{` and any `-`); returns where
/// the text after `}}` starts and whether that text is trimmed.
fn action(
    src: &str,
    mut at: usize,
    open: usize,
    out: &mut Vec<Spanned>,
) -> Result<(usize, bool), Error> {
    let line = |i: usize| Error::parse_at(src, i);
    let b = src.as_bytes();
    // A comment is the whole action: `{{/* … */}}`.
    let trimmed = at + count_space(&src[at..]);
    if src[trimmed..].starts_with("/*") {
        let Some(end) = src[trimmed..].find("*/").map(|i| i + trimmed + 2) else {
            return Err(line(open).msg("unclosed comment"));
        };
        let after = end + count_space(&src[end..]);
        if src[after..].starts_with("-}}") {
            return Ok((after + 3, true));
        }
        if src[end..].starts_with("}}") {
            return Ok((end + 2, false));
        }
        return Err(line(open).msg("comment ends before closing delimiter"));
    }
    out.push((Tok::Open, open));
    loop {
        at += count_space(&src[at..]);
        if at >= src.len() {
            return Err(line(open).msg("unclosed action"));
        }
        let c = b[at];
        if src[at..].starts_with("}}") {
            out.push((Tok::Close, at));
            return Ok((at + 2, false));
        }
        if src[at..].starts_with("-}}") && at > 0 && b[at - 1].is_ascii_whitespace() {
            out.push((Tok::Close, at));
            return Ok((at + 3, true));
        }
        if c == b')' {
            out.push((Tok::RParen, at));
            at += 1;
            // `(…).Field`: fields of the parenthesised value.
            if b.get(at) == Some(&b'.') && b.get(at + 1).is_some_and(|&c| ident_char(c)) {
                let (fields, end) = fields(src, at);
                out.push((Tok::Chain(fields), at));
                at = end;
            }
            continue;
        }
        let (tok, end) = token(src, at)?;
        out.push((tok, at));
        at = end;
    }
}

/// The token at `at` (not space, `}}` or `)`), and where it ends.
fn token(src: &str, at: usize) -> Result<(Tok, usize), Error> {
    let line = |i: usize| Error::parse_at(src, i);
    let b = src.as_bytes();
    let one = |t: Tok| Ok((t, at + 1));
    match b[at] {
        b'|' => one(Tok::Pipe),
        b'(' => one(Tok::LParen),
        b',' => one(Tok::Comma),
        b'=' => one(Tok::Assign),
        b':' if b.get(at + 1) == Some(&b'=') => Ok((Tok::Declare, at + 2)),
        b'"' => {
            let (s, end) =
                quoted(src, at).ok_or_else(|| line(at).msg("unterminated quoted string"))?;
            Ok((Tok::Str(s), end))
        }
        b'`' => {
            let end = src[at + 1..]
                .find('`')
                .ok_or_else(|| line(at).msg("unterminated raw quoted string"))?;
            Ok((
                Tok::Str(src[at + 1..at + 1 + end].to_string()),
                at + end + 2,
            ))
        }
        b'.' => {
            let (f, end) = fields(src, at);
            Ok((Tok::Field(f), end))
        }
        b'$' => {
            let name_end = at + 1 + src[at + 1..].bytes().take_while(|&c| ident_char(c)).count();
            let name = src[at + 1..name_end].to_string();
            let (f, end) = if b.get(name_end) == Some(&b'.') {
                fields(src, name_end)
            } else {
                (vec![], name_end)
            };
            Ok((Tok::Var(name, f), end))
        }
        b'0'..=b'9' | b'-' | b'+' => {
            let end = at
                + src[at..]
                    .bytes()
                    .take_while(|&c| c.is_ascii_alphanumeric() || b"+-.".contains(&c))
                    .count();
            let n = number(&src[at..end])
                .ok_or_else(|| line(at).msg(&format!("bad number syntax: {:?}", &src[at..end])))?;
            Ok((Tok::Num(n), end))
        }
        c if ident_char(c) => {
            let end = at + src[at..].bytes().take_while(|&c| ident_char(c)).count();
            Ok((Tok::Ident(src[at..end].to_string()), end))
        }
        _ => {
            let ch = src[at..].chars().next().unwrap_or(' ');
            Err(line(at).msg(&format!("unexpected {ch:?} in command")))
        }
    }
}

fn count_space(s: &str) -> usize {
    s.len() - s.trim_start_matches([' ', '\t', '\n', '\r']).len()
}

fn ident_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// `.A.B` from `at` (at a `.`): the names (none for a lone `.`) and the end.
fn fields(src: &str, mut at: usize) -> (Vec<String>, usize) {
    let b = src.as_bytes();
    let mut out = Vec::new();
    while b.get(at) == Some(&b'.') {
        let n = src[at + 1..].bytes().take_while(|&c| ident_char(c)).count();
        if n == 0 {
            // A lone `.` is dot itself; `.A.` ends the chain.
            if out.is_empty() {
                at += 1;
            }
            break;
        }
        out.push(src[at + 1..at + 1 + n].to_string());
        at += 1 + n;
    }
    (out, at)
}

/// A Go double-quoted string from `at` (its `"`): the value and its end.
fn quoted(src: &str, at: usize) -> Option<(String, usize)> {
    let mut out = String::new();
    let mut chars = src[at + 1..].char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Some((out, at + 1 + i + 1)),
            '\n' => return None,
            '\\' => {
                let (_, e) = chars.next()?;
                let hex = |chars: &mut std::str::CharIndices<'_>, n: usize| {
                    let s: String = chars.take(n).map(|(_, c)| c).collect();
                    u32::from_str_radix(&s, 16).ok().and_then(char::from_u32)
                };
                out.push(match e {
                    'n' => '\n',
                    't' => '\t',
                    'r' => '\r',
                    'a' => '\x07',
                    'b' => '\x08',
                    'f' => '\x0c',
                    'v' => '\x0b',
                    '\\' => '\\',
                    '"' => '"',
                    '\'' => '\'',
                    'x' => hex(&mut chars, 2)?,
                    'u' => hex(&mut chars, 4)?,
                    'U' => hex(&mut chars, 8)?,
                    _ => return None,
                });
            }
            c => out.push(c),
        }
    }
    None
}

fn number(s: &str) -> Option<serde_json::Number> {
    if let Ok(i) = s.parse::<i64>() {
        return Some(i.into());
    }
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        return i64::from_str_radix(h, 16).ok().map(Into::into);
    }
    s.parse::<f64>().ok().and_then(serde_json::Number::from_f64)
}
