//! The max-pool op equals PyTorch's max_pool2d in forward and input gradient, for 2×2/2,
//! padded 3×3/2 (Xception's), and odd sizes (fixture: tests/fixtures/pool/make.py).
//! Tolerance 1e-9 in f64: the op only selects and routes values; the inputs, a sin-based hash,
//! differ between Python and Rust by ~1e-11.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use fakelens::ops::geometry::PoolGeometry;
use fakelens::ops::pool::{max_pool2d, max_pool2d_by_reduction};
use fakelens::ops::shifted::max_pool2d_by_shifts;

type PoolFn = fn(&Tensor, PoolGeometry) -> candle_core::Result<Tensor>;

#[test]
fn max_pool_forward_and_gradient_match_pytorch() {
    assert_eq!(check_against_fixture(max_pool2d, |_| true), 4);
}

/// The pool GPUs use (reshape + max reductions) routes the gradient as PyTorch does too.
#[test]
fn reduction_pool_forward_and_gradient_match_pytorch() {
    let checked = check_against_fixture(max_pool2d_by_reduction, |g| {
        g.kernel == g.stride && g.padding == 0
    });
    assert_eq!(checked, 1);
}

/// The pool GPUs use for padded and overlapping windows (strided shifts + maximum).
#[test]
fn shifted_pool_forward_and_gradient_match_pytorch() {
    assert_eq!(check_against_fixture(max_pool2d_by_shifts, |_| true), 4);
}

/// Runs `pool` on every fixture case `wanted` accepts; returns how many it checked.
fn check_against_fixture(pool: PoolFn, wanted: fn(&PoolGeometry) -> bool) -> usize {
    let cases = common::fixture("pool/expected.json");
    let mut checked = 0;
    for case in cases.as_array().unwrap() {
        let d = common::usizes(&case["dims"]);
        let (n, c, h, w, kernel, stride, padding) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
        let geometry = PoolGeometry {
            kernel,
            stride,
            padding,
        };
        if !wanted(&geometry) {
            continue;
        }
        checked += 1;
        let values: Vec<f64> = (0..n * c * h * w)
            .map(|i| ((i as f64 * 12.9898 + 0.5).sin() * 43758.5453).fract())
            .collect();
        let x = Var::from_tensor(&Tensor::from_vec(values, (n, c, h, w), &Device::Cpu).unwrap())
            .unwrap();
        let y = pool(&x, geometry).unwrap();
        let shape = common::usizes(&case["out_shape"]);
        assert_eq!(y.dims(), shape.as_slice(), "{d:?}");
        let g: Vec<f64> = (0..y.elem_count())
            .map(|i| (0.37 * i as f64).cos())
            .collect();
        let g = Tensor::from_vec(g, y.shape(), &Device::Cpu).unwrap();
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| {
            t.flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1::<f64>()
                .unwrap()
        };
        for (name, got) in [("y", flat(&y)), ("grad_x", flat(grads.get(&x).unwrap()))] {
            let want = common::floats(&case[name]);
            let err = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(err < 1e-9, "{d:?}: {name} differs by {err:e}");
        }
    }
    checked
}
