//! A run folder while a process trains into it. The trainer (the window's and the CLI's)
//! holds an OS lock on `train.lock` there for as long as it writes, so a second trainer is
//! refused, naming the folder and the holder's pid; the OS lets go of it when the process
//! dies. A fresh run refuses a folder that already holds a run unless told to replace it,
//! and a start or a resume removes the temporary files that a write killed before its rename
//! left beside the run's files.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use super::resume::STATE_FILE;
use super::trainer::TrainError;
use crate::runs::layout::{CHECKPOINT_FILE, RUN_FILE, is_read_only};
use crate::runs::record::{RunRecord, RunStatus};

/// The lock file in a run folder (it holds the pid of the process training there).
pub const LOCK_FILE: &str = "train.lock";
/// The files a training run writes into its folder.
pub const RUN_FILES: [&str; 3] = [RUN_FILE, CHECKPOINT_FILE, STATE_FILE];

/// What a fresh run does with a folder that already holds a run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExistingRun {
    /// Refuse it, saying how to resume it or to choose another folder.
    Refuse,
    /// Remove its files and train in their place (`fakelens train --force`).
    Replace,
}

impl ExistingRun {
    /// `Replace` when `replace` (`--force`) is set, else `Refuse`.
    pub fn replaced_if(replace: bool) -> ExistingRun {
        match replace {
            true => ExistingRun::Replace,
            false => ExistingRun::Refuse,
        }
    }
}

/// Why a run folder cannot be trained into.
#[derive(Debug, thiserror::Error)]
pub enum RunFolderError {
    #[error(
        "{dir} is in use: {holder} is training into it; wait until it stops, or choose \
         another folder"
    )]
    Locked { dir: PathBuf, holder: String },
    #[error("cannot lock the run folder {dir}: {source}")]
    Lock {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error("{dir} already holds a run {state}")]
    Exists { dir: PathBuf, state: String },
    #[error("{dir} is a shipped detector (it has a model card): nothing trains into it")]
    ReadOnly { dir: PathBuf },
    #[error("cannot remove {path} to replace the run: {source}")]
    Clear {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The exclusive lock on a run folder, held until dropped (or the process ends).
#[derive(Debug)]
pub struct RunLock {
    file: File,
    path: PathBuf,
}

impl RunLock {
    /// Locks `dir` (which must exist) for this process, or says who holds it.
    pub fn acquire(dir: &Path) -> Result<RunLock, RunFolderError> {
        let path = dir.join(LOCK_FILE);
        let lock_err = |source| RunFolderError::Lock {
            dir: dir.to_path_buf(),
            source,
        };
        // A holder removes the file as it lets go, so a file opened just before that and
        // locked just after is no longer the folder's lock: try again on the new one.
        for _ in 0..8 {
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&path)
                .map_err(lock_err)?;
            match file.try_lock() {
                Ok(()) => {}
                Err(TryLockError::WouldBlock) => {
                    return Err(RunFolderError::Locked {
                        dir: dir.to_path_buf(),
                        holder: holder(&path),
                    });
                }
                Err(TryLockError::Error(e)) => return Err(lock_err(e)),
            }
            if !names_file(&path, &file) {
                continue;
            }
            let lock = RunLock { file, path };
            lock.record_pid().map_err(lock_err)?;
            return Ok(lock);
        }
        Err(lock_err(std::io::Error::other(
            "its lock file kept being replaced",
        )))
    }

    /// Writes this process's pid into the lock file. Not atomic on purpose: the lock is on
    /// this very file, which a rename would replace; a reader of a half-written pid just
    /// names no pid.
    fn record_pid(&self) -> std::io::Result<()> {
        self.file.set_len(0)?;
        (&self.file).write_all(std::process::id().to_string().as_bytes())
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still locked; the lock goes with the file handle right after.
        if cfg!(unix) {
            let _ = std::fs::remove_file(&self.path);
        } else {
            let _ = self.file.set_len(0);
        }
    }
}

/// Whether `path` still names the open `file` (always so where that cannot be told).
fn names_file(path: &Path, file: &File) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        match (std::fs::metadata(path), file.metadata()) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (path, file);
        true
    }
}

/// Who holds the lock file at `path`, as its recorded pid says.
fn holder(path: &Path) -> String {
    let mut text = String::new();
    let pid = File::open(path)
        .and_then(|mut f| f.read_to_string(&mut text))
        .ok()
        .and_then(|_| text.trim().parse::<u32>().ok());
    match pid {
        Some(pid) if pid == std::process::id() => {
            format!("another run in this process (pid {pid})")
        }
        Some(pid) => format!("another process (pid {pid})"),
        None => "another process".to_string(),
    }
}

/// Refuses `dir` if another process holds its lock now. Creates nothing (a folder without a
/// lock file has no holder); the trainer takes the lock itself later.
fn refuse_if_locked(dir: &Path) -> Result<(), RunFolderError> {
    let Ok(file) = File::open(dir.join(LOCK_FILE)) else {
        return Ok(());
    };
    match file.try_lock_shared() {
        Err(TryLockError::WouldBlock) => Err(RunFolderError::Locked {
            dir: dir.to_path_buf(),
            holder: holder(&dir.join(LOCK_FILE)),
        }),
        _ => Ok(()),
    }
}

