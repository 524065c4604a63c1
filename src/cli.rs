//! The command line: `fakelens train | eval | explain | predict | import-run | demo-data | info | bench`, or no command for the
//! window. Every command drives the same engine functions the GUI's worker calls. Errors
//! print one line with their cause and exit non-zero.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;
use clap::{Parser, Subcommand};

use crate::config::{ModelKind, OptimizerKind, Preset, TrainConfig};
use crate::data::degrade::{Degradation, PhotoAugment};
use crate::data::demo;
use crate::data::profile::Framing;
use crate::device::DeviceChoice;
use crate::train::history::RunStatus;
use crate::train::{TrainData, TrainEvent};

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
    Train(TrainArgs),
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
    Eval(EvalArgs),
    /// Turn a checkpoint trained elsewhere (.pth, .safetensors) into a run folder that
    /// `eval` and the Compare tab take.
    /// Heatmaps of why one or more runs decide: one image (--image) or a split (--data):
    /// overlays, grids, per-class mean maps (--mean), faithfulness (--metrics), raw .npy.
    Explain(crate::cli_explain::ExplainArgs),
    /// Judge photos (files or folders): the face found and cropped, each run's fake
    /// probability and verdict, one CSV row per file (unreadable files get their reason).
    Predict(crate::cli_predict::PredictArgs),
    /// Fit a run's softmax temperature (and its val threshold) on a val split and record
    /// them in its run.json, for runs trained before temperatures were fitted.
    Calibrate(crate::cli_calibrate::CalibrateArgs),
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

#[derive(clap::Args, Debug)]
pub struct TrainArgs {
    #[arg(long, default_value = "simplenet")]
    pub model: ModelKind,
    /// Dataset folder, or `demo` for the built-in demo data.
    #[arg(long, default_value = "demo")]
    pub data: String,
    /// Start from a named recipe (default, course); flags below override it.
    #[arg(long, default_value = "default")]
    pub preset: Preset,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    #[arg(long)]
    pub lr: Option<f64>,
    #[arg(long)]
    pub optimizer: Option<OptimizerKind>,
    #[arg(long)]
    pub momentum: Option<f64>,
    #[arg(long)]
    pub seed: Option<u64>,
    /// Turn off the random crop + flip augmentation.
    #[arg(long)]
    pub no_augment: bool,
    /// What the model sees: the largest face, cropped (face), or the whole image (whole).
    #[arg(long, value_enum)]
    pub input: Option<InputChoice>,
    /// With --input face: the crop's side as a multiple of the face box (default 1.3).
    #[arg(long, value_name = "S")]
    pub face_scale: Option<f32>,
    /// Add photo degradations to the augmentation, as faces in real photos come: random
    /// rescale, JPEG re-compression and blur; all three when given alone, or only those
    /// listed (`--photo-augment jpeg,blur`). Off by default: see the README's measurement.
    #[arg(long, value_enum, value_delimiter = ',', num_args = 0.., value_name = "KINDS")]
    pub photo_augment: Option<Vec<Degradation>>,
    /// Import this pretrained checkpoint (.pth, .pth.tar, .safetensors) into the backbone.
    #[arg(long)]
    pub pretrained: Option<PathBuf>,
    /// Train only the fully connected head.
    #[arg(long)]
    pub freeze_backbone: bool,
    /// Run directory (default weights/runs/<run-id>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Replace the run --out already holds (otherwise it is refused).
    #[arg(long)]
    pub force: bool,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
    /// Continue an interrupted or cancelled run from its last saved state (kept every 10
    /// minutes, after each epoch and on cancel), with its own settings and dataset.
    #[arg(long, value_name = "RUN_DIR", conflicts_with_all = [
        "model", "data", "preset", "epochs", "batch_size", "lr", "optimizer", "momentum",
        "seed", "no_augment", "pretrained", "freeze_backbone", "out", "input", "face_scale",
        "photo_augment", "force",
    ])]
    pub resume: Option<PathBuf>,
}

impl TrainArgs {
    pub fn config(&self) -> TrainConfig {
        let base = self.preset.config(self.model);
        TrainConfig {
            model: self.model,
            optimizer: self.optimizer.unwrap_or(base.optimizer),
            lr: self.lr.unwrap_or(base.lr),
            momentum: self.momentum.unwrap_or(base.momentum),
            batch_size: self.batch_size.unwrap_or(base.batch_size),
            epochs: self.epochs.unwrap_or(base.epochs),
            seed: self.seed.unwrap_or(base.seed),
            augment: base.augment && !self.no_augment,
            pretrained: self.pretrained.clone(),
            freeze_backbone: self.freeze_backbone,
            input: match (self.input, self.face_scale, &base.input) {
                (Some(InputChoice::Whole), ..) => Framing::Whole,
                (Some(InputChoice::Face), scale, _) => {
                    Framing::face(scale.unwrap_or(crate::data::face::CROP_MARGIN))
                }
                (None, Some(scale), _) => Framing::face(scale),
                (None, None, base) => base.clone(),
            },
            photo_augment: match self.photo_augment.as_deref() {
                Some([]) => Some(PhotoAugment::DEFAULT),
                Some(kinds) => Some(PhotoAugment::only(kinds)),
                None => base.photo_augment,
            },
        }
    }
}

