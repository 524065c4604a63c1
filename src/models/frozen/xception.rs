//! Xception and LilXception frozen: the entry convs with `bn1`/`bn2` folded (`conv1`, stride
//! 2, a product whose strips gather its patches, `Rhs::Patches`: no im2col matrix; `conv2`,
//! stride 1, as Winograd's F(2×2, 3×3), or on the direct kernels where that does not run),
//! each block's separable convs with the batch norm after each folded into its pointwise
//! weight, the strided blocks' `skip` 1×1 conv with `skipbn` folded (its subsampled input
//! gathered the same way), the exit convs with `bn3`/`bn4` folded and their ReLU in the
//! product's epilogue. Where the 1×1
//! weight is packed, each separable conv is one product whose strips compute the depthwise
//! conv (through the ReLU before it) as the product reads them (`pointwise::Rhs::Depthwise3x3`), so the depthwise
//! output never reaches memory; a ReLU between two separable convs is applied as the first
//! one stores; a stride-1 block adds its input in the last product's epilogue. A strided
//! block's last product is pooled in bands of output rows (`pointwise::pooled`), its output
//! never stored whole, and its skip conv's product added to each band after the pool; where
//! that does not run, the skip is computed first and the pool adds it.

use super::{
    FoldedWeight, Head, Plan, Scratch, ScratchPool, freezable, per_image, sized, values_of,
};
use crate::models::layers::SeparableConv;
use crate::models::xception::{Block, Layer, Xception};
use crate::ops::conv::dense::im2col_image;
use crate::ops::conv::direct::{self, DirectDims};
use crate::ops::conv::winograd::WinogradConv;
use crate::ops::depthwise::forward_image as depthwise_image;
use crate::ops::geometry::{ConvGeometry, PoolGeometry};
use crate::ops::pointwise::Rhs;
use crate::ops::pointwise::pooled::{PoolResidual, PooledProduct, product_pool_add};
use crate::ops::pointwise::rhs::patch_grid;
use crate::ops::pool::max_pool_add_image;
use crate::ops::pool::stride2_3x3::output_hw;

/// `pointwise(depthwise(relu?(x)))` with the following batch norm folded in.
struct FrozenSeparable {
    depthwise: Vec<f32>,
    pointwise: FoldedWeight,
    relu_first: bool,
}

impl FrozenSeparable {
    fn new(
        conv: &SeparableConv,
        norm: &crate::models::layers::BatchNorm,
        relu_first: bool,
    ) -> candle_core::Result<Self> {
        let (c_out, c_in, _, _) = conv.pointwise.dims4()?;
        let (scale, shift) = norm.eval_affine()?;
        Ok(FrozenSeparable {
            depthwise: values_of(&conv.depthwise)?,
            pointwise: FoldedWeight::fold(
                values_of(&conv.pointwise)?,
                None,
                (c_out, c_in),
                (&scale, &shift),
                true,
            )?,
            relu_first,
        })
    }

    /// `out = act(self(x) [+ residual])` for `x` of `(c, h, w)`; `dw` is scratch.
    #[allow(clippy::too_many_arguments)]
    fn apply(
        &self,
        x: &[f32],
        (c, h, w): (usize, usize, usize),
        dw: &mut Vec<f32>,
        out: &mut Vec<f32>,
        relu: bool,
        residual: Option<&[f32]>,
        threads: usize,
    ) -> candle_core::Result<(usize, usize, usize)> {
        if self.pointwise.is_packed() {
            // The depthwise outputs are computed in each strip the product reads.
            if x.len() < c * h * w || self.depthwise.len() < 9 * c {
                candle_core::bail!("frozen separable conv: input {c}x{h}x{w} too small")
            }
            let rhs = Rhs::Depthwise3x3 {
                x: &x[..c * h * w],
                hw: (h, w),
                taps: &self.depthwise,
                relu: self.relu_first,
            };
            self.pointwise
                .apply(rhs, h * w, out, relu, residual, threads)?;
            return Ok((self.pointwise.rows(), h, w));
        }
        let dw = sized(dw, c * h * w);
        let same = ConvGeometry {
            stride: 1,
            padding: 1,
        };
        let (oh, ow) = depthwise_image(
            x,
            (c, h, w),
            &self.depthwise,
            3,
            same,
            self.relu_first,
            dw,
            threads > 1,
        )?;
        let rhs = Rhs::Dense {
            b: dw,
            ldb: oh * ow,
        };
        self.pointwise
            .apply(rhs, oh * ow, out, relu, residual, threads)?;
        Ok((self.pointwise.rows(), oh, ow))
    }

