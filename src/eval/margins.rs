//! Loss and accuracy of a model over a prepared split (no augmentation, file order).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{D, Device, Tensor};

use super::scores::ScoreError;
use crate::data::PreparedSplit;
use crate::data::loader::{BatchLoader, EpochPlan};
use crate::data::profile::Normalization;
use crate::models::Evaluator;

/// Mean loss, accuracy and the share of images predicted fake.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SplitMetrics {
    pub loss: f64,
    pub acc: f64,
    pub predicted_fake: f64,
}

/// Batch tensors on `device` from a loader batch.
pub fn batch_tensors(
    batch: &crate::data::Batch,
    device: &Device,
) -> candle_core::Result<(Tensor, Tensor)> {
    let size = crate::data::profile::INPUT_SIZE;
    let images = Tensor::from_slice(&batch.images, (batch.len(), 3, size, size), device)?;
    let labels = Tensor::from_slice(&batch.labels, batch.len(), device)?;
    Ok((images, labels))
}

/// A split's metrics with every image's logit margin (fake − real) and label (true = fake).
#[derive(Clone, Debug, PartialEq)]
pub struct SplitEval {
    pub metrics: SplitMetrics,
    pub margins: Vec<f64>,
    pub labels: Vec<bool>,
}

/// Evaluates `model` over `split`. Returns `Ok(None)` when cancelled.
pub fn evaluate_split(
    model: Evaluator<'_>,
    split: &Arc<PreparedSplit>,
    batch_size: usize,
    norm: Normalization,
    device: &Device,
    cancel: &AtomicBool,
) -> Result<Option<SplitMetrics>, ScoreError> {
    let no_progress = &mut |_, _| {};
    let eval = evaluate_split_margins(model, split, batch_size, norm, device, cancel, no_progress)?;
    Ok(eval.map(|e| e.metrics))
}

/// [`evaluate_split`] with the margins and labels (for the temperature and threshold).
/// `progress(images_done, images_total)` is called after every batch.
pub fn evaluate_split_margins(
    model: Evaluator<'_>,
    split: &Arc<PreparedSplit>,
    batch_size: usize,
    norm: Normalization,
    device: &Device,
    cancel: &AtomicBool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Option<SplitEval>, ScoreError> {
    let plan = EpochPlan {
        batch_size,
        shuffle: None,
        augment: false,
        photo_augment: None,
        norm,
        first_batch: 0,
    };
    let (mut loss_sum, mut correct, mut fake, mut count) = (0.0f64, 0usize, 0usize, 0usize);
    let (mut margins, mut labels_all) = (Vec::new(), Vec::new());
    let loader = BatchLoader::start(split.clone(), plan).map_err(ScoreError::Thread)?;
    for batch in loader {
        if cancel.load(Ordering::Relaxed) {
            return Ok(None);
        }
        let (images, labels) = batch_tensors(&batch, device)?;
        let logits = model.logits(&images)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?.to_scalar::<f32>()?;
        let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
        for (row, &label) in logits.to_vec2::<f32>()?.iter().zip(&batch.labels) {
            margins.push(f64::from(row[1]) - f64::from(row[0]));
            labels_all.push(label == crate::LABEL_FAKE);
        }
        loss_sum += loss as f64 * batch.len() as f64;
        correct += predicted
            .iter()
            .zip(&batch.labels)
            .filter(|(p, l)| p == l)
            .count();
        fake += predicted
            .iter()
            .filter(|&&p| p == crate::LABEL_FAKE)
            .count();
        count += batch.len();
        progress(count, split.len());
    }
    let n = count.max(1) as f64;
    Ok(Some(SplitEval {
        metrics: SplitMetrics {
            loss: loss_sum / n,
            acc: correct as f64 / n,
            predicted_fake: fake as f64 / n,
        },
        margins,
        labels: labels_all,
    }))
}
