//! `fakelens bench --suite`: every speed figure in one run, against the PyTorch reference on
//! the same machine, shapes and thread count. First the machine's matrix-multiply peak (a
//! plain 2048² product on each side; the larger is the peak); then for each model, training
//! and eval at the batch size and one image's saliency and Grad-CAM, each FakeLens row in its
//! own child process (so its peak memory is its own); then the data pipeline. Each row is
//! printed as FakeLens ÷ PyTorch throughput (above 1: FakeLens is faster), the peak-memory
//! ratio, and the share of the peak each side reaches, from the reference's count of one
//! step's floating-point operations.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::Context;
use candle_core::{Device, Tensor};

use super::args::{BenchArgs, BenchMode};
use super::data::{DataThroughput, data_throughput};
use super::measure::{
    Measurement, build_profile, child_measurement, faster, open_device, pytorch_throughput,
    reference_device, run_reference, warn_if_debug_build,
};
use super::onnx::{OnnxRow, onnx_rows};
use crate::config::ModelKind;

/// Images through the data pipeline rows.
const DATA_IMAGES: usize = 1000;
/// Alternating rounds of the data rows (each side keeps its faster one: a single round of
/// the JPEG row once read 0.91× in one run and 1.44× in the next).
const DATA_ROUNDS: usize = 3;
/// Side of the square matrices of the peak measurement.
const GEMM_SIZE: usize = 2048;
/// How much faster than the fastest training the loader must be.
const LOADER_MARGIN: f64 = 5.0;

const MODES: [BenchMode; 4] = [
    BenchMode::Train,
    BenchMode::Eval,
    BenchMode::Saliency,
    BenchMode::Gradcam,
];

/// Timed steps per row (after 2 warm-up steps): enough for a stable median on 2 cores
/// without the whole suite taking more than about 15 minutes there.
fn steps_for(model: ModelKind, mode: BenchMode) -> usize {
    let single = mode.single_image();
    match (model, mode) {
        (ModelKind::SimpleNet, _) if single => 20,
        (ModelKind::SimpleNet, BenchMode::Train) => 5,
        (ModelKind::SimpleNet, _) => 10,
        (ModelKind::LilXception, _) if single => 10,
        (ModelKind::LilXception, BenchMode::Train) => 2,
        (ModelKind::LilXception, _) => 5,
        (ModelKind::Xception, _) if single => 5,
        (ModelKind::Xception, BenchMode::Train) => 2,
        (ModelKind::Xception, _) => 3,
    }
}

/// The speed target issue-wise: at least as fast as PyTorch, 0.8 of it for Xception.
fn target(model: ModelKind) -> f64 {
    if model == ModelKind::Xception {
        0.8
    } else {
        1.0
    }
}

/// One model-and-mode row.
#[derive(serde::Serialize)]
struct Row {
    model: &'static str,
    mode: &'static str,
    batch: usize,
    steps: usize,
    fakelens: Measurement,
    pytorch: Option<Measurement>,
    flops_per_step: Option<f64>,
    speed_ratio: Option<f64>,
    memory_ratio: Option<f64>,
    fakelens_peak_share: Option<f64>,
    pytorch_peak_share: Option<f64>,
    target: f64,
}

#[derive(serde::Serialize)]
struct Report {
    build_profile: &'static str,
    threads: usize,
    device: String,
    gemm_gflops_fakelens: f64,
    gemm_gflops_pytorch: Option<f64>,
    peak_gflops: f64,
    rows: Vec<Row>,
    onnx: Vec<OnnxRow>,
    data_root: Option<PathBuf>,
    data_fakelens: Option<DataThroughput>,
    data_pytorch: Option<serde_json::Value>,
}

impl Report {
    /// The inference rows alone (`--onnx-only`).
    fn onnx_only(
        threads: usize,
        device: String,
        (gemm_ours, gemm_reference, peak): (f64, Option<f64>, f64),
        onnx: Vec<OnnxRow>,
    ) -> Report {
        Report {
            build_profile: build_profile(),
            threads,
            device,
            gemm_gflops_fakelens: gemm_ours,
            gemm_gflops_pytorch: gemm_reference,
            peak_gflops: peak,
            rows: Vec::new(),
            onnx,
            data_root: None,
            data_fakelens: None,
            data_pytorch: None,
        }
    }
}

