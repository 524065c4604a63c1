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

use candle_core::{DType, Device};
use fakelens::config::ModelKind;
use fakelens::models;

use common::frozen::check;

#[test]
fn frozen_logits_equal_the_unfolded_forward_for_every_model() {
    common::frozen::every_model_equals_the_unfolded_forward();
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
