//! `fakelens eval`: a run scored on a dataset split, its metrics printed and exported.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use super::common::{resolve_data, watch_interrupt};
use crate::device::DeviceChoice;

#[derive(clap::Args, Debug)]
pub struct EvalArgs {
    /// The run folder (with model.safetensors and run.json).
    #[arg(long)]
    pub run: PathBuf,
    /// Dataset folder (any dataset: its own or another), or `demo`.
    #[arg(long)]
    pub data: String,
    /// train, val or test.
    #[arg(long, default_value = "test")]
    pub split: crate::data::Split,
    /// Where the files go (created if needed).
    #[arg(long)]
    pub out: PathBuf,
    /// Decision threshold: `eer` or `apcer=FRACTION` (chosen on the dataset's val split
    /// when evaluating another split), `half` (the argmax), or a number.
    #[arg(long, default_value = "eer")]
    pub threshold: crate::eval::confusion::ThresholdRule,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

pub fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    if args.batch_size == 0 {
        anyhow::bail!("batch size must be at least 1, got 0");
    }
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let request = crate::eval::run_eval::EvalRequest {
        run_dir: args.run.clone(),
        data: resolve_data(&args.data)?,
        split: args.split,
        threshold: args.threshold,
        batch_size: args.batch_size,
    };
    let cancel = Arc::new(AtomicBool::new(false));
    watch_interrupt(&cancel);
    let bar = indicatif::ProgressBar::new(0);
    let mut progress = |stage: &str, done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(stage.to_string());
    };
    let outcome = crate::eval::run_eval::evaluate_run(&request, &device, &cancel, &mut progress)
        .with_context(|| {
            format!(
                "evaluating {} on the {} split of {}",
                args.run.display(),
                args.split.name(),
                request.data.display()
            )
        })?;
    bar.finish_and_clear();
    for bad in &outcome.report.unreadable {
        println!("skipped {}: {}", bad.path.display(), bad.reason);
    }
    let r = &outcome.report;
    let s = &r.summary;
    println!(
        "{} on {} ({}, {} images): AUC {:.4}  EER {:.2} %  AP {:.4}  BPCER20 {:.2} %",
        r.model,
        request.data.display(),
        r.split,
        s.images,
        s.auc,
        s.eer * 100.0,
        s.ap,
        s.bpcer20 * 100.0
    );
    println!(
        "accuracy {:.2} % at threshold {:.4} ({} on {}); {:.2} % at 0.5; {:.1} ms per image",
        s.accuracy * 100.0,
        s.threshold,
        r.threshold_rule,
        r.threshold_split,
        r.accuracy_at_half * 100.0,
        r.ms_per_image
    );
    if let Some(c) = &r.calibration {
        let after = match &c.calibrated {
            Some(cal) => format!(
                "; at the run's temperature {:.3}: ECE {:.4}, Brier {:.4}",
                cal.temperature, cal.ece, cal.brier
            ),
            None => "; the run has no temperature (fakelens calibrate fits one)".to_string(),
        };
        println!(
            "calibration: model's own ECE {:.4}, Brier {:.4}{after}",
            c.raw.ece, c.raw.brier
        );
    }
    let written = crate::eval::export::write_eval(&args.out, &outcome)?;
    for path in written {
        println!("wrote {}", path.display());
    }
    Ok(())
}
