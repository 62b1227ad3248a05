//! Writing outputs atomically: to a temporary file (or directory) beside the target, renamed
//! into place once complete, so an interrupted run never leaves a partial output that looks
//! finished. Every file and directory vidcls writes goes through here.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use tempfile::{NamedTempFile, TempDir};

/// Writes `path` through `write`, atomically.
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut pending = PendingFile::create(path)?;
    write(pending.writer()).map_err(|e| with_path(path, e))?;
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
    pub fn create(path: &Path) -> io::Result<Self> {
        let temp = temp_beside(path)?;
        let writer = BufWriter::new(temp.reopen().map_err(|e| with_path(path, e))?);
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
    pub fn reopen(&self) -> io::Result<File> {
        self.temp.reopen().map_err(|e| with_path(&self.path, e))
    }

    /// Where the content goes.
    pub fn writer(&mut self) -> &mut BufWriter<File> {
        &mut self.writer
    }

    /// Moves the finished file to its path; with `overwrite` false, fails if the path exists.
    pub fn commit(mut self, overwrite: bool) -> io::Result<()> {
        self.writer.flush().map_err(|e| with_path(&self.path, e))?;
        drop(self.writer);
        let persisted = if overwrite {
            self.temp.persist(&self.path).map(drop)
        } else {
            self.temp.persist_noclobber(&self.path).map(drop)
        };
        persisted.map_err(|e| {
            io::Error::new(
                e.error.kind(),
                format!(
                    "cannot move the output into {}: {}",
                    self.path.display(),
                    e.error
                ),
            )
        })
    }
}

/// An output directory being written: a temporary directory beside `path`, moved to `path`
/// by [`commit`](PendingDir::commit), removed with its content if dropped before.
pub struct PendingDir {
    path: PathBuf,
    temp: TempDir,
}

impl PendingDir {
    /// Starts writing the directory `path`, creating its parent directories if needed.
    ///
    /// # Errors
    /// If `path` exists and is not an empty directory (`AlreadyExists`), or I/O fails.
    pub fn create(path: &Path) -> io::Result<Self> {
        if path.exists()
            && std::fs::read_dir(path)
                .map_err(|e| with_path(path, e))?
                .next()
                .is_some()
        {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                "output directory exists and is not empty",
            ));
        }
        let parent = parent_of(path);
        std::fs::create_dir_all(parent).map_err(|e| with_path(parent, e))?;
        let temp = temp_builder(0o777)
            .tempdir_in(parent)
            .map_err(|e| cannot_create(path, e))?;
        Ok(PendingDir {
            path: path.to_path_buf(),
            temp,
        })
    }

    /// The temporary directory, where the content goes.
    pub fn temp_path(&self) -> &Path {
        self.temp.path()
    }

    /// Moves the finished directory to its path, which must not exist or be an empty
    /// directory.
    pub fn commit(self) -> io::Result<()> {
        if self.path.is_dir() {
            std::fs::remove_dir(&self.path).map_err(|e| with_path(&self.path, e))?;
        }
        std::fs::rename(self.temp.path(), &self.path).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot move the output into {}: {e}", self.path.display()),
            )
        })?;
        // Renamed away: nothing is left for the guard to remove.
        let _ = self.temp.keep();
        Ok(())
    }
}

/// An I/O error that names the file it happened on.
fn with_path(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", path.display()))
}

/// A new temporary file in the directory of `path`.
fn temp_beside(path: &Path) -> io::Result<NamedTempFile> {
    temp_builder(0o666)
        .tempfile_in(parent_of(path))
        .map_err(|e| cannot_create(path, e))
}

/// Names temporary outputs `.vidcls-*` and gives them `mode` (less the umask): the permissions
/// of a newly created file (`0o666`) or directory (`0o777`), not the owner-only ones of
/// temporary files.
fn temp_builder(mode: u32) -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".vidcls-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
}

/// The directory that holds `path`.
fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

fn cannot_create(path: &Path, error: io::Error) -> io::Error {
    io::Error::new(
        error.kind(),
        format!(
            "cannot create a temporary output in {}: {error}",
            parent_of(path).display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let mut pending = PendingFile::create(&path).unwrap();
        writeln!(pending.writer(), "hello").unwrap();
        assert!(!path.exists());
        pending.commit(true).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");

        let failed = write_atomically(&path, |_| Err(io::Error::other("broken")));
        assert!(failed.unwrap_err().to_string().contains("out.txt"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "hello\n");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn a_directory_appears_only_when_committed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("new/dataset");
        let pending = PendingDir::create(&path).unwrap();
        std::fs::write(pending.temp_path().join("a.txt"), "a").unwrap();
        assert!(!path.exists());
        pending.commit().unwrap();
        assert_eq!(std::fs::read_to_string(path.join("a.txt")).unwrap(), "a");
        let refused = PendingDir::create(&path).err().unwrap();
        assert_eq!(refused.kind(), io::ErrorKind::AlreadyExists);

        let abandoned = PendingDir::create(&dir.path().join("new/other")).unwrap();
        std::fs::write(abandoned.temp_path().join("b.txt"), "b").unwrap();
        drop(abandoned);
        assert_eq!(
            std::fs::read_dir(dir.path().join("new")).unwrap().count(),
            1
        );
    }
}
