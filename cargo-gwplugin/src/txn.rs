//! All-or-nothing file changes: each file is written to a temporary file and renamed
//! into place; until [`Transaction::commit`], dropping the transaction puts every
//! touched file back as it was (or removes it, if it did not exist), and removes the
//! directories it created.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::error::{Error, io};

/// What [`Transaction::roll_back`] did, each list in the order the files were first touched.
#[derive(Debug, Default)]
pub struct RolledBack {
    pub restored: Vec<PathBuf>,
    pub removed: Vec<PathBuf>,
    /// Files it could not put back, and why.
    pub failed: Vec<(PathBuf, String)>,
}

/// Files changed so far, with their original contents.
#[derive(Debug, Default)]
pub struct Transaction {
    originals: Vec<(PathBuf, Option<Vec<u8>>)>,
    /// The directories each `create_dir_all` made, innermost first.
    created_dirs: Vec<Vec<PathBuf>>,
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

    /// Creates `dir` and its missing parents; a rollback removes the ones made here, if
    /// they are empty by then (another build may have written to a shared folder since).
    pub fn create_dir_all(&mut self, dir: &Path) -> Result<(), Error> {
        // Innermost first, the order they are removed in.
        let missing: Vec<PathBuf> = dir
            .ancestors()
            .filter(|a| !a.as_os_str().is_empty())
            .take_while(|a| !a.exists())
            .map(Path::to_owned)
            .collect();
        let made = std::fs::create_dir_all(dir).map_err(io(dir));
        // Also those made before a failure.
        self.created_dirs.push(missing);
        made
    }

    /// Puts every file back now, and says what that took ([`RolledBack`]).
    pub fn roll_back(mut self) -> RolledBack {
        self.rollback()
    }

    /// Keeps the changes.
    pub fn commit(mut self) {
        self.committed = true;
    }

    /// Puts back each file that is not as it was (rewritten, or removed if it did not
    /// exist), then removes the directories made here; says which files took what.
    fn rollback(&mut self) -> RolledBack {
        let mut done = RolledBack::default();
        for (path, original) in self.originals.drain(..).rev() {
            // Left alone only when surely as it was: a file that cannot be read is put back.
            let unchanged = match (std::fs::read(&path), &original) {
                (Ok(now), Some(bytes)) => now == *bytes,
                (Err(e), None) => e.kind() == std::io::ErrorKind::NotFound,
                _ => false,
            };
            if unchanged {
                continue;
            }
            let undone = match &original {
                Some(bytes) => write_atomic(&path, bytes)
                    .map(|()| &mut done.restored)
                    .map_err(|e| e.to_string()),
                None => std::fs::remove_file(&path)
                    .map(|()| &mut done.removed)
                    .map_err(|e| e.to_string()),
            };
            match undone {
                Ok(list) => list.insert(0, path),
                Err(e) => done.failed.insert(0, (path, e)),
            }
        }
        // Later calls' first: their directories may be inside earlier ones'.
        for made in self.created_dirs.drain(..).rev() {
            for dir in made {
                let _ = std::fs::remove_dir(dir);
            }
        }
        done
    }
}

impl Drop for Transaction {
    fn drop(&mut self) {
        if !self.committed {
            // Said by `roll_back`'s callers; a drop on an error path says nothing.
            let _ = self.rollback();
        }
    }
}

