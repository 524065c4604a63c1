//! The frozen inference path against the model's own evaluation forward, shared by
//! `frozen_inference.rs` (on this processor's kernels) and `frozen_portable.rs` (on the
//! portable loops). Tolerances: `frozen_inference.rs` (its measured differences are the
//! AVX-512 kernels'; the portable run prints its own).

use candle_core::{Device, Tensor};
use fakelens::config::ModelKind;
use fakelens::models::{self, Detector};

pub fn images(n: usize, size: usize, seed: f64) -> Tensor {
    let count = n * 3 * size * size;
    let v: Vec<f32> = (0..count)
        .map(|i| ((0.011 * i as f64 + seed).sin() + 0.3 * (0.00071 * i as f64).cos()) as f32)
        .collect();
    Tensor::from_vec(v, (n, 3, size, size), &Device::Cpu).unwrap()
}

pub fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest difference relative to the largest magnitude of `want`.
pub fn relative(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

pub fn check(model: &dyn Detector, name: &str, batch: usize, size: usize, tolerance: f32) {
    let Some(frozen) = model.freeze().unwrap() else {
        // SimpleNet's frozen path runs on the AVX-512 kernels only.
        println!("notice: {name} has no frozen path without the AVX-512 kernels; skipped");
        return;
    };
    let x = images(batch, size, 0.4);
    let want = values(&model.forward_t(&x, false).unwrap());
    let got = values(&frozen.logits(&x).unwrap());
    let err = relative(&got, &want);
    println!("{name}: frozen and unfolded logits differ by {err:e} (relative) at batch {batch}");
    assert!(
        err < tolerance,
        "{name}: frozen logits differ by {err:e} at batch {batch}"
    );
    // One image alone (each op on every thread) equals its row of the batch (one image
    // per thread).
    let first = values(&frozen.logits(&x.narrow(0, 0, 1).unwrap()).unwrap());
    let err = relative(&first, &got[..2]);
    assert!(
        err < 1e-5,
        "{name}: one image alone differs from its batch row by {err:e}"
    );
}

/// The three models, freshly initialised with batch-norm statistics and affines away from
/// the identity, frozen and unfolded, at a batch of 5 and at one image.
pub fn every_model_equals_the_unfolded_forward() {
    for (kind, size) in [
        (ModelKind::SimpleNet, 256),
        (ModelKind::LilXception, 96),
        (ModelKind::Xception, 96),
    ] {
        let model = models::build(kind, &Device::Cpu, 7).unwrap();
        // Batch-norm statistics and affines away from the identity, so that folding matters.
        for (i, (key, var)) in model.params().all().enumerate() {
            let scale = match key.rsplit('.').next() {
                Some("running_var") => 1.0,
                Some("running_mean" | "bias") => 0.2,
                Some("weight") if var.rank() == 1 => 0.5,
                _ => continue,
            };
            let n = var.elem_count();
            let v: Vec<f32> = (0..n)
                .map(|j| {
                    let s = (0.37 * j as f32 + i as f32).sin();
                    if key.ends_with("running_var") {
                        0.5 + s * s
                    } else {
                        1.0 * scale * s + if key.ends_with("weight") { 1.0 } else { 0.0 }
                    }
                })
                .collect();
            var.set(&Tensor::from_vec(v, var.dims(), &Device::Cpu).unwrap())
                .unwrap();
        }
        // Freshly initialised logits barely move with the features (a 0.1 % error in every
        // folded weight moved them by 1–2e-5), so the bound here is tighter: 2e-6.
        check(model.as_ref(), kind.name(), 5, size, 2e-6);
    }
}
