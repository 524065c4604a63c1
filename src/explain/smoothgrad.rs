//! SmoothGrad (Smilkov et al. 2017): the saliency of `samples` noisy copies of each image,
//! averaged. Noise is Gaussian with σ = `noise_fraction` × (max − min) of that image; the
//! absolute input gradients are averaged per colour channel and then the maximum over
//! channels is taken, so that with σ = 0 the map equals vanilla saliency.

use candle_core::{DType, Tensor};
use rand::{Rng, SeedableRng};

use super::error::ExplainError;
use super::heatmap::Heatmap;
use super::saliency::{channel_max_maps, input_gradient};
use crate::models::Detector;

/// SmoothGrad's settings.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SmoothGradSettings {
    /// Noisy copies per image.
    pub samples: usize,
    /// σ as a fraction of each image's value range.
    pub noise_fraction: f64,
    /// Seed of the noise (the same seed gives the same map).
    pub seed: u64,
}

impl Default for SmoothGradSettings {
    fn default() -> Self {
        SmoothGradSettings {
            samples: 16,
            noise_fraction: 0.15,
            seed: 0,
        }
    }
}

/// SmoothGrad maps with seeded Gaussian noise.
pub fn smoothgrad(
    model: &dyn Detector,
    images: &Tensor,
    classes: &[u32],
    settings: SmoothGradSettings,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<Heatmap>, ExplainError> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(settings.seed);
    let count = images.elem_count();
    smoothgrad_with_noise(
        model,
        images,
        classes,
        settings.noise_fraction,
        settings.samples,
        &mut |_| {
            let noise: Vec<f32> = (0..count).map(|_| standard_normal(&mut rng)).collect();
            Tensor::from_vec(noise, images.shape(), images.device())
        },
        cancelled,
    )
}

/// SmoothGrad with the unit-variance noise of sample `s` given by `unit_noise(s)` (a tensor
/// shaped like `images`), scaled per image by `noise_fraction` × its value range.
pub fn smoothgrad_with_noise(
    model: &dyn Detector,
    images: &Tensor,
    classes: &[u32],
    noise_fraction: f64,
    samples: usize,
    unit_noise: &mut dyn FnMut(usize) -> candle_core::Result<Tensor>,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<Heatmap>, ExplainError> {
    if samples == 0 {
        return Err(ExplainError::NoSamples);
    }
    let images = images.detach();
    let flat = images.flatten_from(1)?;
    let range = (flat.max_keepdim(1)? - flat.min_keepdim(1)?)?;
    let sigma = (range * noise_fraction)?.unsqueeze(2)?.unsqueeze(3)?;
    let mut total: Option<Tensor> = None;
    for s in 0..samples {
        if cancelled() {
            return Err(ExplainError::Cancelled);
        }
        let noise = unit_noise(s)?.to_dtype(images.dtype())?;
        let noisy = (&images + noise.broadcast_mul(&sigma)?)?;
        let grad = input_gradient(model, &noisy, classes)?.abs()?;
        total = Some(match total {
            Some(t) => (t + grad)?,
            None => grad,
        });
    }
    let mean = (total.ok_or(ExplainError::NoSamples)? / samples as f64)?;
    channel_max_maps(&mean.to_dtype(DType::F32)?)
}

/// One draw from N(0, 1) (Box–Muller).
fn standard_normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()) as f32
}
