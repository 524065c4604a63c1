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

/// The direct forward stores each value through the bias and ReLU straight into the output
/// planes (rows at least 16 wide): every value equals, bit for bit, the same correlation
/// stored to wide planes and then copied through the bias and ReLU — at one image (pixel
/// ranges split across threads) and two, with 16 output channels (blocks of 6, 6 and 4),
/// rows of 41 that each 16-lane store crosses, and padding.
#[test]
fn direct_forward_stores_what_the_wide_planes_hold() {
    use fakelens::ops::conv::direct::{DirectDims, forward, forward_with};
    for (n, relu) in [(1, true), (2, true), (1, false)] {
        let d = DirectDims {
            n,
            c_in: 5,
            h: 23,
            w: 41,
            c_out: 16,
            k: 3,
            pad: 1,
        };
        let value = |i: usize, m: usize| ((i * m) % 997) as f32 / 997.0 - 0.5;
        let x: Vec<f32> = (0..n * 5 * 23 * 41).map(|i| value(i, 7919)).collect();
        let w: Vec<f32> = (0..16 * 5 * 9).map(|i| value(i, 31)).collect();
        let b: Vec<f32> = (0..16).map(|i| value(i, 13)).collect();
        let (oh, ow, wp) = (d.oh(), d.ow(), d.wp());
        let mut through_wide = vec![0.0f32; n * 16 * oh * ow];
        forward_with(
            &x,
            &w,
            &d,
            &mut through_wide,
            16 * oh * ow,
            &|y, wide, plen| {
                for (c, plane) in y.chunks_mut(oh * ow).enumerate() {
                    for (oy, row) in plane.chunks_mut(ow).enumerate() {
                        for (ox, v) in row.iter_mut().enumerate() {
                            let s = wide[c * plen + oy * wp + ox] + b[c];
                            *v = if relu { s.max(0.0) } else { s };
                        }
                    }
                }
            },
        );
        let direct = forward(&x, &w, &b, &d, relu);
        let differing = direct
            .iter()
            .zip(&through_wide)
            .filter(|(a, b)| a.to_bits() != b.to_bits())
            .count();
        assert_eq!(differing, 0, "n {n}, relu {relu}: values differ");
        if relu {
            assert!(direct.iter().all(|&v| v >= 0.0) && direct.iter().any(|&v| v > 0.0));
        }
    }
}
