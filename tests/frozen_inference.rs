//! The frozen inference path (`models/frozen/`: batch norm folded into the convolutions,
//! packed weights, fused epilogues) gives the logits of the model's own evaluation forward
//! within float32 rounding, for the three models, at one image and at a batch, and leaves
//! the model's weights as they were. Against PyTorch it is checked beside the unfolded path
//! in `simplenet_reference.rs` and `xception_reference.rs` (1e-4 and 1e-3 relative).
//!
//! Tolerance here: 1e-4 of the largest logit magnitude for the bundled detector, 2e-6 for the
//! freshly initialised models (folding `w·scale` rounds once where
//! the unfolded path rounds the product and then the affine). Measured on this machine:
//! 0 for SimpleNet and the bundled LilXception, 8e-8 and 1.3e-7 for the random LilXception
//! and Xception (printed by the test).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor};
use fakelens::config::ModelKind;
use fakelens::models::{self, Detector};

fn images(n: usize, size: usize, seed: f64) -> Tensor {
    let count = n * 3 * size * size;
    let v: Vec<f32> = (0..count)
        .map(|i| ((0.011 * i as f64 + seed).sin() + 0.3 * (0.00071 * i as f64).cos()) as f32)
        .collect();
    Tensor::from_vec(v, (n, 3, size, size), &Device::Cpu).unwrap()
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

/// Largest difference relative to the largest magnitude of `want`.
fn relative(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(1e-6f32, |m, v| m.max(v.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f32, |m, (a, b)| m.max((a - b).abs()))
        / scale
}

fn check(model: &dyn Detector, name: &str, batch: usize, size: usize, tolerance: f32) {
    let Some(frozen) = model.freeze().unwrap() else {
        println!("notice: {name} has no frozen path on this CPU (no AVX-512); skipped");
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

#[test]
fn frozen_logits_equal_the_unfolded_forward_for_every_model() {
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

#[test]
fn frozen_copy_of_the_bundled_detector_equals_it_and_leaves_its_weights_alone() {
    let checkpoint = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("weights/bundled/lilxception-lfw-faceswap/model.safetensors");
    let model = models::load(ModelKind::LilXception, &checkpoint, &Device::Cpu).unwrap();
    let before = common::param_values(model.as_ref(), "block1.rep.0.pointwise.weight");
    check(model.as_ref(), "bundled LilXception", 3, 256, 1e-4);
    let after = common::param_values(model.as_ref(), "block1.rep.0.pointwise.weight");
    assert_eq!(before, after, "freezing changed the model's own weights");
}

#[test]
fn f64_and_non_cpu_models_keep_the_unfolded_path() {
    let model =
        models::build_with_dtype(ModelKind::LilXception, &Device::Cpu, DType::F64, 0).unwrap();
    assert!(
        model.freeze().unwrap().is_none(),
        "an f64 model must not be frozen to f32"
    );
}
