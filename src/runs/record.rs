//! A run's record: `run.json` beside each run's `model.safetensors` — the config, model,
//! parameter count, dataset, per-epoch losses and accuracies (the course's format), the
//! best-validation epoch and the test accuracy there. Written atomically after every epoch.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::config::{ModelKind, TrainConfig};
use crate::data::Unreadable;
use crate::data::profile::Normalization;
use crate::data::profile::{Framing, InputProfile};
use crate::runs::layout::RUN_FILE;

/// One epoch's results. Losses are mean cross-entropy; accuracies are fractions in [0, 1].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch number.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    pub test_loss: Option<f64>,
    pub test_acc: Option<f64>,
    /// Share of val images predicted fake (1.0 or 0.0 means a constant classifier).
    pub val_predicted_fake: f64,
    /// The model predicts (almost) one class for every val image.
    pub collapsed: bool,
    pub elapsed_secs: f64,
}

/// How a run ended (or that it is still going).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "lowercase")]
pub enum RunStatus {
    Running,
    Completed,
    Cancelled,
    /// A checkpoint trained elsewhere, imported as a run (no training history).
    Imported,
    Failed {
        reason: String,
    },
}

/// Everything `run.json` holds.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub run_id: String,
    pub created: String,
    pub model: ModelKind,
    pub param_count: usize,
    pub dataset: PathBuf,
    pub normalization: Normalization,
    pub config: TrainConfig,
    pub device: String,
    /// What the weights started from.
    pub initialization: String,
    pub train_images: usize,
    pub val_images: usize,
    pub test_images: usize,
    pub unreadable: Vec<Unreadable>,
    /// How a picture becomes this run's input (`None`: recorded before input profiles, when
    /// every run saw whole images; see [`RunRecord::input_profile`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub input_profile: Option<InputProfile>,
    /// Files in which the face framing found no face (used whole).
    #[serde(default)]
    pub no_face: Vec<PathBuf>,
    /// The softmax temperature fitted on the val split at the best epoch (`None`: not
    /// fitted, probabilities are the model's own).
    #[serde(default)]
    pub temperature: Option<f64>,
    /// The equal-error-rate threshold of the calibrated fake probability on the val split,
    /// recorded with the temperature (so a detector judges where its data is absent).
    #[serde(default)]
    pub val_threshold: Option<f64>,
    pub epochs: Vec<EpochRecord>,
    /// Training loss of every batch, in order (the per-batch curve).
    #[serde(default)]
    pub step_losses: Vec<f32>,
    pub best_epoch: Option<usize>,
    pub best_val_acc: Option<f64>,
    pub test_acc_at_best: Option<f64>,
    pub status: RunStatus,
}

/// Errors reading or writing a run's history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a FakeLens run.json: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path} records an unusable input normalisation: {reason}")]
    Normalization { path: PathBuf, reason: String },
}

impl RunRecord {
    /// The run's input profile; whole images for a run recorded before profiles existed.
    pub fn input_profile(&self) -> InputProfile {
        self.input_profile
            .clone()
            .unwrap_or_else(|| InputProfile::new(Framing::legacy(), self.normalization))
    }

    /// Records an epoch and updates the best-val fields. Returns whether val accuracy
    /// strictly improved (so the checkpoint should be saved).
    pub fn push_epoch(&mut self, record: EpochRecord) -> bool {
        let improved = self.best_val_acc.is_none_or(|best| record.val_acc > best);
        if improved {
            self.best_epoch = Some(record.epoch);
            self.best_val_acc = Some(record.val_acc);
            self.test_acc_at_best = record.test_acc;
        }
        self.epochs.push(record);
        improved
    }

    /// Writes `dir/run.json` atomically.
    pub fn save(&self, dir: &Path) -> Result<(), HistoryError> {
        let path = dir.join(RUN_FILE);
        let json = serde_json::to_vec_pretty(self).map_err(|e| HistoryError::Write {
            path: path.clone(),
            source: std::io::Error::other(e),
        })?;
        crate::fsutil::write_atomic(&path, &json)
            .map_err(|source| HistoryError::Write { path, source })
    }