    /// `y = maxpool₃ₓ₃,₂(self(x)) + residual` without storing `self(x)` whole, where the 1×1
    /// weight is packed (`pointwise::pooled`; `scratch` holds its bands): the pooled shape,
    /// or `None`, touching nothing, where it does not run.
    fn apply_pooled(
        &self,
        x: &[f32],
        (c, h, w): (usize, usize, usize),
        residual: PoolResidual<'_>,
        y: &mut [f32],
        scratch: &mut Vec<f32>,
        threads: usize,
    ) -> Option<(usize, usize, usize)> {
        let weight = self.pointwise.packed()?;
        if x.len() < c * h * w {
            return None;
        }
        let p = PooledProduct {
            weight,
            bias: self.pointwise.bias(),
            relu: false,
            rhs: Rhs::Depthwise3x3 {
                x: &x[..c * h * w],
                hw: (h, w),
                taps: &self.depthwise,
                relu: self.relu_first,
            },
            hw: (h, w),
        };
        let (oh, ow) = output_hw((h, w));
        product_pool_add(p, residual, y, scratch, threads).then_some((
            self.pointwise.rows(),
            oh,
            ow,
        ))
    }
}

struct FrozenBlock {
    rep: Vec<FrozenSeparable>,
    /// Whether `rep[i]` applies a ReLU as its product stores: the ReLU before `rep[i + 1]`,
    /// which reads nothing else (the block's input, which the skip also reads, keeps its
    /// ReLU in the first conv's strips).
    relu_out: Vec<bool>,
    pool_stride: Option<usize>,
    skip: Option<(FoldedWeight, usize)>,
}

impl FrozenBlock {
    fn new(block: &Block) -> candle_core::Result<FrozenBlock> {
        let (mut rep, mut relu_pending, mut pool_stride) = (Vec::new(), false, None);
        let mut conv: Option<&SeparableConv> = None;
        for layer in &block.rep {
            match layer {
                Layer::Relu => relu_pending = true,
                Layer::Separable(c) => conv = Some(c),
                Layer::Norm(bn) => {
                    let Some(c) = conv.take() else {
                        candle_core::bail!("frozen Xception: a batch norm without its conv")
                    };
                    rep.push(FrozenSeparable::new(
                        c,
                        bn,
                        std::mem::take(&mut relu_pending),
                    )?);
                }
                Layer::Pool(stride) => pool_stride = Some(*stride),
            }
        }
        if relu_pending || conv.is_some() {
            candle_core::bail!("frozen Xception: a block that does not end in a batch norm")
        }
        let mut relu_out = vec![false; rep.len()];
        for i in 1..rep.len() {
            relu_out[i - 1] = std::mem::take(&mut rep[i].relu_first);
        }
        let skip = match &block.skip {
            Some((w, _, bn, stride)) => {
                let (c_out, c_in, _, _) = w.dims4()?;
                let (scale, shift) = bn.eval_affine()?;
                let folded =
                    FoldedWeight::fold(values_of(w)?, None, (c_out, c_in), (&scale, &shift), true)?;
                Some((folded, *stride))
            }
            None => None,
        };
        Ok(FrozenBlock {
            rep,
            relu_out,
            pool_stride,
            skip,
        })
    }

    /// The strided 1×1 projection of the block's `input` into `skip` (`dw` is scratch), and
    /// its shape; the input's shape when the block adds its input itself.
    fn skip_branch(
        &self,
        input: &[f32],
        shape: (usize, usize, usize),
        dw: &mut Vec<f32>,
        skip: &mut Vec<f32>,
        threads: usize,
    ) -> candle_core::Result<(usize, usize, usize)> {
        let Some((weight, stride)) = &self.skip else {
            return Ok(shape);
        };
        let (ci, hi, wi) = shape;
        let (oh, ow) = patch_grid((hi, wi), 1, *stride);
        if weight.is_packed() {
            // The product gathers the subsampled pixels as it fills each strip.
            let rhs = Rhs::Patches {
                x: &input[..ci * hi * wi],
                hw: (hi, wi),
                kernel: 1,
                stride: *stride,
            };
            weight.apply(rhs, oh * ow, skip, false, None, threads)?;
        } else {
            // The subsampled input: the im2col matrix of a 1×1 window.
            let geometry = ConvGeometry {
                stride: *stride,
                padding: 0,
            };
            im2col_image(input, shape, 1, geometry, dw)?;
            let rhs = Rhs::Dense {
                b: dw,
                ldb: oh * ow,
            };
            weight.apply(rhs, oh * ow, skip, false, None, threads)?;
        }
        Ok((weight.rows(), oh, ow))
    }

