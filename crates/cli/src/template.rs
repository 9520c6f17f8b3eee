//! A Go text/template subset for `--format`, evaluated against JSON: what
//! `ps`, `inspect`, `images` and `version` print for a template. Fields and
//! nested fields (`{{.State.Pid}}`), variables, pipelines, parentheses,
//! `if`/`else if`/`range`/`with`, and the docker CLI's functions (see
//! [`funcs`]). Errors read as Go's (`template: :1: function "foo" not
//! defined`). Lexing and parsing are one pass each, nesting is capped.

mod exec;
mod funcs;
mod lex;
mod parse;

use serde_json::Value;

/// A value as the evaluator sees it: None is Go's "no value" (a map's
/// missing key), printed `<no value>`; JSON null prints `<nil>`.
pub type Val = Option<Value>;

/// A method of the root value: `{{.Label "k"}}` for ps. Returns None when
/// there is no such method.
pub type Methods<'a> = &'a dyn Fn(&str, &[Val]) -> Option<Result<Val, String>>;

/// How a template treats its data.
#[derive(Default, Clone, Copy)]
pub struct Options<'a> {
    /// A missing field is an error naming this type (ps's context is a Go
    /// struct in Docker: `*formatter.ContainerContext`); None: it is "no
    /// value", as in a Go map (inspect's documents).
    pub strict: Option<&'a str>,
    pub methods: Option<Methods<'a>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

/// Where a parse error is: Go names the line.
pub(crate) struct Loc(usize);

impl Loc {
    pub(crate) fn msg(&self, m: &str) -> Error {
        Error(format!("template: :{}: {m}", self.0))
    }
}

impl Error {
    pub(crate) fn parse_at(src: &str, at: usize) -> Loc {
        Loc(1 + src[..at.min(src.len())].matches('\n').count())
    }
}

pub struct Template {
    src: String,
    nodes: Vec<parse::Node>,
}

impl Template {
    pub fn parse(src: &str) -> Result<Template, Error> {
        let toks = lex::lex(src)?;
        let nodes = parse::Parser::new(src, toks).parse()?;
        Ok(Template {
            src: src.to_string(),
            nodes,
        })
    }

