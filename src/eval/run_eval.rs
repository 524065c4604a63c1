//! Evaluating a trained run on any dataset split (its own or another: cross-dataset): load
//! the run's checkpoint, score the split, pick the decision threshold on the dataset's val
//! split when the rule needs one (on a dataset without one, the val threshold the run
//! recorded, never the evaluated split itself), and compute every metric and both curves.
//! Only the splits used are required to be sound.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use candle_core::Device;

use super::calibration::Calibration;
use super::confusion::ThresholdRule;
use super::metrics::{Det, MetricsError, Roc, det_curve, roc_curve};
use super::scores::{ImageScore, ScoreError, Summary, score_split};
use crate::data::{DataError, DatasetIndex, PreparedSplit, Split, Unreadable};
use crate::runs::loader::{LoadRunError, RunModel};
use crate::runs::record::RunRecord;

/// What to evaluate.
#[derive(Clone, Debug)]
pub struct EvalRequest {
    pub run_dir: PathBuf,
    pub data: PathBuf,
    pub split: Split,
    pub threshold: ThresholdRule,
    pub batch_size: usize,
}

/// Why an evaluation failed.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Run(#[from] LoadRunError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Score(#[from] ScoreError),
    #[error(
        "{data} has no val split to choose the {rule} threshold on{why}: give --threshold \
         half or a number (a threshold chosen on the {split} split it is tested on would \
         flatter the result)"
    )]
    NoValSplit {
        data: PathBuf,
        rule: ThresholdRule,
        why: &'static str,
        split: &'static str,
    },
    #[error("{split} split of {data}: {source}")]
    Metrics {
        split: &'static str,
        data: PathBuf,
        source: MetricsError,
    },
}

/// `metrics.json`: the inputs, then every metric of the evaluated split.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EvalReport {
    pub run: PathBuf,
    pub model: String,
    pub data: PathBuf,
    pub split: String,
    /// How the threshold was chosen (`half`, `eer`, `apcer=…` or a number) ...
    pub threshold_rule: String,
    /// ... and on which split.
    pub threshold_split: String,
    #[serde(flatten)]
    pub summary: Summary,
    /// Accuracy of the argmax decision (fake score ≥ 0.5), as the training table reports.
    pub accuracy_at_half: f64,
    pub real_accuracy: Option<f64>,
    pub fake_accuracy: Option<f64>,
    /// Fakes called real, of all fakes, at `threshold`.
    pub apcer: Option<f64>,
    /// Reals called fake, of all reals, at `threshold`.
    pub bpcer: Option<f64>,
    /// Scoring time per image (decoding excluded).
    pub ms_per_image: f64,
    pub unreadable: Vec<Unreadable>,
    /// Calibration of the fake probability before and after the run's temperature.
    #[serde(default)]
    pub calibration: Option<CalibrationReport>,
}

/// The evaluated split's calibration with the model's own probabilities (T = 1) and with
/// the run's temperature (fitted on its val split; absent when the run has none).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CalibrationReport {
    pub raw: Calibration,
    pub calibrated: Option<Calibration>,
}

impl CalibrationReport {
    pub fn of(scores: &[ImageScore], temperature: Option<f64>) -> CalibrationReport {
        let margins: Vec<f64> = scores.iter().map(|s| s.logit_margin).collect();
        let labels: Vec<bool> = scores
            .iter()
            .map(|s| s.label == crate::LABEL_FAKE)
            .collect();
        CalibrationReport {
            raw: Calibration::at(&margins, &labels, 1.0),
            calibrated: temperature.map(|t| Calibration::at(&margins, &labels, t)),
        }
    }
}

/// A finished evaluation.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct EvalOutcome {
    pub report: EvalReport,
    pub scores: Vec<ImageScore>,
    pub roc: Roc,
    pub det: Det,
    /// The evaluated run's history (for the training-curve plot).
    pub record: RunRecord,
}

fn labels_and_fake(scores: &[ImageScore]) -> (Vec<bool>, Vec<f64>) {
    scores
        .iter()
        .map(|s| (s.label == crate::LABEL_FAKE, s.fake_score))
        .unzip()
}

/// Where the decision threshold comes from.
#[derive(Clone, Copy, Debug, PartialEq)]
enum ThresholdSource {
    /// Picked on the evaluated split: the rule needs no scores, or that split is val.
    Evaluated,
    /// Picked on the dataset's val split.
    DatasetVal,
    /// The val EER threshold recorded in the run (the dataset has no val split).
    Recorded(f64),
}