    /// The skip conv's weight where the last conv's pool adds it band by band (a stride-2
    /// pool and skip, both weights packed: `pointwise::pooled`).
    fn skip_in_bands(&self) -> Option<&FoldedWeight> {
        let last_packed = self.rep.last().is_some_and(|c| c.pointwise.is_packed());
        match &self.skip {
            Some((weight, 2)) if weight.is_packed() && last_packed && self.pooled_last() => {
                Some(weight)
            }
            _ => None,
        }
    }

    /// Whether the last conv is pooled band by band (`FrozenSeparable::apply_pooled`): a
    /// 3×3 stride-2 pool after it, and no ReLU as it stores.
    fn pooled_last(&self) -> bool {
        self.pool_stride == Some(2) && self.relu_out.last() == Some(&false)
    }

    /// What the block adds to its rep's output: the skip conv's product, else its input.
    fn branch<'a>(&self, skip: &'a [f32], input: &'a [f32]) -> &'a [f32] {
        if self.skip.is_some() { skip } else { input }
    }

    /// The last conv (`conv`, on `src` of shape `at`) pooled band by band into `y`, its
    /// output never stored whole, with the block's branch added: the skip conv's product
    /// band by band (`skip_in_bands`, from the block's `input` of `shape`), else the skip
    /// already computed (`skip`, of `skip_shape`) or the input. `None` when the pooled product
    /// does not run here; the caller then runs the conv and the pool as separate steps.
    fn apply_pooled_last(
        &self,
        conv: &FrozenSeparable,
        ((src, at), (input, shape), (skip, skip_shape)): PooledOperands<'_>,
        (y, dw): (&mut Vec<f32>, &mut Vec<f32>),
        threads: usize,
    ) -> candle_core::Result<Option<(usize, usize, usize)>> {
        let (ci, hi, wi) = shape;
        let residual = match self.skip_in_bands() {
            Some(weight) => weight
                .packed()
                .zip(input.get(..ci * hi * wi))
                .map(|(packed, x)| PoolResidual::Product {
                    weight: packed,
                    bias: weight.bias(),
                    rhs: Rhs::Patches {
                        x,
                        hw: (hi, wi),
                        kernel: 1,
                        stride: 2,
                    },
                }),
            None => Some(PoolResidual::Values(self.branch(skip, input))),
        };
        let expected = skip_shape.unwrap_or_else(|| {
            let (oh, ow) = output_hw((at.1, at.2));
            (conv.pointwise.rows(), oh, ow)
        });
        let pooled = sized(y, expected.0 * expected.1 * expected.2);
        let Some(out) = residual.and_then(|r| conv.apply_pooled(src, at, r, pooled, dw, threads))
        else {
            return Ok(None);
        };
        if out != expected {
            candle_core::bail!("frozen Xception: pooled {out:?}, skip {expected:?}")
        }
        Ok(Some(out))
    }

    /// The block on `s.buffers[0]` (of `shape`), its output left there.
    fn apply(
        &self,
        s: &mut Scratch,
        shape: (usize, usize, usize),
        threads: usize,
    ) -> candle_core::Result<(usize, usize, usize)> {
        let [input, x, y, dw, skip] = &mut s.buffers;
        let skip_in_bands = self.skip_in_bands();
        // First, while the input is in cache from the op that wrote it (read strided after
        // the rep, it missed to memory); unless the pool adds it band by band.
        let mut skip_shape = match skip_in_bands {
            Some(_) => None,
            None => Some(self.skip_branch(input, shape, dw, skip, threads)?),
        };
        let residual_in_epilogue = self.pool_stride.is_none() && self.skip.is_none();
        let mut at = shape;
        for (i, conv) in self.rep.iter().enumerate() {
            let last = i + 1 == self.rep.len();
            let src: &[f32] = if i == 0 { input } else { x };
            if last && self.pooled_last() {
                let operands = ((src, at), (&input[..], shape), (&skip[..], skip_shape));
                if let Some(out) = self.apply_pooled_last(conv, operands, (y, dw), threads)? {
                    std::mem::swap(input, y);
                    return Ok(out);
                }
                if skip_shape.is_none() {
                    // Not pooled in bands after all: the skip as it runs otherwise.
                    skip_shape = Some(self.skip_branch(input, shape, dw, skip, threads)?);
                }
            }
            let residual = (last && residual_in_epilogue).then_some(&input[..]);
            at = conv.apply(src, at, dw, y, self.relu_out[i], residual, threads)?;
            std::mem::swap(x, y);
        }
        let Some(skip_shape) = skip_shape else {
            candle_core::bail!("frozen Xception: a block without its skip")
        };
        let (c, h, w) = at;
        let branch = self.branch(skip, input);
        match self.pool_stride {
            Some(stride) => {
                let g = PoolGeometry {
                    kernel: 3,
                    stride,
                    padding: 1,
                };
                let pooled = sized(y, skip_shape.0 * skip_shape.1 * skip_shape.2);
                let (oh, ow) = max_pool_add_image(x, at, g, branch, pooled, threads > 1)?;
                if (c, oh, ow) != skip_shape {
                    candle_core::bail!("frozen Xception: pooled {c}x{oh}x{ow}, skip {skip_shape:?}")
                }
                std::mem::swap(input, y);
                Ok((c, oh, ow))
            }
            None => {
                if !residual_in_epilogue {
                    if skip_shape != at {
                        candle_core::bail!("frozen Xception: block {at:?}, skip {skip_shape:?}")
                    }
                    let len = c * h * w;
                    for (v, &b) in x[..len].iter_mut().zip(&branch[..len]) {
                        *v += b;
                    }
                }
                std::mem::swap(input, x);
                Ok((c, h, w))
            }
        }
    }
}

