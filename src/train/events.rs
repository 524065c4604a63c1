//! What the training loop reports while it runs: batch and evaluation progress, epochs,
//! checkpoints and the collapse warning.

use std::path::PathBuf;

use crate::data::Split;
use crate::runs::record::{EpochRecord, RunRecord};

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

/// Progress of the val/test evaluation after an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EvalProgress {
    /// 1-based epoch just trained.
    pub epoch: usize,
    pub split: Split,
    pub images_done: usize,
    pub images_total: usize,
}

/// What the loop reports while it runs.
#[derive(Clone, Debug)]
pub enum TrainEvent {
    Started {
        run_dir: PathBuf,
        record: Box<RunRecord>,
    },
    Batch(BatchProgress),
    /// Evaluating val/test after an epoch: sent as each split starts and while it runs.
    Evaluating(EvalProgress),
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

/// Whether the run whose epochs so far are `epochs` (of `planned_epochs`) should be warned
/// of a collapse: a model often sits at the class share for an epoch before it learns, so
/// only when the last epoch collapsed and so did the one before it, or the run ends there.
pub fn collapse_persists(epochs: &[EpochRecord], planned_epochs: usize) -> bool {
    let mut newest_first = epochs.iter().rev();
    let Some(last) = newest_first.next() else {
        return false;
    };
    let before = newest_first.next().is_some_and(|e| e.collapsed);
    last.collapsed && (before || last.epoch == planned_epochs)
}

/// The collapse warning shown in the Training tab and printed by the CLI.
pub fn collapse_message(epoch: usize, predicted_fake: f64, lr: f64) -> String {
    let (class, share) = if predicted_fake >= 0.5 {
        ("fake", predicted_fake)
    } else {
        ("real", 1.0 - predicted_fake)
    };
    format!(
        "epoch {epoch}: the model still predicts one class for almost every image ({:.1} % of \
         val images predicted {class}), so its accuracy is just the class share. Models often \
         leave this plateau after an epoch or two; if it stays, a lower learning rate (e.g. \
         {:.0e} instead of {lr:.0e}) usually helps.",
        share * 100.0,
        lr / 10.0
    )
}

#[cfg(test)]
mod tests {
    use super::{EpochRecord, collapse_message, collapse_persists};

    fn epochs(collapsed: &[bool]) -> Vec<EpochRecord> {
        collapsed
            .iter()
            .enumerate()
            .map(|(i, &collapsed)| EpochRecord {
                epoch: i + 1,
                train_loss: 0.69,
                train_acc: 0.5,
                val_loss: 0.69,
                val_acc: 0.55,
                test_loss: None,
                test_acc: None,
                val_predicted_fake: if collapsed { 0.0 } else { 0.5 },
                collapsed,
                elapsed_secs: 1.0,
            })
            .collect()
    }

    #[test]
    fn a_collapse_is_reported_only_when_it_persists_or_ends_the_run() {
        // Epoch 1 of the default recipe sits at the class share and recovers in epoch 2.
        assert!(!collapse_persists(&epochs(&[true]), 5));
        assert!(!collapse_persists(&epochs(&[true, false]), 5));
        // Two in a row, or the last epoch of the run.
        assert!(collapse_persists(&epochs(&[true, true]), 5));
        assert!(collapse_persists(&epochs(&[false, true]), 2));
        assert!(collapse_persists(&epochs(&[true]), 1));
        assert!(!collapse_persists(&epochs(&[true, true, false]), 3));
        assert!(!collapse_persists(&[], 3));
    }

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
