//! Vanilla saliency as the course defined it: for each image, the absolute gradient of the
//! score (logit) of the chosen class with respect to the input pixels, the maximum over the
//! three colour channels. The input is made a `Var` (Candle keeps gradients only for
//! those); the model runs in evaluation mode, so the images of a batch do not interact and
//! one backward pass of the summed scores gives every image's map.

use candle_core::{D, DType, Tensor, Var};

use super::error::{ExplainError, check_classes};
use super::heatmap::Heatmap;
use crate::models::Detector;

/// The saliency map of each image of `images` (N×3×H×W, normalised as the model expects)
/// for the class given per image (usually its true label).
pub fn saliency(
    model: &dyn Detector,
    images: &Tensor,
    classes: &[u32],
) -> Result<Vec<Heatmap>, ExplainError> {
    let grad = input_gradient(model, images, classes)?;
    channel_max_maps(&grad.abs()?)
}

/// d (logit of each image's class) / d input, N×3×H×W, in evaluation mode.
pub fn input_gradient(
    model: &dyn Detector,
    images: &Tensor,
    classes: &[u32],
) -> Result<Tensor, ExplainError> {
    let (n, _, _, _) = images.dims4()?;
    check_classes(classes, n)?;
    let input = Var::from_tensor(&images.detach())?;
    let logits = model.forward_t(input.as_tensor(), false)?;
    let grads = chosen_scores(&logits, classes)?.sum_all()?.backward()?;
    grads
        .get(input.as_tensor())
        .cloned()
        .ok_or(ExplainError::NoGradient)
}

/// Each row's logit of its class, N×1.
pub fn chosen_scores(logits: &Tensor, classes: &[u32]) -> candle_core::Result<Tensor> {
    let picked = Tensor::from_slice(classes, (classes.len(), 1), logits.device())?;
    logits.gather(&picked, D::Minus1)
}

/// One map per image of an N×C×H×W tensor: the maximum over its channels.
pub fn channel_max_maps(values: &Tensor) -> Result<Vec<Heatmap>, ExplainError> {
    let (_, _, height, width) = values.dims4()?;
    let maps = values.max(1)?.to_dtype(DType::F32)?;
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
