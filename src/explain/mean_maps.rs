//! Mean explanation maps per class over a split, as the course made them: each image's map
//! min-max normalised, averaged over all real and over all fake images, and the two means
//! normalised again. A background job: progress after every batch, cancel between batches.

use std::sync::Arc;

use candle_core::Device;

use super::error::ExplainError;
use super::heatmap::Heatmap;
use super::method::{Method, explain};
use crate::data::PreparedSplit;
use crate::data::loader::{BatchLoader, EpochPlan};
use crate::data::profile::{INPUT_SIZE, Normalization};
use crate::eval::margins::batch_tensors;
use crate::models::Detector;

/// The per-class means (each normalised to [0, 1]) and how many images went into each.
#[derive(Clone, Debug, PartialEq)]
pub struct MeanMaps {
    pub real: Heatmap,
    pub fake: Heatmap,
    pub real_images: usize,
    pub fake_images: usize,
}

/// A model and a decoded split to run an explanation job over.
#[derive(Clone, Copy)]
pub struct SplitJob<'a> {
    pub model: &'a dyn Detector,
    /// The loaded run's frozen copy of `model`, for the forward passes that need no graph
    /// (a grid's ranking by score, the deletion curves).
    pub frozen: Option<&'a crate::models::frozen::FrozenNet>,
    pub split: &'a Arc<PreparedSplit>,
    pub norm: Normalization,
    pub device: &'a Device,
}

impl SplitJob<'_> {
    /// Image `index` of the split, normalised for the model: 1×3×H×W.
    pub fn image(&self, index: usize) -> candle_core::Result<candle_core::Tensor> {
        let mut buffer = vec![0.0f32; 3 * INPUT_SIZE * INPUT_SIZE];
        let pixels = self
            .split
            .pixels
            .get(index)
            .ok_or_else(|| candle_core::Error::msg(format!("no image {index} in the split")))?;
        crate::data::decode::normalize_into(pixels, &self.norm, &mut buffer);
        candle_core::Tensor::from_vec(buffer, (1, 3, INPUT_SIZE, INPUT_SIZE), self.device)
    }
}

/// Images per forward pass of a mean-map job (backward passes keep activations alive).
pub const MEAN_MAP_BATCH: usize = 8;

/// Averages `method`'s normalised maps over `split`, per class, for each image's true
/// class. `progress(done, total)` after each batch; `cancelled()` stops between batches.
pub fn mean_maps(
    job: &SplitJob<'_>,
    method: &Method,
    cancelled: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<MeanMaps, ExplainError> {
    let SplitJob {
        model,
        frozen: _,
        split,
        norm,
        device,
    } = *job;
    let plan = EpochPlan {
        batch_size: MEAN_MAP_BATCH,
        shuffle: None,
        augment: false,
        photo_augment: None,
        norm,
        first_batch: 0,
    };
    let loader = BatchLoader::start(split.clone(), plan).map_err(ExplainError::Thread)?;
    let pixels = INPUT_SIZE * INPUT_SIZE;
    let mut sums = [vec![0.0f64; pixels], vec![0.0f64; pixels]];
    let mut counts = [0usize; 2];
    let mut done = 0;
    for batch in loader {
        if cancelled() {
            return Err(ExplainError::Cancelled);
        }
        let (images, _) = batch_tensors(&batch, device)?;
        let maps = explain(model, &images, &batch.labels, method, cancelled)?;
        for (map, &label) in maps.iter().zip(&batch.labels) {
            let class = usize::from(label == crate::LABEL_FAKE);
            for (s, v) in sums[class].iter_mut().zip(map.normalized()) {
                *s += f64::from(v);
            }
            counts[class] += 1;
        }
        done += batch.len();
        progress(done, split.len());
    }
    let mean = |class: usize| {
        let count = counts[class].max(1) as f64;
        let map = Heatmap {
            width: INPUT_SIZE,
            height: INPUT_SIZE,
            values: sums[class].iter().map(|&s| (s / count) as f32).collect(),
        };
        Heatmap {
            values: map.normalized(),
            ..map
        }
    };
    Ok(MeanMaps {
        real: mean(0),
        fake: mean(1),
        real_images: counts[0],
        fake_images: counts[1],
    })
}