/// The best of a few `GEMM_SIZE`² f32 products through Candle, in GFLOP/s.
fn fakelens_gemm_gflops(device: &Device) -> anyhow::Result<f64> {
    let a = Tensor::randn(0f32, 1.0, (GEMM_SIZE, GEMM_SIZE), device)?;
    let b = Tensor::randn(0f32, 1.0, (GEMM_SIZE, GEMM_SIZE), device)?;
    let mut best = f64::INFINITY;
    for _ in 0..6 {
        let started = Instant::now();
        a.matmul(&b)?;
        device.synchronize()?;
        best = best.min(started.elapsed().as_secs_f64());
    }
    Ok(2.0 * (GEMM_SIZE as f64).powi(3) / best / 1e9)
}

/// Rounds of each one-image row (alternating FakeLens and PyTorch; the faster round counts).
const SINGLE_IMAGE_ROUNDS: usize = 2;

fn ratio(a: Option<f64>, b: Option<f64>) -> Option<f64> {
    Some(a? / b?)
}

/// `value` with `decimals`, or "-".
fn show(value: Option<f64>, decimals: usize) -> String {
    value.map_or_else(|| "-".into(), |v| format!("{v:.decimals$}"))
}

/// Throughput for a batch row, latency for a single-image one.
fn speed(m: &Measurement, single: bool) -> String {
    if single {
        format!("{:.1} ms", m.ms_per_step)
    } else {
        format!("{:.2} img/s", m.images_per_sec)
    }
}

fn peak_share(flops: Option<f64>, m: Option<&Measurement>, peak_gflops: f64) -> Option<f64> {
    Some(flops? / (m?.ms_per_step / 1000.0) / (peak_gflops * 1e9))
}

