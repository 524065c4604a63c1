//! Each detector's verdict on a prepared photo: the fake probability and the decision at the
//! run's own threshold — the equal-error-rate point of its validation split, computed once
//! and kept in the run's evaluation cache — or 0.5 where that split is not on this machine.

use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};

use super::photo::PreparedPhoto;
use crate::data::Split;
use crate::eval::cache;
use crate::eval::confusion::ThresholdRule;
use crate::eval::run_eval::{EvalRequest, evaluate_run};
use crate::explain::run_model::{LoadRunError, RunModel};

/// A loaded detector with its decision threshold.
pub struct Judge {
    pub run: RunModel,
    pub threshold: f64,
    /// Where the threshold comes from, for the user.
    pub threshold_source: String,
}

/// One detector's answer for one photo.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub run: String,
    pub fake_probability: f64,
    pub threshold: f64,
    pub fake: bool,
}

impl Judge {
    /// Loads the run in `dir` and its threshold (scoring its val split the first time).
    pub fn load(
        dir: &std::path::Path,
        device: &Device,
        cancel: &AtomicBool,
    ) -> Result<Judge, LoadRunError> {
        let run = RunModel::load(dir, device)?;
        let dataset = run.record.dataset.clone();
        let (threshold, threshold_source) = if dataset.join("val").is_dir() {
            let request = EvalRequest {
                run_dir: dir.to_path_buf(),
                data: dataset.clone(),
                split: Split::Val,
                threshold: ThresholdRule::Eer,
                batch_size: 16,
            };
            let outcome = match cache::load(&request) {
                Some(outcome) => Ok(outcome),
                None => evaluate_run(&request, device, cancel, &mut |_, _, _| {}).inspect(|o| {
                    // A cache that cannot be written only costs a rescore next time.
                    let _ = cache::store(&request, o);
                }),
            };
            match outcome {
                Ok(o) => (
                    o.report.summary.threshold,
                    format!("EER point of {}'s val split", dataset.display()),
                ),
                Err(e) => (0.5, format!("0.5 (the val split could not be scored: {e})")),
            }
        } else {
            (
                0.5,
                "0.5 (the run's val split is not on this machine)".to_string(),
            )
        };
        Ok(Judge {
            run,
            threshold,
            threshold_source,
        })
    }

    /// `photo`'s input as this run's model takes it (normalised as the run was trained).
    pub fn input_of(&self, photo: &PreparedPhoto) -> candle_core::Result<Tensor> {
        self.run
            .input_of(&photo.input, self.run.model.params().device())
    }

    /// The verdict on an input made by [`Judge::input_of`].
    pub fn verdict(&self, input: &Tensor) -> candle_core::Result<Verdict> {
        let fake_probability = self.run.fake_probabilities(input)?[0];
        Ok(Verdict {
            run: self.run.label(),
            fake_probability,
            threshold: self.threshold,
            fake: fake_probability >= self.threshold,
        })
    }
}
