//! The training loop shared by the GUI worker and the CLI: each epoch trains, then evaluates
//! val and test; the checkpoint is saved atomically whenever val accuracy strictly improves;
//! `run.json` is rewritten after every epoch; cancel stops within one batch; a non-finite loss
//! stops the run with a clear message; a collapse to a constant classifier is reported. A
//! resumable state (`resume.rs`) is kept every few minutes, after each epoch and on cancel.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::{D, Device};

use super::events::{BatchProgress, EvalProgress, TrainEvent, collapse_message, collapse_persists};
use super::optim::Optimizer;
use super::resume::{Position, ResumeError, STATE_INTERVAL, remove_state, save_state};
use super::run_folder::{ExistingRun, RunFolderError};
use crate::config::TrainConfig;
use crate::data::loader::{BatchLoader, EpochPlan};
use crate::data::profile::{Framing, InputProfile};
use crate::data::{DataError, DatasetIndex, PreparedSplit, Split, Unreadable};
use crate::eval::calibration::calibrate_margins;
use crate::eval::margins::{SplitMetrics, batch_tensors, evaluate_split_margins};
use crate::models::{self, Detector, ModelError};
use crate::runs::layout::{CHECKPOINT_FILE, now_rfc3339};
use crate::runs::record::{EpochRecord, HistoryError, RunRecord, RunStatus};

/// Share of one predicted class on val at or above which a model counts as collapsed.
pub const COLLAPSE_SHARE: f64 = 0.95;
/// Minimum time between two batch-progress events.
const PROGRESS_INTERVAL: Duration = Duration::from_millis(50);

/// Why a run could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error("computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(transparent)]
    Resume(#[from] ResumeError),
    #[error(transparent)]
    Folder(#[from] RunFolderError),
    #[error("cannot start the data loader thread: {0}")]
    Thread(std::io::Error),
    #[error(transparent)]
    Score(#[from] crate::eval::scores::ScoreError),
    #[error("invalid training settings: {0}")]
    InvalidConfig(String),
    #[error(
        "the loss became {loss} at epoch {epoch}, batch {batch}: training diverged; try a \
         lower learning rate (the best checkpoint so far is kept)"
    )]
    NonFinite {
        epoch: usize,
        batch: usize,
        loss: f32,
    },
    #[error(
        "the {split} loss became {loss} after epoch {epoch}: training diverged; try a lower \
         learning rate (the best checkpoint so far is kept)"
    )]
    NonFiniteEval {
        epoch: usize,
        split: &'static str,
        loss: f64,
    },
}

/// The decoded splits a run trains and evaluates on.
pub struct TrainData {
    pub root: PathBuf,
    pub train: Arc<PreparedSplit>,
    pub val: Arc<PreparedSplit>,
    pub test: Option<Arc<PreparedSplit>>,
}

