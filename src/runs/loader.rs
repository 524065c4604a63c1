//! A trained run ready to explain: its record (model kind, input normalisation) and its
//! model loaded from the checkpoint, with the conversions from a picture to the model's
//! input and from logits to the fake probability.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use image::RgbImage;

use crate::data::decode::{normalize_into, resize_square};
use crate::data::profile::{Framing, InputProfile};
use crate::models::frozen::FrozenNet;
use crate::models::{self, Detector, Evaluator, ModelError};
use crate::runs::layout::CHECKPOINT_FILE;
use crate::runs::record::{HistoryError, RunRecord};

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
    /// The model's frozen inference copy (`models::frozen`), where the frozen path runs it;
    /// built at load, as the checkpoint is, so a changed checkpoint means a new `RunModel`.
    pub frozen: Option<FrozenNet>,
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
        let frozen = model.freeze().map_err(ModelError::from)?;
        Ok(RunModel {
            dir: dir.to_path_buf(),
            record,
            model,
            frozen,
        })
    }

    /// The model as evaluation runs it (through the frozen copy where there is one).
    pub fn evaluator(&self) -> Evaluator<'_> {
        Evaluator::new(self.model.as_ref(), self.frozen.as_ref())
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

    /// How a picture becomes this run's input.
    pub fn profile(&self) -> InputProfile {
        self.record.input_profile()
    }

    /// An already framed picture (a face crop, or a whole picture for a whole-image run)
    /// resized to the model's input and normalised as the run was trained: 1×3×H×W.
    pub fn input_of(&self, framed: &RgbImage, device: &Device) -> candle_core::Result<Tensor> {
        let profile = self.profile();
        let resized = resize_square(framed, profile.size as u32);
        let mut buffer = vec![0.0f32; 3 * profile.size * profile.size];
        normalize_into(resized.as_raw(), &profile.normalization, &mut buffer);
        Tensor::from_vec(buffer, (1, 3, profile.size, profile.size), device)
    }

    /// The model's logits `[real, fake]` of each image of a batch.
    pub fn logits(&self, images: &Tensor) -> candle_core::Result<Vec<[f32; 2]>> {
        let logits = self.evaluator().logits(images)?.to_vec2::<f32>()?;
        Ok(logits.iter().map(|l| [l[0], l[1]]).collect())
    }

    /// The fake probability of each image of a batch, calibrated by the run's temperature
    /// when it has one.
    pub fn fake_probabilities(&self, images: &Tensor) -> candle_core::Result<Vec<f64>> {
        let temperature = self.record.temperature.unwrap_or(1.0);
        Ok(self
            .logits(images)?
            .iter()
            .map(|l| fake_probability(*l, temperature))
            .collect())
    }
}

/// softmax(logits / temperature)[fake], computed stably in f64.
pub fn fake_probability(logits: [f32; 2], temperature: f64) -> f64 {
    let margin = f64::from(logits[1]) - f64::from(logits[0]);
    sigmoid(margin, temperature)
}

/// The fake probability of logit margin `m` (fake − real) at temperature `t`: `σ(m / t)`.
pub fn sigmoid(m: f64, t: f64) -> f64 {
    1.0 / (1.0 + (-m / t).exp())
}

/// The framing shared by `runs`, or an error naming the first run framed otherwise: maps
/// shown side by side must come from the same input.
pub fn common_framing(runs: &[RunModel]) -> Result<Framing, FramingMismatch> {
    let Some(first) = runs.first() else {
        return Ok(Framing::Whole);
    };
    let framing = first.profile().framing;
    match runs.iter().find(|r| r.profile().framing != framing) {
        None => Ok(framing),
        Some(other) => Err(FramingMismatch {
            first: first.label(),
            first_framing: framing.describe(),
            other: other.label(),
            other_framing: other.profile().framing.describe(),
        }),
    }
}

/// Two runs that see pictures framed differently.
#[derive(Debug, thiserror::Error)]
#[error(
    "{first} sees a {first_framing} but {other} sees a {other_framing}: explain runs with \
     different input profiles one at a time"
)]
pub struct FramingMismatch {
    pub first: String,
    pub first_framing: String,
    pub other: String,
    pub other_framing: String,
}