    /// Reads `dir/run.json`, refusing a normalisation that would score every image alike.
    pub fn load(dir: &Path) -> Result<RunRecord, HistoryError> {
        let path = dir.join(RUN_FILE);
        let bytes = std::fs::read(&path).map_err(|source| HistoryError::Read {
            path: path.clone(),
            source,
        })?;
        let record: RunRecord =
            serde_json::from_slice(&bytes).map_err(|source| HistoryError::Parse {
                path: path.clone(),
                source,
            })?;
        let profile = record.input_profile.as_ref().map(|p| p.normalization);
        for norm in std::iter::once(record.normalization).chain(profile) {
            norm.validate()
                .map_err(|reason| HistoryError::Normalization {
                    path: path.clone(),
                    reason,
                })?;
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run.json written before input profiles and temperatures (a committed result) loads
    /// as a whole-image run with no degradations, no temperature and no recorded threshold.
    #[test]
    fn a_record_from_before_input_profiles_loads_as_whole_image() {
        let text = include_str!("../../docs/results/lilxception-lfw-lr1e-4-cpu.json");
        let record: RunRecord = serde_json::from_str(text).unwrap();
        assert_eq!(record.input_profile, None);
        assert_eq!(record.input_profile().framing, Framing::Whole);
        assert_eq!(record.input_profile().normalization, record.normalization);
        assert_eq!(record.config.input, Framing::Whole);
        assert_eq!(record.config.photo_augment, None);
        assert_eq!((record.temperature, record.val_threshold), (None, None));
        assert!(record.no_face.is_empty());
        // New runs get the face crop (degradations are opt-in).
        let fresh = crate::config::TrainConfig::default();
        assert!(fresh.input.is_face() && fresh.photo_augment.is_none());
    }

    /// A run.json whose normalisation has a zero (or negative) std is refused on load,
    /// naming the file and the value; a non-finite mean or std (JSON cannot spell one, but
    /// a value may come from elsewhere) is refused by the same check.
    #[test]
    fn a_run_with_zero_or_non_finite_normalization_is_refused() {
        let text = include_str!("../../docs/results/lilxception-lfw-lr1e-4-cpu.json");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(RUN_FILE);
        std::fs::write(&path, text).unwrap();
        RunRecord::load(dir.path()).unwrap();
        for (key, value, shown) in [
            ("std", [0.2, 0.0, 0.2], "holds 0;"),
            ("std", [0.2, -0.2, 0.2], "holds -0.2;"),
        ] {
            let mut json: serde_json::Value = serde_json::from_str(text).unwrap();
            json["normalization"][key] = serde_json::json!(value);
            std::fs::write(&path, serde_json::to_vec(&json).unwrap()).unwrap();
            let err = RunRecord::load(dir.path()).unwrap_err().to_string();
            assert!(
                err.contains(&path.display().to_string())
                    && err.contains("normalisation")
                    && err.contains(&format!("its {key}"))
                    && err.contains(shown),
                "{err}"
            );
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mean = Normalization {
                mean: [0.5, bad, 0.5],
                ..Normalization::COURSE
            };
            assert!(mean.validate().unwrap_err().contains("its mean"));
            let std = Normalization {
                std: [0.5, 0.5, bad],
                ..Normalization::COURSE
            };
            assert!(std.validate().unwrap_err().contains("its std"));
        }
        // The input profile's copy is checked too.
        let mut record: RunRecord = serde_json::from_str(text).unwrap();
        let mut norm = Normalization::COURSE;
        norm.std[1] = 0.0;
        record.input_profile = Some(InputProfile::new(Framing::Whole, norm));
        record.save(dir.path()).unwrap();
        let err = RunRecord::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("std") && err.contains("positive"), "{err}");
    }
}
