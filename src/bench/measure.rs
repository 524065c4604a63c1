//! One measurement of each side: FakeLens timed in this process, the PyTorch reference
//! script run as a child on the same machine, shapes and thread count; the device both run
//! on and the build profile the figures come from.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};

use super::args::{BenchArgs, BenchMode};
use crate::config::{ModelKind, TrainConfig};
use crate::models;
use crate::train::Optimizer;

/// The reference script's `--device` for where FakeLens runs.
pub(crate) fn reference_device(device: &Device) -> &'static str {
    if device.is_cuda() { "cuda" } else { "cpu" }
}

/// One side's measurement.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct Measurement {
    pub images_per_sec: f64,
    pub ms_per_step: f64,
    /// Peak resident memory of the whole process, when the platform reports it.
    pub peak_rss_mib: Option<f64>,
}

impl Measurement {
    /// From the JSON object a benchmark process printed.
    pub fn from_json(json: &serde_json::Value) -> anyhow::Result<Measurement> {
        let number = |key: &str| json.get(key).and_then(|v| v.as_f64());
        Ok(Measurement {
            images_per_sec: number("images_per_sec").context("no images_per_sec")?,
            ms_per_step: number("ms_per_step").context("no ms_per_step")?,
            peak_rss_mib: number("peak_rss_mib"),
        })
    }
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
    unfolded: bool,
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
    // Evaluation runs the frozen inference path where it exists, as `eval` and verdicts do.
    let frozen = match mode {
        BenchMode::Eval if !unfolded => model.freeze()?,
        _ => None,
    };
    let batch = mode.batch(batch_size);
    let size = crate::data::profile::INPUT_SIZE;
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
            BenchMode::Eval => match &frozen {
                Some(frozen) => {
                    frozen.logits(&images)?;
                }
                None => {
                    model.forward_t(&images, false)?;
                }
            },
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

/// Runs the reference script `script` with `script_args` (and the thread count) and returns
/// the JSON object it printed.
pub(crate) fn run_reference(
    python: &str,
    script: &Path,
    script_args: &[String],
) -> anyhow::Result<serde_json::Value> {
    let threads = rayon::current_num_threads();
    let output = Command::new(python)
        .arg(script)
        .args(script_args)
        .args(["--threads", &threads.to_string()])
        .output()
        .with_context(|| format!("running {python} {}", script.display()))?;
    if !output.status.success() {
        anyhow::bail!(
            "{} failed: {}",
            script.display(),
            String::from_utf8_lossy(&output.stderr)
                .lines()
                .last()
                .unwrap_or("")
        );
    }
    serde_json::from_slice(&output.stdout)
        .with_context(|| format!("{} did not print JSON", script.display()))
}

/// The reference's measurement of `mode` on `model`, and the floating-point operations of
/// one of its steps when `count_flops`.
pub(crate) fn pytorch_throughput(
    args: &BenchArgs,
    model: ModelKind,
    mode: BenchMode,
    steps: usize,
    device: &Device,
    count_flops: bool,
) -> anyhow::Result<(Measurement, Option<f64>)> {
    let mut script_args: Vec<String> = [
        "--model",
        model.name(),
        "--mode",
        mode.name(),
        "--device",
        reference_device(device),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    script_args.extend(["--batch-size".into(), args.batch_size.to_string()]);
    script_args.extend(["--steps".into(), steps.to_string()]);
    if count_flops {
        script_args.push("--flops".into());
    }
    let json = run_reference(&args.python, &args.reference, &script_args)?;
    Ok((
        Measurement::from_json(&json).context("reading the reference's JSON")?,
        json.get("flops_per_step").and_then(|v| v.as_f64()),
    ))
}

/// The device both sides run on, after printing any fallback notice; Metal is refused, as
/// the reference has no Metal twin here.
pub(crate) fn open_device(args: &BenchArgs) -> anyhow::Result<Device> {
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        println!("{notice}");
    }
    if device.is_metal() {
        anyhow::bail!(
            "the PyTorch reference runs on the CPU or CUDA only; bench with --device cpu"
        );
    }
    Ok(device)
}

/// The profile this binary was built with: `release`, or `debug` (debug assertions on,
/// which check every pointer offset in the kernels' inner loops).
pub fn build_profile() -> &'static str {
    if cfg!(debug_assertions) {
        "debug"
    } else {
        "release"
    }
}

/// Says so when the numbers will not be representative of the app.
pub fn warn_if_debug_build() {
    if cfg!(debug_assertions) {
        println!(
            "warning: this is a debug build (debug assertions on); its kernels run up to 3x \
             slower than the app's. Benchmark with `cargo run --release -- bench ...`"
        );
    }
}

/// The faster of two measurements of one side, with the larger of their peak memories.
pub(crate) fn faster(kept: Option<Measurement>, new: Measurement) -> Measurement {
    let Some(kept) = kept else { return new };
    let peak_rss_mib = match (kept.peak_rss_mib, new.peak_rss_mib) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let best = if new.images_per_sec > kept.images_per_sec {
        new
    } else {
        kept
    };
    Measurement {
        peak_rss_mib,
        ..best
    }
}

/// One FakeLens row, measured by this program in a child process.
pub(crate) fn child_measurement(
    args: &BenchArgs,
    model: ModelKind,
    mode: BenchMode,
    batch_size: usize,
    steps: usize,
) -> anyhow::Result<Measurement> {
    let exe = std::env::current_exe().context("finding this program")?;
    let output = Command::new(&exe)
        .args(["bench", "--model", model.name(), "--mode", mode.name()])
        .args(["--batch-size", &batch_size.to_string()])
        .args(["--steps", &steps.to_string()])
        .args(["--device", &format!("{:?}", args.device).to_lowercase()])
        .args(["--python", "none", "--json"])
        .output()
        .with_context(|| format!("running {}", exe.display()))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        anyhow::bail!(
            "the {} {} row failed: {}",
            model.label(),
            mode.name(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let last = stdout.lines().last().unwrap_or("");
    Measurement::from_json(&serde_json::from_str(last).context("reading the row's JSON")?)
}
