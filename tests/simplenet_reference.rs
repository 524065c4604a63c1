//! SimpleNet: parameter count, checkpoint keys, and forward, input gradient and weight
//! gradients equal to PyTorch's on a committed fixture (tests/fixtures/simplenet/make.py),
//! with deterministic formula weights both sides compute. Tolerance: 1e-4 of the largest
//! expected magnitude.
//!
//! The gradients are compared with the model computing in f64, as the reference does: with
//! 2×2 max-pooling, float32 rounding flips the winner of a few near-tied windows among
//! hundreds of thousands, which moves gradient between neighbouring pixels in any f32
//! implementation (PyTorch's own f32 run differs from its f64 run the same way). The f32
//! model's logits are checked too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use fakelens::config::ModelKind;
use fakelens::models::{self, Detector};

/// value[i] = (sin(0.7·i + 1.3·k) + 0.2·sin(0.0031·i + k)) / (2·√fan_in), as in make.py.
fn set_formula_weights(model: &dyn Detector, dtype: DType) {
    for (k, (_, var)) in model.params().named_vars().enumerate() {
        let dims = var.dims();
        let fan_in = match dims.len() {
            4 => dims[1] * dims[2] * dims[3],
            2 => dims[1],
            _ => dims[0],
        } as f64;
        let values: Vec<f64> = (0..var.elem_count())
            .map(|i| {
                let i = i as f64;
                let k = k as f64;
                ((0.7 * i + 1.3 * k).sin() + 0.2 * (0.0031 * i + k).sin()) / (2.0 * fan_in.sqrt())
            })
            .collect();
        let value = Tensor::from_vec(values, dims, &Device::Cpu)
            .unwrap()
            .to_dtype(dtype)
            .unwrap();
        var.set(&value).unwrap();
    }
}

fn input(dtype: DType) -> Tensor {
    let plane = 3 * 256 * 256;
    let mut values = Vec::with_capacity(2 * plane);
    for b in 0..2 {
        for j in 0..plane {
            let j = j as f64;
            values.push((0.013 * (b as f64 + 1.0) * j).sin() + 0.5 * (0.0007 * j).cos());
        }
    }
    Tensor::from_vec(values, (2, 3, 256, 256), &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

#[test]
fn simplenet_has_the_course_parameter_count_and_keys() {
    let expected = common::fixture("simplenet/expected.json");
    let model = models::build(ModelKind::SimpleNet, &Device::Cpu, 0).unwrap();
    assert_eq!(model.param_count(), 16_901_762);
    assert_eq!(
        model.param_count() as u64,
        expected["param_count"].as_u64().unwrap()
    );
    let keys: Vec<&str> = model.params().named_vars().map(|(k, _)| k).collect();
    let expected_keys: Vec<&str> = expected["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(keys, expected_keys);
    let logits = model
        .forward_t(
            &Tensor::zeros((3, 3, 256, 256), candle_core::DType::F32, &Device::Cpu).unwrap(),
            false,
        )
        .unwrap();
    assert_eq!(logits.dims(), &[3, 2]);
}

fn to_f32(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F32)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

#[test]
fn simplenet_f32_logits_match_pytorch() {
    let expected = common::fixture("simplenet/expected.json");
    let model = models::build(ModelKind::SimpleNet, &Device::Cpu, 0).unwrap();
    set_formula_weights(model.as_ref(), DType::F32);
    let logits = model.forward_t(&input(DType::F32), false).unwrap();
    let err = common::relative_max_error(&to_f32(&logits), &common::floats(&expected["logits"]));
    assert!(err < 1e-4, "f32 logits differ by {err:e}");
    // The frozen inference path (evaluation, verdicts) equals PyTorch within the same bound.
    match model.freeze().unwrap() {
        Some(frozen) => {
            let logits = frozen.logits(&input(DType::F32)).unwrap();
            let err =
                common::relative_max_error(&to_f32(&logits), &common::floats(&expected["logits"]));
            assert!(err < 1e-4, "frozen f32 logits differ by {err:e}");
        }
        None => println!("notice: no AVX-512 here, SimpleNet's frozen path is not built"),
    }
}

#[test]
fn simplenet_forward_and_gradients_match_pytorch() {
    let expected = common::fixture("simplenet/expected.json");
    let model =
        models::build_with_dtype(ModelKind::SimpleNet, &Device::Cpu, DType::F64, 0).unwrap();
    set_formula_weights(model.as_ref(), DType::F64);
    let x = Var::from_tensor(&input(DType::F64)).unwrap();
    // Training mode: weight gradients exist only there (evaluation detaches the weights).
    let logits = model.forward_t(&x, true).unwrap();
    let got_logits = to_f32(&logits);
    let err = common::relative_max_error(&got_logits, &common::floats(&expected["logits"]));
    assert!(err < 1e-4, "logits differ by {err:e}: {got_logits:?}");

    let labels = Tensor::new(&[0u32, 1], &Device::Cpu).unwrap();
    let loss = candle_nn::loss::cross_entropy(&logits, &labels).unwrap();
    let loss_value = loss.to_scalar::<f64>().unwrap();
    assert!((loss_value - expected["loss"].as_f64().unwrap()).abs() < 1e-4);
    let grads = loss.backward().unwrap();

    let stride = expected["sample_stride"].as_u64().unwrap() as usize;
    let grad_x = to_f32(grads.get(&x).unwrap());
    let sampled: Vec<f32> = grad_x.iter().step_by(stride).copied().collect();
    let err = common::relative_max_error(&sampled, &common::floats(&expected["input_grad_sample"]));
    assert!(err < 1e-4, "input gradient differs by {err:e}");
    let abs_sum: f64 = grad_x.iter().map(|v| v.abs() as f64).sum();
    let expected_sum = expected["input_grad_abs_sum"].as_f64().unwrap();
    assert!(
        (abs_sum - expected_sum).abs() < 1e-4 * expected_sum,
        "{abs_sum} vs {expected_sum}"
    );

    let named: std::collections::HashMap<&str, &Var> = model.params().named_vars().collect();
    let conv1_grad = to_f32(grads.get(named["conv1.weight"]).unwrap());
    let err =
        common::relative_max_error(&conv1_grad, &common::floats(&expected["conv1_weight_grad"]));
    assert!(err < 1e-4, "conv1.weight gradient differs by {err:e}");
    let fc1_bias = to_f32(grads.get(named["fc1.bias"]).unwrap());
    let sampled: Vec<f32> = fc1_bias.iter().step_by(7).copied().collect();
    let err =
        common::relative_max_error(&sampled, &common::floats(&expected["fc1_bias_grad_sample"]));
    assert!(err < 1e-4, "fc1.bias gradient differs by {err:e}");
}
