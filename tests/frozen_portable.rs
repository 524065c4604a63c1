//! The frozen inference path on the portable code paths, forced with
//! `FAKELENS_PORTABLE_KERNELS=1`: the weights read in place, the skip conv through im2col,
//! and the strided blocks' pool and skip add as separate steps, branches that the AVX-512
//! kernels' banded pool never takes. Its logits against the unfolded forward, as
//! `frozen_inference.rs` checks them on the kernels (the same tolerances).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::Device;
use fakelens::config::ModelKind;
use fakelens::models;

#[test]
fn portable_frozen_logits_equal_the_unfolded_forward_for_every_model() {
    // SAFETY: this binary's only test sets the variable before any thread reads it.
    unsafe { std::env::set_var(fakelens::ops::cpu::PORTABLE_ENV, "1") };
    assert!(!fakelens::ops::cpu::available());
    // The Xceptions' frozen path runs on the portable loops too (SimpleNet's does not).
    for kind in [ModelKind::LilXception, ModelKind::Xception] {
        let model = models::build(kind, &Device::Cpu, 7).unwrap();
        assert!(
            model.freeze().unwrap().is_some(),
            "{kind:?}: no frozen copy"
        );
    }
    common::frozen::every_model_equals_the_unfolded_forward();
}
