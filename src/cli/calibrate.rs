//! `fakelens calibrate --run DIR [--data D]`: fits the run's softmax temperature and the
//! val EER threshold of its calibrated probability on a val split (its own dataset by
//! default) and records both in its `run.json` — for runs trained before temperatures were
//! fitted, and for imported checkpoints.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::device::DeviceChoice;

#[derive(clap::Args, Debug)]
pub struct CalibrateArgs {
    /// The run folder (with model.safetensors and run.json).
    #[arg(long)]
    pub run: PathBuf,
    /// A dataset whose val split to fit on (default: the run's own).
    #[arg(long)]
    pub data: Option<String>,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

pub fn calibrate_command(args: &CalibrateArgs) -> anyhow::Result<()> {
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let data = args
        .data
        .as_deref()
        .map(super::common::resolve_data)
        .transpose()?;
    let cancel = Arc::new(AtomicBool::new(false));
    super::common::watch_interrupt(&cancel);
    let record = crate::eval::calibrate_run::calibrate_run(
        &args.run,
        data.as_deref(),
        &device,
        &cancel,
        &|_, _| {},
    )
    .with_context(|| format!("calibrating run {}", args.run.display()))?;
    println!(
        "{}: temperature {:.4}; val EER threshold of the calibrated probability {}; written \
         to {}",
        args.run.display(),
        record.temperature.unwrap_or(1.0),
        record
            .val_threshold
            .map_or("not defined".to_string(), |t| format!("{t:.4}")),
        args.run.join(crate::runs::layout::RUN_FILE).display()
    );
    Ok(())
}
