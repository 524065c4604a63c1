//! The im2col + gemm convolution op equals PyTorch's conv2d in forward and in all three
//! gradients, for several strides and paddings (fixture: tests/fixtures/conv/make.py).
//! Tolerance: 1e-5 of the largest expected magnitude (float32 against a float64 reference).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{Device, Tensor, Var};
use fakelens::models::conv::{ConvGeometry, conv2d};

fn formula(count: usize, a: f64, b: f64, scale: f64) -> Vec<f32> {
    (0..count)
        .map(|i| (scale * (a * i as f64 + b).sin()) as f32)
        .collect()
}

#[test]
fn conv_forward_and_gradients_match_pytorch() {
    let cases = common::fixture("conv/expected.json");
    for case in cases.as_array().unwrap() {
        let d = common::usizes(&case["dims"]);
        let (n, c_in, h, w, c_out, k, stride, pad) =
            (d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
        let dev = Device::Cpu;
        let x = Var::from_vec(
            formula(n * c_in * h * w, 0.31, 0.2, 1.0),
            (n, c_in, h, w),
            &dev,
        )
        .unwrap();
        let wt = Var::from_vec(
            formula(c_out * c_in * k * k, 0.17, 1.1, 0.5),
            (c_out, c_in, k, k),
            &dev,
        )
        .unwrap();
        let b = Var::from_vec(formula(c_out, 0.9, 0.4, 0.1), c_out, &dev).unwrap();
        let y = conv2d(
            &x,
            &wt,
            &b,
            ConvGeometry {
                stride,
                padding: pad,
            },
        )
        .unwrap();
        let out_shape = common::usizes(&case["out_shape"]);
        assert_eq!(y.dims(), out_shape.as_slice(), "case {d:?}");
        let g = Tensor::from_vec(formula(y.elem_count(), 0.23, 0.7, 1.0), y.shape(), &dev).unwrap();
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let checks = [
            ("y", flat(&y), "y"),
            ("grad_x", flat(grads.get(&x).unwrap()), "grad_x"),
            ("grad_w", flat(grads.get(&wt).unwrap()), "grad_w"),
            ("grad_b", flat(grads.get(&b).unwrap()), "grad_b"),
        ];
        for (name, got, key) in checks {
            let err = common::relative_max_error(&got, &common::floats(&case[key]));
            assert!(
                err < 1e-5,
                "case {d:?}: {name} differs from PyTorch by {err:e}"
            );
        }
    }
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
