//! Importing a user-supplied pretrained checkpoint into a model's backbone: PyTorch `.pth` /
//! `.pth.tar` (read by Candle's pickle reader; a `state_dict` nested under `state_dict`,
//! `model` or `model_state_dict` is found too) or `.safetensors`. Key spellings of the
//! common Xception ports are mapped onto tstandley's: prefixes such as `module.` are
//! dropped, Cadene/timm's `last_linear` is the `fc` it replaced, and 2-D pointwise weights
//! (Keras conversions) become 1×1 convolutions. Nothing is downloaded, ever.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};

use super::{Detector, ModelError};
use crate::config::ModelKind;

/// What an import did, key by key.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ImportReport {
    pub file: PathBuf,
    /// Keys loaded into the model.
    pub loaded: Vec<String>,
    /// Model keys the file did not have (they keep their fresh initialisation).
    pub missing: Vec<String>,
    /// File keys the model does not have (ignored; e.g. the 1000-class `fc`).
    pub unexpected: Vec<String>,
}

impl ImportReport {
    /// One line for the UI and the log.
    pub fn summary(&self) -> String {
        format!(
            "{}: {} tensors loaded, {} missing (left as initialised), {} unexpected (ignored)",
            self.file.display(),
            self.loaded.len(),
            self.missing.len(),
            self.unexpected.len()
        )
    }
}

/// The one-line conversion for checkpoints in PyTorch's pre-1.6 format, into a plain
/// state_dict named after `model`. It loads with `weights_only=True`, which refuses to run
/// the code a pickle may carry: the file is untrusted, so no other advice is given.
fn conversion_hint(path: &Path, model: ModelKind) -> String {
    format!(
        "it is in PyTorch's legacy (pre-1.6) format, which only PyTorch reads; convert it once \
         (weights only: code inside the file is refused, never run) with: \
         python3 -c \"import torch; sd = torch.load('{}', map_location='cpu', \
         weights_only=True); sd = sd.get('state_dict', sd); torch.save({{k: v for k, v in \
         sd.items() if isinstance(v, torch.Tensor)}}, '{}.pth')\" and import {}.pth instead. \
         If torch.load refuses it, the file holds more than weights: do not load it any \
         other way",
        path.display(),
        model.name(),
        model.name()
    )
}

/// Reads every tensor of a checkpoint file, on the CPU.
fn read_tensors(path: &Path, model: ModelKind) -> Result<Vec<(String, Tensor)>, ModelError> {
    let read_err = |reason: String| ModelError::Read {
        path: path.to_path_buf(),
        reason,
    };
    let mut magic = [0u8; 4];
    {
        use std::io::Read;
        let mut file = std::fs::File::open(path).map_err(|e| read_err(e.to_string()))?;
        file.read(&mut magic).map_err(|e| read_err(e.to_string()))?;
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".safetensors") {
        let tensors = candle_core::safetensors::load(path, &Device::Cpu)
            .map_err(|e| read_err(format!("not a valid safetensors file ({e})")))?;
        return Ok(tensors.into_iter().collect());
    }
    if magic.starts_with(&[0x80]) {
        return Err(read_err(conversion_hint(path, model)));
    }
    if !magic.starts_with(b"PK") {
        return Err(read_err(
            "neither a PyTorch checkpoint (.pth, .pth.tar) nor a .safetensors file".into(),
        ));
    }
    let mut last_error = String::new();
    for key in [
        None,
        Some("state_dict"),
        Some("model"),
        Some("model_state_dict"),
    ] {
        match candle_core::pickle::read_all_with_key(path, key) {
            Ok(tensors) if !tensors.is_empty() => return Ok(tensors),
            Ok(_) => {}
            Err(e) => last_error = e.to_string(),
        }
    }
    Err(read_err(if last_error.is_empty() {
        "the file holds no tensors".into()
    } else {
        format!("cannot read it as a PyTorch checkpoint ({last_error})")
    }))
}

/// The tstandley spelling of a key from another Xception port.
pub fn normalize_key(key: &str) -> String {
    let mut key = key;
    for prefix in ["module.", "model.", "backbone.", "net.", "encoder."] {
        if let Some(rest) = key.strip_prefix(prefix) {
            key = rest;
        }
    }
    key.replacen("last_linear.", "fc.", 1)
}

/// Loads every tensor of `path` whose (normalised) key the model has, after checking its
/// shape, and reports what was loaded, missing and unexpected. A wrong-shape tensor is an
/// error naming the key and both shapes, and nothing is loaded then.
pub fn import_checkpoint(model: &dyn Detector, path: &Path) -> Result<ImportReport, ModelError> {
    let mut tensors = read_tensors(path, model.kind())?;
    // In key order, so that the first wrong-shape tensor named is always the same one.
    tensors.sort_by(|a, b| a.0.cmp(&b.0));
    let params = model.params();
    let mut plan = Vec::new();
    let mut unexpected = Vec::new();
    let mut loaded = BTreeSet::new();
    for (raw, value) in tensors {
        let key = normalize_key(&raw);
        let Some(var) = params.get(&key) else {
            unexpected.push(raw);
            continue;
        };
        let value = match (value.dims(), var.dims()) {
            // A Keras-converted pointwise weight: [out, in] for a [out, in, 1, 1] conv.
            (&[o, i], &[o2, i2, 1, 1]) if o == o2 && i == i2 => value.reshape((o, i, 1, 1))?,
            (found, expected) if found != expected => {
                return Err(ModelError::ShapeMismatch {
                    path: path.to_path_buf(),
                    model: model.kind().name(),
                    key,
                    expected: expected.to_vec(),
                    found: found.to_vec(),
                });
            }
            _ => value,
        };
        loaded.insert(key.clone());
        plan.push((var.clone(), value));
    }
    for (var, value) in plan {
        var.set(&value.to_dtype(var.dtype())?.to_device(var.device())?)?;
    }
    let missing = params
        .named_vars()
        .chain(params.named_buffers())
        .map(|(k, _)| k.to_string())
        .filter(|k| !loaded.contains(k))
        .collect();
    unexpected.sort();
    Ok(ImportReport {
        file: path.to_path_buf(),
        loaded: loaded.into_iter().collect(),
        missing,
        unexpected,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The legacy-format advice keeps the untrusted pickle's code from running and names the
    /// converted file after the model it is for.
    #[test]
    fn legacy_conversion_hint_is_safe_and_names_the_model() {
        for model in ModelKind::ALL {
            let hint = conversion_hint(Path::new("/tmp/old.pth"), model);
            assert!(!hint.contains("weights_only=False"), "{hint}");
            assert!(hint.contains("weights_only=True"), "{hint}");
            assert!(hint.contains(&format!("'{}.pth'", model.name())), "{hint}");
            assert!(hint.contains("'/tmp/old.pth'"), "{hint}");
        }
        let hint = conversion_hint(Path::new("old.pth"), ModelKind::SimpleNet);
        assert!(!hint.contains("xception"), "{hint}");
    }
}
