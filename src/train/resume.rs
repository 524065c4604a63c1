//! Resumable training state: where a run is (epoch, next batch, the epoch's running sums) with
//! the model's parameters and buffers and the optimiser's state, in one safetensors file
//! written atomically next to `run.json`. A run saves it every few minutes, after each epoch
//! and when cancelled, and removes it when it completes; `fakelens train --resume RUN_DIR`
//! continues from it with the same batches and augmentations an uninterrupted run would see.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use candle_core::{Device, Tensor};

use super::optim::Optimizer;
use crate::models::Detector;
use crate::runs::record::RunStatus;

/// The state file in a run directory.
pub const STATE_FILE: &str = "resume.safetensors";
/// Longest training time between two state saves.
pub const STATE_INTERVAL: Duration = Duration::from_secs(600);

/// Why a run could not be resumed or its state not saved.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    #[error("cannot write the resumable state {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{path} cannot be resumed: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{dir} holds no resumable state: {why}")]
    NoState { dir: PathBuf, why: String },
}

/// Refuses to resume the run in `run_dir` (whose status is `status`) when it holds no state
/// to resume from, saying why: it completed, or it stopped before it first saved one.
pub fn require_state(run_dir: &Path, status: &RunStatus) -> Result<(), ResumeError> {
    if run_dir.join(STATE_FILE).is_file() {
        return Ok(());
    }
    let why = match status {
        RunStatus::Completed => {
            "the run completed, and a run keeps a resumable state only until it completes"
                .to_string()
        }
        RunStatus::Imported => "it is an imported checkpoint, not a run trained here".to_string(),
        _ => format!(
            "the run never saved one (it stopped before its first save, which comes after the \
             first epoch, on a stop, or after {} minutes of training); train it anew, with \
             --force to reuse this folder",
            STATE_INTERVAL.as_secs() / 60
        ),
    };
    Err(ResumeError::NoState {
        dir: run_dir.to_path_buf(),
        why,
    })
}

/// Where a run stands between two batches.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Position {
    /// The epoch in progress (1-based).
    pub epoch: usize,
    /// The next batch of that epoch to train (0-based).
    pub next_batch: usize,
    /// Optimiser steps taken in the whole run.
    pub step: usize,
    /// The epoch's running sums so far: loss × images, correct predictions, images.
    pub loss_sum: f64,
    pub correct: usize,
    pub count: usize,
    /// Training time spent on the epoch so far.
    pub epoch_elapsed_secs: f64,
}

impl Position {
    fn to_tensors(self) -> candle_core::Result<[(String, Tensor); 2]> {
        let counts = [
            self.epoch,
            self.next_batch,
            self.step,
            self.correct,
            self.count,
        ]
        .map(|v| v as i64);
        Ok([
            (
                "position.counts".into(),
                Tensor::new(&counts[..], &Device::Cpu)?,
            ),
            (
                "position.sums".into(),
                Tensor::new(&[self.loss_sum, self.epoch_elapsed_secs][..], &Device::Cpu)?,
            ),
        ])
    }

    fn from_tensors(saved: &HashMap<String, Tensor>) -> Result<Position, String> {
        let read = |key: &str| -> Result<Tensor, String> {
            saved.get(key).cloned().ok_or(format!("no {key} tensor"))
        };
        let counts: Vec<i64> = read("position.counts")?
            .to_vec1()
            .map_err(|e| e.to_string())?;
        let sums: Vec<f64> = read("position.sums")?
            .to_vec1()
            .map_err(|e| e.to_string())?;
        let (&[epoch, next_batch, step, correct, count], &[loss_sum, epoch_elapsed_secs]) =
            (&counts[..], &sums[..])
        else {
            return Err("the position tensors have the wrong length".into());
        };
        let size = |v: i64| usize::try_from(v).map_err(|_| format!("negative count {v}"));
        Ok(Position {
            epoch: size(epoch)?,
            next_batch: size(next_batch)?,
            step: size(step)?,
            loss_sum,
            correct: size(correct)?,
            count: size(count)?,
            epoch_elapsed_secs,
        })
    }
}

/// Writes the model, optimiser and position to `run_dir/resume.safetensors` atomically.
pub fn save_state(
    run_dir: &Path,
    model: &dyn Detector,
    optimizer: &Optimizer,
    position: Position,
) -> Result<(), ResumeError> {
    let path = run_dir.join(STATE_FILE);
    let write_err = |reason: String| ResumeError::Write {
        path: path.clone(),
        reason,
    };
    let mut tensors: HashMap<String, Tensor> = model
        .params()
        .all()
        .map(|(k, v)| (format!("model.{k}"), v.as_tensor().clone()))
        .collect();
    tensors.extend(optimizer.state().map_err(|e| write_err(e.to_string()))?);
    tensors.extend(
        position
            .to_tensors()
            .map_err(|e| write_err(e.to_string()))?,
    );
    crate::fsutil::write_atomic_with(&path, |tmp| {
        candle_core::safetensors::save(&tensors, tmp)
            .map_err(|e| std::io::Error::other(e.to_string()))
    })
    .map_err(|e| write_err(e.to_string()))
}

/// Loads `run_dir/resume.safetensors` into the model and optimiser; returns the position.
pub fn load_state(
    run_dir: &Path,
    model: &dyn Detector,
    optimizer: &mut Optimizer,
) -> Result<Position, ResumeError> {
    let path = run_dir.join(STATE_FILE);
    let read_err = |reason: String| ResumeError::Read {
        path: path.clone(),
        reason,
    };
    if !path.exists() {
        return Err(read_err("it holds no resumable state".into()));
    }
    let saved = candle_core::safetensors::load(&path, model.params().device())
        .map_err(|e| read_err(format!("not a valid state file ({e})")))?;
    let weights: HashMap<String, Tensor> = saved
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("model.").map(|k| (k.to_string(), v.clone())))
        .collect();
    model
        .params()
        .assign(&path, weights)
        .map_err(|e| read_err(e.to_string()))?;
    optimizer.restore(&saved).map_err(read_err)?;
    Position::from_tensors(&saved).map_err(read_err)
}

/// Removes the state of a run that no longer needs it (it completed).
pub fn remove_state(run_dir: &Path) {
    let _ = std::fs::remove_file(run_dir.join(STATE_FILE));
}