/// Whether `dir` holds any file of a run.
fn holds_run(dir: &Path) -> bool {
    RUN_FILES.iter().any(|name| dir.join(name).exists())
}

/// Refuses a shipped detector's folder: nothing trains into it.
fn refuse_read_only(dir: &Path) -> Result<(), RunFolderError> {
    match is_read_only(dir) {
        true => Err(RunFolderError::ReadOnly {
            dir: dir.to_path_buf(),
        }),
        false => Ok(()),
    }
}

/// Refuses a fresh run in `dir` where a run is already (unless it is to be replaced), and
/// any run in a shipped detector's folder.
fn check_fresh(dir: &Path, existing: ExistingRun) -> Result<(), RunFolderError> {
    refuse_read_only(dir)?;
    if existing == ExistingRun::Replace || !holds_run(dir) {
        return Ok(());
    }
    let replace = "choose another folder with --out, or add --force to replace it";
    let state = if dir.join(STATE_FILE).is_file() {
        format!(
            "that can be resumed: continue it with `fakelens train --resume {}`, {replace}",
            dir.display()
        )
    } else {
        let status = match RunRecord::load(dir).map(|r| r.status) {
            Ok(RunStatus::Completed) => "completed",
            Ok(RunStatus::Imported) => "imported",
            Ok(RunStatus::Failed { .. }) => "failed, with no resumable state",
            Ok(RunStatus::Running | RunStatus::Cancelled) => "that never saved a resumable state",
            Err(_) => "whose run.json cannot be read",
        };
        format!("({status}): {replace}")
    };
    Err(RunFolderError::Exists {
        dir: dir.to_path_buf(),
        state,
    })
}

/// Removes the temporary files that writes killed before their rename left beside the
/// run's files: their temp siblings named with another pid, and the checkpoint writer's own
/// temporaries (under the lock nothing else writes into the folder).
fn remove_stale_temps(dir: &Path) {
    let stale = crate::fsutil::remove_stale_temps(dir, &RUN_FILES);
    for path in stale
        .iter()
        .chain(&crate::fsutil::remove_orphan_tempfiles(dir))
    {
        log::info!(
            "removed {}, left by a write that never finished",
            path.display()
        );
    }
}

/// Takes `dir` (which must exist) for a fresh run: locks it, refuses a run already there
/// unless `existing` says to replace it (then its stale temporary files and its own files
/// are removed).
pub fn take_for_fresh_run(dir: &Path, existing: ExistingRun) -> Result<RunLock, RunFolderError> {
    refuse_read_only(dir)?;
    let lock = RunLock::acquire(dir)?;
    check_fresh(dir, existing)?;
    // Only in a run's folder: a new one may be any folder, whose files are not the run's.
    if holds_run(dir) {
        remove_stale_temps(dir);
    }
    if existing == ExistingRun::Replace {
        for name in RUN_FILES {
            let path = dir.join(name);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(RunFolderError::Clear { path, source: e });
                }
                _ => {}
            }
        }
    }
    Ok(lock)
}

/// Takes the run in `dir` to resume it: locks it and removes stale temporary files.
pub fn take_for_resume(dir: &Path) -> Result<RunLock, RunFolderError> {
    refuse_read_only(dir)?;
    let lock = RunLock::acquire(dir)?;
    remove_stale_temps(dir);
    Ok(lock)
}

/// What the trainer will refuse, checked before the dataset is decoded (minutes on a large
/// one) so that a refusal comes at once: another process training in `dir`, a fresh run
/// over an existing one, or a resume (of the run `resumed`, read from `dir`) with no state
/// to resume from. The trainer checks again under the lock.
pub fn check_before_data(
    dir: &Path,
    resumed: Option<&RunRecord>,
    existing: ExistingRun,
) -> Result<(), TrainError> {
    refuse_if_locked(dir)?;
    match resumed {
        Some(record) => super::resume::require_state(dir, &record.status)?,
        None => check_fresh(dir, existing)?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_locked_folder_refuses_a_second_lock_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = RunLock::acquire(dir.path()).unwrap();
        let pid = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert_eq!(pid, std::process::id().to_string());
        let err = RunLock::acquire(dir.path()).unwrap_err().to_string();
        assert!(
            err.contains(&dir.path().display().to_string())
                && err.contains("in use")
                && err.contains(&format!("pid {pid}")),
            "{err}"
        );
        let early = check_before_data(dir.path(), None, ExistingRun::Refuse).unwrap_err();
        assert!(early.to_string().contains("in use"), "{early}");
        drop(first);
        assert!(
            !dir.path().join(LOCK_FILE).exists(),
            "the lock file goes too"
        );
        check_before_data(dir.path(), None, ExistingRun::Refuse).unwrap();
        let again = RunLock::acquire(dir.path()).unwrap();
        drop(again);
    }
}