pub fn run_suite(args: &BenchArgs) -> anyhow::Result<()> {
    let threads = rayon::current_num_threads();
    let device = open_device(args)?;
    let with_python = args.python != "none";
    let device_name = crate::device::describe(&device);
    println!(
        "benchmark suite: {device_name}, {threads} threads, 256x256 inputs, {} build",
        build_profile()
    );
    warn_if_debug_build();
    let gemm_ours = fakelens_gemm_gflops(&device)?;
    let gemm_args = ["--mode", "gemm", "--steps", "6", "--device"].map(String::from);
    let device_arg = reference_device(&device).to_string();
    let gemm_reference = if with_python {
        let script_args: Vec<String> = gemm_args.into_iter().chain([device_arg]).collect();
        match run_reference(&args.python, &args.reference, &script_args) {
            Ok(json) => json.get("gflops").and_then(|v| v.as_f64()),
            Err(e) => {
                println!("pytorch gemm not measured: {}", crate::report::chain(&e));
                None
            }
        }
    } else {
        None
    };
    let peak = gemm_reference.map_or(gemm_ours, |r| r.max(gemm_ours));
    println!(
        "matrix-multiply peak ({GEMM_SIZE}² f32): fakelens {gemm_ours:.1} GFLOP/s, pytorch {} \
         GFLOP/s; peak = {peak:.1}",
        show(gemm_reference, 1)
    );
    if !args.onnx_only {
        println!(
            "{:<26} {:>13} {:>13} {:>7} {:>7} {:>9} {:>9}  target",
            "row", "fakelens", "pytorch", "speed", "memory", "fl %peak", "pt %peak"
        );
    }
    let mut rows = Vec::new();
    let models: &[ModelKind] = if args.onnx_only { &[] } else { &ModelKind::ALL };
    for &model in models {
        for mode in MODES {
            let steps = steps_for(model, mode);
            let batch = mode.batch(args.batch_size);
            // A one-image row lasts seconds, while the machine's speed drifts over minutes:
            // both sides run in alternation and each keeps its faster round, so that one
            // side is not measured in a slow spell and the other in a fast one.
            let rounds = if mode.single_image() {
                SINGLE_IMAGE_ROUNDS
            } else {
                1
            };
            let (mut fakelens, mut pytorch, mut flops) = (None, None, None);
            for _ in 0..rounds {
                fakelens = Some(faster(
                    fakelens,
                    child_measurement(args, model, mode, args.batch_size, steps)?,
                ));
                if !with_python {
                    continue;
                }
                match pytorch_throughput(args, model, mode, steps, &device, true) {
                    Ok((m, counted)) => {
                        pytorch = Some(faster(pytorch, m));
                        flops = flops.or(counted);
                    }
                    Err(e) => {
                        println!(
                            "pytorch {} {} not measured: {}",
                            model.label(),
                            mode.name(),
                            crate::report::chain(&e)
                        );
                        break;
                    }
                }
            }
            let Some(fakelens) = fakelens else {
                anyhow::bail!("no measurement of {} {}", model.label(), mode.name())
            };
            let row = Row {
                model: model.label(),
                mode: mode.name(),
                batch,
                steps,
                speed_ratio: ratio(
                    Some(fakelens.images_per_sec),
                    pytorch.map(|p| p.images_per_sec),
                ),
                memory_ratio: ratio(fakelens.peak_rss_mib, pytorch.and_then(|p| p.peak_rss_mib)),
                fakelens_peak_share: peak_share(flops, Some(&fakelens), peak),
                pytorch_peak_share: peak_share(flops, pytorch.as_ref(), peak),
                fakelens,
                pytorch,
                flops_per_step: flops,
                target: target(model),
            };
            print_row(&row, mode.single_image());
            rows.push(row);
        }
    }
    let onnx = onnx_rows(args)?;
    if args.onnx_only {
        let gemm = (gemm_ours, gemm_reference, peak);
        return write_report(args, &Report::onnx_only(threads, device_name, gemm, onnx));
    }
    let data_root = if args.data.join("train").is_dir() {
        args.data.clone()
    } else {
        println!(
            "{} is absent: the data rows use the demo data",
            args.data.display()
        );
        crate::data::demo::ensure_demo_data()?
    };
    let (data_fakelens, data_pytorch) = data_rows(args, &data_root, with_python)?;
    print_data(&data_fakelens, data_pytorch.as_ref(), &rows);
    if args.out.is_some() {
        let report = Report {
            build_profile: build_profile(),
            threads,
            device: device_name,
            gemm_gflops_fakelens: gemm_ours,
            gemm_gflops_pytorch: gemm_reference,
            peak_gflops: peak,
            rows,
            onnx,
            data_root: Some(data_root),
            data_fakelens: Some(data_fakelens),
            data_pytorch,
        };
        return write_report(args, &report);
    }
    Ok(())
}

/// Writes `report` to `--out` as JSON, if given.
fn write_report(args: &BenchArgs, report: &Report) -> anyhow::Result<()> {
    if let Some(out) = &args.out {
        crate::fsutil::write_atomic(out, serde_json::to_string_pretty(report)?.as_bytes())
            .with_context(|| format!("writing {}", out.display()))?;
        println!("wrote {}", out.display());
    }
    Ok(())
}

fn print_row(row: &Row, single: bool) {
    let met = match row.speed_ratio {
        Some(r) if r >= row.target => format!("≥{:.1} met", row.target),
        Some(_) => format!("≥{:.1} NOT met", row.target),
        None => String::new(),
    };
    let name = if single {
        format!("{} {}", row.model, row.mode)
    } else {
        format!("{} {} b{}", row.model, row.mode, row.batch)
    };
    println!(
        "{name:<26} {:>13} {:>13} {:>7} {:>7} {:>9} {:>9}  {met}",
        speed(&row.fakelens, single),
        row.pytorch
            .map_or_else(|| "-".into(), |p| speed(&p, single)),
        show(row.speed_ratio, 3),
        show(row.memory_ratio, 3),
        show(row.fakelens_peak_share.map(|s| 100.0 * s), 1),
        show(row.pytorch_peak_share.map(|s| 100.0 * s), 1),
    );
}

