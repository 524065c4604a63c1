//! The training loop shared by the GUI worker and the CLI: each epoch trains, then evaluates
//! val and test; the checkpoint is saved atomically whenever val accuracy strictly improves;
//! `run.json` is rewritten after every epoch; cancel stops within one batch; a non-finite loss
//! stops the run with a clear message; a collapse to a constant classifier is reported.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use candle_core::{D, Device};

use super::evaluate::{SplitMetrics, batch_tensors, evaluate_split};
use super::history::{
    CHECKPOINT_FILE, EpochRecord, HistoryError, RunRecord, RunStatus, now_rfc3339,
};
use super::optim::Optimizer;
use crate::config::TrainConfig;
use crate::data::loader::{BatchLoader, EpochPlan};
use crate::data::{DataError, DatasetIndex, PreparedSplit, Split, Unreadable};
use crate::models::{self, ModelError};

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
    #[error("cannot start the data loader thread: {0}")]
    Thread(std::io::Error),
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
    /// Discovers `root` and decodes its train, val and (if present) test splits, calling
    /// `progress(stage, done, total)`.
    pub fn prepare(
        root: &Path,
        cancel: &AtomicBool,
        progress: &(dyn Fn(&str, usize, usize) + Sync),
    ) -> Result<TrainData, DataError> {
        let index = DatasetIndex::discover(root)?;
        let prepare = |split: Split| -> Result<Arc<PreparedSplit>, DataError> {
            let samples = index.split(split)?;
            let report = |done, total| progress(split.name(), done, total);
            Ok(Arc::new(PreparedSplit::prepare(
                root, split, samples, cancel, &report,
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

/// Progress inside an epoch.
#[derive(Clone, Debug, PartialEq)]
pub struct BatchProgress {
    /// 1-based.
    pub epoch: usize,
    pub epochs: usize,
    /// 1-based batch within the epoch.
    pub batch: usize,
    pub batches: usize,
    /// Global step count (batches since the run started).
    pub step: usize,
    pub loss: f64,
    pub images_per_sec: f64,
    pub eta_secs: f64,
}

/// What the loop reports while it runs.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    Started {
        run_dir: PathBuf,
        record: Box<RunRecord>,
    },
    Batch(BatchProgress),
    /// Evaluating val/test after an epoch.
    Evaluating {
        epoch: usize,
    },
    Epoch(EpochRecord),
    /// The model predicts one class for ≥ 95 % of val images.
    Collapsed {
        epoch: usize,
        message: String,
    },
    CheckpointSaved {
        epoch: usize,
        path: PathBuf,
    },
}

/// The collapse warning shown in the Training tab and printed by the CLI.
pub fn collapse_message(epoch: usize, predicted_fake: f64, lr: f64) -> String {
    let (class, share) = if predicted_fake >= 0.5 {
        ("fake", predicted_fake)
    } else {
        ("real", 1.0 - predicted_fake)
    };
    format!(
        "epoch {epoch}: the model has collapsed to a constant classifier ({:.1} % of val images \
         predicted {class}); its accuracy is just the class share. If this persists over \
         epochs, try a lower learning rate (e.g. {:.0e} instead of {lr:.0e}).",
        share * 100.0,
        lr / 10.0
    )
}

/// Trains a model as `config` says on `data`, writing the run to `run_dir`. Returns the final
/// record; its status says whether the run completed or was cancelled. A non-finite loss ends
/// the run with `TrainError::NonFinite` after recording it as failed in `run.json`.
pub fn train(
    config: &TrainConfig,
    data: &TrainData,
    run_dir: &Path,
    device: &Device,
    cancel: &AtomicBool,
    on_event: &mut dyn FnMut(TrainEvent),
) -> Result<RunRecord, TrainError> {
    config.validate().map_err(TrainError::InvalidConfig)?;
    let model = models::build(config.model, device, config.seed)?;
    let mut initialization = match &config.pretrained {
        Some(path) => {
            let report = models::import::import_checkpoint(model.as_ref(), path)?;
            format!("pretrained: {}", report.summary())
        }
        None => "random (PyTorch default init), trained from scratch".to_string(),
    };
    let trainable = if config.freeze_backbone {
        initialization.push_str("; backbone frozen, only the fully connected head (fc*) trains");
        model
            .params()
            .named_vars()
            .filter(|(k, _)| k.starts_with("fc"))
            .map(|(_, v)| v.clone())
            .collect()
    } else {
        model.params().vars()
    };
    let mut optimizer = Optimizer::new(trainable, config)?;
    let norm = config.model.normalization();
    let mut record = RunRecord {
        run_id: run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        created: now_rfc3339(),
        model: config.model,
        param_count: model.param_count(),
        dataset: data.root.clone(),
        normalization: norm,
        config: config.clone(),
        device: crate::device::describe(device),
        initialization,
        train_images: data.train.len(),
        val_images: data.val.len(),
        test_images: data.test.as_ref().map_or(0, |t| t.len()),
        unreadable: data.unreadable(),
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
    record.save(run_dir)?;
    on_event(TrainEvent::Started {
        run_dir: run_dir.to_path_buf(),
        record: Box::new(record.clone()),
    });

    let batches_per_epoch = data.train.len().div_ceil(config.batch_size.max(1));
    let total_batches = batches_per_epoch * config.epochs;
    let started = Instant::now();
    let mut step = 0usize;
    let mut images_seen = 0usize;
    let mut last_progress = Instant::now() - PROGRESS_INTERVAL;
    let checkpoint = run_dir.join(CHECKPOINT_FILE);

    for epoch in 1..=config.epochs {
        let epoch_started = Instant::now();
        let plan = EpochPlan {
            batch_size: config.batch_size,
            shuffle: Some((config.seed, epoch)),
            augment: config.augment,
            norm,
        };
        let (mut loss_sum, mut correct, mut count) = (0.0f64, 0usize, 0usize);
        let loader = BatchLoader::start(data.train.clone(), plan).map_err(TrainError::Thread)?;
        let batches = loader.batch_count();
        for (b, batch) in loader.enumerate() {
            if cancel.load(Ordering::Relaxed) {
                return finish(record, run_dir, RunStatus::Cancelled);
            }
            let (images, labels) = batch_tensors(&batch, device)?;
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
            correct += predicted
                .iter()
                .zip(&batch.labels)
                .filter(|(p, l)| p == l)
                .count();
            loss_sum += loss_value as f64 * batch.len() as f64;
            count += batch.len();
            step += 1;
            images_seen += batch.len();
            if last_progress.elapsed() >= PROGRESS_INTERVAL || b + 1 == batches {
                last_progress = Instant::now();
                let elapsed = started.elapsed().as_secs_f64();
                let per_step = elapsed / step as f64;
                on_event(TrainEvent::Batch(BatchProgress {
                    epoch,
                    epochs: config.epochs,
                    batch: b + 1,
                    batches,
                    step,
                    loss: loss_value as f64,
                    images_per_sec: images_seen as f64 / elapsed.max(1e-9),
                    eta_secs: per_step * (total_batches.saturating_sub(step)) as f64,
                }));
            }
        }
        on_event(TrainEvent::Evaluating { epoch });
        let eval = |split: &Arc<PreparedSplit>| {
            evaluate_split(
                model.as_ref(),
                split,
                config.batch_size,
                norm,
                device,
                cancel,
            )
        };
        let Some(val) = eval(&data.val)? else {
            return finish(record, run_dir, RunStatus::Cancelled);
        };
        let test: Option<SplitMetrics> = match &data.test {
            Some(split) => match eval(split)? {
                Some(m) => Some(m),
                None => return finish(record, run_dir, RunStatus::Cancelled),
            },
            None => None,
        };
        let diverged = [("val", Some(val)), ("test", test)]
            .into_iter()
            .find_map(|(split, m)| m.filter(|m| !m.loss.is_finite()).map(|m| (split, m.loss)));
        if let Some((split, loss)) = diverged {
            let err = TrainError::NonFiniteEval { epoch, split, loss };
            finish(
                record,
                run_dir,
                RunStatus::Failed {
                    reason: err.to_string(),
                },
            )?;
            return Err(err);
        }
        let n = count.max(1) as f64;
        let collapsed =
            val.predicted_fake >= COLLAPSE_SHARE || val.predicted_fake <= 1.0 - COLLAPSE_SHARE;
        let epoch_record = EpochRecord {
            epoch,
            train_loss: loss_sum / n,
            train_acc: correct as f64 / n,
            val_loss: val.loss,
            val_acc: val.acc,
            test_loss: test.map(|t| t.loss),
            test_acc: test.map(|t| t.acc),
            val_predicted_fake: val.predicted_fake,
            collapsed,
            elapsed_secs: epoch_started.elapsed().as_secs_f64(),
        };
        if record.push_epoch(epoch_record.clone()) {
            model.params().save(&checkpoint)?;
            on_event(TrainEvent::CheckpointSaved {
                epoch,
                path: checkpoint.clone(),
            });
        }
        record.save(run_dir)?;
        on_event(TrainEvent::Epoch(epoch_record));
        if collapsed {
            on_event(TrainEvent::Collapsed {
                epoch,
                message: collapse_message(epoch, val.predicted_fake, config.lr),
            });
        }
    }
    finish(record, run_dir, RunStatus::Completed)
}

fn finish(
    mut record: RunRecord,
    run_dir: &Path,
    status: RunStatus,
) -> Result<RunRecord, TrainError> {
    record.status = status;
    record.save(run_dir)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::collapse_message;

    #[test]
    fn collapse_message_names_the_class_share_and_a_lower_rate() {
        let text = collapse_message(3, 0.0, 1e-3);
        assert!(
            text.contains("epoch 3") && text.contains("100.0 % of val images predicted real"),
            "{text}"
        );
        assert!(text.contains("1e-4 instead of 1e-3"), "{text}");
        let text = collapse_message(1, 0.97, 1e-4);
        assert!(
            text.contains("97.0 % of val images predicted fake"),
            "{text}"
        );
    }
}
