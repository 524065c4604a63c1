//! Xception (Chollet 2017) in the layout of tstandley/Xception-PyTorch, which the course
//! used: entry convs, twelve blocks of separable convolutions with batch norm and ReLU
//! (strided blocks end in a padded 3×3 max-pool and add a 1×1 strided `skip` + `skipbn`),
//! exit separable convs, global average pooling and a classifier head. Two presets of the
//! same code: the detector (ImageNet backbone, MLP head 2048-1000-256-64-2, 23,128,786
//! parameters) and the course project's LilXception (1,811,372). State-dict keys equal the
//! PyTorch model's (`block1.rep.0.conv1.weight`, `block1.skipbn.running_mean`, `fc.0.weight`…).

use candle_core::{DType, Device, Tensor};

use super::layers::{BatchNorm, SeparableConv, mlp_forward, param};
use super::{Detector, LayerHook, ModelError, Params};
use crate::config::ModelKind;
use crate::ops::conv::dense::conv2d;
use crate::ops::geometry::ConvGeometry;
use crate::ops::geometry::PoolGeometry;
use crate::ops::pool::max_pool2d;

/// One block: `(name, c_in, c_out, reps, stride, start_with_relu, grow_first)`.
type BlockSpec = (&'static str, usize, usize, usize, usize, bool, bool);

/// The architecture of one preset.
pub struct XceptionSpec {
    pub kind: ModelKind,
    blocks: Vec<BlockSpec>,
    /// Output channels of the exit flow's two separable convs (conv3, conv4).
    exit: (usize, usize),
    /// Widths of the classifier head, from the pooled features to the logits.
    head: &'static [usize],
}

const MIDDLE_NAMES: [&str; 8] = [
    "block4", "block5", "block6", "block7", "block8", "block9", "block10", "block11",
];

impl XceptionSpec {
    /// The course's Xception with FakeLens' MLP head.
    pub fn detector() -> XceptionSpec {
        let mut blocks = vec![
            ("block1", 64, 128, 2, 2, false, true),
            ("block2", 128, 256, 2, 2, true, true),
            ("block3", 256, 728, 2, 2, true, true),
        ];
        blocks.extend(
            MIDDLE_NAMES
                .iter()
                .map(|&name| (name, 728, 728, 3, 1, true, true)),
        );
        blocks.push(("block12", 728, 1024, 2, 2, true, false));
        XceptionSpec {
            kind: ModelKind::Xception,
            blocks,
            exit: (1536, 2048),
            head: &[2048, 1000, 256, 64, 2],
        }
    }

    /// The ImageNet classifier layout (1000-class `fc`), as pretrained checkpoints hold it.
    pub fn imagenet() -> XceptionSpec {
        XceptionSpec {
            head: &[2048, 1000],
            ..XceptionSpec::detector()
        }
    }

    /// The course project's compact Xception: width 256, two separable convs per middle
    /// block, four middle blocks, exit convs 400/500 and a four-layer head.
    pub fn lil() -> XceptionSpec {
        let mut blocks = vec![
            ("block1", 64, 128, 2, 2, false, true),
            ("block2", 128, 256, 2, 2, true, true),
            ("block3", 256, 256, 2, 2, true, true),
        ];
        blocks.extend(
            MIDDLE_NAMES[..4]
                .iter()
                .map(|&name| (name, 256, 256, 2, 1, true, true)),
        );
        blocks.push(("block12", 256, 512, 2, 2, true, false));
        XceptionSpec {
            kind: ModelKind::LilXception,
            blocks,
            exit: (400, 500),
            head: &[500, 200, 100, 10, 2],
        }
    }
}

pub(super) enum Layer {
    Relu,
    Separable(SeparableConv),
    Norm(BatchNorm),
    Pool(usize),
}

pub(super) struct Block {
    pub(super) rep: Vec<Layer>,
    pub(super) skip: Option<(Tensor, Tensor, BatchNorm, usize)>,
}

impl Block {
    fn new(params: &mut Params, spec: BlockSpec) -> candle_core::Result<Block> {
        let (name, c_in, c_out, reps, stride, start_with_relu, grow_first) = spec;
        // The PyTorch module list first, so that indices (the `rep.N` keys) match.
        let mut plan: Vec<(usize, usize)> = Vec::new(); // separable convs: (c_in, c_out)
        let mut filters = c_in;
        if grow_first {
            plan.push((c_in, c_out));
            filters = c_out;
        }
        for _ in 1..reps {
            plan.push((filters, filters));
        }
        if !grow_first {
            plan.push((c_in, c_out));
        }
        let mut rep = Vec::new();
        let mut index = 0;
        for (i, &(a, b)) in plan.iter().enumerate() {
            if i > 0 || start_with_relu {
                rep.push(Layer::Relu);
                index += 1;
            }
            rep.push(Layer::Separable(SeparableConv::new(
                params,
                &format!("{name}.rep.{index}"),
                a,
                b,
            )?));
            rep.push(Layer::Norm(BatchNorm::new(
                params,
                &format!("{name}.rep.{}", index + 1),
                b,
            )?));
            index += 2;
        }
        if stride != 1 {
            rep.push(Layer::Pool(stride));
        }
        let skip = if c_out != c_in || stride != 1 {
            let bound = 1.0 / (c_in as f64).sqrt();
            let w = params.uniform(&format!("{name}.skip.weight"), &[c_out, c_in, 1, 1], bound)?;
            let zeros = Tensor::zeros(c_out, params.dtype(), params.device())?;
            let bn = BatchNorm::new(params, &format!("{name}.skipbn"), c_out)?;
            Some((w, zeros, bn, stride))
        } else {
            None
        };
        Ok(Block { rep, skip })
    }

    fn forward(&self, input: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        let mut x = input.clone();
        let mut relu_pending = false;
        for layer in &self.rep {
            if relu_pending && !matches!(layer, Layer::Separable(_)) {
                x = x.relu()?;
                relu_pending = false;
            }
            x = match layer {
                // Deferred: a following separable conv applies it inside its depthwise op.
                Layer::Relu => {
                    relu_pending = true;
                    continue;
                }
                Layer::Separable(conv) => {
                    let relu_first = std::mem::take(&mut relu_pending);
                    conv.forward(&x, relu_first, train)?
                }
                Layer::Norm(bn) => bn.forward(&x, train)?,
                Layer::Pool(stride) => max_pool2d(
                    &x,
                    PoolGeometry {
                        kernel: 3,
                        stride: *stride,
                        padding: 1,
                    },
                )?,
            };
        }
        if relu_pending {
            x = x.relu()?;
        }
        let skip = match &self.skip {
            Some((w, zeros, bn, stride)) => {
                let geometry = ConvGeometry {
                    stride: *stride,
                    padding: 0,
                };
                bn.forward(&conv2d(input, &param(w, train), zeros, geometry)?, train)?
            }
            None => input.clone(),
        };
        x + skip
    }
}

/// Xception or LilXception, by preset.
pub struct Xception {
    kind: ModelKind,
    pub(super) params: Params,
    pub(super) conv1: Tensor,
    pub(super) bn1: BatchNorm,
    pub(super) conv2: Tensor,
    pub(super) bn2: BatchNorm,
    pub(super) blocks: Vec<(&'static str, Block)>,
    pub(super) conv3: SeparableConv,
    pub(super) bn3: BatchNorm,
    pub(super) conv4: SeparableConv,
    pub(super) bn4: BatchNorm,
    pub(super) head: Vec<candle_nn::Linear>,
    zeros: (Tensor, Tensor),
    layer_names: &'static [&'static str],
}

pub(crate) const XCEPTION_LAYERS: [&str; 17] = [
    "conv1", "conv2", "block1", "block2", "block3", "block4", "block5", "block6", "block7",
    "block8", "block9", "block10", "block11", "block12", "conv3", "conv4", "fc",
];
pub(crate) const LIL_LAYERS: [&str; 13] = [
    "conv1", "conv2", "block1", "block2", "block3", "block4", "block5", "block6", "block7",
    "block12", "conv3", "conv4", "fc",
];

impl Xception {
    pub fn new(
        spec: &XceptionSpec,
        device: &Device,
        dtype: DType,
        seed: u64,
    ) -> Result<Xception, ModelError> {
        let mut params = Params::with_dtype(spec.kind.name(), device, dtype, seed);
        let p = &mut params;
        let conv1 = p.uniform("conv1.weight", &[32, 3, 3, 3], 1.0 / 27f64.sqrt())?;
        let bn1 = BatchNorm::new(p, "bn1", 32)?;
        let conv2 = p.uniform("conv2.weight", &[64, 32, 3, 3], 1.0 / 288f64.sqrt())?;
        let bn2 = BatchNorm::new(p, "bn2", 64)?;
        let mut blocks = Vec::new();
        for &b in &spec.blocks {
            blocks.push((b.0, Block::new(p, b)?));
        }
        let last = spec.blocks.last().map_or(64, |b| b.2);
        let (e3, e4) = spec.exit;
        let conv3 = SeparableConv::new(p, "conv3", last, e3)?;
        let bn3 = BatchNorm::new(p, "bn3", e3)?;
        let conv4 = SeparableConv::new(p, "conv4", e3, e4)?;
        let bn4 = BatchNorm::new(p, "bn4", e4)?;
        let single = spec.head.len() == 2;
        let mut head = Vec::new();
        for (i, pair) in spec.head.windows(2).enumerate() {
            let prefix = if single {
                "fc".to_string()
            } else {
                format!("fc.{}", 2 * i)
            };
            let bound = 1.0 / (pair[0] as f64).sqrt();
            let w = p.uniform(&format!("{prefix}.weight"), &[pair[1], pair[0]], bound)?;
            let b = p.uniform(&format!("{prefix}.bias"), &[pair[1]], bound)?;
            head.push(candle_nn::Linear::new(w, Some(b)));
        }
        let zeros = (
            Tensor::zeros(32, dtype, device)?,
            Tensor::zeros(64, dtype, device)?,
        );
        let layer_names: &'static [&'static str] = if spec.kind == ModelKind::LilXception {
            &LIL_LAYERS
        } else {
            &XCEPTION_LAYERS
        };
        Ok(Xception {
            kind: spec.kind,
            params,
            conv1,
            bn1,
            conv2,
            bn2,
            blocks,
            conv3,
            bn3,
            conv4,
            bn4,
            head,
            zeros,
            layer_names,
        })
    }
}

