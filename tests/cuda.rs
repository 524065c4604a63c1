//! On an NVIDIA GPU (`cargo test --features cuda`): SimpleNet computes the same logits and
//! parameter gradients on CUDA as on the CPU, and a short training run completes there.
//! Tolerances (relative to the largest value): SimpleNet in f32, 1e-4 on logits and 1e-3 on
//! gradients; the Xceptions in f64, 1e-9 and 1e-7. The GPU's summation order (cuBLAS,
//! reductions) is the only difference.
//! Without a GPU each test prints a notice and returns.

#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::{D, DType, Device, Tensor};
use fakelens::config::{ModelKind, TrainConfig};
use fakelens::data::profile::Framing;
use fakelens::models;
use fakelens::runs::RunStatus;
use fakelens::train::{TrainData, train};

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(device) => Some(device),
        Err(e) => {
            eprintln!("skipping: no CUDA device ({e})");
            None
        }
    }
}

fn values(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn simplenet_on_cuda_matches_the_cpu_in_logits_and_gradients() {
    let Some(gpu) = gpu() else { return };
    let x = Tensor::randn(0f32, 1.0, (4, 3, 256, 256), &Device::Cpu).unwrap();
    compare(ModelKind::SimpleNet, &x, &gpu, DType::F32, 12, (1e-4, 1e-3));
}

/// The Xception models on CUDA (stock-op fallbacks for depthwise conv, padded pool and
/// batch norm) against the CPU ops, in training mode: batch norm uses batch statistics.
#[test]
fn xceptions_on_cuda_match_the_cpu_in_logits_and_gradients() {
    let Some(gpu) = gpu() else { return };
    let x = Tensor::randn(0f32, 1.0, (4, 3, 128, 128), &Device::Cpu).unwrap();
    // In f64: in f32 the weight gradient of a conv followed by training-mode batch norm is
    // a sum that nearly cancels (the normalised gradient has zero mean per channel), and
    // LilXception's block7.rep.1.pointwise.weight differed by 2.7e-2 of its largest value
    // on an H200 while the logits agreed to 2e-7.
    let tolerances = (1e-9, 1e-7);
    compare(
        ModelKind::LilXception,
        &x,
        &gpu,
        DType::F64,
        LIL_PARAM_TENSORS,
        tolerances,
    );
    compare(
        ModelKind::Xception,
        &x,
        &gpu,
        DType::F64,
        XCEPTION_PARAM_TENSORS,
        tolerances,
    );
}

/// Parameter tensors (PyTorch: `len(list(model.parameters()))`).
const LIL_PARAM_TENSORS: usize = 98;
const XCEPTION_PARAM_TENSORS: usize = 162;

/// One training-mode forward and backward of `kind` on the CPU and on `gpu` from the same
/// seed: logits and every parameter gradient within `(logits, gradients)` relative error.
fn compare(
    kind: ModelKind,
    x: &Tensor,
    gpu: &Device,
    dtype: DType,
    param_tensors: usize,
    (logit_tolerance, grad_tolerance): (f64, f64),
) {
    let labels = Tensor::new(&[0u32, 1, 1, 0], &Device::Cpu).unwrap();
    let run = |device: &Device| {
        let model = models::build_with_dtype(kind, device, dtype, 5).unwrap();
        let input = x.to_dtype(dtype).unwrap().to_device(device).unwrap();
        let logits = model.forward_t(&input, true).unwrap();
        let loss =
            candle_nn::loss::cross_entropy(&logits, &labels.to_device(device).unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let named: Vec<(String, Vec<f64>)> = model
            .params()
            .named_vars()
            .map(|(name, var)| (name.to_string(), values(grads.get(var).unwrap())))
            .collect();
        (values(&logits), named)
    };
    let (cpu_logits, cpu_grads) = run(&Device::Cpu);
    let (gpu_logits, gpu_grads) = run(gpu);

    let err = common::relative_error_f64(&gpu_logits, &cpu_logits);
    eprintln!("{kind:?}: logits differ by {err:e}");
    assert!(err < logit_tolerance, "{kind:?}: logits differ by {err:e}");
    assert_eq!(cpu_grads.len(), param_tensors, "{kind:?}");
    for ((name, want), (_, got)) in cpu_grads.iter().zip(&gpu_grads) {
        let err = common::relative_error_f64(got, want);
        assert!(
            err < grad_tolerance,
            "{kind:?} {name}: gradient differs by {err:e}"
        );
    }
    // The logits are not a constant: the comparison above compared something.
    let spread = Tensor::new(cpu_logits.as_slice(), &Device::Cpu)
        .unwrap()
        .reshape((4, 2))
        .unwrap()
        .max(D::Minus1)
        .unwrap();
    assert!(values(&spread).iter().any(|v| v.abs() > 1e-3));
}

#[test]
fn a_short_training_run_completes_on_cuda() {
    let Some(gpu) = gpu() else { return };
    let demo = common::small_demo(60, 2);
    let data = TrainData::prepare(
        &demo.path().join("demo"),
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 8,
        input: Framing::Whole,
        ..TrainConfig::default()
    };
    let run_dir = demo.path().join("run");
    let record = train(
        &config,
        &data,
        &run_dir,
        &gpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.epochs.len(), 2);
    assert!(record.epochs.iter().all(|e| e.train_loss.is_finite()));
    assert!(record.device.starts_with("cuda"), "{}", record.device);
    assert!(run_dir.join("model.safetensors").is_file());
}