impl TrainData {
    /// Discovers `root` and decodes its train, val and (if present) test splits, framed as
    /// `framing` says, calling `progress(stage, done, total)`.
    pub fn prepare(
        root: &Path,
        framing: &Framing,
        cancel: &AtomicBool,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Result<TrainData, DataError> {
        let index = DatasetIndex::discover(root)?;
        let verb = if framing.is_face() {
            "find faces in"
        } else {
            "decode"
        };
        let prepare = |split: Split| -> Result<Arc<PreparedSplit>, DataError> {
            let samples = index.split(split)?;
            let stage = format!("{verb} {}", split.name());
            let report = |done, total| progress(&stage, done, total);
            Ok(Arc::new(PreparedSplit::prepare(
                root, split, samples, framing, cancel, &report,
            )?))
        };
        let train = prepare(Split::Train)?;
        let val = prepare(Split::Val)?;
        let test = match index.splits.contains_key(&Split::Test) {
            true => Some(prepare(Split::Test)?),
            false => None,
        };
        Ok(TrainData {
            root: root.to_path_buf(),
            train,
            val,
            test,
        })
    }

    /// How the splits were framed.
    pub fn framing(&self) -> &Framing {
        &self.train.framing
    }

    fn splits(&self) -> impl Iterator<Item = &Arc<PreparedSplit>> {
        [Some(&self.train), Some(&self.val), self.test.as_ref()]
            .into_iter()
            .flatten()
    }

    /// Images of all splits.
    pub fn image_count(&self) -> usize {
        self.splits().map(|s| s.len()).sum()
    }

    /// Files of any split in which a face framing found no face (used whole).
    pub fn no_face(&self) -> Vec<PathBuf> {
        self.splits()
            .flat_map(|s| s.no_face.iter().cloned())
            .collect()
    }

    /// Files of any split that could not be decoded.
    pub fn unreadable(&self) -> Vec<Unreadable> {
        let splits = [Some(&self.train), Some(&self.val), self.test.as_ref()];
        splits
            .into_iter()
            .flatten()
            .flat_map(|s| s.unreadable.iter().cloned())
            .collect()
    }
}

/// Trains a model as `config` says on `data`, writing the run to `run_dir`, which is locked
/// meanwhile and must not hold a run yet. Returns the final record; its status says whether
/// the run completed or was cancelled. An error that stops the run (a non-finite loss, a
/// failed write) is recorded as its failure in `run.json` where that can still be written.
pub fn train(
    config: &TrainConfig,
    data: &TrainData,
    run_dir: &Path,
    device: &Device,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunRecord, TrainError> {
    let existing = ExistingRun::Refuse;
    train_in(config, data, run_dir, existing, device, cancel, on_event)
}

/// [`train`], replacing the run `run_dir` may hold (its files are removed first).
pub fn train_replacing(
    config: &TrainConfig,
    data: &TrainData,
    run_dir: &Path,
    device: &Device,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunRecord, TrainError> {
    let existing = ExistingRun::Replace;
    train_in(config, data, run_dir, existing, device, cancel, on_event)
}

fn train_in(
    config: &TrainConfig,
    data: &TrainData,
    run_dir: &Path,
    existing: ExistingRun,
    device: &Device,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunRecord, TrainError> {
    config.validate().map_err(TrainError::InvalidConfig)?;
    check_framing(&config.input, data)?;
    let model = models::build(config.model, device, config.seed)?;
    let mut initialization = match &config.pretrained {
        Some(path) => {
            let report = models::import::import_checkpoint(model.as_ref(), path)?;
            format!("pretrained: {}", report.summary())
        }
        None => "random (PyTorch default init), trained from scratch".to_string(),
    };
    if config.freeze_backbone {
        initialization.push_str("; backbone frozen, only the fully connected head (fc*) trains");
    }
    let optimizer = optimizer_for(model.as_ref(), config)?;
    let record = RunRecord {
        run_id: run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        created: now_rfc3339(),
        model: config.model,
        param_count: model.param_count(),
        dataset: data.root.clone(),
        normalization: config.model.normalization(),
        config: config.clone(),
        device: crate::device::describe(device),
        initialization,
        train_images: data.train.len(),
        val_images: data.val.len(),
        test_images: data.test.as_ref().map_or(0, |t| t.len()),
        unreadable: data.unreadable(),
        input_profile: Some(InputProfile::new(
            config.input.clone(),
            config.model.normalization(),
        )),
        no_face: data.no_face(),
        temperature: None,
        val_threshold: None,
        epochs: Vec::new(),
        step_losses: Vec::new(),
        best_epoch: None,
        best_val_acc: None,
        test_acc_at_best: None,
        status: RunStatus::Running,
    };
    std::fs::create_dir_all(run_dir).map_err(|source| HistoryError::Write {
        path: run_dir.to_path_buf(),
        source,
    })?;
    let _lock = super::run_folder::take_for_fresh_run(run_dir, existing)?;
    let start = Position {
        epoch: 1,
        ..Position::default()
    };
    let run = Run {
        config,
        data,
        run_dir,
        device,
        model: model.as_ref(),
    };
    run.epochs(optimizer, record, start, cancel, on_event)
}

/// Continues the run in `run_dir` from its resumable state (saved every few minutes, after
/// each epoch and on cancel) on `data`, which must be the dataset it started on. The folder
/// is locked meanwhile.
pub fn resume(
    data: &TrainData,
    run_dir: &Path,
    device: &Device,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunRecord, TrainError> {
    // Read first, so that a folder holding no run is named as such and left as it was;
    // read again under the lock, as the run stands now.
    RunRecord::load(run_dir)?;
    let _lock = super::run_folder::take_for_resume(run_dir)?;
    let mut record = RunRecord::load(run_dir)?;
    super::resume::require_state(run_dir, &record.status)?;
    if record.train_images != data.train.len() || record.val_images != data.val.len() {
        return Err(TrainError::InvalidConfig(format!(
            "{} trained on {} train / {} val images, but {} now has {} / {}: resume it on the \
             dataset it started on",
            run_dir.display(),
            record.train_images,
            record.val_images,
            data.root.display(),
            data.train.len(),
            data.val.len()
        )));
    }
    let config = record.config.clone();
    config.validate().map_err(TrainError::InvalidConfig)?;
    check_framing(&config.input, data)?;
    let model = models::build(config.model, device, config.seed)?;
    let mut optimizer = optimizer_for(model.as_ref(), &config)?;
    let start = super::resume::load_state(run_dir, model.as_ref(), &mut optimizer)?;
    // Forget what happened after the state was saved: it is trained again.
    record.step_losses.truncate(start.step);
    record.epochs.retain(|e| e.epoch < start.epoch);
    record.status = RunStatus::Running;
    record.device = crate::device::describe(device);
    let run = Run {
        config: &config,
        data,
        run_dir,
        device,
        model: model.as_ref(),
    };
    run.epochs(optimizer, record, start, cancel, on_event)
}

/// Refuses data framed otherwise than the run trains on.
fn check_framing(framing: &Framing, data: &TrainData) -> Result<(), TrainError> {
    if data.framing() == framing {
        return Ok(());
    }
    Err(TrainError::InvalidConfig(format!(
        "the run trains on {} but the data was prepared as {}",
        framing.describe(),
        data.framing().describe()
    )))
}

/// The optimiser over the parameters a run trains (only the head's with a frozen backbone).
fn optimizer_for(model: &dyn Detector, config: &TrainConfig) -> Result<Optimizer, TrainError> {
    let trainable = if config.freeze_backbone {
        model
            .params()
            .named_vars()
            .filter(|(k, _)| k.starts_with("fc"))
            .map(|(_, v)| v.clone())
            .collect()
    } else {
        model.params().vars()
    };
    Ok(Optimizer::new(trainable, config)?)
}

/// What one training run works with.
struct Run<'a> {
    config: &'a TrainConfig,
    data: &'a TrainData,
    run_dir: &'a Path,
    device: &'a Device,
    model: &'a dyn Detector,
}

impl Run<'_> {
    /// Trains from `start` to the last epoch, evaluating and recording each. An error that
    /// stops the run is recorded in `run.json` as its failure (if the disk still takes it).
    fn epochs(
        &self,
        optimizer: Optimizer,
        mut record: RunRecord,
        start: Position,
        cancel: &AtomicBool,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<RunRecord, TrainError> {
        match self.train_epochs(optimizer, &mut record, start, cancel, on_event) {
            Ok(()) => Ok(record),
            Err(err) => {
                if !matches!(record.status, RunStatus::Failed { .. }) {
                    let reason = crate::report::error_chain(&err);
                    record.status = RunStatus::Failed { reason };
                    let _ = record.save(self.run_dir);
                }
                Err(err)
            }
        }
    }

    /// The epoch loop of [`Run::epochs`], which ends with `record`'s final status saved.
    fn train_epochs(
        &self,
        mut optimizer: Optimizer,
        record: &mut RunRecord,
        start: Position,
        cancel: &AtomicBool,
        on_event: &mut dyn FnMut(TrainEvent),
    ) -> Result<(), TrainError> {
        let (config, run_dir, model) = (self.config, self.run_dir, self.model);
        record.save(run_dir)?;
        on_event(TrainEvent::Started {
            run_dir: run_dir.to_path_buf(),
            record: Box::new(record.clone()),
        });
        let norm = config.model.normalization();
        let batches_per_epoch = self.data.train.len().div_ceil(config.batch_size.max(1));
        let total_batches = batches_per_epoch * config.epochs;
        let started = Instant::now();
        let (first_step, mut images_seen) = (start.step, 0usize);
        let mut pos = start;
        let mut last_progress = Instant::now() - PROGRESS_INTERVAL;
        let mut last_state = Instant::now();
        let checkpoint = run_dir.join(CHECKPOINT_FILE);

        while pos.epoch <= config.epochs {
            let epoch = pos.epoch;
            let epoch_started =
                Instant::now() - Duration::from_secs_f64(pos.epoch_elapsed_secs.max(0.0));
            let plan = EpochPlan {
                batch_size: config.batch_size,
                shuffle: Some((config.seed, epoch)),
                augment: config.augment,
                photo_augment: config.photo_augment,
                norm,
                first_batch: pos.next_batch,
            };
            let loader =
                BatchLoader::start(self.data.train.clone(), plan).map_err(TrainError::Thread)?;
            let batches = loader.batch_count();
            for (b, batch) in (pos.next_batch..).zip(loader) {
                pos.epoch_elapsed_secs = epoch_started.elapsed().as_secs_f64();
                if cancel.load(Ordering::Relaxed) {
                    return self.cancelled(&optimizer, record, pos);
                }
                let (images, labels) = batch_tensors(&batch, self.device)?;
                let logits = model.forward_t(&images, true)?;
                let loss = candle_nn::loss::cross_entropy(&logits, &labels)?;
                let loss_value = loss.to_scalar::<f32>()?;
                if !loss_value.is_finite() {
                    let err = TrainError::NonFinite {
                        epoch,
                        batch: b + 1,
                        loss: loss_value,
                    };
                    let reason = err.to_string();
                    finish(record, run_dir, RunStatus::Failed { reason })?;
                    return Err(err);
                }
                optimizer.backward_step(&loss)?;
                record.step_losses.push(loss_value);
                let predicted = logits.argmax(D::Minus1)?.to_vec1::<u32>()?;
                pos.correct += predicted
                    .iter()
                    .zip(&batch.labels)
                    .filter(|(p, l)| p == l)
                    .count();
                pos.loss_sum += loss_value as f64 * batch.len() as f64;
                pos.count += batch.len();
                pos.step += 1;
                pos.next_batch = b + 1;
                images_seen += batch.len();
                if last_state.elapsed() >= STATE_INTERVAL && b + 1 < batches {
                    pos.epoch_elapsed_secs = epoch_started.elapsed().as_secs_f64();
                    record.save(run_dir)?;
                    save_state(run_dir, model, &optimizer, pos)?;
                    last_state = Instant::now();
                }
                if last_progress.elapsed() >= PROGRESS_INTERVAL || b + 1 == batches {
                    last_progress = Instant::now();
                    let elapsed = started.elapsed().as_secs_f64();
                    let per_step = elapsed / (pos.step - first_step).max(1) as f64;
                    on_event(TrainEvent::Batch(BatchProgress {
                        epoch,
                        epochs: config.epochs,
                        batch: b + 1,
                        batches,
                        step: pos.step,
                        loss: loss_value as f64,
                        images_per_sec: images_seen as f64 / elapsed.max(1e-9),
                        eta_secs: per_step * (total_batches.saturating_sub(pos.step)) as f64,
                    }));
                }
            }
            let mut eval = |split: &Arc<PreparedSplit>, name: Split| {
                let mut last_sent: Option<Instant> = None;
                let mut progress = |images_done: usize, images_total: usize| {
                    let finished = images_done == images_total;
                    if finished || last_sent.is_none_or(|t| t.elapsed() >= PROGRESS_INTERVAL) {
                        last_sent = Some(Instant::now());
                        on_event(TrainEvent::Evaluating(EvalProgress {
                            epoch,
                            split: name,
                            images_done,
                            images_total,
                        }));
                    }
                };
                progress(0, split.len());
                let (size, device) = (config.batch_size, self.device);
                // The weights change every epoch: no frozen copy.
                let model = models::Evaluator::unfolded(model);
                evaluate_split_margins(model, split, size, norm, device, cancel, &mut progress)
            };
            let Some(val_eval) = eval(&self.data.val, Split::Val)? else {
                return self.cancelled(&optimizer, record, pos);
            };
            let val = val_eval.metrics;
            let test: Option<SplitMetrics> = match &self.data.test {
                Some(split) => match eval(split, Split::Test)? {
                    Some(e) => Some(e.metrics),
                    None => return self.cancelled(&optimizer, record, pos),
                },
                None => None,
            };
            let diverged = [("val", Some(val)), ("test", test)]
                .into_iter()
                .find_map(|(split, m)| m.filter(|m| !m.loss.is_finite()).map(|m| (split, m.loss)));
            if let Some((split, loss)) = diverged {
                let err = TrainError::NonFiniteEval { epoch, split, loss };
                let reason = err.to_string();
                finish(record, run_dir, RunStatus::Failed { reason })?;
                return Err(err);
            }
            let n = pos.count.max(1) as f64;
            let collapsed =
                val.predicted_fake >= COLLAPSE_SHARE || val.predicted_fake <= 1.0 - COLLAPSE_SHARE;
            let epoch_record = EpochRecord {
                epoch,
                train_loss: pos.loss_sum / n,
                train_acc: pos.correct as f64 / n,
                val_loss: val.loss,
                val_acc: val.acc,
                test_loss: test.map(|t| t.loss),
                test_acc: test.map(|t| t.acc),
                val_predicted_fake: val.predicted_fake,
                collapsed,
                elapsed_secs: epoch_started.elapsed().as_secs_f64(),
            };
            if record.push_epoch(epoch_record.clone()) {
                let (temperature, threshold) =
                    calibrate_margins(&val_eval.margins, &val_eval.labels);
                record.temperature = temperature;
                record.val_threshold = threshold;
                model.params().save(&checkpoint)?;
                on_event(TrainEvent::CheckpointSaved {
                    epoch,
                    path: checkpoint.clone(),
                });
            }
            record.save(run_dir)?;
            pos = Position {
                epoch: epoch + 1,
                step: pos.step,
                ..Position::default()
            };
            if epoch < config.epochs {
                save_state(run_dir, model, &optimizer, pos)?;
                last_state = Instant::now();
            }
            on_event(TrainEvent::Epoch(epoch_record));
            if collapse_persists(&record.epochs, config.epochs) {
                on_event(TrainEvent::Collapsed {
                    epoch,
                    message: collapse_message(epoch, val.predicted_fake, config.lr),
                });
            }
        }
        remove_state(run_dir);
        finish(record, run_dir, RunStatus::Completed)
    }

    /// Ends a cancelled run: keeps the state to resume from at `pos`, then records the stop.
    fn cancelled(
        &self,
        optimizer: &Optimizer,
        record: &mut RunRecord,
        pos: Position,
    ) -> Result<(), TrainError> {
        save_state(self.run_dir, self.model, optimizer, pos)?;
        finish(record, self.run_dir, RunStatus::Cancelled)
    }
}

fn finish(record: &mut RunRecord, run_dir: &Path, status: RunStatus) -> Result<(), TrainError> {
    record.status = status;
    record.save(run_dir)?;
    Ok(())
}
