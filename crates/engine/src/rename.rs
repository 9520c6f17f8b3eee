//! `rename`: a container's name changed under the records lock, so two
//! renames (or a rename and a run) never both take one name.

use anyhow::{Result, bail};

use crate::Engine;
use crate::records::{self, NameConflict};

/// Renames the container `key` names (id, id prefix or name) to `new`.
pub fn rename(engine: &Engine, key: &str, new: &str) -> Result<()> {
    // Docker takes `/NEW` too: the leading slash is how it stores names.
    let new = new.strip_prefix('/').unwrap_or(new);
    let records = engine.records()?;
    let _lock = records.lock()?;
    // Docker's order: the container first, then the new name.
    let mut c = records.find(key)?;
    records::validate_name(new)?;
    if c.name == new {
        bail!("Renaming a container with the same name as its current name");
    }
    if let Some(other) = records.name_taken(new)? {
        return Err(NameConflict {
            name: new.to_string(),
            id: other,
        }
        .into());
    }
    let old = std::mem::replace(&mut c.name, new.to_string());
    records.save(&c)?;
    // A running container answers to its new name at once (Docker's too).
    crate::network::rename(engine, &c);
    crate::events::container_with(engine, &c, "rename", &[("oldName", &old)]);
    Ok(())
}
