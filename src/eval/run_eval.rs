//! Evaluating a trained run on any dataset split (its own or another: cross-dataset): load
//! the run's checkpoint, score the split, pick the decision threshold on the dataset's val
//! split when the rule needs one, and compute every metric and both curves. Only the splits
//! used are required to be sound.

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
use crate::models::{self, ModelError};
use crate::train::history::{CHECKPOINT_FILE, HistoryError, RunRecord};

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
    History(#[from] HistoryError),
    #[error("{0} does not exist: the run saved no checkpoint (it never finished an epoch)")]
    NoCheckpoint(PathBuf),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Score(#[from] ScoreError),
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

/// Runs the evaluation, calling `progress(stage, done, total)` (stages: `decode test`,
/// `score test`, and the same for val when the threshold is chosen there).
pub fn evaluate_run(
    request: &EvalRequest,
    device: &Device,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(&str, usize, usize),
) -> Result<EvalOutcome, EvalError> {
    let record = RunRecord::load(&request.run_dir)?;
    let checkpoint = request.run_dir.join(CHECKPOINT_FILE);
    if !checkpoint.is_file() {
        return Err(EvalError::NoCheckpoint(checkpoint));
    }
    let model = models::load(record.model, &checkpoint, device)?;
    let profile = record.input_profile();
    let index = DatasetIndex::discover_for(&request.data, &[request.split])?;
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
            model.as_ref(),
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
    let needs_scores = matches!(
        request.threshold,
        ThresholdRule::Eer | ThresholdRule::Apcer(_)
    );
    let has_val = index.split(Split::Val).is_ok();
    let threshold_split = if needs_scores && request.split != Split::Val && has_val {
        Split::Val
    } else {
        request.split
    };
    let threshold = if threshold_split == request.split {
        let (labels, fake) = labels_and_fake(&scores);
        request.threshold.pick(&labels, &fake)
    } else {
        let (val_scores, _, _) = score(Split::Val, progress)?;
        let (labels, fake) = labels_and_fake(&val_scores);
        request.threshold.pick(&labels, &fake)
    }
    .map_err(metrics_err(threshold_split))?;
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
        threshold_split: threshold_split.name().to_string(),
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
        record,
    })
}
