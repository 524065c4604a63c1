//! The parameter store of a model: named `Var`s whose names equal the PyTorch `state_dict()`
//! keys, PyTorch-style seeded initialisation, and checkpoint save (atomic) and load (every
//! key and shape checked).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Errors building, saving or loading a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Candle(#[from] candle_core::Error),
    #[error("cannot write checkpoint {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot read checkpoint {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{path} is not a {model} checkpoint: it has no tensor '{key}'")]
    MissingKey {
        path: PathBuf,
        model: &'static str,
        key: String,
    },
    #[error(
        "{path} is not a {model} checkpoint: '{key}' has shape {found:?}, {model} expects {expected:?}"
    )]
    ShapeMismatch {
        path: PathBuf,
        model: &'static str,
        key: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("{path} is not a {model} checkpoint: unexpected tensors {keys:?}")]
    UnexpectedKeys {
        path: PathBuf,
        model: &'static str,
        keys: Vec<String>,
    },
}

/// Named trainable tensors, kept in key order, and named buffers (batch-norm running
/// statistics): saved and loaded with the parameters, never trained.
pub struct Params {
    model: &'static str,
    device: Device,
    dtype: DType,
    vars: BTreeMap<String, Var>,
    buffers: BTreeMap<String, Var>,
    rng: ChaCha8Rng,
}

impl Params {
    /// An empty store of f32 parameters whose initial values come from `seed`.
    pub fn new(model: &'static str, device: &Device, seed: u64) -> Params {
        Params::with_dtype(model, device, DType::F32, seed)
    }

    /// An empty store of parameters of `dtype` (f64 serves exact reference checks).
    pub fn with_dtype(model: &'static str, device: &Device, dtype: DType, seed: u64) -> Params {
        Params {
            model,
            device: device.clone(),
            dtype,
            vars: BTreeMap::new(),
            buffers: BTreeMap::new(),
            rng: ChaCha8Rng::seed_from_u64(seed),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Adds a buffer: saved and loaded with the parameters, not trained. A float buffer
    /// computes in the store's dtype; others (PyTorch's i64 `num_batches_tracked`) keep theirs.
    pub fn buffer(&mut self, name: &str, value: Tensor) -> candle_core::Result<Var> {
        let value = if value.dtype().is_float() {
            value.to_dtype(self.dtype)?
        } else {
            value
        };
        let var = Var::from_tensor(&value)?;
        self.buffers.insert(name.to_string(), var.clone());
        Ok(var)
    }

    /// Every buffer, in key order.
    pub fn named_buffers(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.buffers.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The parameter or buffer called `name`.
    pub fn get(&self, name: &str) -> Option<&Var> {
        self.vars.get(name).or_else(|| self.buffers.get(name))
    }

    /// Every parameter and buffer, in key order.
    pub fn all(&self) -> impl Iterator<Item = (&String, &Var)> {
        self.vars.iter().chain(&self.buffers)
    }

    /// Adds a parameter drawn uniformly from ±`bound` (PyTorch's default for Conv2d and
    /// Linear weights and biases is bound = 1/√fan_in).
    pub fn uniform(
        &mut self,
        name: &str,
        shape: &[usize],
        bound: f64,
    ) -> candle_core::Result<Tensor> {
        let count: usize = shape.iter().product();
        let bound = bound as f32;
        let values: Vec<f32> = (0..count)
            .map(|_| self.rng.random_range(-bound..=bound))
            .collect();
        self.insert(name, Tensor::from_vec(values, shape, &self.device)?)
    }

    /// Adds a parameter with the given value.
    pub fn insert(&mut self, name: &str, value: Tensor) -> candle_core::Result<Tensor> {
        let var = Var::from_tensor(&value.to_dtype(self.dtype)?)?;
        let tensor = var.as_tensor().clone();
        self.vars.insert(name.to_string(), var);
        Ok(tensor)
    }

    /// Every trainable variable, in key order.
    pub fn vars(&self) -> Vec<Var> {
        self.vars.values().cloned().collect()
    }

    /// Name → variable.
    pub fn named_vars(&self) -> impl Iterator<Item = (&str, &Var)> {
        self.vars.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// Total number of trainable values.
    pub fn count(&self) -> usize {
        self.vars.values().map(|v| v.elem_count()).sum()
    }

    /// Saves every parameter as safetensors under its PyTorch key, atomically.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let tensors: HashMap<String, Tensor> = self
            .all()
            .map(|(k, v)| (k.clone(), v.as_tensor().clone()))
            .collect();
        crate::fsutil::write_atomic_with(path, |tmp| {
            candle_core::safetensors::save(&tensors, tmp)
                .map_err(|e| std::io::Error::other(e.to_string()))
        })
        .map_err(|source| ModelError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Loads a safetensors checkpoint into the existing variables. Refuses, naming the key,
    /// a checkpoint with a missing tensor, a wrong shape or extra tensors.
    pub fn load(&self, path: &Path) -> Result<(), ModelError> {
        let read_err = |reason: String| ModelError::Read {
            path: path.to_path_buf(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| read_err(e.to_string()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &self.device)
            .map_err(|e| read_err(format!("not a valid safetensors file ({e})")))?;
        self.assign(path, tensors)
    }

    /// Assigns named tensors to the variables after checking names and shapes.
    pub fn assign(&self, path: &Path, tensors: HashMap<String, Tensor>) -> Result<(), ModelError> {
        let mut unexpected: Vec<String> = tensors
            .keys()
            .filter(|k| self.get(k).is_none())
            .cloned()
            .collect();
        if !unexpected.is_empty() {
            unexpected.sort();
            unexpected.truncate(8);
            return Err(ModelError::UnexpectedKeys {
                path: path.to_path_buf(),
                model: self.model,
                keys: unexpected,
            });
        }
        for (key, var) in self.all() {
            let value = tensors.get(key).ok_or_else(|| ModelError::MissingKey {
                path: path.to_path_buf(),
                model: self.model,
                key: key.clone(),
            })?;
            if value.dims() != var.dims() {
                return Err(ModelError::ShapeMismatch {
                    path: path.to_path_buf(),
                    model: self.model,
                    key: key.clone(),
                    expected: var.dims().to_vec(),
                    found: value.dims().to_vec(),
                });
            }
        }
        for (key, var) in self.all() {
            if let Some(value) = tensors.get(key) {
                var.set(&value.to_dtype(var.dtype())?)?;
            }
        }
        Ok(())
    }
}
