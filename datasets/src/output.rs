//! Writing outputs atomically: to a temporary file (or directory) beside the target, renamed
//! into place once complete, so an interrupted run never leaves a partial output that looks
//! finished. Every file and directory vidcls writes goes through here.
//!
//! Temporary outputs are removed when dropped (errors, panics) and, through
//! [`remove_pending_outputs`], by the binary's signal handler (SIGINT, SIGTERM, SIGHUP).
//! [`check_output`] refuses outputs that would replace an input or, without `--overwrite`,
//! an existing file.

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tempfile::{NamedTempFile, TempDir};

/// The temporary outputs being written, for [`remove_pending_outputs`].
static PENDING: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());

/// Keeps a temporary output in [`PENDING`] while it lives.
struct Registered(PathBuf);

impl Registered {
    fn new(path: &Path) -> Self {
        pending().insert(path.to_path_buf());
        Registered(path.to_path_buf())
    }
}

impl Drop for Registered {
    fn drop(&mut self) {
        pending().remove(&self.0);
    }
}

fn pending() -> std::sync::MutexGuard<'static, BTreeSet<PathBuf>> {
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Removes every temporary output still being written (files and directories), e.g. from a
/// signal handler before the process ends. Returns how many were removed.
pub fn remove_pending_outputs() -> usize {
    let paths = std::mem::take(&mut *pending());
    let removed = paths.iter().filter(|path| remove_until_gone(path)).count();
    // Threads still filling a directory may have recreated part of it: once more.
    std::thread::sleep(std::time::Duration::from_millis(50));
    for path in &paths {
        remove_until_gone(path);
    }
    removed
}

/// Removes a file or directory, retrying while other threads still write into it; whether it
/// is gone.
fn remove_until_gone(path: &Path) -> bool {
    for _ in 0..100 {
        let _ = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        if std::fs::symlink_metadata(path).is_err() {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    false
}

/// Checks an output path before any work: it must not be one of `inputs` (the same file or
/// directory, however spelled; other outputs of the command count as inputs here) and,
/// unless `overwrite`, must not exist.
pub fn check_output(output: &Path, inputs: &[&Path], overwrite: bool) -> io::Result<()> {
    let target = identity(output);
    if let Some(input) = inputs.iter().find(|input| identity(input) == target) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: the output would replace {}, which the command reads or writes too",
                output.display(),
                input.display()
            ),
        ));
    }
    if !overwrite && output.exists() {
        return Err(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!(
                "{} exists: give --overwrite to replace it",
                output.display()
            ),
        ));
    }
    Ok(())
}

/// A path's identity: canonical if it exists, else its canonical parent joined with its name.
fn identity(path: &Path) -> PathBuf {
    if let Ok(canonical) = path.canonicalize() {
        return canonical;
    }
    let parent = parent_of(path);
    match (parent.canonicalize(), path.file_name()) {
        (Ok(parent), Some(name)) => parent.join(name),
        _ => std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
    }
}

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
    _registered: Registered,
}

impl PendingFile {
    /// Starts writing `path`.
    pub fn create(path: &Path) -> io::Result<Self> {
        let temp = temp_beside(path)?;
        let writer = BufWriter::new(temp.reopen().map_err(|e| with_path(path, e))?);
        Ok(PendingFile {
            path: path.to_path_buf(),
            _registered: Registered::new(temp.path()),
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
    _registered: Registered,
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
            _registered: Registered::new(temp.path()),
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

    #[test]
    fn pending_outputs_are_registered_until_committed_or_dropped() {
        // (Removal itself is tested end to end, by interrupting the binary: calling it here
        // would remove other tests' outputs.)
        let dir = tempfile::tempdir().unwrap();
        let file = PendingFile::create(&dir.path().join("a.csv")).unwrap();
        let directory = PendingDir::create(&dir.path().join("run")).unwrap();
        let (file_temp, dir_temp) = (
            file.temp_path().to_owned(),
            directory.temp_path().to_owned(),
        );
        assert!(pending().contains(&file_temp) && pending().contains(&dir_temp));
        file.commit(true).unwrap();
        drop(directory);
        assert!(!pending().contains(&file_temp) && !pending().contains(&dir_temp));
    }

    #[test]
    fn outputs_never_replace_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let input = dir.path().join("annotations.json");
        std::fs::write(&input, "[]").unwrap();
        let spelled_otherwise = dir.path().join(".").join("annotations.json");
        let error = check_output(&spelled_otherwise, &[&input], true).unwrap_err();
        assert!(error.to_string().contains("would replace"), "{error}");
        let logits = dir.path().join("out.npy");
        assert!(check_output(&logits, &[&dir.path().join("./out.npy")], true).is_err());
        let exists = check_output(&input, &[], false).unwrap_err();
        assert_eq!(exists.kind(), io::ErrorKind::AlreadyExists);
        assert!(check_output(&input, &[], true).is_ok());
        assert!(check_output(&dir.path().join("new.csv"), &[&input], false).is_ok());
    }
}
