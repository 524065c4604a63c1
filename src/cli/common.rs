//! What the subcommands share: the dataset argument, Ctrl-C, and lines printed above a
//! progress bar.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use crate::data::demo;

/// The dataset folder `data` names (`demo`: the built-in demo data, generated on first use),
/// made absolute.
pub fn resolve_data(data: &str) -> anyhow::Result<PathBuf> {
    if data == "demo" {
        demo::ensure_demo_data().context("creating the built-in demo dataset")
    } else {
        // Absolute, so that run.json names the dataset wherever `--resume` runs from.
        let path = PathBuf::from(data);
        Ok(std::fs::canonicalize(&path).unwrap_or(path))
    }
}

/// Ctrl-C (or SIGTERM) stops training the way the app's Stop button does: after the current
/// batch, with the resumable state saved. A second one exits at once.
pub fn watch_interrupt(cancel: &Arc<AtomicBool>) {
    let cancel = Arc::clone(cancel);
    let installed = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this batch and saving the run's state (again to quit now)");
    });
    if let Err(e) = installed {
        eprintln!("note: Ctrl-C will not save the run's state: {e}");
    }
}

/// Prints a line above the progress bar, or plainly when the bar is hidden (output is not a
/// terminal: indicatif's own `println` prints nothing then).
pub fn say(bar: &indicatif::ProgressBar, line: impl AsRef<str>) {
    if bar.is_hidden() {
        println!("{}", line.as_ref());
    } else {
        bar.println(line);
    }
}