    pub fn execute(&self, data: &Value, opts: &Options<'_>) -> Result<String, Error> {
        let mut e = exec::Exec {
            src: &self.src,
            root: data,
            opts,
            vars: Vec::new(),
            out: String::new(),
        };
        e.list(&self.nodes, &Some(data.clone()))?;
        Ok(e.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(t: &str, v: &Value) -> Result<String, String> {
        let t = Template::parse(t).map_err(|e| e.0)?;
        t.execute(v, &Options::default()).map_err(|e| e.0)
    }

    fn doc() -> Value {
        json!({
            "Id": "abc",
            "State": {"Pid": 42, "Status": "running", "Running": true, "ExitCode": 0},
            "Config": {"Labels": {"a": "1", "b.c": "2"}, "Cmd": ["sh", "-c", "echo hi"], "Env": null},
            "Args": ["-c", "echo <hi>"],
            "Mounts": [],
        })
    }

    #[test]
    fn fields_and_nested_fields() {
        let d = doc();
        assert_eq!(run("{{.Id}}", &d).unwrap(), "abc");
        assert_eq!(
            run("pid={{.State.Pid}} {{.State.Running}}", &d).unwrap(),
            "pid=42 true"
        );
        assert_eq!(
            run("{{.Nope}}|{{.Nope.Deeper}}", &d).unwrap(),
            "<no value>|<no value>"
        );
        assert_eq!(run("{{.Config.Env}}", &d).unwrap(), "<nil>");
        assert_eq!(run("{{.Config.Labels}}", &d).unwrap(), "map[a:1 b.c:2]");
        assert_eq!(run("{{.Config.Cmd}}", &d).unwrap(), "[sh -c echo hi]");
        assert_eq!(run("{{.}}", &json!("x")).unwrap(), "x");
        let e = run("{{.Id.Foo}}", &d).unwrap_err();
        assert_eq!(
            e,
            "template: :1:2: executing \"\" at <.Id.Foo>: can't evaluate field Foo in type string"
        );
    }

    #[test]
    fn json_index_join_and_friends() {
        let d = doc();
        assert_eq!(
            run("{{json .Config.Labels}}", &d).unwrap(),
            r#"{"a":"1","b.c":"2"}"#
        );
        // Docker's json does not escape HTML.
        assert_eq!(run("{{json .Args}}", &d).unwrap(), r#"["-c","echo <hi>"]"#);
        assert_eq!(run("{{json .Nope}}", &d).unwrap(), "null");
        assert_eq!(run(r#"{{index .Config.Labels "b.c"}}"#, &d).unwrap(), "2");
        assert_eq!(run(r#"[{{index .Config.Labels "zz"}}]"#, &d).unwrap(), "[]");
        assert_eq!(run("{{index .Config.Cmd 2}}", &d).unwrap(), "echo hi");
        assert!(
            run("{{index .Config.Cmd 7}}", &d)
                .unwrap_err()
                .contains("index out of range")
        );
        assert_eq!(
            run(r#"{{join .Config.Cmd ","}}"#, &d).unwrap(),
            "sh,-c,echo hi"
        );
        assert_eq!(
            run(r#"{{upper .State.Status}} {{.State.Status | title}}"#, &d).unwrap(),
            "RUNNING Running"
        );
        assert_eq!(
            run(r#"{{len .Config.Cmd}} {{len .Mounts}}"#, &d).unwrap(),
            "3 0"
        );
        assert_eq!(run(r#"{{println .Id}}"#, &d).unwrap(), "abc\n");
        assert_eq!(
            run(r#"{{printf "%-5s|%d" .Id .State.Pid}}"#, &d).unwrap(),
            "abc  |42"
        );
        assert_eq!(run(r#"{{split "a:b" ":"}}"#, &d).unwrap(), "[a b]");
        assert_eq!(
            run(r#"{{json (index .Config.Cmd 0)}}"#, &d).unwrap(),
            "\"sh\""
        );
        assert_eq!(
            run(r#"{{pad "x" 1 2}}|{{truncate "abcdef" 3}}"#, &d).unwrap(),
            " x  |abc"
        );
    }

    #[test]
    fn control_flow_and_variables() {
        let d = doc();
        assert_eq!(
            run(
                "{{range $k, $v := .Config.Labels}}{{$k}}={{$v}};{{end}}",
                &d
            )
            .unwrap(),
            "a=1;b.c=2;"
        );
        assert_eq!(
            run("{{range .Config.Cmd}}[{{.}}]{{end}}", &d).unwrap(),
            "[sh][-c][echo hi]"
        );
        assert_eq!(
            run("{{range .Mounts}}x{{else}}none{{end}}", &d).unwrap(),
            "none"
        );
        assert_eq!(
            run("{{if .State.Running}}up{{else}}down{{end}}", &d).unwrap(),
            "up"
        );
        assert_eq!(
            run(r#"{{if eq .State.Status "exited"}}e{{else if eq .State.Status "running"}}r{{else}}?{{end}}"#, &d).unwrap(),
            "r"
        );
        assert_eq!(run("{{with .State}}{{.Pid}}{{end}}", &d).unwrap(), "42");
        assert_eq!(run("{{$x := .Id}}{{$x}}-{{$.Id}}", &d).unwrap(), "abc-abc");
        assert_eq!(
            run("a {{- /* note */ -}} b\n{{- .Id}}", &d).unwrap(),
            "ababc"
        );
        assert_eq!(
            run("{{if and .State.Running (not .Mounts)}}y{{end}}", &d).unwrap(),
            "y"
        );
    }

    #[test]
    fn errors_read_like_go() {
        let d = doc();
        assert_eq!(
            run("{{foo .Id}}", &d).unwrap_err(),
            "template: :1: function \"foo\" not defined"
        );
        assert_eq!(
            run("{{.Id", &d).unwrap_err(),
            "template: :1: unclosed action"
        );
        assert_eq!(
            run("{{if .Id}}x", &d).unwrap_err(),
            "template: :1: unexpected EOF"
        );
        assert_eq!(
            run("x\n{{end}}", &d).unwrap_err(),
            "template: :2: unexpected {{end}}"
        );
        assert_eq!(
            run(r#"{{"abc}}"#, &d).unwrap_err(),
            "template: :1: unterminated quoted string"
        );
        assert!(
            run("{{.Id 3}}", &d)
                .unwrap_err()
                .contains("Id is not a method but has arguments")
        );
        // Nesting is capped, not a stack overflow.
        let deep = "{{if 1}}".repeat(10_000);
        assert!(run(&deep, &d).unwrap_err().contains("nests too deeply"));
        let parens = format!("{{{{{}1{}}}}}", "(".repeat(10_000), ")".repeat(10_000));
        assert!(run(&parens, &d).unwrap_err().contains("nests too deeply"));
    }

    #[test]
    fn strict_data_and_methods() {
        let d = json!({"Names": "web", "Labels": "a=1"});
        let m = |name: &str, args: &[Val]| -> Option<Result<Val, String>> {
            (name == "Label")
                .then(|| Ok(Some(json!(format!("L({})", exec::print_string(&args[0]))))))
        };
        let opts = Options {
            strict: Some("*formatter.ContainerContext"),
            methods: Some(&m),
        };
        let t = Template::parse(r#"{{.Names}} {{.Label "a"}}"#).unwrap();
        assert_eq!(t.execute(&d, &opts).unwrap(), "web L(a)");
        let t = Template::parse("{{.Nope}}").unwrap();
        assert_eq!(
            t.execute(&d, &opts).unwrap_err().0,
            "template: :1:2: executing \"\" at <.Nope>: can't evaluate field Nope in type *formatter.ContainerContext"
        );
    }
}
