//! Convolution + bias + ReLU + 2×2 stride-2 max-pool as one Candle op (SimpleNet's three
//! stages), on the direct f32 kernels. The full-resolution activation never becomes a
//! tensor: the pool reads it from the kernel's output buffer and keeps, for every pooled
//! value, where its maximum came from. The backward pass scatters the pooled gradient to
//! those positions (ReLU passes it only where the maximum was positive) and hands it to the
//! direct gradient kernels. This saves writing, zeroing and summing the largest gradients of
//! the network in Candle's autograd.
//!
//! Ties in a pool window go to the first maximum in row-major order, as in PyTorch.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor};

use crate::ops::conv::dense::conv2d_relu;
use crate::ops::conv::direct::{self, DirectDims};
use crate::ops::cpu::float::contiguous;
use crate::ops::cpu::stash::ForwardStash;
use crate::ops::geometry::{ConvGeometry, ConvShape, Grouping, PoolGeometry};
use crate::ops::pool::max_pool2d;

/// `maxpool2(relu(conv(x, w) + b))`: fused where the direct kernels run (CPU, f32, stride 1,
/// AVX-512), else the separate conv and pool ops (same values and gradients).
pub fn conv2d_relu_maxpool2(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    let fused = x.device().is_cpu()
        && x.dtype() == candle_core::DType::F32
        && g.stride == 1
        && direct::available();
    if fused {
        return x
            .contiguous()?
            .apply_op3(w, b, ConvReluPool2Op::new(g.padding));
    }
    let pool = PoolGeometry {
        kernel: 2,
        stride: 2,
        padding: 0,
    };
    max_pool2d(&conv2d_relu(x, w, b, g)?, pool)
}

/// Marks a pooled value whose maximum was not positive: ReLU passes no gradient back.
const NO_GRADIENT: u32 = u32::MAX;

/// The sizes of the fused op.
#[derive(Clone, Copy, Debug)]
struct PoolDims {
    conv: DirectDims,
    ph: usize,
    pw: usize,
}

impl PoolDims {
    fn new(x: &[usize], w: &[usize], pad: usize) -> candle_core::Result<PoolDims> {
        let g = ConvGeometry {
            stride: 1,
            padding: pad,
        };
        let s = ConvShape::new("conv-pool", x, w, g, Grouping::Dense)?;
        if s.oh < 2 || s.ow < 2 {
            candle_core::bail!("conv-pool: input {x:?} leaves no 2x2 window to pool")
        }
        let conv = DirectDims {
            n: s.n,
            c_in: s.c_in,
            h: s.h,
            w: s.w,
            c_out: s.c_out,
            k: s.k,
            pad,
        };
        Ok(PoolDims {
            conv,
            ph: conv.oh() / 2,
            pw: conv.ow() / 2,
        })
    }
    fn pooled_per_image(&self) -> usize {
        self.conv.c_out * self.ph * self.pw
    }
}

/// Where each pooled value's maximum lies in its wide conv plane, per image and channel.
type Argmax = Arc<Vec<u32>>;

/// The forward op: `maxpool2(relu(conv(x, w) + b))`, stride-1 convolution.
pub struct ConvReluPool2Op {
    padding: usize,
    argmax: ForwardStash<Vec<u32>>,
}

impl ConvReluPool2Op {
    pub fn new(padding: usize) -> ConvReluPool2Op {
        ConvReluPool2Op {
            padding,
            argmax: ForwardStash::default(),
        }
    }
}

