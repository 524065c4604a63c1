//! Evaluation-mode batch norm as one op: `y = x·scale[c] + shift[c]`, optionally followed by
//! a ReLU, with a backward that returns only the input gradient. Stock Candle ops need a
//! broadcast multiply and add, whose backward also differentiates the (detached) scale and
//! shift over the whole activation and zero-fills a gradient for each: about ten passes over
//! the activation per layer in a saliency map, against one here.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::cpu::float::{CpuFloat, contiguous, dispatch_float, zeros};
use crate::ops::elementwise::{scale_gradient, scale_shift};

/// `act(x·scale[c] + shift[c])` on an NCHW tensor; per-channel factors in f64.
pub struct ChannelAffine {
    pub scale: Vec<f64>,
    pub shift: Vec<f64>,
    pub relu: bool,
}

impl CustomOp1 for ChannelAffine {
    fn name(&self) -> &'static str {
        "fakelens-channel-affine"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(s, "channel affine", affine_forward(self, s, l))
    }

    fn bwd(&self, _x: &Tensor, res: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let op = ChannelAffineGrad {
            scale: self.scale.clone(),
            relu: self.relu,
        };
        Ok(Some(grad.contiguous()?.apply_op2_no_bwd(res, &op)?))
    }
}

/// Channels and plane size of an NCHW layout whose channel count matches the factors.
fn channels_and_plane(l: &Layout, factors: usize) -> candle_core::Result<(usize, usize)> {
    let (_, c, h, w) = l.shape().dims4()?;
    if c != factors {
        candle_core::bail!("channel affine: {factors} factors for {c} channels")
    }
    Ok((c, h * w))
}

fn affine_forward<T: CpuFloat>(
    op: &ChannelAffine,
    s: &CpuStorage,
    l: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s, l)?;
    let (c, plane) = channels_and_plane(l, op.scale.len())?;
    if op.shift.len() != c {
        candle_core::bail!("channel affine: {} shifts for {c} channels", op.shift.len())
    }
    let mut y = zeros(x.len());
    y.par_chunks_mut(plane.max(1))
        .zip(x.par_chunks(plane.max(1)))
        .enumerate()
        .for_each(|(i, (y, x))| {
            let (scale, shift) = (T::from_f64(op.scale[i % c]), T::from_f64(op.shift[i % c]));
            scale_shift(y, x, scale, shift, op.relu);
        });
    Ok((T::to_cpu_storage_owned(y), l.shape().clone()))
}

/// `grad · scale[c] · [y > 0 if relu]`, from the gradient and the forward output.
struct ChannelAffineGrad {
    scale: Vec<f64>,
    relu: bool,
}

impl CustomOp2 for ChannelAffineGrad {
    fn name(&self) -> &'static str {
        "fakelens-channel-affine-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(gs, "channel affine", affine_grad(self, gs, gl, ys, yl))
    }
}

fn affine_grad<T: CpuFloat>(
    op: &ChannelAffineGrad,
    gs: &CpuStorage,
    gl: &Layout,
    ys: &CpuStorage,
    yl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (g, y) = (contiguous::<T>(gs, gl)?, contiguous::<T>(ys, yl)?);
    let (c, plane) = channels_and_plane(gl, op.scale.len())?;
    if g.len() != y.len() {
        candle_core::bail!("channel affine backward: gradient and output sizes differ")
    }
    let mut dx = zeros(g.len());
    dx.par_chunks_mut(plane.max(1))
        .zip(g.par_chunks(plane.max(1)).zip(y.par_chunks(plane.max(1))))
        .enumerate()
        .for_each(|(i, (dx, (g, y)))| {
            scale_gradient(dx, g, y, T::from_f64(op.scale[i % c]), op.relu);
        });
    Ok((T::to_cpu_storage_owned(dx), gl.shape().clone()))
}
