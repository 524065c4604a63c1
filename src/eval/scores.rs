//! Per-image scores of a model over a prepared split, in file order: the softmax of the
//! two logits divided by the run's temperature (`real_score + fake_score = 1`), the raw
//! logit margin, each image's path and label, and the metrics summary of a scored split.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;

use super::confusion::Confusion;
use super::metrics::{MetricsError, average_precision, bpcer_at_apcer, eer, roc_auc};
use crate::data::PreparedSplit;
use crate::data::loader::{BatchLoader, EpochPlan};
use crate::data::profile::Normalization;
use crate::eval::margins::batch_tensors;
use crate::models::Evaluator;

/// One image's scores.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ImageScore {
    pub path: PathBuf,
    /// 0 = real, 1 = fake.
    pub label: u32,
    pub real_score: f64,
    pub fake_score: f64,
    /// logit_fake − logit_real, before any temperature.
    #[serde(default)]
    pub logit_margin: f64,
}

/// Why scoring stopped.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    #[error("computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cannot start the data loader thread: {0}")]
    Thread(std::io::Error),
    #[error("cancelled")]
    Cancelled,
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

/// Scores every image of `split` with `model` (evaluation mode) at softmax temperature
/// `temperature` (1: the model's own), calling `progress(images_done, images_total)` after
/// each batch.
#[allow(clippy::too_many_arguments)]
pub fn score_split(
    model: Evaluator<'_>,
    split: &Arc<PreparedSplit>,
    batch_size: usize,
    norm: Normalization,
    temperature: f64,
    device: &Device,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<ImageScore>, ScoreError> {
    let plan = EpochPlan {
        batch_size: batch_size.max(1),
        shuffle: None,
        augment: false,
        photo_augment: None,
        norm,
        first_batch: 0,
    };
    let loader = BatchLoader::start(split.clone(), plan).map_err(ScoreError::Thread)?;
    let mut scores = Vec::with_capacity(split.len());
    for batch in loader {
        if cancel.load(Ordering::Relaxed) {
            return Err(ScoreError::Cancelled);
        }
        let (images, _) = batch_tensors(&batch, device)?;
        let logits = model.logits(&images)?.to_vec2::<f32>()?;
        for ((&index, &label), l) in batch.indices.iter().zip(&batch.labels).zip(logits) {
            let path = split
                .samples
                .get(index)
                .map(|s| s.path.clone())
                .unwrap_or_default();
            let logit_margin = f64::from(l[1]) - f64::from(l[0]);
            let fake_score = crate::eval::calibration::sigmoid(logit_margin, temperature);
            scores.push(ImageScore {
                path,
                label,
                real_score: crate::eval::calibration::sigmoid(-logit_margin, temperature),
                fake_score,
                logit_margin,
            });
        }
        progress(scores.len(), split.len());
    }
    Ok(scores)
}

/// The metrics of a scored split at one decision threshold.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Summary {
    pub images: usize,
    /// Accuracy at `threshold`.
    pub accuracy: f64,
    /// ROC AUC of the fake score (fake positive).
    pub auc: f64,
    /// ROC AUC of the real score against the same labels (1 − `auc`).
    pub auc_real_score: f64,
    pub eer: f64,
    pub ap: f64,
    /// BPCER at APCER ≤ 5 %.
    pub bpcer20: f64,
    #[serde(with = "super::nonfinite")]
    pub threshold: f64,
    pub confusion: Confusion,
}

impl Summary {
    /// Computes every metric; a split with one class only is an error naming what is missing.
    pub fn of(scores: &[ImageScore], threshold: f64) -> Result<Summary, MetricsError> {
        let labels: Vec<bool> = scores
            .iter()
            .map(|s| s.label == crate::LABEL_FAKE)
            .collect();
        let fake: Vec<f64> = scores.iter().map(|s| s.fake_score).collect();
        let real: Vec<f64> = scores.iter().map(|s| s.real_score).collect();
        let confusion = Confusion::at(&labels, &fake, threshold)?;
        Ok(Summary {
            images: scores.len(),
            accuracy: confusion.accuracy(),
            auc: roc_auc(&labels, &fake)?,
            auc_real_score: roc_auc(&labels, &real)?,
            eer: eer(&labels, &fake)?.rate,
            ap: average_precision(&labels, &fake)?,
            bpcer20: bpcer_at_apcer(&labels, &fake, 0.05)?.rate,
            threshold,
            confusion,
        })
    }
}
