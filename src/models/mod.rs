//! Detectors. Every model implements [`Detector`]: a forward pass with a train flag, named
//! layers reachable by a hook (for Grad-CAM), and its parameter store. The tensor ops they
//! run on live in `crate::ops`; this module holds the detectors and their layers only.

pub mod frozen;
pub mod import;
pub mod layers;
pub mod params;
pub mod simplenet;
pub mod xception;

use candle_core::{DType, Device, Tensor};

pub use params::{ModelError, Params};
pub use simplenet::SimpleNet;
pub use xception::{Xception, XceptionSpec};

use crate::config::ModelKind;

/// Called with each named layer's output during a hooked forward pass; may return a
/// replacement (e.g. the activation plus a zero probe whose gradient is d score / d A). A
/// named layer's output is what a forward hook on the PyTorch module of that name sees
/// (a conv's output before its batch norm or ReLU), so that Grad-CAM at `conv3` means what
/// it means in pytorch-grad-cam.
pub type LayerHook<'a> = dyn FnMut(&str, Tensor) -> candle_core::Result<Tensor> + 'a;

/// A face-manipulation detector: logits `[real, fake]` for a batch of NCHW images.
pub trait Detector: Send {
    fn kind(&self) -> ModelKind;

    /// Logits of shape `[N, 2]`. `train` selects training behaviour (batch norm, dropout).
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_hooked(xs, train, &mut |_, t| Ok(t))
    }

    /// The forward pass with `hook` applied to every named layer's output.
    fn forward_hooked(
        &self,
        xs: &Tensor,
        train: bool,
        hook: &mut LayerHook<'_>,
    ) -> candle_core::Result<Tensor>;

    /// Names of the layers `forward_hooked` reports, input to output.
    fn layer_names(&self) -> &'static [&'static str];

    fn params(&self) -> &Params;

    /// A frozen copy for evaluation (`frozen.rs`), or `None` where the frozen path does not
    /// run this model (off the CPU, not f32). Built from the current weights: rebuild it
    /// after they change.
    fn freeze(&self) -> candle_core::Result<Option<frozen::FrozenNet>> {
        Ok(None)
    }

    /// Number of trainable parameters.
    fn param_count(&self) -> usize {
        self.params().count()
    }
}

/// A model as evaluation runs it: through its frozen copy where it has one (a loaded run),
/// else through its own forward (a model being trained, whose weights change between
/// evaluations).
#[derive(Clone, Copy)]
pub struct Evaluator<'a> {
    model: &'a dyn Detector,
    frozen: Option<&'a frozen::FrozenNet>,
}

impl<'a> Evaluator<'a> {
    /// `model`, evaluated through `frozen` when given (which must be frozen from it).
    pub fn new(model: &'a dyn Detector, frozen: Option<&'a frozen::FrozenNet>) -> Self {
        Evaluator { model, frozen }
    }

    /// `model` through its own forward.
    pub fn unfolded(model: &'a dyn Detector) -> Self {
        Evaluator::new(model, None)
    }

    /// Logits `[N, 2]` of a batch, without gradients.
    pub fn logits(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        match self.frozen {
            Some(frozen) if xs.device().is_cpu() && !xs.track_op() => frozen.logits(xs),
            _ => self.model.forward_t(xs, false),
        }
    }
}

/// Builds a freshly initialised f32 model of `kind` (PyTorch-style init, seeded).
pub fn build(kind: ModelKind, device: &Device, seed: u64) -> Result<Box<dyn Detector>, ModelError> {
    build_with_dtype(kind, device, DType::F32, seed)
}

/// Builds a model computing in `dtype` (f64 serves exact comparisons with a reference).
pub fn build_with_dtype(
    kind: ModelKind,
    device: &Device,
    dtype: DType,
    seed: u64,
) -> Result<Box<dyn Detector>, ModelError> {
    match kind {
        ModelKind::SimpleNet => Ok(Box::new(SimpleNet::with_dtype(device, dtype, seed)?)),
        ModelKind::Xception => Ok(Box::new(Xception::new(
            &XceptionSpec::detector(),
            device,
            dtype,
            seed,
        )?)),
        ModelKind::LilXception => Ok(Box::new(Xception::new(
            &XceptionSpec::lil(),
            device,
            dtype,
            seed,
        )?)),
    }
}

/// Builds a model of `kind` and loads the checkpoint at `path` into it.
pub fn load(
    kind: ModelKind,
    path: &std::path::Path,
    device: &Device,
) -> Result<Box<dyn Detector>, ModelError> {
    let model = build(kind, device, 0)?;
    model.params().load(path)?;
    Ok(model)
}

/// The layers of `kind` with a spatial output (those Grad-CAM can explain), input to output.
pub fn spatial_layer_names(kind: ModelKind) -> Vec<&'static str> {
    let all: &[&'static str] = match kind {
        ModelKind::SimpleNet => &simplenet::LAYERS,
        ModelKind::Xception => &xception::XCEPTION_LAYERS,
        ModelKind::LilXception => &xception::LIL_LAYERS,
    };
    all.iter()
        .copied()
        .filter(|name| !name.starts_with("fc"))
        .collect()
}