fn print_data(ours: &DataThroughput, reference: Option<&serde_json::Value>, rows: &[Row]) {
    let number = |key: &str| reference.and_then(|r| r.get(key)).and_then(|v| v.as_f64());
    for (name, mine, key) in [
        (
            "data from JPEG",
            ours.jpeg_images_per_sec,
            "jpeg_images_per_sec",
        ),
        (
            "data from cache",
            ours.cache_images_per_sec,
            "cache_images_per_sec",
        ),
    ] {
        let theirs = number(key);
        println!(
            "{name:<26} {:>13} {:>13} {:>7}",
            format!("{mine:.0} img/s"),
            theirs.map_or_else(|| "-".into(), |t| format!("{t:.0} img/s")),
            show(ratio(Some(mine), theirs), 3),
        );
    }
    let fastest = rows
        .iter()
        .filter(|r| r.mode == BenchMode::Train.name())
        .map(|r| r.fakelens.images_per_sec)
        .fold(0.0, f64::max);
    let margin = ours.cache_images_per_sec / fastest.max(f64::MIN_POSITIVE);
    println!(
        "loader from cache: {margin:.1}x the fastest training ({fastest:.1} img/s); \
         target ≥{LOADER_MARGIN:.0}x {}",
        if margin >= LOADER_MARGIN {
            "met"
        } else {
            "NOT met"
        }
    );
}

/// The data rows: FakeLens' pipeline and PyTorch's (`data_pipeline.py`, where Python is
/// used) alternating for `DATA_ROUNDS` rounds, each keeping its faster images per second on
/// each path.
fn data_rows(
    args: &BenchArgs,
    data_root: &std::path::Path,
    with_python: bool,
) -> anyhow::Result<(DataThroughput, Option<serde_json::Value>)> {
    let script = args.reference.with_file_name("data_pipeline.py");
    let script_args = [
        "--root".to_string(),
        data_root.join("train").display().to_string(),
        "--count".into(),
        DATA_IMAGES.to_string(),
        "--batch-size".into(),
        args.batch_size.to_string(),
    ];
    let (mut ours, mut theirs): (Option<DataThroughput>, Option<serde_json::Value>) = (None, None);
    let mut reference_failed = !with_python;
    for _ in 0..DATA_ROUNDS {
        let round = data_throughput(data_root, DATA_IMAGES, args.batch_size)?;
        ours = Some(match ours {
            Some(best) => best.faster(round),
            None => round,
        });
        if reference_failed {
            continue;
        }
        match run_reference(&args.python, &script, &script_args) {
            Ok(json) => theirs = Some(faster_data(theirs, json)),
            Err(e) => {
                println!(
                    "pytorch data pipeline not measured: {}",
                    crate::report::chain(&e)
                );
                reference_failed = true;
            }
        }
    }
    let ours = ours.context("the data rows ran no round")?;
    Ok((ours, theirs))
}

/// `round`, with each path's images per second the larger of its own and `best`'s.
fn faster_data(best: Option<serde_json::Value>, mut round: serde_json::Value) -> serde_json::Value {
    if let Some(best) = best {
        for key in ["jpeg_images_per_sec", "cache_images_per_sec"] {
            let faster = match (best[key].as_f64(), round[key].as_f64()) {
                (Some(a), Some(b)) => a.max(b),
                (Some(a), None) => a,
                _ => continue,
            };
            round[key] = serde_json::json!(faster);
        }
    }
    round
}

#[cfg(test)]
mod tests {
    use super::*;

    fn measured(images_per_sec: f64, peak_rss_mib: Option<f64>) -> Measurement {
        Measurement {
            images_per_sec,
            ms_per_step: 1000.0 / images_per_sec,
            peak_rss_mib,
        }
    }

    /// A side's faster round counts for speed, its larger peak for memory, whichever order
    /// the rounds came in.
    #[test]
    fn the_faster_round_counts_with_the_larger_peak() {
        let (slow, fast) = (measured(2.0, Some(500.0)), measured(3.0, Some(400.0)));
        for (first, second) in [(slow, fast), (fast, slow)] {
            let kept = faster(Some(first), second);
            assert_eq!(kept.images_per_sec, 3.0);
            assert_eq!(kept.ms_per_step, fast.ms_per_step);
            assert_eq!(kept.peak_rss_mib, Some(500.0));
        }
        assert_eq!(faster(None, slow).images_per_sec, 2.0);
        assert_eq!(
            faster(Some(measured(1.0, None)), slow).peak_rss_mib,
            Some(500.0)
        );
    }
}
