//! What the training loop reports while it runs: batch and evaluation progress, epochs,
//! checkpoints and the collapse warning.

use std::path::PathBuf;

use super::history::{EpochRecord, RunRecord};
use crate::data::Split;

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
