//! The catalog of runs the Compare, Explain and Inspect tabs tick from: the runs folder's
//! runs (newest first), the bundled detectors (read-only), and runs added from elsewhere. A
//! run without a usable checkpoint is listed with the reason and cannot be ticked. This is
//! the one place that walks a runs folder; the window calls it off its UI thread.

use std::path::{Path, PathBuf};

use crate::runs::RunRecord;
use crate::runs::layout::{bundled_runs_dir, is_read_only, unusable_reason};

/// A run found on disk.
#[derive(Clone, Debug)]
pub struct RunEntry {
    pub dir: PathBuf,
    pub record: RunRecord,
    /// A detector that ships with the app (read-only).
    pub bundled: bool,
    /// Why it cannot be ticked (no checkpoint), if so.
    pub unusable: Option<String>,
}

impl RunEntry {
    pub fn new(dir: PathBuf, record: RunRecord) -> RunEntry {
        RunEntry {
            bundled: is_read_only(&dir),
            unusable: unusable_reason(&dir),
            dir,
            record,
        }
    }

    /// The run in `dir`, or why it cannot be listed.
    pub fn load(dir: &Path) -> Result<RunEntry, String> {
        Ok(RunEntry::new(dir.to_path_buf(), load_record(dir)?))
    }

    /// The run's model and folder name, as the run lists show it.
    pub fn name(&self) -> String {
        let dir = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        format!("{} · {dir}", self.record.model.label())
    }
}

/// The record of the run in `dir`, or why it cannot be read (each cause once).
pub fn load_record(dir: &Path) -> Result<RunRecord, String> {
    RunRecord::load(dir).map_err(|e| crate::report::chain(&anyhow::Error::new(e)))
}

/// The runs directly under `dir` (folders with a readable `run.json`), newest first.
pub fn runs_in(dir: &Path) -> Vec<RunEntry> {
    let mut found: Vec<RunEntry> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| RunEntry::load(&entry.path()).ok())
        .collect();
    found.sort_by(|a, b| b.record.created.cmp(&a.record.created));
    found
}

/// The runs in `runs_dir`, newest first, then the bundled detectors.
pub fn scan(runs_dir: &Path) -> Vec<RunEntry> {
    let mut found = runs_in(runs_dir);
    if let Some(bundled) = bundled_runs_dir() {
        found.extend(runs_in(&bundled));
    }
    found
}

/// `scanned` (a fresh [`scan`] of `runs_dir`) followed by the runs of `previous` that were
/// added from elsewhere and are not in it.
pub fn merge_added(
    runs_dir: &Path,
    scanned: Vec<RunEntry>,
    previous: &[RunEntry],
) -> Vec<RunEntry> {
    let mut runs = scanned;
    for old in previous {
        if !runs.iter().any(|r| r.dir == old.dir) && !old.dir.starts_with(runs_dir) {
            runs.push(old.clone());
        }
    }
    runs
}

/// The run to tick when none is: the first usable bundled detector, else the newest usable
/// run.
pub fn default_run(runs: &[RunEntry]) -> Option<&RunEntry> {
    let usable = || runs.iter().filter(|r| r.unusable.is_none());
    usable().find(|r| r.bundled).or_else(|| usable().next())
}