impl Detector for Xception {
    fn kind(&self) -> ModelKind {
        self.kind
    }

    fn forward_hooked(
        &self,
        xs: &Tensor,
        train: bool,
        hook: &mut LayerHook<'_>,
    ) -> candle_core::Result<Tensor> {
        let g = |stride| ConvGeometry { stride, padding: 0 };
        let x = conv2d(xs, &param(&self.conv1, train), &self.zeros.0, g(2))?;
        let x = self.bn1.forward_relu(&hook("conv1", x)?, train)?;
        let x = conv2d(&x, &param(&self.conv2, train), &self.zeros.1, g(1))?;
        let mut x = self.bn2.forward_relu(&hook("conv2", x)?, train)?;
        for (name, block) in &self.blocks {
            x = hook(name, block.forward(&x, train)?)?;
        }
        let x = hook("conv3", self.conv3.forward(&x, false, train)?)?;
        let x = self.bn3.forward_relu(&x, train)?;
        let x = hook("conv4", self.conv4.forward(&x, false, train)?)?;
        let x = self.bn4.forward_relu(&x, train)?;
        let x = mlp_forward(&self.head, &x.mean((2, 3))?, train, |_, t| Ok(t))?;
        hook("fc", x)
    }

    fn layer_names(&self) -> &'static [&'static str] {
        self.layer_names
    }

    fn params(&self) -> &Params {
        &self.params
    }

    fn freeze(&self) -> candle_core::Result<Option<super::frozen::FrozenNet>> {
        super::frozen::xception::freeze(self)
    }
}
