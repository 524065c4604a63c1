//! The run list the Compare, Explain and Inspect tabs tick from, as the window keeps it: the
//! runs come from `runs::catalog`, scanned and loaded on a short-lived thread of their own
//! (the UI thread walks no folders and reads no `run.json`), and arrive with a repaint.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender, unbounded};

use crate::runs::RunEntry;
use crate::runs::catalog;

/// What a background catalog job found.
enum Reply {
    /// A fresh scan of `runs_dir`.
    Scanned {
        runs_dir: PathBuf,
        runs: Vec<RunEntry>,
    },
    /// A run folder added from anywhere, to be ticked.
    Added(Box<Result<RunEntry, String>>),
}

/// What [`Catalog::apply`] changed.
#[derive(Debug, Default)]
pub struct Applied {
    /// A scan landed.
    pub scanned: bool,
    /// The first scan landed before any run was added: the tab may tick its default run.
    pub first_scan: bool,
    /// Runs that could not be added, each with its cause.
    pub errors: Vec<String>,
}

/// A tab's background scans and loads of runs.
pub struct Catalog {
    tx: Sender<Reply>,
    rx: Receiver<Reply>,
    /// Jobs sent and not yet applied.
    pending: usize,
    /// The runs folder last asked for.
    scanned: Option<PathBuf>,
    /// No scan has landed and no run was added yet.
    untouched: bool,
}

impl Default for Catalog {
    fn default() -> Self {
        let (tx, rx) = unbounded();
        Catalog {
            tx,
            rx,
            pending: 0,
            scanned: None,
            untouched: true,
        }
    }
}

impl Catalog {
    /// Lists `runs_dir` in the background, once per folder (`rescan` forces it).
    pub fn scan_once(&mut self, ctx: &egui::Context, runs_dir: &Path) {
        if self.scanned.as_deref() != Some(runs_dir) {
            self.rescan(ctx, runs_dir);
        }
    }

    /// Lists `runs_dir` again in the background.
    pub fn rescan(&mut self, ctx: &egui::Context, runs_dir: &Path) {
        self.scanned = Some(runs_dir.to_path_buf());
        let runs_dir = runs_dir.to_path_buf();
        self.spawn(ctx, move || Reply::Scanned {
            runs: catalog::scan(&runs_dir),
            runs_dir,
        });
    }

    /// Loads the run in `dir` (from anywhere) in the background; it is ticked on arrival.
    pub fn add(&mut self, ctx: &egui::Context, dir: PathBuf) {
        self.untouched = false;
        self.spawn(ctx, move || Reply::Added(Box::new(RunEntry::load(&dir))));
    }

    /// The runs folder last scanned, if any.
    pub fn runs_dir(&self) -> Option<&Path> {
        self.scanned.as_deref()
    }

    /// Whether a scan or load is still on its way.
    pub fn busy(&self) -> bool {
        self.pending > 0
    }

    fn spawn(&mut self, ctx: &egui::Context, job: impl FnOnce() -> Reply + Send + 'static) {
        self.pending += 1;
        if let Err(e) = super::background::spawn(ctx, "fakelens-catalog", self.tx.clone(), job) {
            // Counted as pending: `apply` takes this reply as the job's answer.
            let _ = self.tx.send(Reply::Added(Box::new(Err(format!(
                "cannot start a thread to list the runs: {e}"
            )))));
        }
    }

    /// Applies what has arrived: a scan replaces the listed runs (keeping those added from
    /// elsewhere), an added run is listed and ticked.
    pub fn apply(&mut self, runs: &mut Vec<RunEntry>, selected: &mut BTreeSet<PathBuf>) -> Applied {
        let mut applied = Applied::default();
        while let Ok(reply) = self.rx.try_recv() {
            self.pending = self.pending.saturating_sub(1);
            match reply {
                Reply::Scanned {
                    runs_dir,
                    runs: scanned,
                } => {
                    *runs = catalog::merge_added(&runs_dir, scanned, runs);
                    applied.scanned = true;
                    applied.first_scan = std::mem::take(&mut self.untouched);
                }
                Reply::Added(added) => {
                    let entry = match *added {
                        Ok(entry) => entry,
                        Err(e) => {
                            applied.errors.push(e);
                            continue;
                        }
                    };
                    if let Some(reason) = &entry.unusable {
                        applied
                            .errors
                            .push(format!("{}: {reason}", entry.dir.display()));
                        continue;
                    }
                    selected.insert(entry.dir.clone());
                    match runs.iter_mut().find(|r| r.dir == entry.dir) {
                        Some(listed) => *listed = entry,
                        None => runs.push(entry),
                    }
                }
            }
        }
        applied
    }
}

/// A run's record, read in the background for the Training tab.
pub type OpenedRun = (PathBuf, Result<crate::runs::RunRecord, String>);

/// Reads the record of the run in `dir` on a thread of its own; it arrives with a repaint.
pub fn read_record(ctx: &egui::Context, dir: PathBuf) -> Receiver<OpenedRun> {
    let (tx, rx) = crossbeam_channel::bounded(1);
    let job = move || {
        let record = catalog::load_record(&dir);
        (dir, record)
    };
    if let Err(e) = super::background::spawn(ctx, "fakelens-read-run", tx, job) {
        let (tx, failed) = crossbeam_channel::bounded(1);
        let _ = tx.send((PathBuf::new(), Err(format!("cannot start a thread: {e}"))));
        return failed;
    }
    rx
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
