//! The list of runs the Compare, Explain and Inspect tabs tick from: the runs folder's runs
//! (newest first), the bundled detectors (read-only), and runs added from elsewhere. A run
//! without a checkpoint is listed greyed with the reason and cannot be ticked.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crate::train::RunRecord;

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
            bundled: crate::train::history::is_read_only(&dir),
            unusable: crate::train::history::unusable_reason(&dir),
            dir,
            record,
        }
    }
}

fn runs_in(dir: &Path) -> Vec<RunEntry> {
    let mut found: Vec<RunEntry> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let dir = entry.path();
            RunRecord::load(&dir)
                .ok()
                .map(|record| RunEntry::new(dir, record))
        })
        .collect();
    found.sort_by(|a, b| b.record.created.cmp(&a.record.created));
    found
}

/// The runs in `runs_dir` (folders with a readable `run.json`), newest first, then the
/// bundled detectors, then those of `previous` that were added from elsewhere.
pub fn scan_runs(runs_dir: &Path, previous: &[RunEntry]) -> Vec<RunEntry> {
    let mut found = runs_in(runs_dir);
    if let Some(bundled) = crate::train::history::bundled_runs_dir() {
        found.extend(runs_in(&bundled));
    }
    for old in previous {
        if !found.iter().any(|r| r.dir == old.dir) && !old.dir.starts_with(runs_dir) {
            found.push(old.clone());
        }
    }
    found
}

/// Adds the run in `dir` (from anywhere) to `runs` if it is not listed, and ticks it.
pub fn tick_run(
    runs: &mut Vec<RunEntry>,
    selected: &mut BTreeSet<PathBuf>,
    dir: PathBuf,
) -> Result<(), String> {
    let record = RunRecord::load(&dir).map_err(|e| e.to_string())?;
    if let Some(reason) = crate::train::history::unusable_reason(&dir) {
        return Err(format!("{}: {reason}", dir.display()));
    }
    if !runs.iter().any(|r| r.dir == dir) {
        runs.push(RunEntry::new(dir.clone(), record));
    }
    selected.insert(dir);
    Ok(())
}

/// A checkbox labelled `text` that ticks or unticks `entry` in `selected`.
pub fn run_checkbox(
    ui: &mut egui::Ui,
    entry: &RunEntry,
    text: String,
    selected: &mut BTreeSet<PathBuf>,
) {
    let mut on = selected.contains(&entry.dir);
    if let Some(reason) = &entry.unusable {
        // Listed greyed, never tickable: nothing could be loaded from it.
        selected.remove(&entry.dir);
        let mut off = false;
        ui.add_enabled(false, egui::Checkbox::new(&mut off, text))
            .on_disabled_hover_text(reason);
        return;
    }
    let text = if entry.bundled {
        format!("{text} (bundled)")
    } else {
        text
    };
    if ui.checkbox(&mut on, text).changed() {
        if on {
            selected.insert(entry.dir.clone());
        } else {
            selected.remove(&entry.dir);
        }
    }
}

/// The run to tick when none is: the first usable bundled detector, else the newest usable
/// run.
pub fn default_run(runs: &[RunEntry]) -> Option<&RunEntry> {
    let usable = || runs.iter().filter(|r| r.unusable.is_none());
    usable().find(|r| r.bundled).or_else(|| usable().next())
}

impl RunEntry {
    pub fn name(&self) -> String {
        let dir = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        format!("{} · {dir}", self.record.model.label())
    }
}
