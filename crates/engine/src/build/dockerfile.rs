//! The Dockerfile parser: parser directives (`# escape=`), comments, line
//! continuations, instructions in any case, exec (JSON) and shell forms,
//! `--flag=value`s (only those its instruction takes, as BuildKit's
//! parser), `FROM image [AS name]` and the `ARG`s before the first
//! `FROM` (the only instruction allowed there). Errors name the file and
//! line, as Docker's do: `Dockerfile:7: unknown instruction: RUNN`,
//! `Dockerfile:3: unknown flag: bogus`.
//! Substitution is left to the build, which knows each step's variables.

use anyhow::{Result, anyhow};

/// Every instruction Docker knows.
const KNOWN: &[&str] = &[
    "ADD",
    "ARG",
    "CMD",
    "COPY",
    "ENTRYPOINT",
    "ENV",
    "EXPOSE",
    "FROM",
    "HEALTHCHECK",
    "LABEL",
    "MAINTAINER",
    "ONBUILD",
    "RUN",
    "SHELL",
    "STOPSIGNAL",
    "USER",
    "VOLUME",
    "WORKDIR",
];

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// The `ARG`s before the first `FROM` (usable in `FROM` lines, and in a
    /// stage that declares them again without a value).
    pub global_args: Vec<Instruction>,
    pub stages: Vec<Stage>,
}

/// `FROM base [AS name]` and what follows until the next `FROM`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    /// The base as written (before substitution); `scratch` for none.
    pub base: String,
    /// `AS name`, lowercased as Docker does.
    pub name: Option<String>,
    /// `FROM --platform=…` and the like.
    pub flags: Vec<(String, String)>,
    pub line: usize,
    pub instructions: Vec<Instruction>,
}

/// One instruction, its arguments not yet substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// Its first line in the file.
    pub line: usize,
    /// Upper case: `RUN`.
    pub keyword: String,
    /// Leading `--name=value` flags (`--from=build`, `--chown=1:1`).
    pub flags: Vec<(String, String)>,
    pub args: Args,
    /// A heredoc (`RUN <<EOF` … `EOF`) after the line.
    pub heredoc: Option<Heredoc>,
}

/// A heredoc's word and body (each line with its newline).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    pub name: String,
    pub body: String,
    /// Unquoted word: `$VAR`s in the body are expanded.
    pub expand: bool,
}

impl Heredoc {
    /// `<<EOF`, `<<-EOF`, `<<"EOF"`: the word, whether tabs are stripped,
    /// whether it was unquoted.
    fn marker(line: &str) -> Option<(String, bool, bool)> {
        let at = line.find("<<")?;
        let rest = &line[at + 2..];
        let (strip, rest) = match rest.strip_prefix('-') {
            Some(r) => (true, r),
            None => (false, rest),
        };
        let quote = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let word: String = match quote {
            Some(q) => rest[1..].chars().take_while(|c| *c != q).collect(),
            None => rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect(),
        };
        (!word.is_empty()).then_some((word, strip, quote.is_none()))
    }
}

/// The exec (JSON array) or shell form of the arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Args {
    Exec(Vec<String>),
    Shell(String),
}

impl Instruction {
    /// The instruction as one line (`RUN echo hi`), as a history entry and
    /// the progress show it.
    pub fn text(&self) -> String {
        let mut s = self.keyword.clone();
        for (k, v) in &self.flags {
            s.push_str(&format!(" --{k}={v}"));
        }
        match &self.args {
            Args::Exec(v) => s.push_str(&format!(
                " {}",
                serde_json::to_string(v).unwrap_or_default()
            )),
            Args::Shell(t) if !t.is_empty() => s.push_str(&format!(" {t}")),
            Args::Shell(_) => {}
        }
        s
    }

