//! Each detector's verdict on a photo: the fake probability, calibrated by the run's
//! temperature, and the decision at the run's own threshold — the equal-error-rate point of
//! its validation split, recorded in `run.json` when the temperature was fitted, else
//! computed once and kept in the run's evaluation cache — or 0.5 where neither is at hand. A probability within the unsure band around the
//! threshold reads UNSURE.

use std::sync::atomic::AtomicBool;

use candle_core::Tensor;

use super::photo::DetectorInput;
use crate::data::Split;
use crate::eval::cache;
use crate::eval::confusion::ThresholdRule;
use crate::eval::run_eval::{EvalRequest, evaluate_loaded};
use crate::runs::loader::{LoadRunError, RunModel, fake_probability};

/// Default half-width of the unsure band around the threshold.
pub const DEFAULT_UNSURE_BAND: f64 = 0.1;

/// A loaded detector with its decision threshold.
pub struct Judge {
    pub run: std::rc::Rc<RunModel>,
    pub threshold: f64,
    /// Where the threshold comes from, for the user.
    pub threshold_source: String,
}

/// What a detector decides.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Decision {
    Real,
    Fake,
    /// The calibrated probability lies within the unsure band around the threshold.
    Unsure,
}

impl Decision {
    /// `real`, `fake` or `unsure` (the CSV's `verdict` column).
    pub fn name(self) -> &'static str {
        match self {
            Decision::Real => "real",
            Decision::Fake => "fake",
            Decision::Unsure => "unsure",
        }
    }

    /// `p` (calibrated) against `threshold` with an unsure band of ±`band`, narrowed near
    /// 0 and 1 to half the room on the narrower side (a threshold of 0.97 with a band of
    /// 0.1 could otherwise never say fake).
    pub fn of(p: f64, threshold: f64, band: f64) -> Decision {
        let band = band
            .min(threshold / 2.0)
            .min((1.0 - threshold) / 2.0)
            .max(0.0);
        if (p - threshold).abs() < band {
            Decision::Unsure
        } else if p >= threshold {
            Decision::Fake
        } else {
            Decision::Real
        }
    }
}

/// One detector's answer for one photo.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Verdict {
    pub run: String,
    /// Calibrated by the run's temperature (the model's own where it has none).
    pub fake_probability: f64,
    /// softmax of the logits, before the temperature.
    pub raw_fake_probability: f64,
    pub threshold: f64,
    pub decision: Decision,
}

impl Judge {
    /// Loads the run in `dir` and its threshold (scoring its val split the first time).
    pub fn load(
        dir: &std::path::Path,
        device: &candle_core::Device,
        cancel: &AtomicBool,
    ) -> Result<Judge, LoadRunError> {
        Ok(Judge::of(
            std::rc::Rc::new(RunModel::load(dir, device)?),
            cancel,
        ))
    }

    /// The judge of a loaded run: its recorded val threshold, else the EER point of its val
    /// split, scored with the loaded model (once: the score is cached), else 0.5.
    pub fn of(run: std::rc::Rc<RunModel>, cancel: &AtomicBool) -> Judge {
        let dir = run.dir.clone();
        let dataset = run.record.dataset.clone();
        let (threshold, threshold_source) = if let Some(threshold) = run.record.val_threshold {
            (
                threshold,
                format!(
                    "EER point of {}'s val split, recorded with its temperature",
                    dataset.display()
                ),
            )
        } else if dataset.join("val").is_dir() {
            let request = EvalRequest {
                run_dir: dir.clone(),
                data: dataset.clone(),
                split: Split::Val,
                threshold: ThresholdRule::Eer,
                batch_size: 16,
            };
            let outcome = match cache::load(&request) {
                Some(outcome) => Ok(outcome),
                None => evaluate_loaded(&run, &request, cancel, &mut |_, _, _| {}).inspect(|o| {
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
        Judge {
            run,
            threshold,
            threshold_source,
        }
    }

    /// `seen`'s input as this run's model takes it (normalised as the run was trained).
    pub fn input_of(&self, seen: &DetectorInput) -> candle_core::Result<Tensor> {
        self.run
            .input_of(&seen.input, self.run.model.params().device())
    }

    /// The verdict on an input made by [`Judge::input_of`], with an unsure band of ±`band`.
    pub fn verdict(&self, input: &Tensor, band: f64) -> candle_core::Result<Verdict> {
        let logits = self.run.logits(input)?[0];
        let temperature = self.run.record.temperature.unwrap_or(1.0);
        let p = fake_probability(logits, temperature);
        Ok(Verdict {
            run: self.run.label(),
            fake_probability: p,
            raw_fake_probability: fake_probability(logits, 1.0),
            threshold: self.threshold,
            decision: Decision::of(p, self.threshold, band),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Decision;

    #[test]
    fn the_band_around_the_threshold_is_unsure() {
        assert_eq!(Decision::of(0.53, 0.45, 0.1), Decision::Unsure);
        assert_eq!(Decision::of(0.56, 0.45, 0.1), Decision::Fake);
        assert_eq!(Decision::of(0.30, 0.45, 0.1), Decision::Real);
        assert_eq!(Decision::of(0.45, 0.45, 0.0), Decision::Fake);
        assert_eq!(Decision::of(0.4499, 0.45, 0.0), Decision::Real);
        // Near the ends the band narrows, so both verdicts stay reachable.
        assert_eq!(Decision::of(0.999, 0.97, 0.1), Decision::Fake);
        assert_eq!(Decision::of(0.96, 0.97, 0.1), Decision::Unsure);
        assert_eq!(Decision::of(0.90, 0.97, 0.1), Decision::Real);
        assert_eq!(Decision::of(0.001, 0.02, 0.1), Decision::Real);
    }
}
