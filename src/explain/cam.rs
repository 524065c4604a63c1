//! Grad-CAM and Grad-CAM++ at a named layer, as pytorch-grad-cam computes them. The named
//! layer's output `A` (N×K×h×w, what a hook on the PyTorch module sees) gets a zero `Var`
//! probe added during one forward pass, so one backward pass of the summed class scores
//! yields `G = d score / d A` for every image at once. Per image:
//! - Grad-CAM weights channel k by the spatial mean of `G_k`;
//! - Grad-CAM++ by Σ ReLU(G_k) · a_k, a_k = G_k² / (2 G_k² + (Σ A_k) G_k³ + 1e-6), 0 where
//!   G_k = 0 (Chattopadhyay et al. 2018, eq. 19, with pytorch-grad-cam's ε);
//! - the CAM is ReLU(Σ_k w_k A_k), resized bilinearly to the input.
//!
//! The returned maps are unnormalised; their min-max normalisation equals pytorch-grad-cam's
//! output (which normalises before and after the resize: both are affine, so once suffices).

use candle_core::{DType, Tensor, Var};

use super::error::{ExplainError, check_classes};
use super::heatmap::Heatmap;
use super::saliency::chosen_scores;
use crate::models::Detector;

/// Which class-activation map.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CamKind {
    GradCam,
    GradCamPlusPlus,
}

/// The layer the course explained with Grad-CAM, for every model.
pub const COURSE_LAYER: &str = "conv3";

/// The model's last convolutional layer (SimpleNet `conv3`, Xception `conv4`).
pub fn last_conv_layer(model: &dyn Detector) -> &'static str {
    model
        .layer_names()
        .iter()
        .rev()
        .find(|name| name.starts_with("conv"))
        .copied()
        .unwrap_or(COURSE_LAYER)
}

/// The class-activation map of each image for its class, at `layer`.
pub fn class_activation_maps(
    model: &dyn Detector,
    images: &Tensor,
    classes: &[u32],
    layer: &str,
    kind: CamKind,
) -> Result<Vec<Heatmap>, ExplainError> {
    let (n, _, height, width) = images.dims4()?;
    check_classes(classes, n)?;
    if !model.layer_names().contains(&layer) {
        return Err(ExplainError::UnknownLayer {
            model: model.kind().label(),
            layer: layer.to_string(),
            available: model.layer_names().join(", "),
        });
    }
    let mut captured: Option<(Tensor, Var)> = None;
    let logits = model.forward_hooked(&images.detach(), false, &mut |name, output| {
        if name != layer {
            return Ok(output);
        }
        let probe = Var::zeros(output.shape(), output.dtype(), output.device())?;
        let probed = (&output + probe.as_tensor())?;
        captured = Some((output.detach(), probe));
        Ok(probed)
    })?;
    let (activations, probe) = captured.ok_or(ExplainError::NoGradient)?;
    let Ok((_, channels, rows, columns)) = activations.dims4() else {
        return Err(ExplainError::NotConvolutional(layer.to_string()));
    };
    let grads = chosen_scores(&logits, classes)?.sum_all()?.backward()?;
    let grad = grads
        .get(probe.as_tensor())
        .ok_or(ExplainError::NoGradient)?;
    let host = |t: &Tensor| -> candle_core::Result<Vec<f64>> {
        t.to_dtype(DType::F64)?.flatten_all()?.to_vec1()
    };
    let (a, g) = (host(&activations)?, host(grad)?);
    let plane = rows * columns;
    let maps = (0..n)
        .map(|image| {
            let mut cam = vec![0.0f64; plane];
            for k in 0..channels {
                let start = (image * channels + k) * plane;
                let (ak, gk) = (&a[start..start + plane], &g[start..start + plane]);
                let weight = match kind {
                    CamKind::GradCam => gk.iter().sum::<f64>() / plane as f64,
                    CamKind::GradCamPlusPlus => plus_plus_weight(ak, gk),
                };
                for (c, &v) in cam.iter_mut().zip(ak) {
                    *c += weight * v;
                }
            }
            Heatmap {
                width: columns,
                height: rows,
                values: cam.iter().map(|&v| v.max(0.0) as f32).collect(),
            }
            .resized(width, height)
        })
        .collect();
    Ok(maps)
}

/// Grad-CAM++'s weight of one channel from its activations and gradients.
fn plus_plus_weight(activations: &[f64], grads: &[f64]) -> f64 {
    let sum_activations: f64 = activations.iter().sum();
    grads
        .iter()
        .filter(|&&g| g != 0.0)
        .map(|&g| {
            let g2 = g * g;
            let alpha = g2 / (2.0 * g2 + sum_activations * g2 * g + 1e-6);
            g.max(0.0) * alpha
        })
        .sum()
}