impl CustomOp3 for ConvReluPool2Op {
    fn name(&self) -> &'static str {
        "fakelens-conv2d-relu-maxpool2"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = PoolDims::new(xl.dims(), wl.dims(), self.padding)?;
        let (x, w, b) = (
            contiguous::<f32>(xs, xl)?,
            contiguous::<f32>(ws, wl)?,
            contiguous::<f32>(bs, bl)?,
        );
        if b.len() != d.conv.c_out {
            candle_core::bail!("conv-pool bias has {} values for {}", b.len(), d.conv.c_out)
        }
        let wp = d.conv.wp();
        let mut pooled = vec![(0.0f32, NO_GRADIENT); d.conv.n * d.pooled_per_image()];
        direct::forward_with(
            x,
            w,
            &d.conv,
            &mut pooled,
            d.pooled_per_image(),
            &|out, wide, plen| {
                for (c, &bias) in b.iter().enumerate() {
                    let plane = &wide[c * plen..(c + 1) * plen];
                    let out = &mut out[c * d.ph * d.pw..(c + 1) * d.ph * d.pw];
                    for py in 0..d.ph {
                        for px in 0..d.pw {
                            let top = 2 * py * wp + 2 * px;
                            let mut best = (0.0f32, top);
                            let mut first = true;
                            for at in [top, top + 1, top + wp, top + wp + 1] {
                                let relu = (plane[at] + bias).max(0.0);
                                if first || relu > best.0 {
                                    best = (relu, at);
                                    first = false;
                                }
                            }
                            let index = if best.0 > 0.0 {
                                best.1 as u32
                            } else {
                                NO_GRADIENT
                            };
                            out[py * d.pw + px] = (best.0, index);
                        }
                    }
                }
            },
        );
        let (values, argmax): (Vec<f32>, Vec<u32>) = pooled.into_iter().unzip();
        self.argmax.put(argmax);
        Ok((
            CpuStorage::F32(values),
            Shape::from((d.conv.n, d.conv.c_out, d.ph, d.pw)),
        ))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let argmax = self.argmax.get("conv-pool")?;
        let d = PoolDims::new(x.dims(), w.dims(), self.padding)?;
        let grad = grad.contiguous()?;
        let pass = |part| PooledGrad {
            dims: d,
            argmax: argmax.clone(),
            part,
        };
        let grad_x = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &pass(Part::Input))?)
        } else {
            None
        };
        let grad_w = if w.track_op() {
            Some(grad.apply_op2_no_bwd(x, &pass(Part::Weight))?)
        } else {
            None
        };
        let grad_b = if b.track_op() {
            Some(grad.apply_op1_no_bwd(&pass(Part::Bias))?)
        } else {
            None
        };
        Ok((grad_x, grad_w, grad_b))
    }
}

#[derive(Clone, Copy)]
enum Part {
    Input,
    Weight,
    Bias,
}

/// One gradient of the fused op, from the pooled gradient and the recorded maxima.
struct PooledGrad {
    dims: PoolDims,
    argmax: Argmax,
    part: Part,
}

impl PooledGrad {
    /// Values of the pooled gradient `g` paired with their conv-plane positions, per image
    /// and channel, skipping the ones ReLU blocks.
    fn routed<'a>(
        &'a self,
        g: &'a [f32],
        n: usize,
        c: usize,
    ) -> impl Iterator<Item = (usize, f32)> + 'a {
        let per_channel = self.dims.ph * self.dims.pw;
        let start = (n * self.dims.conv.c_out + c) * per_channel;
        self.argmax[start..start + per_channel]
            .iter()
            .zip(&g[start..start + per_channel])
            .filter(|(at, _)| **at != NO_GRADIENT)
            .map(|(at, v)| (*at as usize, *v))
    }

    fn check(&self, g: &[f32]) -> candle_core::Result<()> {
        if g.len() != self.argmax.len()
            || g.len() != self.dims.conv.n * self.dims.pooled_per_image()
        {
            candle_core::bail!("conv-pool backward: gradient size does not match its forward pass")
        }
        Ok(())
    }
}

impl CustomOp1 for PooledGrad {
    fn name(&self) -> &'static str {
        "fakelens-conv-pool-grad-bias"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous::<f32>(gs, gl)?;
        self.check(g)?;
        let d = self.dims.conv;
        let mut db = vec![0.0f32; d.c_out];
        for (c, sum) in db.iter_mut().enumerate() {
            for n in 0..d.n {
                *sum += self.routed(g, n, c).map(|(_, v)| v).sum::<f32>();
            }
        }
        Ok((CpuStorage::F32(db), Shape::from(d.c_out)))
    }
}

impl CustomOp2 for PooledGrad {
    fn name(&self) -> &'static str {
        match self.part {
            Part::Input => "fakelens-conv-pool-grad-input",
            _ => "fakelens-conv-pool-grad-weight",
        }
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        other: &CpuStorage,
        ol: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let g = contiguous::<f32>(gs, gl)?;
        self.check(g)?;
        let other = contiguous::<f32>(other, ol)?;
        let d = self.dims.conv;
        let builder = |n: usize, planes: &mut [f32], stride: usize, lead: usize| {
            for c in 0..d.c_out {
                let plane = &mut planes[c * stride + lead..(c + 1) * stride];
                for (at, v) in self.routed(g, n, c) {
                    // `at` lies in the first oh rows of wp: inside the plane's wide part.
                    if let Some(slot) = plane.get_mut(at) {
                        *slot = v;
                    }
                }
            }
        };
        match self.part {
            Part::Input => {
                let dx = direct::grad_input_with(&builder, other, &d);
                Ok((CpuStorage::F32(dx), Shape::from((d.n, d.c_in, d.h, d.w))))
            }
            _ => {
                let dw = direct::grad_weight_with(other, &builder, &d);
                Ok((
                    CpuStorage::F32(dw),
                    Shape::from((d.c_out, d.c_in, d.k, d.k)),
                ))
            }
        }
    }
}
