//! Writing output files atomically: to a temporary file beside the target, renamed into place
//! once complete, so an interrupted run never leaves a partial file that looks finished.

use std::io::{BufWriter, Write};
use std::path::Path;

use anyhow::{Context, Result};

/// Writes `path` through `write`, atomically.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let temp = tempfile::NamedTempFile::new_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))?;
    let mut writer = BufWriter::new(temp.reopen().context("reopening the temporary file")?);
    write(&mut writer)?;
    writer
        .flush()
        .with_context(|| format!("writing {}", path.display()))?;
    drop(writer);
    temp.persist(path)
        .with_context(|| format!("cannot move the output into {}", path.display()))?;
    Ok(())
}