/// `FrozenBlock::apply_pooled_last`'s operands: the last conv's input and shape, the
/// block's input and shape, and the skip buffer with the block's output shape if the skip
/// branch already ran (`skip_branch`: for a block without a skip conv, the buffer is unused
/// and the shape is the input's).
type PooledOperands<'a> = (
    (&'a [f32], (usize, usize, usize)),
    (&'a [f32], (usize, usize, usize)),
    (&'a [f32], Option<(usize, usize, usize)>),
);

/// Whether a convolution's product gathers its patches (`Rhs::Patches`: unpadded and
/// strided, as `conv1`) rather than reading an im2col matrix or running on the direct
/// kernels (stride 1).
fn gathers_patches(geometry: ConvGeometry) -> bool {
    geometry.padding == 0 && geometry.stride > 1
}

/// A dense convolution (im2col + product) with its batch norm folded and a ReLU after.
struct FrozenConv {
    weight: FoldedWeight,
    /// The weight transformed for Winograd's F(2×2, 3×3), for a stride-1 3×3 conv where
    /// AVX-512 is present (`conv2`: 1.5× the direct kernels, `ops/conv/winograd.rs`).
    winograd: Option<WinogradConv>,
    k: usize,
    geometry: ConvGeometry,
}

impl FrozenConv {
    fn new(
        w: &candle_core::Tensor,
        norm: &crate::models::layers::BatchNorm,
        geometry: ConvGeometry,
    ) -> candle_core::Result<Self> {
        let (c_out, c_in, k, _) = w.dims4()?;
        let (scale, shift) = norm.eval_affine()?;
        let weight = FoldedWeight::fold(
            values_of(w)?,
            None,
            (c_out, c_in * k * k),
            (&scale, &shift),
            // A 1×1 conv, or one whose patches the product gathers (`conv2` runs on the
            // Winograd or direct kernels, which read the plain values).
            k == 1 || gathers_patches(geometry),
        )?;
        let winograd = (k == 3 && geometry.stride == 1)
            .then(|| WinogradConv::new(weight.values(), weight.bias().to_vec(), (c_out, c_in)))
            .flatten();
        Ok(FrozenConv {
            weight,
            winograd,
            k,
            geometry,
        })
    }

    fn apply(
        &self,
        x: &[f32],
        shape: (usize, usize, usize),
        col: &mut Vec<f32>,
        out: &mut Vec<f32>,
        threads: usize,
    ) -> candle_core::Result<(usize, usize, usize)> {
        let (c_in, h, w) = shape;
        if let Some(winograd) = &self.winograd {
            let pad = self.geometry.padding;
            let written = WinogradConv::output_hw((h, w), pad).and_then(|(oh, ow)| {
                let out = sized(out, winograd.c_out() * oh * ow);
                winograd.forward_image(x, (h, w), pad, true, out, threads)
            });
            let Some((oh, ow)) = written else {
                candle_core::bail!("frozen conv: input {shape:?} too small")
            };
            return Ok((winograd.c_out(), oh, ow));
        }
        if self.geometry.stride == 1 && direct::available() {
            // The direct kernels: no im2col matrix (288 × 15,625 values for `conv2`).
            let d = DirectDims {
                n: 1,
                c_in,
                h,
                w,
                c_out: self.weight.rows(),
                k: self.k,
                pad: self.geometry.padding,
            };
            let (oh, ow) = (d.oh(), d.ow());
            if x.len() < c_in * h * w || oh == 0 || ow == 0 {
                candle_core::bail!("frozen conv: input {shape:?} too small")
            }
            let out = sized(out, d.c_out * oh * ow);
            let (x, w, b) = (&x[..c_in * h * w], self.weight.values(), self.weight.bias());
            direct::forward_into(x, w, b, &d, true, out);
            return Ok((d.c_out, oh, ow));
        }
        if self.weight.is_packed() && gathers_patches(self.geometry) {
            // The im2col matrix's strips gathered as the product fills them (`conv1`: 27 ×
            // 16,129 values never written).
            let (oh, ow) = patch_grid((h, w), self.k, self.geometry.stride);
            if x.len() < c_in * h * w || oh == 0 || ow == 0 {
                candle_core::bail!("frozen conv: input {shape:?} too small")
            }
            let rhs = Rhs::Patches {
                x: &x[..c_in * h * w],
                hw: (h, w),
                kernel: self.k,
                stride: self.geometry.stride,
            };
            self.weight.apply(rhs, oh * ow, out, true, None, threads)?;
            return Ok((self.weight.rows(), oh, ow));
        }
        let (oh, ow) = im2col_image(x, shape, self.k, self.geometry, col)?;
        let rhs = Rhs::Dense {
            b: col,
            ldb: oh * ow,
        };
        self.weight.apply(rhs, oh * ow, out, true, None, threads)?;
        Ok((self.weight.rows(), oh, ow))
    }
}

pub(crate) struct FrozenXception {
    conv1: FrozenConv,
    conv2: FrozenConv,
    blocks: Vec<FrozenBlock>,
    conv3: FrozenSeparable,
    conv4: FrozenSeparable,
    head: Head,
    scratch: ScratchPool,
}

impl FrozenXception {
    /// The pooled features of one image (`c × h × w` values).
    fn features(
        &self,
        x: &[f32],
        shape: (usize, usize, usize),
        s: &mut Scratch,
        threads: usize,
    ) -> candle_core::Result<Vec<f32>> {
        let at = {
            let [input, a, _, col, _] = &mut s.buffers;
            let at = self.conv1.apply(x, shape, col, a, threads)?;
            self.conv2.apply(a, at, col, input, threads)?
        };
        let mut at = at;
        for block in &self.blocks {
            at = block.apply(s, at, threads)?;
        }
        let [input, x, _, dw, _] = &mut s.buffers;
        let at = self.conv3.apply(input, at, dw, x, true, None, threads)?;
        let (c, h, w) = self.conv4.apply(x, at, dw, input, true, None, threads)?;
        let plane = (h * w).max(1);
        Ok(input[..c * plane]
            .chunks(plane)
            .map(|p| (p.iter().map(|&v| f64::from(v)).sum::<f64>() / plane as f64) as f32)
            .collect())
    }

    pub(crate) fn forward(
        &self,
        values: &[f32],
        n: usize,
        shape: (usize, usize, usize),
    ) -> candle_core::Result<Vec<f32>> {
        let features = per_image(values, n, &self.scratch, &|x, s, threads| {
            self.features(x, shape, s, threads)
        })?;
        self.head.forward(features, n)
    }
}

/// The frozen copy of `model`, or `None` where the frozen path does not run it.
pub(crate) fn freeze(model: &Xception) -> candle_core::Result<Option<super::FrozenNet>> {
    if !freezable(&model.params) {
        return Ok(None);
    }
    let g = |stride| ConvGeometry { stride, padding: 0 };
    let net = FrozenXception {
        conv1: FrozenConv::new(&model.conv1, &model.bn1, g(2))?,
        conv2: FrozenConv::new(&model.conv2, &model.bn2, g(1))?,
        blocks: model
            .blocks
            .iter()
            .map(|(_, b)| FrozenBlock::new(b))
            .collect::<candle_core::Result<_>>()?,
        conv3: FrozenSeparable::new(&model.conv3, &model.bn3, false)?,
        conv4: FrozenSeparable::new(&model.conv4, &model.bn4, false)?,
        head: Head::new(&model.head)?,
        scratch: ScratchPool::default(),
    };
    Ok(Some(super::FrozenNet::new(Plan::Xception(Box::new(net)))))
}
