//! Atomic file writes: every checkpoint, run history and export goes to a temporary file in
//! the same folder first and is renamed over the target, so a crash or a cancel never leaves
//! a half-written file behind.

use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary sibling a write goes to before it is renamed into place.
pub fn temp_sibling(path: &Path) -> PathBuf {
    let mut name = path
        .file_name()
        .map(|n| n.to_os_string())
        .unwrap_or_else(|| "file".into());
    name.push(format!(".{}.tmp", std::process::id()));
    path.with_file_name(name)
}

/// Removes the temporary siblings that other processes left beside `dir`'s files named in
/// `names` (`<name>.<pid>.tmp` with a pid not this process's: a write killed before its
/// rename). Only call it while no other process can be writing there (the run folder's
/// lock is held). Returns the files removed.
pub fn remove_stale_temps(dir: &Path, names: &[&str]) -> Vec<PathBuf> {
    let own = std::process::id();
    remove_files_named(dir, |name| {
        let writer = names.iter().find_map(|own_name| {
            let pid = name.strip_prefix(own_name)?.strip_prefix('.')?;
            pid.strip_suffix(".tmp")?.parse::<u32>().ok()
        });
        writer.is_some_and(|pid| pid != own)
    })
}

/// Removes the temporaries named as the `tempfile` crate names them (`.tmp` and six letters
/// or digits) in `dir`: the safetensors crate writes a checkpoint through one before it is
/// renamed to its temp sibling, so a kill during that write leaves one. Only call it while
/// no process, this one included, is writing there. Returns the files removed.
pub fn remove_orphan_tempfiles(dir: &Path) -> Vec<PathBuf> {
    remove_files_named(dir, |name| {
        name.strip_prefix(".tmp")
            .is_some_and(|rest| rest.len() == 6 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
    })
}

/// Removes the regular files of `dir` whose (UTF-8) name `stale` accepts, in name order.
fn remove_files_named(dir: &Path, stale: impl Fn(&str) -> bool) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut removed = Vec::new();
    for entry in entries.flatten() {
        let is_file = entry.file_type().is_ok_and(|t| t.is_file());
        let file_name = entry.file_name();
        let matches = file_name.to_str().is_some_and(&stale);
        if is_file && matches && std::fs::remove_file(entry.path()).is_ok() {
            removed.push(entry.path());
        }
    }
    removed.sort();
    removed
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    write_atomic_with(path, |tmp| {
        let mut file = std::fs::File::create(tmp)?;
        file.write_all(bytes)?;
        file.sync_all()
    })
}

/// Lets `write` produce the file at a temporary path, then renames it to `path`. On error the
/// temporary file is removed and `path` is left as it was.
pub fn write_atomic_with<E>(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E>
where
    E: From<std::io::Error>,
{
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let tmp = temp_sibling(path);
    match write(&tmp) {
        Ok(()) => {
            if let Err(err) = std::fs::rename(&tmp, path) {
                let _ = std::fs::remove_file(&tmp);
                return Err(err.into());
            }
            Ok(())
        }
        Err(err) => {
            let _ = std::fs::remove_file(&tmp);
            Err(err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_the_old_file_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write_atomic(&path, b"old").unwrap();
        let result: Result<(), std::io::Error> = write_atomic_with(&path, |tmp| {
            std::fs::write(tmp, b"half")?;
            Err(std::io::Error::other("disk full"))
        });
        assert!(result.is_err());
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        let leftovers: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(leftovers.len(), 1, "temp file must be removed");
    }

    #[test]
    fn stale_temps_of_other_processes_are_removed_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let own = temp_sibling(&dir.path().join("run.json"));
        let keep = [
            "run.json",
            "model.safetensors",
            "notes.txt.77.tmp",
            "run.json.abc.tmp",
            "run.json.77.tmp.bak",
        ];
        for name in keep {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        std::fs::write(&own, b"mine").unwrap();
        let other = std::process::id().wrapping_add(1);
        let stale = [
            format!("model.safetensors.{other}.tmp"),
            format!("run.json.{other}.tmp"),
        ];
        for name in &stale {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let removed = remove_stale_temps(dir.path(), &["run.json", "model.safetensors"]);
        let names: Vec<_> = removed
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, stale);
        assert!(own.is_file(), "this process's own temp is kept");
        for name in keep {
            assert!(dir.path().join(name).is_file(), "{name} is kept");
        }
    }

    #[test]
    fn orphan_tempfiles_are_the_tempfile_crates_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let orphan = tempfile::NamedTempFile::new_in(dir.path()).unwrap();
        let (_file, orphan) = orphan.keep().unwrap();
        for name in [".tmpab", ".tmpabc1234", ".tmp-ab12c", "x.tmpAbc123"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(remove_orphan_tempfiles(dir.path()), [orphan]);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 4);
    }
}
