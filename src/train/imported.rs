//! A checkpoint trained elsewhere (PyTorch `.pth`, `.safetensors`) turned into a run folder,
//! so that it can be evaluated and compared like a run trained here: the model is built,
//! the checkpoint imported into it (every tensor the model has, key names mapped as for
//! pretrained backbones), and saved as `model.safetensors` beside a `run.json` that says
//! where it came from and has no training history.

use crate::data::profile::{Framing, InputProfile};
use std::path::{Path, PathBuf};

use candle_core::Device;

use crate::config::{ModelKind, TrainConfig};
use crate::models::import::{ImportReport, import_checkpoint};
use crate::models::{self, ModelError};
use crate::runs::layout::{CHECKPOINT_FILE, new_run_dir, now_rfc3339};
use crate::runs::record::{HistoryError, RunRecord, RunStatus};

/// Why a checkpoint could not become a run.
#[derive(Debug, thiserror::Error)]
pub enum ImportRunError {
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    History(#[from] HistoryError),
    #[error(
        "{file}: none of its tensors belong to a {model} (is it a checkpoint of another model?)"
    )]
    NothingLoaded { file: PathBuf, model: &'static str },
}

/// Imports `file` as a `model` into a new folder under `runs_dir`; returns the folder and
/// what the import loaded.
pub fn import_as_run(
    file: &Path,
    model: ModelKind,
    runs_dir: &Path,
) -> Result<(PathBuf, ImportReport), ImportRunError> {
    let detector = models::build(model, &Device::Cpu, 0)?;
    let report = import_checkpoint(detector.as_ref(), file)?;
    if report.loaded.is_empty() {
        return Err(ImportRunError::NothingLoaded {
            file: file.to_path_buf(),
            model: model.label(),
        });
    }
    let run_dir = new_run_dir(runs_dir, model);
    std::fs::create_dir_all(&run_dir).map_err(|source| HistoryError::Write {
        path: run_dir.clone(),
        source,
    })?;
    detector.params().save(&run_dir.join(CHECKPOINT_FILE))?;
    let record = RunRecord {
        run_id: run_dir
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        created: now_rfc3339(),
        model,
        param_count: detector.param_count(),
        dataset: PathBuf::new(),
        normalization: model.normalization(),
        config: TrainConfig {
            model,
            pretrained: Some(file.to_path_buf()),
            input: Framing::Whole,
            photo_augment: None,
            ..TrainConfig::default()
        },
        device: "cpu".into(),
        initialization: format!("imported: {}", report.summary()),
        train_images: 0,
        val_images: 0,
        test_images: 0,
        unreadable: Vec::new(),
        // Nothing says how it was trained: it is shown whole images unless overridden.
        input_profile: Some(InputProfile::new(Framing::Whole, model.normalization())),
        no_face: Vec::new(),
        temperature: None,
        val_threshold: None,
        epochs: Vec::new(),
        step_losses: Vec::new(),
        best_epoch: None,
        best_val_acc: None,
        test_acc_at_best: None,
        status: RunStatus::Imported,
    };
    record.save(&run_dir)?;
    Ok((run_dir, report))
}