/// `train --input`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum InputChoice {
    /// The largest face, cropped as a square around it (the whole image if none is found).
    Face,
    /// The whole image.
    Whole,
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => crate::ui::run_window(crate::ui::WindowOptions {
            screenshot: cli.screenshot,
            tab: cli.tab,
            data: cli.data,
            run: cli.run,
            compare: cli.compare,
            explain: cli.explain,
            detector: cli.detector,
            inspect: cli.inspect,
        }),
        Some(CliCommand::Train(args)) => train(&args),
        Some(CliCommand::DemoData { out, seed, count }) => {
            demo::write_demo_dataset(&out, seed, count)
                .map(|()| println!("wrote {count} demo images to {}", out.display()))
                .map_err(Into::into)
        }
        Some(CliCommand::Info) => info(),
        Some(CliCommand::Bench(args)) => crate::bench::run(&args),
        Some(CliCommand::Eval(args)) => eval(&args),
        Some(CliCommand::Explain(args)) => crate::cli_explain::explain_command(&args),
        Some(CliCommand::Predict(args)) => crate::cli_predict::predict_command(&args),
        Some(CliCommand::Calibrate(args)) => crate::cli_calibrate::calibrate_command(&args),
        Some(CliCommand::ImportRun {
            checkpoint,
            model,
            runs,
        }) => {
            let runs = runs.unwrap_or_else(crate::train::history::default_runs_dir);
            crate::train::imported::import_as_run(&checkpoint, model, &runs)
                .map(|(dir, report)| {
                    println!("{}", report.summary());
                    println!("run directory: {}", dir.display());
                })
                .with_context(|| format!("importing {}", checkpoint.display()))
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", crate::report::chain(&e));
            ExitCode::FAILURE
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
            group_thousands(model.param_count())
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
                group_thousands(crate::models::Detector::param_count(&imagenet))
            );
        }
    }
    Ok(())
}

/// `16901762` → `16,901,762`.
pub fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

pub(crate) fn resolve_data(data: &str) -> anyhow::Result<PathBuf> {
    if data == "demo" {
        demo::ensure_demo_data().context("creating the built-in demo dataset")
    } else {
        // Absolute, so that run.json names the dataset wherever `--resume` runs from.
        let path = PathBuf::from(data);
        Ok(std::fs::canonicalize(&path).unwrap_or(path))
    }
}

fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.config();
    let resumed = match &args.resume {
        Some(dir) => Some(
            crate::train::RunRecord::load(dir)
                .with_context(|| format!("resuming run {}", dir.display()))?,
        ),
        None => None,
    };
    let root = match &resumed {
        Some(record) => record.dataset.clone(),
        None => {
            config.validate().map_err(anyhow::Error::msg)?;
            resolve_data(&args.data)?
        }
    };
    let run_dir = match (&args.resume, &args.out) {
        (Some(dir), _) | (None, Some(dir)) => dir.clone(),
        (None, None) => {
            crate::train::new_run_dir(&crate::train::history::default_runs_dir(), config.model)
        }
    };
    let existing = crate::train::run_folder::ExistingRun::replaced_if(args.force);
    crate::train::run_folder::check_before_data(&run_dir, resumed.as_ref(), existing)?;
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let cancel = Arc::new(AtomicBool::new(false));
    watch_interrupt(&cancel);
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg:>12} [{bar:30}] {pos}/{len} {elapsed_precise} ETA {eta}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let progress = |stage: &str, done: usize, total: usize| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
        bar.set_message(stage.to_string());
    };
    let framing = match &resumed {
        Some(record) => record.config.input.clone(),
        None => config.input.clone(),
    };
    let data = TrainData::prepare(&root, &framing, &cancel, &progress)
        .with_context(|| format!("loading dataset {}", root.display()))?;
    let no_face = data.no_face().len();
    if framing.is_face() && no_face > 0 {
        say(
            &bar,
            format!(
                "no face found in {no_face} of {} images: those are used whole (listed in \
                 run.json)",
                data.image_count()
            ),
        );
    }
    for bad in data.unreadable() {
        say(
            &bar,
            format!("skipped {}: {}", bad.path.display(), bad.reason),
        );
    }
    // Without a terminal (a log file, a script) the bar is hidden: print progress every
    // minute instead.
    let last_line = std::cell::Cell::new(std::time::Instant::now());
    print_table_header(&bar);
    let mut on_event = |event: TrainEvent| match event {
        TrainEvent::Started { run_dir, record } => say(
            &bar,
            format!(
                "training {} ({} parameters) on {} images; run {}",
                record.model.label(),
                group_thousands(record.param_count),
                record.train_images,
                run_dir.display()
            ),
        ),
        TrainEvent::Batch(p) => {
            bar.set_length(p.batches as u64);
            bar.set_position(p.batch as u64);
            bar.set_message(format!("epoch {}/{}", p.epoch, p.epochs));
            if bar.is_hidden() && last_line.get().elapsed().as_secs() >= 60 {
                last_line.set(std::time::Instant::now());
                println!(
                    "epoch {}/{} batch {}/{}  loss {:.4}  {:.1} images/s  ETA {:.0} min",
                    p.epoch,
                    p.epochs,
                    p.batch,
                    p.batches,
                    p.loss,
                    p.images_per_sec,
                    p.eta_secs / 60.0
                );
            }
        }
        TrainEvent::Evaluating(p) => {
            bar.set_length(p.images_total as u64);
            bar.set_position(p.images_done as u64);
            bar.set_message(format!(
                "epoch {} · evaluating on {}",
                p.epoch,
                p.split.name()
            ));
        }
        TrainEvent::Epoch(r) => say(&bar, epoch_row(&r)),
        TrainEvent::Collapsed { message, .. } => say(&bar, format!("warning: {message}")),
        TrainEvent::CheckpointSaved { .. } => {}
    };
    let record = match resumed {
        Some(_) => crate::train::resume(&data, &run_dir, &device, &cancel, &mut on_event),
        None if args.force => {
            crate::train::train_replacing(&config, &data, &run_dir, &device, &cancel, &mut on_event)
        }
        None => crate::train::train(&config, &data, &run_dir, &device, &cancel, &mut on_event),
    }
    .with_context(|| format!("training run {}", run_dir.display()))?;
    bar.finish_and_clear();
    if record.status == RunStatus::Cancelled {
        println!(
            "stopped; the run's state is saved. Continue it with: fakelens train --resume {}",
            run_dir.display()
        );
        std::process::exit(130);
    }
    if let (Some(epoch), Some(test)) = (record.best_epoch, record.test_acc_at_best) {
        println!(
            "best val epoch {epoch}: test accuracy {:.2} %",
            test * 100.0
        );
    }
    println!("run directory: {}", run_dir.display());
    Ok(())
}

fn eval(args: &EvalArgs) -> anyhow::Result<()> {
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let request = crate::eval::run_eval::EvalRequest {
        run_dir: args.run.clone(),
        data: resolve_data(&args.data)?,
        split: args.split,
        threshold: args.threshold,
        batch_size: args.batch_size.max(1),
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

/// Ctrl-C (or SIGTERM) stops training the way the app's Stop button does: after the current
/// batch, with the resumable state saved. A second one exits at once.
pub(crate) fn watch_interrupt(cancel: &Arc<AtomicBool>) {
    let cancel = Arc::clone(cancel);
    let installed = ctrlc::set_handler(move || {
        if cancel.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
        eprintln!("\nstopping after this batch and saving the run's state (again to quit now)");
    });
    if let Err(e) = installed {
        eprintln!("note: Ctrl-C will not save the run's state: {e}");
    }
}

/// Prints a line above the progress bar, or plainly when the bar is hidden (output is not a
/// terminal: indicatif's own `println` prints nothing then).
fn say(bar: &indicatif::ProgressBar, line: impl AsRef<str>) {
    if bar.is_hidden() {
        println!("{}", line.as_ref());
    } else {
        bar.println(line);
    }
}

fn print_table_header(bar: &indicatif::ProgressBar) {
    say(
        bar,
        "epoch  train_loss  train_acc  val_loss  val_acc  test_loss  test_acc  secs",
    );
}

/// One row of the per-epoch table, as the course printed it.
pub fn epoch_row(r: &crate::train::EpochRecord) -> String {
    let opt = |v: Option<f64>, pct: bool| match v {
        Some(v) if pct => format!("{:>8.2}%", v * 100.0),
        Some(v) => format!("{v:>9.4}"),
        None => format!("{:>9}", "-"),
    };
    format!(
        "{:>5}  {:>10.4}  {:>8.2}%  {:>8.4}  {:>6.2}%  {}  {}  {:>5.0}",
        r.epoch,
        r.train_loss,
        r.train_acc * 100.0,
        r.val_loss,
        r.val_acc * 100.0,
        opt(r.test_loss, false),
        opt(r.test_acc, true),
        r.elapsed_secs
    )
}

/// Used by tests: the path of a run's checkpoint.
pub fn checkpoint_path(run_dir: &Path) -> PathBuf {
    run_dir.join(crate::train::history::CHECKPOINT_FILE)
}
