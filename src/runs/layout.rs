//! The layout of a run folder and of the folders runs live in: the file names, where new
//! runs and the bundled detectors are, which runs are read-only or unusable, and when a run
//! last changed.

use std::path::{Path, PathBuf};

use crate::config::ModelKind;

/// Name of the checkpoint file in a run directory.
pub const CHECKPOINT_FILE: &str = "model.safetensors";
/// Name of the history file in a run directory.
pub const RUN_FILE: &str = "run.json";

/// The current time as RFC 3339 (UTC, seconds).
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_seconds(std::time::SystemTime::now()).to_string()
}

/// A new, not yet existing run directory `parent/<YYYYMMDD-HHMMSS>-<model>[-n]`.
pub fn new_run_dir(parent: &Path, model: ModelKind) -> PathBuf {
    let stamp: String = now_rfc3339()
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .map(|c| if c == 'T' { '-' } else { c })
        .collect();
    let base = format!("{stamp}-{}", model.name());
    let mut dir = parent.join(&base);
    let mut n = 2;
    while dir.exists() {
        dir = parent.join(format!("{base}-{n}"));
        n += 1;
    }
    dir
}

/// The default parent of run directories: `weights/runs` under the working directory.
pub fn default_runs_dir() -> PathBuf {
    PathBuf::from("weights").join("runs")
}

/// Name of the model card beside a bundled detector's checkpoint.
pub const MODEL_CARD_FILE: &str = "MODEL_CARD.md";

/// The folder of the detectors that ship with the app: `weights/bundled` under the working
/// directory, else in the source tree the binary was built from.
pub fn bundled_runs_dir() -> Option<PathBuf> {
    let here = PathBuf::from("weights").join("bundled");
    if here.is_dir() {
        return Some(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("weights")
        .join("bundled");
    built.is_dir().then_some(built)
}

/// Whether the run in `dir` is a shipped detector (it has a model card): the app reads it
/// and never trains, deletes or writes into it.
pub fn is_read_only(dir: &Path) -> bool {
    dir.join(MODEL_CARD_FILE).is_file()
}

/// When a run's checkpoint and record last changed.
pub type RunStamp = (std::time::SystemTime, std::time::SystemTime);

/// When the run in `dir`'s checkpoint and record last changed: a loaded run is stale once
/// either has (a new best epoch, a temperature fitted later).
pub fn run_stamp(dir: &Path) -> Option<RunStamp> {
    let modified = |file: &str| {
        std::fs::metadata(dir.join(file))
            .and_then(|m| m.modified())
            .ok()
    };
    Some((modified(CHECKPOINT_FILE)?, modified(RUN_FILE)?))
}

/// Why the run in `dir` cannot be loaded for evaluation, explanation or verdicts, if so.
pub fn unusable_reason(dir: &Path) -> Option<String> {
    (!dir.join(CHECKPOINT_FILE).is_file())
        .then(|| "no checkpoint: the run stopped before it finished an epoch".to_string())
}
