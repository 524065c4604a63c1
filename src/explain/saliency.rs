//! Vanilla saliency as the course defined it: for each image, the absolute gradient of the
//! score (logit) of the chosen class with respect to the input pixels, the maximum over the
//! three colour channels. The input is made a `Var` (Candle keeps gradients only for
//! those); the model runs in evaluation mode, so the images of a batch do not interact and
//! one backward pass of the summed scores gives every image's map.

use candle_core::{D, Tensor, Var};

use crate::models::Detector;

/// One heatmap: `height × width` values, row-major, unnormalised.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

impl Heatmap {
    /// The values scaled to [0, 1] by their own minimum and maximum (all zero if flat).
    pub fn normalized(&self) -> Vec<f32> {
        let (min, max) = self
            .values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let range = max - min;
        self.values
            .iter()
            .map(|&v| if range > 0.0 { (v - min) / range } else { 0.0 })
            .collect()
    }
}

/// Why a map could not be computed.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{classes} classes given for {images} images")]
    ClassCount { classes: usize, images: usize },
    #[error("class {0} is not 0 (real) or 1 (fake)")]
    BadClass(u32),
    #[error("the model gave no gradient for the input")]
    NoGradient,
}

/// The saliency map of each image of `images` (N×3×H×W, normalised as the model expects)
/// for the class given per image (usually its true label).
pub fn saliency(
    model: &dyn Detector,
    images: &Tensor,
    classes: &[u32],
) -> Result<Vec<Heatmap>, ExplainError> {
    let (n, _, height, width) = images.dims4()?;
    if classes.len() != n {
        return Err(ExplainError::ClassCount {
            classes: classes.len(),
            images: n,
        });
    }
    if let Some(&bad) = classes.iter().find(|&&c| c > crate::LABEL_FAKE) {
        return Err(ExplainError::BadClass(bad));
    }
    let input = Var::from_tensor(&images.detach())?;
    let logits = model.forward_t(input.as_tensor(), false)?;
    let picked = Tensor::from_slice(classes, (n, 1), images.device())?;
    let scores = logits.gather(&picked, D::Minus1)?;
    let grads = scores.sum_all()?.backward()?;
    let grad = grads
        .get(input.as_tensor())
        .ok_or(ExplainError::NoGradient)?;
    let maps = grad.abs()?.max(1)?.to_dtype(candle_core::DType::F32)?;
    let maps: Vec<Vec<f32>> = maps.flatten_from(1)?.to_vec2()?;
    Ok(maps
        .into_iter()
        .map(|values| Heatmap {
            width,
            height,
            values,
        })
        .collect())
}
