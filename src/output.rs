//! Writing output files atomically: to a temporary file beside the target, renamed into place
//! once complete, so an interrupted run never leaves a partial file that looks finished.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use tempfile::NamedTempFile;

/// Writes `path` through `write`, atomically.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> Result<()>,
) -> Result<()> {
    let mut pending = PendingFile::create(path)?;
    write(pending.writer())?;
    pending.commit(true)
}

/// An output file being written: a temporary file beside `path`, moved to `path` by
/// [`commit`](PendingFile::commit), removed if dropped before.
pub struct PendingFile {
    path: PathBuf,
    temp: NamedTempFile,
    writer: BufWriter<File>,
}

impl PendingFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> Result<Self> {
        let temp = temp_beside(path)?;
        let writer = BufWriter::new(temp.reopen().context("reopening the temporary file")?);
        Ok(PendingFile {
            path: path.to_path_buf(),
            temp,
            writer,
        })
    }

    /// The temporary file's path (for writers that take a path).
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// A second handle on the temporary file (for writers that own their file).
    pub fn reopen(&self) -> Result<File> {
        self.temp.reopen().context("reopening the temporary file")
    }

    /// Where the content goes.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.writer
    }

    /// Moves the finished file to its path; with `overwrite` false, fails if the path exists.
    pub fn commit(mut self, overwrite: bool) -> Result<()> {
        self.writer
            .flush()
            .with_context(|| format!("writing {}", self.path.display()))?;
        drop(self.writer);
        let persisted = if overwrite {
            self.temp.persist(&self.path).map(drop)
        } else {
            self.temp.persist_noclobber(&self.path).map(drop)
        };
        persisted.with_context(|| format!("cannot move the output into {}", self.path.display()))
    }
}

/// A new temporary file in the directory of `path`, with the permissions of a newly created
/// file (not the owner-only ones of temporary files).
fn temp_beside(path: &Path) -> Result<NamedTempFile> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let mut builder = tempfile::Builder::new();
    builder.prefix(".vidcls-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    builder
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in {}", dir.display()))
}
