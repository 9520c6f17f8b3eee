//! `COPY --from=stage /app/*.txt /dst/`: a source with `*`, `?` or `[…]`
//! is matched in the other stage's filesystem, as BuildKit matches it,
//! by the context's rules ([`copy::glob`]): component by component, in
//! the container's root opened by `cp` (`..` and absolute symlinks stay
//! inside it), a symlink never followed into as a directory. A source
//! without one is taken as it is written.

use std::path::{Component, Path};

use anyhow::{Result, bail};

use super::super::copy;

/// The paths (relative to the root) that `srcs` name in container `id`.
pub(super) fn from_paths(engine: &crate::Engine, id: &str, srcs: &[String]) -> Result<Vec<String>> {
    let mut out = Vec::new();
    for s in srcs {
        if !s.contains(['*', '?', '[']) {
            out.push(s.trim_start_matches('/').to_string());
            continue;
        }
        // Cleaned as Docker cleans it: `..` stops at the root.
        let parts: Vec<String> = crate::cp::in_root(s)
            .components()
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_string_lossy().into_owned()),
                _ => None,
            })
            .collect();
        let mut found = crate::cp::in_container(engine, id, |root| {
            let mut v = Vec::new();
            copy::glob(root, Path::new(""), &parts, &mut v)?;
            Ok(v)
        })?;
        if found.is_empty() {
            bail!("{s}: not found: no source files were specified");
        }
        found.sort();
        out.extend(found);
    }
    Ok(out)
}
