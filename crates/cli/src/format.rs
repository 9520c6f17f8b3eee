//! The docker CLI's `--format` for listings (ps, images): `table` (the
//! default columns, or `table TEMPLATE` with a header row), `json` (one
//! object a line), or a bare template run once per item; `\t` and `\n`
//! written as two characters become tab and newline, and table columns are
//! aligned as Go's tabwriter does (min width 10, padding 3).

use anyhow::{Result, anyhow};
use serde_json::Value;

use crate::table;
use crate::template::{Options, Template, Val};

/// Methods of the i-th item (`{{.Label "k"}}` of ps's i-th container).
pub type ItemMethods<'a> = &'a dyn Fn(usize, &str, &[Val]) -> Option<Result<Val, String>>;

pub struct Format {
    template: Template,
    header: Option<Template>,
    /// The template's text, to see which fields it needs.
    pub text: String,
}

impl Format {
    /// `--format` as given (None: the default); `default_table` is the
    /// command's default columns, without the `table ` prefix.
    pub fn parse(format: Option<&str>, default_table: &str) -> Result<Format> {
        let f = format.unwrap_or("").trim_matches(' ');
        let (table, body) = match f {
            "" | "table" => (true, default_table),
            "json" => (false, "{{json .}}"),
            f => match f.strip_prefix("table") {
                Some(rest) => (true, rest),
                None => (false, f),
            },
        };
        let text = body
            .trim_matches(' ')
            .replace("\\t", "\t")
            .replace("\\n", "\n");
        let parse =
            |t: &str| Template::parse(t).map_err(|e| anyhow!("template parsing error: {e}"));
        Ok(Format {
            template: parse(&text)?,
            header: if table { Some(parse(&text)?) } else { None },
            text,
        })
    }

    /// Whether the template names `.FIELD` (costly fields, like ps's
    /// Size, are only worked out when asked for).
    pub fn uses(&self, field: &str) -> bool {
        self.text.contains(&format!(".{field}"))
    }

    /// The output for `items`: a header row first for a table (each field
    /// replaced by its name in `headers`), every item's line after it.
    pub fn render(
        &self,
        items: &[Value],
        headers: &Value,
        strict: &str,
        methods: ItemMethods<'_>,
    ) -> Result<String> {
        let mut out = String::new();
        if let Some(h) = &self.header {
            let label = |name: &str, args: &[Val]| {
                (name == "Label").then(|| Ok(Some(Value::String(label_header(args)))))
            };
            let hopts = Options {
                strict: None,
                methods: Some(&label),
            };
            // A header that cannot be made is left empty, as docker does.
            out.push_str(&h.execute(headers, &hopts).unwrap_or_default());
            out.push('\n');
        }
        for (i, it) in items.iter().enumerate() {
            let m = |name: &str, args: &[Val]| methods(i, name, args);
            let opts = Options {
                strict: Some(strict),
                methods: Some(&m),
            };
            out.push_str(&self.template.execute(it, &opts)?);
            out.push('\n');
        }
        Ok(if self.header.is_some() {
            table::tabwriter(&out)
        } else {
            out
        })
    }
}

/// The header of `{{.Label "com.example.some_key"}}`: `SOME KEY`.
fn label_header(args: &[Val]) -> String {
    let name = match args.first() {
        Some(Some(Value::String(s))) => s.as_str(),
        _ => "",
    };
    name.rsplit('.')
        .next()
        .unwrap_or("")
        .replace('_', " ")
        .to_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn no_methods(_: usize, _: &str, _: &[Val]) -> Option<Result<Val, String>> {
        None
    }

    #[test]
    fn table_json_and_raw_formats() {
        let items = [
            json!({"ID": "abc", "Names": "web"}),
            json!({"ID": "defghijklmnop", "Names": "db"}),
        ];
        let headers = json!({"ID": "CONTAINER ID", "Names": "NAMES"});
        let f = Format::parse(None, "{{.ID}}\\t{{.Names}}").unwrap();
        assert_eq!(
            f.render(&items, &headers, "T", &no_methods).unwrap(),
            "CONTAINER ID    NAMES\nabc             web\ndefghijklmnop   db\n"
        );
        let f = Format::parse(Some("table {{.Names}}\\t{{.ID}}"), "").unwrap();
        assert_eq!(
            f.render(&items[..1], &headers, "T", &no_methods).unwrap(),
            "NAMES     CONTAINER ID\nweb       abc\n"
        );
        let f = Format::parse(Some("json"), "").unwrap();
        assert_eq!(
            f.render(&items[..1], &headers, "T", &no_methods).unwrap(),
            "{\"ID\":\"abc\",\"Names\":\"web\"}\n"
        );
        let f = Format::parse(Some("{{.Names}}:{{.ID}}"), "").unwrap();
        assert_eq!(
            f.render(&items, &headers, "T", &no_methods).unwrap(),
            "web:abc\ndb:defghijklmnop\n"
        );
        let e = Format::parse(Some("{{nope}}"), "")
            .err()
            .unwrap()
            .to_string();
        assert_eq!(
            e,
            "template parsing error: template: :1: function \"nope\" not defined"
        );
        let f = Format::parse(Some("{{.Bad}}"), "").unwrap();
        let e = f
            .render(&items, &headers, "*formatter.ContainerContext", &no_methods)
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("can't evaluate field Bad in type *formatter.ContainerContext"),
            "{e}"
        );
    }

    #[test]
    fn label_headers_are_the_last_key_part() {
        assert_eq!(
            label_header(&[Some(json!("com.docker.compose.project_name"))]),
            "PROJECT NAME"
        );
    }
}