    /// The flag `name`'s value.
    pub fn flag(&self, name: &str) -> Option<&str> {
        self.flags
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The shell form's text `t` with the heredoc: `RUN <<EOF` alone runs
    /// the body as the script; `RUN cmd <<EOF` gives the shell it whole.
    pub fn script(&self, t: &str) -> String {
        let Some(h) = &self.heredoc else {
            return t.to_string();
        };
        let marker = t
            .trim()
            .trim_start_matches("<<")
            .trim_start_matches('-')
            .trim_matches(|c| c == '"' || c == '\'');
        if marker == h.name {
            h.body.clone()
        } else {
            format!("{t}\n{}{}", h.body, h.name)
        }
    }

    /// The shell form's text; the exec form's words joined by spaces.
    pub fn shell_text(&self) -> String {
        match &self.args {
            Args::Shell(t) => t.clone(),
            Args::Exec(v) => v.join(" "),
        }
    }
}

/// Parse `text`; `file` names it in errors.
pub fn parse(text: &str, file: &str) -> Result<Dockerfile> {
    let err = |line: usize, msg: String| anyhow!("{file}:{line}: {msg}");
    let lines = logical_lines(text);
    let mut global_args = Vec::new();
    let mut stages: Vec<Stage> = Vec::new();
    for (line, content, heredoc) in lines {
        let (word, rest) = content
            .split_once(|c: char| c.is_whitespace())
            .unwrap_or((content.as_str(), ""));
        let keyword = word.to_ascii_uppercase();
        if !KNOWN.contains(&keyword.as_str()) {
            return Err(err(line, format!("unknown instruction: {word}")));
        }
        let (flags, rest) = if matches!(
            keyword.as_str(),
            "FROM" | "COPY" | "ADD" | "RUN" | "HEALTHCHECK"
        ) {
            split_flags(rest.trim())
        } else {
            (Vec::new(), rest.trim())
        };
        if let Some((k, _)) = flags.iter().find(|(k, _)| !flag_known(&keyword, k)) {
            return Err(err(line, format!("unknown flag: {k}")));
        }
        if keyword == "FROM" {
            stages.push(from(line, flags, rest).map_err(|e| err(line, e.to_string()))?);
            continue;
        }
        let args = match json_form(rest) {
            Some(v) if exec_capable(&keyword) => Args::Exec(v),
            _ => Args::Shell(rest.to_string()),
        };
        if needs_args(&keyword) && matches!(&args, Args::Shell(s) if s.is_empty()) {
            return Err(err(
                line,
                format!("{keyword} requires at least one argument"),
            ));
        }
        let inst = Instruction {
            line,
            keyword,
            flags,
            args,
            heredoc,
        };
        match stages.last_mut() {
            Some(s) => s.instructions.push(inst),
            None if inst.keyword == "ARG" => global_args.push(inst),
            None => {
                return Err(err(
                    line,
                    format!(
                        "{} before the first FROM: no build stage in current context",
                        inst.keyword
                    ),
                ));
            }
        }
    }
    if stages.is_empty() {
        return Err(anyhow!("{file}: file with no instructions: no FROM"));
    }
    Ok(Dockerfile {
        global_args,
        stages,
    })
}

/// Whether `keyword` takes the flag `--name`, as BuildKit's parser
/// knows them (whether berth carries it out is the build's to say).
fn flag_known(keyword: &str, name: &str) -> bool {
    let known: &[&str] = match keyword {
        "FROM" => &["platform"],
        "COPY" => &["from", "chown", "chmod", "link", "parents", "exclude"],
        "ADD" => &[
            "chown",
            "chmod",
            "link",
            "checksum",
            "keep-git-dir",
            "exclude",
        ],
        "RUN" => &["mount", "network", "security"],
        "HEALTHCHECK" => &[
            "interval",
            "timeout",
            "start-period",
            "start-interval",
            "retries",
        ],
        _ => &[],
    };
    known.contains(&name)
}

fn needs_args(keyword: &str) -> bool {
    !matches!(keyword, "CMD" | "ENTRYPOINT")
}

fn exec_capable(keyword: &str) -> bool {
    matches!(
        keyword,
        "RUN" | "CMD" | "ENTRYPOINT" | "SHELL" | "COPY" | "ADD" | "VOLUME" | "HEALTHCHECK"
    )
}

/// `["a", "b"]` as its strings; None when it is not a JSON array of
/// strings (then Docker takes it as the shell form).
pub fn json_form(s: &str) -> Option<Vec<String>> {
    if !s.starts_with('[') {
        return None;
    }
    serde_json::from_str::<Vec<String>>(s).ok()
}

fn from(line: usize, flags: Vec<(String, String)>, rest: &str) -> Result<Stage> {
    let words: Vec<&str> = rest.split_whitespace().collect();
    let (base, name) = match words.as_slice() {
        [b] => (b.to_string(), None),
        [b, as_, n] if as_.eq_ignore_ascii_case("as") => {
            let n = n.to_ascii_lowercase();
            if !valid_stage_name(&n) {
                anyhow::bail!(
                    "invalid name for build stage: {n:?}, name can't start with a number or contain symbols"
                );
            }
            (b.to_string(), Some(n))
        }
        [] => anyhow::bail!("FROM requires either one or three arguments"),
        _ => anyhow::bail!("FROM requires either one or three arguments"),
    };
    Ok(Stage {
        base,
        name,
        flags,
        line,
        instructions: Vec::new(),
    })
}

fn valid_stage_name(n: &str) -> bool {
    n.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Leading `--name=value` words (a bare `--name` is `true`).
fn split_flags(mut rest: &str) -> (Vec<(String, String)>, &str) {
    let mut flags = Vec::new();
    while let Some(f) = rest.strip_prefix("--") {
        let end = f.find(char::is_whitespace).unwrap_or(f.len());
        let word = &f[..end];
        let (k, v) = word.split_once('=').unwrap_or((word, "true"));
        flags.push((k.to_ascii_lowercase(), v.to_string()));
        rest = f[end..].trim_start();
    }
    (flags, rest)
}

/// The instructions' logical lines with their
/// first line numbers: directives read off the top, comments and empty
/// lines dropped (also inside a continuation, as Docker does), lines
/// ending in the escape character joined with the next.
fn logical_lines(text: &str) -> Vec<(usize, String, Option<Heredoc>)> {
    let mut escape = '\\';
    let mut in_directives = true;
    let mut out: Vec<(usize, String, Option<Heredoc>)> = Vec::new();
    let mut cur: Option<(usize, String)> = None;
    // A heredoc being read: its word, whether tabs are stripped, its doc.
    let mut doc: Option<(String, bool, Heredoc)> = None;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        if let Some((word, strip, mut d)) = doc.take() {
            let line = if strip {
                raw.trim_start_matches('\t')
            } else {
                raw
            };
            if line == word {
                if let Some(last) = out.last_mut() {
                    last.2 = Some(d);
                }
            } else {
                d.body.push_str(line);
                d.body.push('\n');
                doc = Some((word, strip, d));
            }
            continue;
        }
        let trimmed = raw.trim();
        if in_directives {
            if let Some(d) = directive(trimmed) {
                if d.0 == "escape" && matches!(d.1.as_str(), "\\" | "`") {
                    escape = d.1.chars().next().unwrap_or('\\');
                }
                continue;
            }
            in_directives = false;
        }
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (start, mut acc) = cur.take().unwrap_or((n, String::new()));
        let body = raw.trim_end();
        if let Some(stripped) = body.strip_suffix(escape) {
            acc.push_str(stripped);
            cur = Some((start, acc));
            continue;
        }
        acc.push_str(body);
        let line = acc.trim().to_string();
        let first = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        if matches!(first.as_str(), "RUN" | "COPY" | "ADD")
            && let Some((word, strip, expand)) = Heredoc::marker(&line)
        {
            let d = Heredoc {
                name: word.clone(),
                body: String::new(),
                expand,
            };
            doc = Some((word, strip, d));
        }
        out.push((start, line, None));
    }
    if let Some((start, acc)) = cur
        && !acc.trim().is_empty()
    {
        out.push((start, acc.trim().to_string(), None));
    }
    out
}

/// `# name=value` at the top of the file.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.strip_prefix('#')?.trim();
    let (k, v) = body.split_once('=')?;
    let k = k.trim().to_ascii_lowercase();
    if k.is_empty() || !k.chars().all(|c| c.is_ascii_alphabetic()) {
        return None;
    }
    Some((k, v.trim().to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Dockerfile {
        parse(s, "Dockerfile").unwrap()
    }

    #[test]
    fn continuations_comments_and_case() {
        let d = p(
            "# a comment\nfrom busybox AS Build\nrun echo a \\\n  # inside\n  && echo b\n\nCmd [\"sh\", \"-c\"]\n",
        );
        assert_eq!(d.stages.len(), 1);
        let s = &d.stages[0];
        assert_eq!(
            (s.base.as_str(), s.name.as_deref(), s.line),
            ("busybox", Some("build"), 2)
        );
        assert_eq!(s.instructions[0].keyword, "RUN");
        assert_eq!(s.instructions[0].line, 3);
        assert_eq!(
            s.instructions[0].args,
            Args::Shell("echo a   && echo b".into())
        );
        assert_eq!(
            s.instructions[1].args,
            Args::Exec(vec!["sh".into(), "-c".into()])
        );
        assert_eq!(s.instructions[1].line, 7);
    }

    #[test]
    fn heredocs() {
        let d = p(
            "FROM a\nRUN <<EOF\necho one\n# not a comment\n\necho two\nEOF\nrun cat <<-\"END\" > /f\n\t$X\n\tEND\nCOPY <<EOF /x\nhi\nEOF\nCMD x\n",
        );
        let i = &d.stages[0].instructions;
        assert_eq!(i.len(), 4);
        let h = i[0].heredoc.as_ref().unwrap();
        assert_eq!(
            (h.name.as_str(), h.body.as_str(), h.expand),
            ("EOF", "echo one\n# not a comment\n\necho two\n", true)
        );
        assert_eq!(i[0].args, Args::Shell("<<EOF".into()));
        let h = i[1].heredoc.as_ref().unwrap();
        assert_eq!(
            (h.name.as_str(), h.body.as_str(), h.expand),
            ("END", "$X\n", false)
        );
        assert_eq!(i[2].heredoc.as_ref().unwrap().body, "hi\n");
        assert_eq!(i[3].keyword, "CMD");
    }

    #[test]
    fn escape_directive() {
        let d = p("# escape=`\nFROM scratch\nRUN dir c:\\ `\n  x\n");
        assert_eq!(
            d.stages[0].instructions[0].args,
            Args::Shell("dir c:\\   x".into())
        );
        // Not at the top: a comment.
        let d = p("FROM scratch\n# escape=`\nRUN a \\\n b\n");
        assert_eq!(d.stages[0].instructions[0].args, Args::Shell("a  b".into()));
    }

    #[test]
    fn errors_name_the_line() {
        let e = parse("FROM busybox\n\nRUN true\n\n\n\nRUNN x\n", "Dockerfile").unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:7: unknown instruction: RUNN");
        let e = parse("RUN x\nFROM a\n", "f").unwrap_err();
        assert!(
            e.to_string().starts_with("f:1: RUN before the first FROM"),
            "{e}"
        );
        let e = parse("FROM a b\n", "Dockerfile").unwrap_err();
        assert_eq!(
            e.to_string(),
            "Dockerfile:1: FROM requires either one or three arguments"
        );
        assert!(parse("# only\n", "Dockerfile").is_err());
        let e = parse("FROM a\nRUN --bogus x\n", "Dockerfile").unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:2: unknown flag: bogus");
        let e = parse("FROM a\nCOPY --mount=x a b\n", "Dockerfile").unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:2: unknown flag: mount");
        let e = parse("FROM --from=x a\n", "Dockerfile").unwrap_err();
        assert_eq!(e.to_string(), "Dockerfile:1: unknown flag: from");
        assert!(
            parse(
                "FROM a\nRUN --mount=type=tmpfs,target=/t --network=none x\n",
                "D"
            )
            .is_ok()
        );
        assert!(
            parse("FROM a\nCOPY\n", "Dockerfile")
                .unwrap_err()
                .to_string()
                .starts_with("Dockerfile:2:")
        );
    }

    #[test]
    fn args_flags_and_stages() {
        let d = p(
            "ARG V=1\nARG BASE\nFROM ${BASE} as one\nCOPY --from=one --chown=1:2 a b\nFROM scratch\nRUN [\"x\"]\nRUN [not json\n",
        );
        assert_eq!(d.global_args.len(), 2);
        assert_eq!(d.stages.len(), 2);
        let c = &d.stages[0].instructions[0];
        assert_eq!(c.flag("from"), Some("one"));
        assert_eq!(c.flag("chown"), Some("1:2"));
        assert_eq!(c.args, Args::Shell("a b".into()));
        assert_eq!(c.text(), "COPY --from=one --chown=1:2 a b");
        assert_eq!(d.stages[1].base, "scratch");
        assert_eq!(
            d.stages[1].instructions[0].args,
            Args::Exec(vec!["x".into()])
        );
        assert_eq!(
            d.stages[1].instructions[1].args,
            Args::Shell("[not json".into())
        );
        // ENV's value is never JSON.
        let d = p("FROM a\nENV X [\"1\"]\n");
        assert_eq!(
            d.stages[0].instructions[0].args,
            Args::Shell("X [\"1\"]".into())
        );
    }
}
