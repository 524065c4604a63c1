//! Xception's layer ops equal PyTorch (fixture: tests/fixtures/layers/make.py): the
//! depthwise convolution in forward and both gradients for several kernels, strides and
//! paddings; training-mode batch norm in output, all three gradients and the running
//! statistics; batch norm with a fused ReLU against the stock ops. Relative to the largest expected magnitude: f64 results to 2e-7 (compared
//! at f32 resolution), f32 results to 1e-5.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use fakelens::models::Params;
use fakelens::models::layers::BatchNorm;
use fakelens::ops::depthwise::{depthwise_conv2d, relu_depthwise_conv2d};
use fakelens::ops::geometry::ConvGeometry;
use fakelens::ops::shifted::depthwise_conv2d_by_shifts;

fn formula(count: usize, a: f64, b: f64) -> Vec<f64> {
    (0..count).map(|i| (a * i as f64 + b).sin()).collect()
}

fn var(values: Vec<f64>, dims: &[usize], dtype: DType) -> Var {
    let t = Tensor::from_vec(values, dims, &Device::Cpu).unwrap();
    Var::from_tensor(&t.to_dtype(dtype).unwrap()).unwrap()
}

fn check(name: &str, got: &Tensor, want: &serde_json::Value, tolerance: f64) {
    let got: Vec<f32> = got
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1()
        .unwrap();
    let err = common::relative_max_error(&got, &common::floats(want));
    // f32 output: compare at the f32 resolution at most.
    assert!(
        err < tolerance.max(2e-7),
        "{name} differs from PyTorch by {err:e}"
    );
}

type DepthwiseFn = fn(&Tensor, &Tensor, ConvGeometry) -> candle_core::Result<Tensor>;

#[test]
fn depthwise_conv_matches_pytorch() {
    check_depthwise(depthwise_conv2d);
}

