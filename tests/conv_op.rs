//! The convolution op equals PyTorch's conv2d in forward and in all three gradients, for
//! several strides, paddings and channel counts (fixture: tests/fixtures/conv/make.py). On a
//! processor with AVX-512 the stride-1 cases run the direct kernels and the others im2col +
//! gemm; `conv_portable.rs` runs every case on the portable paths.
//! Tolerance: 1e-5 of the largest expected magnitude (float32 against a float64 reference).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{Device, Tensor, Var};
use fakelens::ops::conv::dense::conv2d;
use fakelens::ops::geometry::ConvGeometry;

#[test]
fn conv_forward_and_gradients_match_pytorch() {
    common::conv::check_op();
}

/// The direct stride-1 kernels as this machine runs them (AVX-512 where present).
#[test]
fn direct_kernels_match_pytorch() {
    assert_eq!(common::conv::check_direct_kernels(), 5);
}

#[test]
fn raw_image_input_gets_no_gradient() {
    let dev = Device::Cpu;
    let x = Tensor::ones((1, 2, 5, 5), candle_core::DType::F32, &dev).unwrap();
    let w = Var::ones((3, 2, 3, 3), candle_core::DType::F32, &dev).unwrap();
    let b = Var::zeros(3, candle_core::DType::F32, &dev).unwrap();
    let y = conv2d(
        &x,
        &w,
        &b,
        ConvGeometry {
            stride: 1,
            padding: 1,
        },
    )
    .unwrap();
    let grads = y.sum_all().unwrap().backward().unwrap();
    assert!(
        grads.get(&x).is_none(),
        "a constant input must not get a gradient"
    );
    assert!(grads.get(&w).is_some());
}
