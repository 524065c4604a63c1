//! The command line: `fakelens train | eval | explain | predict | calibrate | import-run |
//! demo-data | info | bench`, one file per subcommand; with no command the binary opens the
//! window instead (`main.rs`). Every command drives the same engine functions the GUI's
//! worker calls. Errors print one line with their causes, each once, and exit non-zero.

pub mod calibrate;
pub mod common;
pub mod eval;
pub mod explain;
pub mod predict;
pub mod train;

use std::path::PathBuf;

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::ModelKind;
use crate::data::demo;

#[derive(Parser, Debug)]
#[command(
    name = "fakelens",
    version,
    about = "Face-manipulation detection workbench"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<CliCommand>,
    /// (window) Save a screenshot of the window to this PNG after it has drawn, then quit.
    #[arg(long, global = false)]
    pub screenshot: Option<PathBuf>,
    /// (window) Open on this tab: dataset, training, compare, explain, inspect.
    #[arg(long)]
    pub tab: Option<String>,
    /// (window) Open this dataset folder instead of the last one (or the demo data).
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// (window) Show this finished run's curves in the Training tab.
    #[arg(long)]
    pub run: Option<PathBuf>,
    /// (window) Tick this run in the Compare tab and evaluate it on its own test split
    /// (repeat for several).
    #[arg(long)]
    pub compare: Vec<PathBuf>,
    /// Tick this run in the Explain tab (repeat to see several side by side).
    #[arg(long)]
    pub explain: Vec<PathBuf>,
    /// Tick this run in the Inspect tab (repeat for several detectors).
    #[arg(long)]
    pub detector: Vec<PathBuf>,
    /// Judge this photo or folder in the Inspect tab (repeat).
    #[arg(long)]
    pub inspect: Vec<PathBuf>,
}

#[derive(Subcommand, Debug)]
pub enum CliCommand {
    /// Train a detector and write weights/runs/<run-id>/{model.safetensors, run.json}.
    Train(train::TrainArgs),
    /// Write the built-in synthetic demo dataset.
    DemoData {
        #[arg(long)]
        out: PathBuf,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        #[arg(long, default_value_t = demo::DEFAULT_COUNT)]
        count: usize,
    },
    /// Print each model's parameter count.
    Info,
    /// Measure SimpleNet's training throughput (images/s) and, if a Python with PyTorch is
    /// found, the same step in PyTorch, printed as a ratio.
    Bench(crate::bench::BenchArgs),
    /// Evaluate a trained run on a dataset split and write metrics.json, scores.csv,
    /// roc.csv, det.csv and the ROC, DET and training-curve plots.
    Eval(eval::EvalArgs),
    /// Turn a checkpoint trained elsewhere (.pth, .safetensors) into a run folder that
    /// `eval` and the Compare tab take.
    /// Heatmaps of why one or more runs decide: one image (--image) or a split (--data):
    /// overlays, grids, per-class mean maps (--mean), faithfulness (--metrics), raw .npy.
    Explain(explain::ExplainArgs),
    /// Judge photos (files or folders): the face found and cropped, each run's fake
    /// probability and verdict, one CSV row per file (unreadable files get their reason).
    Predict(predict::PredictArgs),
    /// Fit a run's softmax temperature (and its val threshold) on a val split and record
    /// them in its run.json, for runs trained before temperatures were fitted.
    Calibrate(calibrate::CalibrateArgs),
    ImportRun {
        #[arg(long)]
        checkpoint: PathBuf,
        #[arg(long)]
        model: ModelKind,
        /// Parent folder of the new run (default weights/runs).
        #[arg(long)]
        runs: Option<PathBuf>,
    },
}

/// Runs one subcommand; its error carries every cause, to be printed once.
pub fn run(command: CliCommand) -> anyhow::Result<()> {
    match command {
        CliCommand::Train(args) => train::train(&args),
        CliCommand::DemoData { out, seed, count } => demo::write_demo_dataset(&out, seed, count)
            .map(|()| println!("wrote {count} demo images to {}", out.display()))
            .map_err(Into::into),
        CliCommand::Info => info(),
        CliCommand::Bench(args) => crate::bench::run(&args),
        CliCommand::Eval(args) => eval::eval(&args),
        CliCommand::Explain(args) => explain::explain_command(&args),
        CliCommand::Predict(args) => predict::predict_command(&args),
        CliCommand::Calibrate(args) => calibrate::calibrate_command(&args),
        CliCommand::ImportRun {
            checkpoint,
            model,
            runs,
        } => {
            let runs = runs.unwrap_or_else(crate::runs::layout::default_runs_dir);
            crate::train::imported::import_as_run(&checkpoint, model, &runs)
                .map(|(dir, report)| {
                    println!("{}", report.summary());
                    println!("run directory: {}", dir.display());
                })
                .with_context(|| format!("importing {}", checkpoint.display()))
        }
    }
}

fn info() -> anyhow::Result<()> {
    let device = candle_core::Device::Cpu;
    for kind in ModelKind::ALL {
        let model = crate::models::build(kind, &device, 0)?;
        println!(
            "{:<12} {:>12} parameters",
            kind.label(),
            crate::format::group_thousands(model.param_count())
        );
        if kind == ModelKind::Xception {
            let imagenet = crate::models::Xception::new(
                &crate::models::XceptionSpec::imagenet(),
                &device,
                candle_core::DType::F32,
                0,
            )?;
            println!(
                "{:<12} {:>12} parameters (the ImageNet backbone with its 1000-class fc)",
                "",
                crate::format::group_thousands(crate::models::Detector::param_count(&imagenet))
            );
        }
    }
    Ok(())
}
