//! `fakelens train`: a new run, or `--resume` of one, with the course's per-epoch table.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use super::common::{resolve_data, say, watch_interrupt};
use crate::config::{ModelKind, OptimizerKind, Preset, TrainConfig};
use crate::data::degrade::{Degradation, PhotoAugment};
use crate::data::profile::Framing;
use crate::device::DeviceChoice;
use crate::format::group_thousands;
use crate::runs::record::RunStatus;
use crate::train::{TrainData, TrainEvent};

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
pub fn train(args: &TrainArgs) -> anyhow::Result<()> {
    let config = args.config();
    let resumed = match &args.resume {
        Some(dir) => Some(
            crate::runs::RunRecord::load(dir)
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
            crate::runs::layout::new_run_dir(&crate::runs::layout::default_runs_dir(), config.model)
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

fn print_table_header(bar: &indicatif::ProgressBar) {
    say(
        bar,
        "epoch  train_loss  train_acc  val_loss  val_acc  test_loss  test_acc  secs",
    );
}

/// One row of the per-epoch table, as the course printed it.
pub fn epoch_row(r: &crate::runs::EpochRecord) -> String {
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
