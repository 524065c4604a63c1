//! The fused conv + ReLU + 2×2 max-pool op gives the values and gradients of the separate
//! ops it replaces (themselves checked against PyTorch in conv_op.rs and pool_op.rs), and
//! SimpleNet's fused forward equals its hooked, unfused one. Tolerance 1e-5 of the largest
//! magnitude (the same f32 arithmetic, summed in a different order).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use fakelens::config::ModelKind;
use fakelens::ops::conv::dense::conv2d_relu;
use fakelens::ops::conv::fused_pool::conv2d_relu_maxpool2;
use fakelens::ops::geometry::ConvGeometry;
use fakelens::ops::geometry::PoolGeometry;
use fakelens::ops::pool::max_pool2d;

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all().unwrap().to_vec1::<f32>().unwrap()
}

fn assert_close(name: &str, got: &Tensor, want: &Tensor) {
    let want: Vec<f64> = values(want).iter().map(|&v| f64::from(v)).collect();
    let err = common::relative_max_error(&values(got), &want);
    assert!(err < 1e-5, "{name} differs by {err:e}");
}

#[test]
fn fused_op_equals_conv_relu_then_pool() {
    let dev = Device::Cpu;
    // Odd conv outputs (the pool drops the last row and column), several channel blocks,
    // padding, and negative values so that ReLU blocks some windows entirely.
    for (n, c_in, h, w, c_out, k, pad) in [(2, 5, 23, 21, 13, 5, 1), (3, 3, 16, 16, 6, 3, 0)] {
        let x =
            Var::from_tensor(&Tensor::randn(0f32, 1.0, (n, c_in, h, w), &dev).unwrap()).unwrap();
        let wt = Var::from_tensor(&Tensor::randn(0f32, 0.3, (c_out, c_in, k, k), &dev).unwrap())
            .unwrap();
        let b = Var::from_tensor(&Tensor::randn(-0.2f32, 0.3, c_out, &dev).unwrap()).unwrap();
        let g = ConvGeometry {
            stride: 1,
            padding: pad,
        };
        let pool = PoolGeometry {
            kernel: 2,
            stride: 2,
            padding: 0,
        };
        let fused = conv2d_relu_maxpool2(&x, &wt, &b, g).unwrap();
        let separate = max_pool2d(&conv2d_relu(&x, &wt, &b, g).unwrap(), pool).unwrap();
        assert_eq!(fused.dims(), separate.dims());
        assert_close("y", &fused, &separate);
        let zeros = values(&fused).iter().filter(|v| **v == 0.0).count();
        assert!(zeros > 0, "some windows are fully blocked by ReLU");

        let up = Tensor::randn(0f32, 1.0, fused.shape(), &dev).unwrap();
        let grads_fused = (&fused * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let grads_separate = (&separate * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        for (name, var) in [("grad_x", &x), ("grad_w", &wt), ("grad_b", &b)] {
            assert_close(
                name,
                grads_fused.get(var).unwrap(),
                grads_separate.get(var).unwrap(),
            );
        }
    }
}

#[test]
fn simplenet_fused_forward_equals_the_hooked_one() {
    let model = fakelens::models::build(ModelKind::SimpleNet, &Device::Cpu, 4).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 256, 256), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[1u32, 0], &Device::Cpu).unwrap();
    let fused = model.forward_t(&x, true).unwrap();
    let hooked = model.forward_hooked(&x, true, &mut |_, t| Ok(t)).unwrap();
    assert_close("logits", &fused, &hooked);
    let loss = |logits: &Tensor| candle_nn::loss::cross_entropy(logits, &labels).unwrap();
    let g_fused = loss(&fused).backward().unwrap();
    let g_hooked = loss(&hooked).backward().unwrap();
    let mut compared = 0;
    for (name, var) in model.params().named_vars() {
        assert_close(name, g_fused.get(var).unwrap(), g_hooked.get(var).unwrap());
        compared += 1;
    }
    assert_eq!(compared, 12);
    assert_eq!(fused.dtype(), DType::F32);
}
