//! A trained run ready to explain: its record (model kind, input normalisation) and its
//! model loaded from the checkpoint, with the conversions from a picture to the model's
//! input and from logits to the fake probability.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::config::INPUT_SIZE;
use crate::data::decode::{normalize_into, resize_square};
use crate::models::{self, Detector, ModelError};
use crate::train::history::{CHECKPOINT_FILE, HistoryError, RunRecord};

/// Why a run could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadRunError {
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error("{0} does not exist: the run saved no checkpoint (it never finished an epoch)")]
    NoCheckpoint(PathBuf),
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// A run's model and record.
pub struct RunModel {
    pub dir: PathBuf,
    pub record: RunRecord,
    pub model: Box<dyn Detector>,
}

impl RunModel {
    /// Loads the run in `dir` (its `run.json` and checkpoint) onto `device`.
    pub fn load(dir: &Path, device: &Device) -> Result<RunModel, LoadRunError> {
        let record = RunRecord::load(dir)?;
        let checkpoint = dir.join(CHECKPOINT_FILE);
        if !checkpoint.is_file() {
            return Err(LoadRunError::NoCheckpoint(checkpoint));
        }
        let model = models::load(record.model, &checkpoint, device)?;
        Ok(RunModel {
            dir: dir.to_path_buf(),
            record,
            model,
        })
    }

    /// `LilXception · lilxception-lfw` (model and run folder, as the run lists name runs).
    pub fn label(&self) -> String {
        let folder = self
            .dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| self.record.run_id.clone());
        format!("{} · {folder}", self.record.model.label())
    }

    /// `picture` resized to the model's input and normalised as the run was trained: 1×3×H×W.
    pub fn input_of(&self, picture: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
        let resized = resize_square(picture, INPUT_SIZE as u32);
        let mut buffer = vec![0.0f32; 3 * INPUT_SIZE * INPUT_SIZE];
        normalize_into(resized.as_raw(), &self.record.normalization, &mut buffer);
        Tensor::from_vec(buffer, (1, 3, INPUT_SIZE, INPUT_SIZE), device)
    }

    /// The fake probability (softmax of the logits) of each image of a batch.
    pub fn fake_probabilities(&self, images: &Tensor) -> candle_core::Result<Vec<f64>> {
        let logits = self.model.forward_t(images, false)?;
        let probs = candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?;
        Ok(probs.iter().map(|p| f64::from(p[1])).collect())
    }
}
