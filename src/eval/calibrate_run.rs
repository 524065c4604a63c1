//! Fitting a run's temperature after the fact (for runs trained before temperatures were
//! fitted, and imported ones): score its val split framed by its input profile, fit the
//! temperature and the val EER threshold of the calibrated probability, and record both in
//! `run.json` (written atomically). Training does the same at every best epoch.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::Device;

use super::calibration::calibrate_margins;
use super::margins::evaluate_split_margins;
use super::scores::ScoreError;
use crate::data::{DataError, DatasetIndex, PreparedSplit, Split};
use crate::runs::loader::{LoadRunError, RunModel};
use crate::runs::record::{HistoryError, RunRecord};

/// Why a run could not be calibrated.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    #[error(transparent)]
    Run(#[from] LoadRunError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Scoring(#[from] ScoreError),
    #[error("cancelled")]
    Cancelled,
    #[error(
        "the val split of {0} cannot give a temperature (it needs both classes, finite \
         logits, and mistakes or near-misses: a perfectly separated split has no optimum)"
    )]
    Unfit(PathBuf),
    #[error("{0} is a bundled detector: the app never writes into it")]
    ReadOnly(PathBuf),
    #[error(
        "{0} is still training (or was interrupted): its next epoch would overwrite the \
         temperature; calibrate it when it has finished or stopped"
    )]
    Training(PathBuf),
}

/// Fits and records the temperature of the run in `run_dir` on the val split of `data`
/// (its own dataset when `None`). Returns the updated record.
pub fn calibrate_run(
    run_dir: &Path,
    data: Option<&Path>,
    device: &Device,
    cancel: &AtomicBool,
    progress: &(dyn Fn(usize, usize) + Sync),
) -> Result<RunRecord, CalibrateError> {
    if crate::runs::layout::is_read_only(run_dir) {
        return Err(CalibrateError::ReadOnly(run_dir.to_path_buf()));
    }
    let RunModel {
        mut record,
        model,
        frozen,
        ..
    } = RunModel::load(run_dir, device)?;
    if record.status == crate::runs::RunStatus::Running {
        return Err(CalibrateError::Training(run_dir.to_path_buf()));
    }
    let root = data.map_or_else(|| record.dataset.clone(), Path::to_path_buf);
    let profile = record.input_profile();
    let index = DatasetIndex::discover(&root)?;
    let samples = index.split(Split::Val)?;
    let val = Arc::new(PreparedSplit::prepare(
        &root,
        Split::Val,
        samples,
        &profile.framing,
        cancel,
        progress,
    )?);
    let eval = evaluate_split_margins(
        crate::models::Evaluator::new(model.as_ref(), frozen.as_ref()),
        &val,
        16,
        profile.normalization,
        device,
        cancel,
        &mut |_, _| {},
    )?
    .ok_or(CalibrateError::Cancelled)?;
    let (temperature, threshold) = calibrate_margins(&eval.margins, &eval.labels);
    if temperature.is_none() {
        return Err(CalibrateError::Unfit(root));
    }
    record.temperature = temperature;
    record.val_threshold = threshold;
    record.save(run_dir)?;
    Ok(record)
}
