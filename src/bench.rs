//! `fakelens bench`: training throughput of FakeLens against the PyTorch reference script
//! (`benches/reference/train_step.py`) run on the same machine, same shapes and same thread
//! count, in the same invocation; printed as ratios. Never a timed assertion in a test.

use std::path::PathBuf;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};

use crate::config::{ModelKind, TrainConfig};
use crate::device::DeviceChoice;
use crate::models;
use crate::train::Optimizer;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "simplenet")]
    pub model: ModelKind,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Timed training steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Python interpreter with torch for the reference; `none` skips it.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The reference script.
    #[arg(long, default_value = "benches/reference/train_step.py")]
    pub reference: PathBuf,
    /// Where both sides run (`cuda` runs the reference on the GPU too).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
}

/// Images per second of `steps` Adam training steps at `batch_size` on random inputs.
pub fn fakelens_train_throughput(
    kind: ModelKind,
    batch_size: usize,
    steps: usize,
    device: &Device,
) -> anyhow::Result<f64> {
    let model = models::build(kind, device, 0)?;
    let config = TrainConfig {
        model: kind,
        batch_size,
        ..kind.default_train_config()
    };
    let mut optimizer = Optimizer::new(model.params().vars(), &config)?;
    let size = crate::config::INPUT_SIZE;
    let images = Tensor::randn(0f32, 1.0, (batch_size, 3, size, size), device)?;
    let labels: Vec<u32> = (0..batch_size as u32).map(|i| i % 2).collect();
    let labels = Tensor::new(labels.as_slice(), device)?;
    let mut step = || -> anyhow::Result<()> {
        let logits = model.forward_t(&images, true)?;
        let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
        optimizer.backward_step(&loss)?;
        Ok(())
    };
    for _ in 0..2 {
        step()?;
    }
    device.synchronize()?;
    let started = Instant::now();
    for _ in 0..steps {
        step()?;
    }
    device.synchronize()?;
    Ok((steps * batch_size) as f64 / started.elapsed().as_secs_f64())
}

/// Runs the PyTorch reference and returns its images/s, or why it could not run.
fn pytorch_train_throughput(args: &BenchArgs, device: &Device) -> anyhow::Result<f64> {
    let threads = rayon::current_num_threads();
    let output = Command::new(&args.python)
        .arg(&args.reference)
        .args(["--model", args.model.name()])
        .args(["--batch-size", &args.batch_size.to_string()])
        .args(["--steps", &args.steps.to_string()])
        .args(["--threads", &threads.to_string()])
        .args(["--device", if device.is_cuda() { "cuda" } else { "cpu" }])
        .output()
        .with_context(|| format!("running {} {}", args.python, args.reference.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "the reference script failed: {}",
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    let json: serde_json::Value = serde_json::from_slice(&output.stdout)
        .context("the reference script did not print JSON")?;
    json.get("train_images_per_sec")
        .and_then(|v| v.as_f64())
        .context("the reference JSON has no train_images_per_sec")
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    println!(
        "benchmark: {} training step, batch {}, 256x256, {} steps, {threads} threads",
        args.model.label(),
        args.batch_size,
        args.steps
    );
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        println!("{notice}");
    }
    if device.is_metal() {
        anyhow::bail!(
            "the PyTorch reference runs on the CPU or CUDA only; bench with --device cpu"
        );
    }
    println!("device: {}", crate::device::describe(&device));
    let ours = fakelens_train_throughput(args.model, args.batch_size, args.steps, &device)?;
    println!(
        "fakelens  train  {ours:>8.2} images/s  ({:.1} ms/step)",
        1000.0 * args.batch_size as f64 / ours
    );
    if args.python == "none" {
        return Ok(());
    }
    match pytorch_train_throughput(args, &device) {
        Ok(reference) => {
            println!(
                "pytorch   train  {reference:>8.2} images/s  ({:.1} ms/step)",
                1000.0 * args.batch_size as f64 / reference
            );
            println!(
                "ratio (fakelens / pytorch throughput) = {:.3}; step time ratio = {:.3}",
                ours / reference,
                reference / ours
            );
        }
        Err(e) => println!("pytorch reference not measured: {e:#}"),
    }
    Ok(())
}
