//! The one cache of loaded runs the compute thread keeps: a run's model and record, by
//! folder, checkpoint and record time, and device, shared by the Explain and Inspect jobs.

use std::path::{Path, PathBuf};
use std::rc::Rc;

use super::{Event, EventSink};
use crate::device::DeviceChoice;
use crate::runs::RunModel;

/// Loaded runs, by folder, checkpoint and record time, and device.
#[derive(Default)]
pub(super) struct LoadedRuns {
    runs: Vec<(
        PathBuf,
        Option<crate::runs::layout::RunStamp>,
        DeviceChoice,
        Rc<RunModel>,
    )>,
}

/// Runs kept loaded (Xception is ~90 MB of weights).
const KEEP_LOADED: usize = 4;

impl LoadedRuns {
    pub(super) fn get(
        &mut self,
        dir: &Path,
        choice: DeviceChoice,
        sink: &EventSink,
    ) -> anyhow::Result<Rc<RunModel>> {
        let stamp = crate::runs::layout::run_stamp(dir);
        if let Some((_, _, _, run)) = self
            .runs
            .iter()
            .find(|(d, s, c, _)| d == dir && *s == stamp && *c == choice)
        {
            return Ok(run.clone());
        }
        let (device, notice) = crate::device::open(choice)?;
        if let Some(notice) = notice {
            sink.send(Event::Notice(notice));
        }
        let run = Rc::new(
            RunModel::load(dir, &device)
                .map_err(|e| anyhow::anyhow!("loading run {}: {e}", dir.display()))?,
        );
        self.runs.retain(|(d, ..)| d != dir);
        if self.runs.len() >= KEEP_LOADED {
            self.runs.remove(0);
        }
        self.runs
            .push((dir.to_path_buf(), stamp, choice, run.clone()));
        Ok(run)
    }
}