/// The ReLU fused into the depthwise op equals a ReLU followed by it, in values and in both
/// gradients (the inputs straddle zero, so the ReLU blocks about half of them).
#[test]
fn fused_relu_depthwise_equals_relu_then_depthwise() {
    let g = ConvGeometry {
        stride: 1,
        padding: 1,
    };
    for dtype in [DType::F64, DType::F32] {
        let x = var(formula(2 * 5 * 9 * 7, 0.37, 0.1), &[2, 5, 9, 7], dtype);
        let w = var(formula(5 * 9, 0.17, 1.1), &[5, 1, 3, 3], dtype);
        let fused = relu_depthwise_conv2d(&x, &w, g).unwrap();
        let separate = depthwise_conv2d(&x.relu().unwrap(), &w, g).unwrap();
        let up = Tensor::from_vec(
            formula(fused.elem_count(), 0.23, 0.7),
            fused.shape(),
            &Device::Cpu,
        )
        .unwrap()
        .to_dtype(dtype)
        .unwrap();
        let a = (&fused * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let b = (&separate * &up)
            .unwrap()
            .sum_all()
            .unwrap()
            .backward()
            .unwrap();
        let to_json = |t: &Tensor| -> serde_json::Value {
            let v: Vec<f64> = t
                .flatten_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_vec1()
                .unwrap();
            serde_json::json!(v)
        };
        check("y", &fused, &to_json(&separate), 1e-6);
        check(
            "grad_x",
            a.get(&x).unwrap(),
            &to_json(b.get(&x).unwrap()),
            1e-6,
        );
        check(
            "grad_w",
            a.get(&w).unwrap(),
            &to_json(b.get(&w).unwrap()),
            1e-6,
        );
    }
}

/// The depthwise conv GPUs use (strided shifts), run here on the CPU.
#[test]
fn shifted_depthwise_conv_matches_pytorch() {
    check_depthwise(depthwise_conv2d_by_shifts);
}

fn check_depthwise(depthwise: DepthwiseFn) {
    let fixture = common::fixture("layers/expected.json");
    for (dtype, tolerance) in [(DType::F64, 1e-9), (DType::F32, 1e-5)] {
        for case in fixture["depthwise"].as_array().unwrap() {
            let d = common::usizes(&case["dims"]);
            let (n, c, h, w, k, stride, pad) = (d[0], d[1], d[2], d[3], d[4], d[5], d[6]);
            let x = var(formula(n * c * h * w, 0.31, 0.2), &[n, c, h, w], dtype);
            let weights: Vec<f64> = formula(c * k * k, 0.17, 1.1)
                .iter()
                .map(|v| 0.5 * v)
                .collect();
            let wt = var(weights, &[c, 1, k, k], dtype);
            let y = depthwise(
                &x,
                &wt,
                ConvGeometry {
                    stride,
                    padding: pad,
                },
            )
            .unwrap();
            assert_eq!(y.dims(), common::usizes(&case["out_shape"]).as_slice());
            let g = Tensor::from_vec(formula(y.elem_count(), 0.23, 0.7), y.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let label = |what: &str| format!("{dtype:?} {d:?} {what}");
            check(&label("y"), &y, &case["y"], tolerance);
            check(
                &label("grad_x"),
                grads.get(&x).unwrap(),
                &case["grad_x"],
                tolerance,
            );
            check(
                &label("grad_w"),
                grads.get(&wt).unwrap(),
                &case["grad_w"],
                tolerance,
            );
        }
    }
}

#[test]
fn training_batch_norm_matches_pytorch() {
    check_batch_norm(false);
}

/// The batch norm GPUs run (stock Candle ops), run here on the CPU.
#[test]
fn stock_op_batch_norm_matches_pytorch() {
    check_batch_norm(true);
}

fn check_batch_norm(stock_ops: bool) {
    let fixture = common::fixture("layers/expected.json");
    for (dtype, tolerance) in [(DType::F64, 1e-9), (DType::F32, 1e-5)] {
        for case in fixture["batchnorm"].as_array().unwrap() {
            let d = common::usizes(&case["dims"]);
            let (n, c, h, w) = (d[0], d[1], d[2], d[3]);
            let mut params = Params::with_dtype("test", &Device::Cpu, dtype, 0);
            let bn = BatchNorm::new(&mut params, "bn", c).unwrap();
            let set = |key: &str, values: Vec<f64>| {
                let t = Tensor::from_vec(values, c, &Device::Cpu).unwrap();
                params
                    .get(key)
                    .unwrap()
                    .set(&t.to_dtype(dtype).unwrap())
                    .unwrap();
            };
            set(
                "bn.weight",
                formula(c, 0.9, 0.3).iter().map(|v| 1.0 + 0.2 * v).collect(),
            );
            set(
                "bn.bias",
                formula(c, 0.5, 0.8).iter().map(|v| 0.1 * v).collect(),
            );
            let xs: Vec<f64> = formula(n * c * h * w, 0.37, 0.1)
                .iter()
                .map(|v| 2.0 * v + 0.5)
                .collect();
            let x = var(xs, &[n, c, h, w], dtype);
            let y = if stock_ops {
                bn.forward_with_stock_ops(&x, true).unwrap()
            } else {
                bn.forward(&x, true).unwrap()
            };
            let g = Tensor::from_vec(formula(y.elem_count(), 0.23, 0.7), y.shape(), &Device::Cpu)
                .unwrap()
                .to_dtype(dtype)
                .unwrap();
            let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let label = |what: &str| format!("{dtype:?} {d:?} {what}");
            check(&label("y"), &y, &case["y"], tolerance);
            check(
                &label("grad_x"),
                grads.get(&x).unwrap(),
                &case["grad_x"],
                tolerance,
            );
            let weight = params.get("bn.weight").unwrap();
            let bias = params.get("bn.bias").unwrap();
            check(
                &label("grad_w"),
                grads.get(weight).unwrap(),
                &case["grad_w"],
                tolerance,
            );
            check(
                &label("grad_b"),
                grads.get(bias).unwrap(),
                &case["grad_b"],
                tolerance,
            );
            for key in ["running_mean", "running_var"] {
                let buffer = params.get(&format!("bn.{key}")).unwrap();
                check(&label(key), buffer.as_tensor(), &case[key], tolerance);
            }
        }
    }
}

/// Batch norm with its ReLU fused (one op on the CPU, in training and in evaluation) equals
/// the stock ops checked against PyTorch above, followed by Candle's ReLU: output, the input
/// gradient and, in training, both parameter gradients and the running statistics.
#[test]
fn fused_batch_norm_relu_equals_stock_batch_norm_then_relu() {
    let (n, c, h, w) = (3, 5, 4, 6);
    for train in [true, false] {
        let mut outcomes = Vec::new();
        for fused in [true, false] {
            let mut params = Params::with_dtype("test", &Device::Cpu, DType::F64, 0);
            let bn = BatchNorm::new(&mut params, "bn", c).unwrap();
            let set = |key: &str, values: Vec<f64>| {
                let t = Tensor::from_vec(values, c, &Device::Cpu).unwrap();
                params.get(key).unwrap().set(&t).unwrap();
            };
            set("bn.weight", formula(c, 0.9, 0.3));
            set("bn.bias", formula(c, 0.5, 0.8));
            set("bn.running_mean", formula(c, 0.7, 0.1));
            set(
                "bn.running_var",
                formula(c, 0.4, 0.2).iter().map(|v| 1.5 + v).collect(),
            );
            let x = var(formula(n * c * h * w, 0.37, 0.1), &[n, c, h, w], DType::F64);
            let y = if fused {
                bn.forward_relu(&x, train).unwrap()
            } else {
                bn.forward_relu_with_stock_ops(&x, train).unwrap()
            };
            let g = Tensor::from_vec(formula(y.elem_count(), 0.23, 0.7), y.shape(), &Device::Cpu)
                .unwrap();
            let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
            let mut tensors = vec![y.clone(), grads.get(&x).unwrap().clone()];
            if train {
                for key in ["bn.weight", "bn.bias"] {
                    tensors.push(grads.get(params.get(key).unwrap()).unwrap().clone());
                }
                for key in ["bn.running_mean", "bn.running_var"] {
                    tensors.push(params.get(key).unwrap().as_tensor().clone());
                }
            }
            let outputs = y.flatten_all().unwrap().to_vec1::<f64>().unwrap();
            assert!(outputs.contains(&0.0), "the ReLU never clipped");
            outcomes.push(tensors);
        }
        for (i, (a, b)) in outcomes[0].iter().zip(&outcomes[1]).enumerate() {
            let a: Vec<f64> = a.flatten_all().unwrap().to_vec1().unwrap();
            let b: Vec<f64> = b.flatten_all().unwrap().to_vec1().unwrap();
            let err = a
                .iter()
                .zip(&b)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(
                err < 1e-12,
                "train={train}, tensor {i}: fused differs by {err:e}"
            );
        }
    }
}
