//! SimpleNet, the course project's baseline CNN: three 7×7 conv + 2×2 max-pool stages and
//! three fully connected layers (16,901,762 parameters). Keys match the PyTorch module's
//! `state_dict()`: `conv1.weight`, `conv1.bias`, …, `fc3.bias`.

use candle_core::{DType, Device, Tensor};

use super::layers::{mlp_forward, param};
use super::{Detector, LayerHook, ModelError, Params};
use crate::config::ModelKind;
use crate::ops::conv::dense::conv2d;
use crate::ops::conv::fused_pool::conv2d_relu_maxpool2;
use crate::ops::geometry::ConvGeometry;
use crate::ops::geometry::PoolGeometry;
use crate::ops::pool::max_pool2d;

const CONVS: [(&str, usize, usize); 3] = [("conv1", 3, 6), ("conv2", 6, 16), ("conv3", 16, 24)];
const FCS: [(&str, usize, usize); 3] = [
    ("fc1", 24 * 26 * 26, 1024),
    ("fc2", 1024, 256),
    ("fc3", 256, 2),
];
const KERNEL: usize = 7;
const GEOMETRY: ConvGeometry = ConvGeometry {
    stride: 1,
    padding: 0,
};
const POOL: PoolGeometry = PoolGeometry {
    kernel: 2,
    stride: 2,
    padding: 0,
};

/// The named layers, in order; each is reported as its PyTorch module's output (before the
/// ReLU that `forward` applies to it).
pub(crate) const LAYERS: [&str; 6] = ["conv1", "conv2", "conv3", "fc1", "fc2", "fc3"];

pub struct SimpleNet {
    pub(super) params: Params,
    pub(super) convs: Vec<(Tensor, Tensor)>,
    pub(super) fcs: Vec<candle_nn::Linear>,
}

impl SimpleNet {
    /// A SimpleNet initialised as PyTorch initialises Conv2d and Linear: weights and biases
    /// uniform in ±1/√fan_in, drawn from `seed`.
    pub fn new(device: &Device, seed: u64) -> Result<SimpleNet, ModelError> {
        SimpleNet::with_dtype(device, DType::F32, seed)
    }

    /// The same network computing in `dtype` (f64 for exact reference checks).
    pub fn with_dtype(device: &Device, dtype: DType, seed: u64) -> Result<SimpleNet, ModelError> {
        let mut params = Params::with_dtype(ModelKind::SimpleNet.name(), device, dtype, seed);
        let mut convs = Vec::new();
        for (name, c_in, c_out) in CONVS {
            let bound = 1.0 / ((c_in * KERNEL * KERNEL) as f64).sqrt();
            let w = params.uniform(
                &format!("{name}.weight"),
                &[c_out, c_in, KERNEL, KERNEL],
                bound,
            )?;
            let b = params.uniform(&format!("{name}.bias"), &[c_out], bound)?;
            convs.push((w, b));
        }
        let mut fcs = Vec::new();
        for (name, c_in, c_out) in FCS {
            let bound = 1.0 / (c_in as f64).sqrt();
            let w = params.uniform(&format!("{name}.weight"), &[c_out, c_in], bound)?;
            let b = params.uniform(&format!("{name}.bias"), &[c_out], bound)?;
            fcs.push(candle_nn::Linear::new(w, Some(b)));
        }
        Ok(SimpleNet { params, convs, fcs })
    }

    /// The fully connected head on the last pooled features.
    fn head(
        &self,
        xs: &Tensor,
        train: bool,
        hook: &mut LayerHook<'_>,
    ) -> candle_core::Result<Tensor> {
        mlp_forward(&self.fcs, &xs.flatten_from(1)?, train, |i, t| {
            hook(FCS[i].0, t)
        })
    }
}

impl Detector for SimpleNet {
    fn kind(&self) -> ModelKind {
        ModelKind::SimpleNet
    }

    /// Without a hook the conv stages run fused with their pools (`conv_pool.rs`): the
    /// same values without the full-size activations.
    fn forward_t(&self, xs: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut xs = xs.clone();
        for (w, b) in &self.convs {
            xs = conv2d_relu_maxpool2(&xs, &param(w, train), &param(b, train), GEOMETRY)?;
        }
        self.head(&xs, train, &mut |_, t| Ok(t))
    }

    fn forward_hooked(
        &self,
        xs: &Tensor,
        train: bool,
        hook: &mut LayerHook<'_>,
    ) -> candle_core::Result<Tensor> {
        let mut xs = xs.clone();
        for ((name, _, _), (w, b)) in CONVS.iter().zip(&self.convs) {
            let conv = conv2d(&xs, &param(w, train), &param(b, train), GEOMETRY)?;
            xs = max_pool2d(&hook(name, conv)?.relu()?, POOL)?;
        }
        self.head(&xs, train, hook)
    }

    fn layer_names(&self) -> &'static [&'static str] {
        &LAYERS
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn freeze(&self) -> candle_core::Result<Option<super::frozen::FrozenNet>> {
        super::frozen::simplenet::freeze(self)
    }
}