/// Writes a file through a temporary file in the same directory and a rename. An existing
/// file keeps its permissions (a gateway config may be readable by its owner only), and a
/// symbolic link keeps pointing where it did: the file it points to is the one replaced.
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<(), Error> {
    let path = match std::fs::canonicalize(path) {
        Ok(resolved) => resolved,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => path.to_owned(),
        Err(e) => return Err(io(path)(e)),
    };
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    // Created with the original's mode, so that its contents are never readable by more
    // than they were; a new file as `std::fs::write` makes one (0666 less the umask), not
    // tempfile's 0600: a gateway running as another user must be able to read a new
    // plugin or config.
    use std::os::unix::fs::PermissionsExt as _;
    let original = match std::fs::metadata(&path) {
        Ok(original) => Some(original.permissions()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(io(&path)(e)),
    };
    let mode = original.as_ref().map_or(0o666, |p| p.mode() & 0o777);
    let mut tmp = tempfile::Builder::new()
        .prefix(".gwplugin-tmp")
        .permissions(std::fs::Permissions::from_mode(mode))
        .tempfile_in(dir)
        .map_err(io(dir))?;
    if let Some(original) = original {
        // Exactly the original's, also the bits the umask took away at creation.
        tmp.as_file()
            .set_permissions(original)
            .map_err(io(tmp.path()))?;
    }
    tmp.write_all(contents).map_err(io(tmp.path()))?;
    // Dropped on failure, the temporary file is removed.
    tmp.persist(&path).map_err(|e| io(&path)(e.error))?;
    Ok(())
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

    #[test]
    fn roll_back_says_what_it_restored_removed_and_could_not_put_back() {
        let dir = tempfile::tempdir().unwrap();
        let changed = dir.path().join("Cargo.toml");
        let untouched = dir.path().join("Cargo.lock");
        let created = dir.path().join("rust-toolchain.toml");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        let lost = sub.join("gone");
        std::fs::write(&changed, "old").unwrap();
        std::fs::write(&untouched, "lock").unwrap();
        std::fs::write(&lost, "old").unwrap();
        let mut tx = Transaction::new();
        tx.write(&changed, b"new").unwrap();
        tx.guard(&untouched).unwrap();
        tx.write(&created, b"pin").unwrap();
        tx.write(&lost, b"new").unwrap();
        // Its folder replaced by a file: it cannot be written back.
        std::fs::remove_dir_all(&sub).unwrap();
        std::fs::write(&sub, "in the way").unwrap();
        let undone = tx.roll_back();
        assert_eq!(undone.restored, std::slice::from_ref(&changed));
        assert_eq!(undone.removed, std::slice::from_ref(&created));
        assert_eq!(undone.failed.len(), 1);
        assert_eq!(undone.failed[0].0, lost);
        assert_eq!(std::fs::read_to_string(&changed).unwrap(), "old");
        assert_eq!(std::fs::read_to_string(&untouched).unwrap(), "lock");
        assert!(!created.exists());
    }

    #[test]
    fn dropping_removes_the_directories_it_made_and_only_those() {
        let dir = tempfile::tempdir().unwrap();
        let existing = dir.path().join("existing");
        std::fs::create_dir(&existing).unwrap();
        {
            let mut tx = Transaction::new();
            tx.create_dir_all(&existing.join("a/b")).unwrap();
            tx.write(&existing.join("a/b/plugin.so"), b"elf").unwrap();
            tx.create_dir_all(&existing).unwrap();
        }
        assert!(existing.is_dir());
        assert_eq!(std::fs::read_dir(&existing).unwrap().count(), 0);
        // What another process wrote there meanwhile stays, and so does its folder.
        {
            let mut tx = Transaction::new();
            tx.create_dir_all(&existing.join("shared/out")).unwrap();
            std::fs::write(existing.join("shared/other.so"), "theirs").unwrap();
        }
        assert!(existing.join("shared/other.so").is_file());
        assert!(!existing.join("shared/out").exists());
        let mut tx = Transaction::new();
        tx.create_dir_all(&existing.join("a")).unwrap();
        tx.commit();
        assert!(existing.join("a").is_dir());
    }

    #[test]
    fn a_rewrite_keeps_permissions_and_symbolic_links() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let real = dir.path().join("gateway.json.orig");
        let link = dir.path().join("gateway.json");
        std::fs::write(&real, "old").unwrap();
        std::fs::set_permissions(&real, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::os::unix::fs::symlink(&real, &link).unwrap();
        write_atomic(&link, b"new").unwrap();
        assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
        assert_eq!(std::fs::read_to_string(&real).unwrap(), "new");
        let mode = std::fs::metadata(&real).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_dir(dir.path()).unwrap().count(),
            2,
            "no temporary file left"
        );

        // A new file: readable by others, as `std::fs::write` makes one.
        let probe = dir.path().join("probe");
        std::fs::write(&probe, "").unwrap();
        let fresh = dir.path().join("fresh.so");
        write_atomic(&fresh, b"x").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), mode(&probe));
    }
}
