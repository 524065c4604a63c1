//! On an NVIDIA GPU (`cargo test --features cuda`): SimpleNet computes the same logits and
//! parameter gradients on CUDA as on the CPU, and a short training run completes there.
//! Tolerances: 1e-4 relative on logits and 1e-3 on gradients; f32 on both sides, with the
//! GPU's different summation order (cuBLAS, reductions) as the only difference.
//! Without a GPU each test prints a notice and returns.

#![cfg(feature = "cuda")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::{D, Device, Tensor};
use fakelens::config::{ModelKind, TrainConfig};
use fakelens::models;
use fakelens::train::{RunStatus, TrainData, train};

fn gpu() -> Option<Device> {
    match Device::new_cuda(0) {
        Ok(device) => Some(device),
        Err(e) => {
            eprintln!("skipping: no CUDA device ({e})");
            None
        }
    }
}

fn values(t: &Tensor) -> Vec<f32> {
    t.flatten_all()
        .unwrap()
        .to_device(&Device::Cpu)
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
}

/// Largest absolute difference relative to the CPU values' largest magnitude.
fn relative_error(gpu: &[f32], cpu: &[f32]) -> f64 {
    let cpu: Vec<f64> = cpu.iter().map(|&v| f64::from(v)).collect();
    common::relative_max_error(gpu, &cpu)
}

#[test]
fn simplenet_on_cuda_matches_the_cpu_in_logits_and_gradients() {
    let Some(gpu) = gpu() else { return };
    let cpu_model = models::build(ModelKind::SimpleNet, &Device::Cpu, 5).unwrap();
    let gpu_model = models::build(ModelKind::SimpleNet, &gpu, 5).unwrap();
    let x = Tensor::randn(0f32, 1.0, (4, 3, 256, 256), &Device::Cpu).unwrap();
    let labels = Tensor::new(&[0u32, 1, 1, 0], &Device::Cpu).unwrap();

    let run = |model: &dyn models::Detector, device: &Device| {
        let logits = model
            .forward_t(&x.to_device(device).unwrap(), true)
            .unwrap();
        let loss =
            candle_nn::loss::cross_entropy(&logits, &labels.to_device(device).unwrap()).unwrap();
        let grads = loss.backward().unwrap();
        let named: Vec<(String, Vec<f32>)> = model
            .params()
            .named_vars()
            .map(|(name, var)| (name.to_string(), values(grads.get(var).unwrap())))
            .collect();
        (values(&logits), named)
    };
    let (cpu_logits, cpu_grads) = run(cpu_model.as_ref(), &Device::Cpu);
    let (gpu_logits, gpu_grads) = run(gpu_model.as_ref(), &gpu);

    let err = relative_error(&gpu_logits, &cpu_logits);
    assert!(err < 1e-4, "logits differ by {err:e}");
    assert_eq!(
        cpu_grads.len(),
        12,
        "3 conv and 3 linear layers, weight and bias each"
    );
    for ((name, want), (_, got)) in cpu_grads.iter().zip(&gpu_grads) {
        let err = relative_error(got, want);
        assert!(err < 1e-3, "{name}: gradient differs by {err:e}");
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
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    let config = TrainConfig {
        epochs: 2,
        batch_size: 8,
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
