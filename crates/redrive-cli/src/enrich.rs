//! `--enrich FILE`: the mapping itself is shared with the server's console
//! (`redrive_select::enrich`); reading the file is the CLI's.

use std::path::Path;

pub use redrive_select::enrich::*;

/// Reads a CSV or JSON mapping file (JSON by the `.json` extension or a leading `{` / `[`).
pub fn load(path: &Path, key: &KeyColumn) -> Result<Mapping, MappingError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
        path: name.clone(),
        source,
    })?;
    Mapping::parse(
        &text,
        &name,
        path.extension().is_some_and(|e| e == "json"),
        key,
    )
}