/// Where `request`'s threshold comes from, on a dataset that has a val split or not, for a
/// run that recorded `recorded` as its val EER threshold.
fn threshold_source(
    request: &EvalRequest,
    has_val: bool,
    recorded: Option<f64>,
) -> Result<ThresholdSource, EvalError> {
    let rule = request.threshold;
    let needs_scores = matches!(rule, ThresholdRule::Eer | ThresholdRule::Apcer(_));
    if !needs_scores || request.split == Split::Val {
        return Ok(ThresholdSource::Evaluated);
    }
    if has_val {
        return Ok(ThresholdSource::DatasetVal);
    }
    let why = match (rule, recorded) {
        (ThresholdRule::Eer, Some(t)) => return Ok(ThresholdSource::Recorded(t)),
        (_, Some(_)) => " (the run records only its val EER threshold)",
        (_, None) => ", and the run records no val threshold",
    };
    Err(EvalError::NoValSplit {
        data: request.data.clone(),
        rule,
        why,
        split: request.split.name(),
    })
}

/// Runs the evaluation, calling `progress(stage, done, total)` (stages: `decode test`,
/// `score test`, and the same for val when the threshold is chosen there).
pub fn evaluate_run(
    request: &EvalRequest,
    device: &Device,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalOutcome, EvalError> {
    let run = RunModel::load(&request.run_dir, device)?;
    evaluate_loaded(&run, request, cancel, progress)
}

/// [`evaluate_run`] with the run already loaded (`request.run_dir` names it in the report).
pub fn evaluate_loaded(
    run: &RunModel,
    request: &EvalRequest,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalOutcome, EvalError> {
    let (record, model) = (&run.record, &run.model);
    let device = model.params().device();
    let profile = record.input_profile();
    let index = DatasetIndex::discover_for(&request.data, &[request.split])?;
    let has_val = index.split(Split::Val).is_ok();
    let source = threshold_source(request, has_val, record.val_threshold)?;
    let score = |split: Split, progress: &mut dyn FnMut(&str, usize, usize)| {
        let samples = index.checked_split(split)?;
        progress(&format!("decode {}", split.name()), 0, samples.len());
        let prepared = Arc::new(PreparedSplit::prepare(
            &request.data,
            split,
            samples,
            &profile.framing,
            cancel,
            &|_, _| {},
        )?);
        let stage = format!("score {}", split.name());
        let started = Instant::now();
        let scores = score_split(
            run.evaluator(),
            &prepared,
            request.batch_size,
            profile.normalization,
            record.temperature.unwrap_or(1.0),
            device,
            cancel,
            &mut |done, total| progress(&stage, done, total),
        )?;
        let secs = started.elapsed().as_secs_f64();
        Ok::<_, EvalError>((scores, prepared.unreadable.clone(), secs))
    };
    let (scores, unreadable, secs) = score(request.split, progress)?;
    let metrics_err = |split: Split| {
        let data = request.data.clone();
        move |source| EvalError::Metrics {
            split: split.name(),
            data,
            source,
        }
    };
    let (threshold, threshold_split) = match source {
        ThresholdSource::Evaluated => {
            let (labels, fake) = labels_and_fake(&scores);
            let picked = request.threshold.pick(&labels, &fake);
            let split = request.split;
            (picked.map_err(metrics_err(split))?, split.name())
        }
        ThresholdSource::DatasetVal => {
            let (val_scores, _, _) = score(Split::Val, progress)?;
            let (labels, fake) = labels_and_fake(&val_scores);
            let picked = request.threshold.pick(&labels, &fake);
            (picked.map_err(metrics_err(Split::Val))?, Split::Val.name())
        }
        ThresholdSource::Recorded(t) => (t, "the run's val split"),
    };
    let summary = Summary::of(&scores, threshold).map_err(metrics_err(request.split))?;
    let half = Summary::of(&scores, 0.5).map_err(metrics_err(request.split))?;
    let (labels, fake) = labels_and_fake(&scores);
    let roc = roc_curve(&labels, &fake).map_err(metrics_err(request.split))?;
    let det = det_curve(&labels, &fake).map_err(metrics_err(request.split))?;
    let report = EvalReport {
        run: request.run_dir.clone(),
        model: record.model.label().to_string(),
        data: request.data.clone(),
        split: request.split.name().to_string(),
        threshold_rule: request.threshold.to_string(),
        threshold_split: threshold_split.to_string(),
        accuracy_at_half: half.accuracy,
        real_accuracy: summary.confusion.real_accuracy(),
        fake_accuracy: summary.confusion.fake_accuracy(),
        apcer: summary.confusion.apcer(),
        bpcer: summary.confusion.bpcer(),
        ms_per_image: secs * 1000.0 / scores.len().max(1) as f64,
        calibration: Some(CalibrationReport::of(&scores, record.temperature)),
        summary,
        unreadable,
    };
    Ok(EvalOutcome {
        report,
        scores,
        roc,
        det,
        record: record.clone(),
    })
}
