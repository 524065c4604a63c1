//! The compute thread's evaluation jobs: evaluate a run on a dataset split (answered from
//! the run's evaluation cache when neither the checkpoint nor the split changed), write an
//! evaluation's files, and import a checkpoint trained elsewhere as a run.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::{Event, EventSink, Task};
use crate::eval::run_eval::{EvalOutcome, EvalRequest, evaluate_run};
use crate::eval::{cache, export};

pub(super) fn evaluate(
    request: &EvalRequest,
    device: crate::device::DeviceChoice,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    if let Some(outcome) = cache::load(request) {
        sink.send(Event::Evaluated(Box::new(outcome)));
        return Ok(());
    }
    let (device, notice) = crate::device::open(device)?;
    if let Some(notice) = notice {
        sink.send(Event::Notice(notice));
    }
    let mut progress = |stage: &str, done: usize, total: usize| {
        sink.send_lossy(Event::Progress {
            task: Task::Evaluation,
            stage: format!("{} — {stage}", run_name(&request.run_dir)),
            done,
            total,
        });
    };
    let outcome = evaluate_run(request, &device, cancel, &mut progress).map_err(|e| {
        anyhow::anyhow!(
            "evaluating {} on {}: {e}",
            request.run_dir.display(),
            request.data.display()
        )
    })?;
    if let Err(e) = cache::store(request, &outcome) {
        sink.send(Event::Notice(format!(
            "the evaluation of {} is not cached: {e}",
            request.run_dir.display()
        )));
    }
    sink.send(Event::Evaluated(Box::new(outcome)));
    Ok(())
}

pub(super) fn export_evaluation(
    outcome: &EvalOutcome,
    out_dir: &Path,
    sink: &EventSink,
) -> anyhow::Result<()> {
    let written = export::write_eval(out_dir, outcome)?;
    sink.send(Event::Notice(format!(
        "exported {} files to {}",
        written.len(),
        out_dir.display()
    )));
    Ok(())
}

pub(super) fn import_run(
    file: &Path,
    model: crate::config::ModelKind,
    runs_dir: &Path,
    sink: &EventSink,
) -> anyhow::Result<()> {
    let (run_dir, report) = crate::train::imported::import_as_run(file, model, runs_dir)?;
    sink.send(Event::Notice(format!(
        "{} → {}",
        report.summary(),
        run_dir.display()
    )));
    sink.send(Event::RunImported { run_dir });
    Ok(())
}

fn run_name(run_dir: &Path) -> String {
    run_dir
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| run_dir.display().to_string())
}
