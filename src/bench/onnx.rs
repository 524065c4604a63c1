//! The suite's inference rows against ONNX Runtime: for each model, evaluation at the batch
//! size and at one image, FakeLens' frozen inference path (in a child process, so that its
//! peak memory is its own) against the same PyTorch definitions exported to ONNX (opset 17)
//! and run by onnxruntime's CPU provider with every graph optimisation and the same thread
//! count (`benches/reference/onnx_eval.py`). Both sides alternate for a few rounds and keep
//! their faster one, as the machine's speed drifts over minutes.

use super::args::{BenchArgs, BenchMode};
use super::measure::{Measurement, child_measurement, faster, run_reference};
use crate::config::ModelKind;

/// Alternating rounds per row: five. A burst of the machine's other load once took a side's
/// both rounds of a one-image row (a row of a second or less), and with three the best of
/// ONNX Runtime's rounds of LilXception at one image still moved by 10% between two runs.
const ROUNDS: usize = 5;

/// One model-and-batch row.
#[derive(serde::Serialize)]
pub struct OnnxRow {
    pub model: &'static str,
    pub batch: usize,
    pub steps: usize,
    pub fakelens: Measurement,
    pub onnxruntime: Option<Measurement>,
    /// FakeLens ÷ ONNX Runtime throughput (above 1: FakeLens is faster).
    pub speed_ratio: Option<f64>,
    /// FakeLens ÷ ONNX Runtime peak resident memory (below 1: FakeLens needs less). ONNX
    /// Runtime's side includes the PyTorch model it exported, so this favours it.
    pub memory_ratio: Option<f64>,
}

/// Timed steps per row: a second or a few each on 2 cores.
fn steps_for(model: ModelKind, batch: usize) -> usize {
    match (model, batch) {
        (ModelKind::SimpleNet, 1) => 60,
        (ModelKind::SimpleNet, _) => 8,
        (ModelKind::LilXception, 1) => 30,
        (ModelKind::LilXception, _) => 3,
        (ModelKind::Xception, 1) => 8,
        (ModelKind::Xception, _) => 2,
    }
}

/// Every model at the batch size and at one image; rows ONNX Runtime could not run keep
/// FakeLens' figure and say why once.
pub fn onnx_rows(args: &BenchArgs) -> anyhow::Result<Vec<OnnxRow>> {
    let script = args.reference.with_file_name("onnx_eval.py");
    let with_python = args.python != "none";
    println!(
        "{:<26} {:>13} {:>13} {:>7} {:>7}",
        "inference row", "fakelens", "onnxruntime", "speed", "memory"
    );
    let mut rows = Vec::new();
    let mut reference_failed = false;
    for model in ModelKind::ALL {
        for batch in [args.batch_size, 1] {
            let steps = steps_for(model, batch);
            let (mut ours, mut theirs) = (None, None);
            for _ in 0..ROUNDS {
                ours = Some(faster(
                    ours,
                    child_measurement(args, model, BenchMode::Eval, batch, steps)?,
                ));
                if !with_python || reference_failed {
                    continue;
                }
                let script_args = [
                    "--model".to_string(),
                    model.name().to_string(),
                    "--batch-size".into(),
                    batch.to_string(),
                    "--steps".into(),
                    steps.to_string(),
                ];
                match run_reference(&args.python, &script, &script_args) {
                    Ok(json) => theirs = Some(faster(theirs, Measurement::from_json(&json)?)),
                    Err(e) => {
                        println!(
                            "onnxruntime not measured (pip install onnxruntime onnx): {}",
                            crate::report::chain(&e)
                        );
                        reference_failed = true;
                    }
                }
            }
            let Some(fakelens) = ours else {
                anyhow::bail!("no measurement of {} at batch {batch}", model.label())
            };
            let ratio = |a: Option<f64>, b: Option<f64>| Some(a? / b?);
            let row = OnnxRow {
                model: model.label(),
                batch,
                steps,
                speed_ratio: ratio(
                    Some(fakelens.images_per_sec),
                    theirs.map(|t| t.images_per_sec),
                ),
                memory_ratio: ratio(fakelens.peak_rss_mib, theirs.and_then(|t| t.peak_rss_mib)),
                fakelens,
                onnxruntime: theirs,
            };
            print_row(&row);
            rows.push(row);
        }
    }
    Ok(rows)
}

fn print_row(row: &OnnxRow) {
    let speed = |m: &Measurement| {
        if row.batch == 1 {
            format!("{:.1} ms", m.ms_per_step)
        } else {
            format!("{:.2} img/s", m.images_per_sec)
        }
    };
    let show = |v: Option<f64>| v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"));
    let verdict = match row.speed_ratio {
        Some(r) if r >= 1.0 => "≥1.0 met",
        Some(_) => "≥1.0 not met",
        None => "",
    };
    println!(
        "{:<26} {:>13} {:>13} {:>7} {:>7}  {verdict}",
        format!("{} eval b{}", row.model, row.batch),
        speed(&row.fakelens),
        row.onnxruntime.as_ref().map_or_else(|| "-".into(), speed),
        show(row.speed_ratio),
        show(row.memory_ratio),
    );
}
