//! All-or-nothing file changes: each file is written to a temporary file and renamed
//! into place; until [`Transaction::commit`], dropping the transaction puts every
//! touched file back as it was (or removes it, if it did not exist).

use std::path::{Path, PathBuf};

use crate::error::{Error, io};

/// Files changed so far, with their original contents.
#[derive(Debug, Default)]
pub struct Transaction {
    originals: Vec<(PathBuf, Option<Vec<u8>>)>,
    committed: bool,
}

impl Transaction {
    pub fn new() -> Self {
        Self::default()
    }

    /// Remembers `path` as it is now, so that it is restored on rollback even if
    /// something else (cargo) rewrites it.
    pub fn guard(&mut self, path: &Path) -> Result<(), Error> {
        if self.originals.iter().any(|(p, _)| p == path) {
            return Ok(());
        }
        let original = match std::fs::read(path) {
            Ok(bytes) => Some(bytes),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(io(path)(e)),
        };
        self.originals.push((path.to_owned(), original));
        Ok(())
    }

    /// Writes `contents` to `path` (temporary file, then rename).
    pub fn write(&mut self, path: &Path, contents: &[u8]) -> Result<(), Error> {
        self.guard(path)?;
        write_atomic(path, contents)
    }

    /// Keeps the changes.
    pub fn commit(mut self) {
        self.committed = true;
    }

    fn rollback(&mut self) {
        for (path, original) in self.originals.drain(..).rev() {
            let _ = match original {
                Some(bytes) => write_atomic(path.as_path(), &bytes).map_err(|_| ()),
                None => std::fs::remove_file(&path).map_err(|_| ()),
            };
        }
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            self.rollback();
        }
    }
}

/// Writes a file through a temporary file in the same directory and a rename.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.gwplugin-tmp"));
    std::fs::write(&tmp, contents).map_err(io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io(path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dropping_restores_and_commit_keeps() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        std::fs::write(&a, "old").unwrap();
        {
            let mut tx = Transaction::new();
            tx.write(&a, b"new").unwrap();
            tx.write(&b, b"created").unwrap();
            assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        }
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");
        assert!(!b.exists());
        let mut tx = Transaction::new();
        tx.write(&a, b"new").unwrap();
        tx.commit();
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
