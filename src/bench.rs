//! `fakelens bench`: training, eval and saliency throughput (and peak memory) of FakeLens
//! against the PyTorch reference script
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
    /// Timed steps (after 2 warm-up steps).
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
    /// What to time: training steps, eval forward passes, or one image's saliency.
    #[arg(long, value_enum, default_value = "train")]
    pub mode: BenchMode,
}

/// What one benchmark step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// An Adam training step on a batch.
    Train,
    /// A forward pass without gradients on a batch.
    Eval,
    /// The drag-in latency: one image, forward, then the input gradient of the fake logit.
    Saliency,
    /// One image's Grad-CAM of the fake class at the course's `conv3`, resized to the input.
    Gradcam,
    /// Drop-to-verdict and drop-to-heatmap of a 1.6-megapixel photo (FakeLens only).
    Drop,
}

impl BenchMode {
    fn name(self) -> &'static str {
        match self {
            BenchMode::Train => "train",
            BenchMode::Eval => "eval",
            BenchMode::Saliency => "saliency",
            BenchMode::Gradcam => "gradcam",
            BenchMode::Drop => "drop",
        }
    }

    /// Whether a step explains one image (batch 1) rather than a batch.
    fn single_image(self) -> bool {
        matches!(
            self,
            BenchMode::Saliency | BenchMode::Gradcam | BenchMode::Drop
        )
    }
}

/// One side's measurement.
#[derive(Clone, Copy, Debug)]
pub struct Measurement {
    pub images_per_sec: f64,
    pub ms_per_step: f64,
    /// Peak resident memory of the whole process, when the platform reports it.
    pub peak_rss_mib: Option<f64>,
}

/// Peak resident set of this process (Linux `VmHWM`), in MiB.
fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

/// Times `steps` steps of `mode` (after 2 warm-up steps) on random 256×256 inputs.
pub fn fakelens_throughput(
    kind: ModelKind,
    mode: BenchMode,
    batch_size: usize,
    steps: usize,
    device: &Device,
) -> anyhow::Result<Measurement> {
    let model = models::build(kind, device, 0)?;
    let config = TrainConfig {
        model: kind,
        batch_size,
        ..kind.default_train_config()
    };
    // Only training has an optimiser: Adam's moments would inflate the other modes' memory.
    let mut optimizer = match mode {
        BenchMode::Train => Some(Optimizer::new(model.params().vars(), &config)?),
        BenchMode::Eval | BenchMode::Saliency | BenchMode::Gradcam | BenchMode::Drop => None,
    };
    let batch = if mode.single_image() { 1 } else { batch_size };
    let size = crate::config::INPUT_SIZE;
    let images = Tensor::randn(0f32, 1.0, (batch, 3, size, size), device)?;
    let labels: Vec<u32> = (0..batch as u32).map(|i| i % 2).collect();
    let labels = Tensor::new(labels.as_slice(), device)?;
    let mut step = || -> anyhow::Result<()> {
        match mode {
            BenchMode::Train => {
                let logits = model.forward_t(&images, true)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
                if let Some(optimizer) = optimizer.as_mut() {
                    optimizer.backward_step(&loss)?;
                }
            }
            BenchMode::Eval => {
                model.forward_t(&images, false)?;
            }
            BenchMode::Saliency => {
                let input = candle_core::Var::from_tensor(&images)?;
                let fake = model
                    .forward_t(&input, false)?
                    .get(0)?
                    .get(crate::LABEL_FAKE as usize)?;
                let grads = fake.backward()?;
                if let Some(g) = grads.get(&input) {
                    g.abs()?.max(1)?;
                }
            }
            BenchMode::Drop => {}
            BenchMode::Gradcam => {
                crate::explain::cam::class_activation_maps(
                    model.as_ref(),
                    &images,
                    &[crate::LABEL_FAKE],
                    crate::explain::cam::COURSE_LAYER,
                    crate::explain::cam::CamKind::GradCam,
                )?;
            }
        }
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
    let secs = started.elapsed().as_secs_f64();
    Ok(Measurement {
        images_per_sec: (steps * batch) as f64 / secs,
        ms_per_step: 1000.0 * secs / steps as f64,
        peak_rss_mib: peak_rss_mib(),
    })
}

/// Runs the PyTorch reference and returns its measurement, or why it could not run.
fn pytorch_throughput(args: &BenchArgs, device: &Device) -> anyhow::Result<Measurement> {
    let threads = rayon::current_num_threads();
    let output = Command::new(&args.python)
        .arg(&args.reference)
        .args(["--model", args.model.name()])
        .args(["--mode", args.mode.name()])
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
    let number = |key: &str| json.get(key).and_then(|v| v.as_f64());
    Ok(Measurement {
        images_per_sec: number("images_per_sec")
            .context("the reference JSON has no images_per_sec")?,
        ms_per_step: number("ms_per_step").context("the reference JSON has no ms_per_step")?,
        peak_rss_mib: number("peak_rss_mib"),
    })
}

fn print_row(name: &str, mode: BenchMode, m: &Measurement) {
    let rss = m
        .peak_rss_mib
        .map_or_else(String::new, |r| format!(", peak RSS {r:.0} MiB"));
    println!(
        "{name:<9} {:<8} {:>8.2} images/s  ({:.1} ms/step{rss})",
        mode.name(),
        m.images_per_sec,
        m.ms_per_step
    );
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    let batch = if args.mode.single_image() {
        1
    } else {
        args.batch_size
    };
    println!(
        "benchmark: {} {} step, batch {batch}, 256x256, {} steps, {threads} threads",
        args.model.label(),
        args.mode.name(),
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
    if args.mode == BenchMode::Drop {
        let (verdict_ms, heatmap_ms, faces) =
            crate::bench_drop::drop_latency(args.model, args.steps, &device)?;
        println!(
            "fakelens  drop of a 1600x1000 JPEG ({faces} face(s) found): {verdict_ms:.0} ms to \
             the verdict, {heatmap_ms:.0} ms to the saliency map (medians of {} drops)",
            args.steps
        );
        return Ok(());
    }
    let ours = fakelens_throughput(args.model, args.mode, args.batch_size, args.steps, &device)?;
    print_row("fakelens", args.mode, &ours);
    if args.python == "none" {
        return Ok(());
    }
    match pytorch_throughput(args, &device) {
        Ok(reference) => {
            print_row("pytorch", args.mode, &reference);
            println!(
                "ratio (fakelens / pytorch throughput) = {:.3}; step time ratio = {:.3}",
                ours.images_per_sec / reference.images_per_sec,
                ours.ms_per_step / reference.ms_per_step
            );
            if let (Some(a), Some(b)) = (ours.peak_rss_mib, reference.peak_rss_mib) {
                println!("peak memory ratio (fakelens / pytorch) = {:.3}", a / b);
            }
        }
        Err(e) => println!("pytorch reference not measured: {e:#}"),
    }
    Ok(())
}
