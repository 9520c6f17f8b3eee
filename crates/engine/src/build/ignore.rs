//! `.dockerignore`: Docker's pattern rules. One pattern a line, `#`
//! comments; leading and trailing whitespace, a leading `/` and `./` and
//! a trailing `/` are dropped and the path cleaned; `*` matches within a
//! path component, `?` one character of it, `[…]` a class, `**` any
//! number of components; `!` makes an exception. A path is excluded when
//! the last pattern matching it (or one of its parent directories) is not
//! an exception.

/// The patterns of a `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    /// Its components, already cleaned.
    parts: Vec<String>,
    exception: bool,
}

impl Ignore {
    /// The patterns of a `.dockerignore`'s text.
    pub fn parse(text: &str) -> Ignore {
        let mut patterns = Vec::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (exception, p) = match line.strip_prefix('!') {
                Some(p) => (true, p.trim()),
                None => (false, line),
            };
            let parts = clean(p);
            if parts.is_empty() {
                continue;
            }
            patterns.push(Pattern { parts, exception });
        }
        Ignore { patterns }
    }

    /// Whether `path` (relative to the context, `/`-separated) is excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let parts = clean(path);
        let mut excluded = false;
        for p in &self.patterns {
            // The path itself or one of its parents.
            let hit = (1..=parts.len()).any(|n| matches(&p.parts, &parts[..n]));
            if hit {
                excluded = !p.exception;
            }
        }
        excluded
    }

    /// Whether an exception could re-include something below the
    /// excluded directory `dir` (then its contents must still be walked).
    pub fn may_include_below(&self, dir: &str) -> bool {
        let d = clean(dir);
        self.patterns.iter().any(|p| {
            p.exception
                && (p.parts.iter().any(|c| c.contains("**"))
                    || (p.parts.len() > d.len()
                        && p.parts.iter().zip(&d).all(|(pc, dc)| component(pc, dc))))
        })
    }
}

/// `./a//b/../c/` → `["a", "c"]` (a leading `/` dropped; `..` cannot climb
/// above the context).
fn clean(p: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            c => out.push(c.to_string()),
        }
    }
    out
}

/// Whether pattern components match path components exactly.
fn matches(pat: &[String], path: &[String]) -> bool {
    match pat.split_first() {
        None => path.is_empty(),
        Some((p, rest)) if p == "**" => (0..=path.len()).any(|skip| matches(rest, &path[skip..])),
        Some((p, rest)) => match path.split_first() {
            Some((c, prest)) => component(p, c) && matches(rest, prest),
            None => false,
        },
    }
}

/// One component against one pattern component: `*`, `?`, `[…]`, `\x`.
pub(crate) fn component(pat: &str, name: &str) -> bool {
    let p: Vec<char> = pat.chars().collect();
    let n: Vec<char> = name.chars().collect();
    glob(&p, &n)
}

fn glob(p: &[char], n: &[char]) -> bool {
    match p.first() {
        None => n.is_empty(),
        Some('*') => (0..=n.len()).any(|i| glob(&p[1..], &n[i..])),
        Some('?') => !n.is_empty() && glob(&p[1..], &n[1..]),
        Some('[') => match (class(&p[1..], n.first().copied()), n.is_empty()) {
            (Some((true, used)), false) => glob(&p[1 + used..], &n[1..]),
            _ => false,
        },
        Some('\\') if p.len() > 1 => n.first() == Some(&p[1]) && glob(&p[2..], &n[1..]),
        Some(c) => n.first() == Some(c) && glob(&p[1..], &n[1..]),
    }
}

/// A `[…]` class (after the `[`) against `c`: whether it matched and how
/// many pattern characters it took, `]` included; None if unclosed.
fn class(p: &[char], c: Option<char>) -> Option<(bool, usize)> {
    let c = c?;
    let mut i = 0;
    let negate = matches!(p.first(), Some('^') | Some('!'));
    if negate {
        i += 1;
    }
    let mut hit = false;
    let mut first = true;
    while i < p.len() {
        if p[i] == ']' && !first {
            return Some((hit != negate, i + 1));
        }
        first = false;
        let lo = if p[i] == '\\' && i + 1 < p.len() {
            i += 1;
            p[i]
        } else {
            p[i]
        };
        if i + 2 < p.len() && p[i + 1] == '-' && p[i + 2] != ']' {
            hit |= lo <= c && c <= p[i + 2];
            i += 3;
        } else {
            hit |= lo == c;
            i += 1;
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::Ignore;

    #[test]
    fn docker_rules() {
        let i = Ignore::parse(
            "# comment\n*.log\n!keep.log\n/build/\n./tmp\ndocs/**/*.md\n?.txt\nsecret[0-9]\n",
        );
        assert!(i.excluded("a.log"));
        assert!(!i.excluded("keep.log"));
        assert!(!i.excluded("sub/a.log"), "* does not cross /");
        assert!(i.excluded("build"));
        assert!(i.excluded("build/x/y"), "a parent's match excludes");
        assert!(i.excluded("tmp/a"));
        assert!(i.excluded("docs/a.md"));
        assert!(i.excluded("docs/x/y/a.md"));
        assert!(!i.excluded("docs/a.txt"));
        assert!(i.excluded("x.txt"));
        assert!(!i.excluded("xy.txt"));
        assert!(i.excluded("secret7"));
        assert!(!i.excluded("secretx"));
        assert!(!i.excluded("src/main.rs"));
    }

    #[test]
    fn last_match_wins() {
        let i = Ignore::parse("*\n!src\nsrc/gen\n");
        assert!(i.excluded("Dockerfile"));
        assert!(!i.excluded("src/a.rs"));
        assert!(i.excluded("src/gen/b.rs"));
        assert!(i.may_include_below("anything") || !i.excluded("src"));
        let i = Ignore::parse("**/*.o\n!**/keep.o\n");
        assert!(i.excluded("a/b/c.o"));
        assert!(i.excluded("c.o"));
        assert!(!i.excluded("a/keep.o"));
    }

    #[test]
    fn exceptions_below_excluded_dirs() {
        let i = Ignore::parse("vendor\n!vendor/keep\n");
        assert!(i.excluded("vendor/x"));
        assert!(!i.excluded("vendor/keep"));
        assert!(i.may_include_below("vendor"));
        assert!(!Ignore::parse("vendor\n").may_include_below("vendor"));
    }
}
