//! 2-D max-pooling with any kernel, stride and padding, as a Candle `CustomOp1` with a real
//! backward. Candle's own max-pool has no padding, and its backward scales the gradient of a
//! unique maximum by 1/(kernel area) and misaligns windows on odd sizes; this op routes each
//! output gradient to the first maximum of its window, as PyTorch does.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor, WithDType};

use super::cpu_float::{contiguous, dispatch_float, filled};
use super::stash::ForwardStash;
use rayon::prelude::*;

/// Kernel, stride and zero-padding (padded cells never win) of a square max-pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

#[derive(Clone, Copy)]
struct Dims {
    planes: usize,
    channels: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    g: PoolGeometry,
}

impl Dims {
    fn new(shape: &[usize], g: PoolGeometry) -> candle_core::Result<Dims> {
        let &[n, c, h, w] = shape else {
            candle_core::bail!("max_pool2d expects NCHW input, got {shape:?}")
        };
        if g.kernel == 0
            || g.stride == 0
            || 2 * g.padding > g.kernel
            || h + 2 * g.padding < g.kernel
            || w + 2 * g.padding < g.kernel
        {
            candle_core::bail!("max_pool2d: invalid geometry {g:?} for input {shape:?}")
        }
        Ok(Dims {
            planes: n * c,
            channels: c.max(1),
            h,
            w,
            oh: (h + 2 * g.padding - g.kernel) / g.stride + 1,
            ow: (w + 2 * g.padding - g.kernel) / g.stride + 1,
            g,
        })
    }

    /// Index (in the plane) of the first maximum of output cell (oy, ox)'s window.
    fn argmax<T: WithDType>(&self, plane: &[T], oy: usize, ox: usize) -> usize {
        if self.g == POOL_2X2 {
            return argmax_2x2(plane, self.w, oy, ox);
        }
        let y0 = (oy * self.g.stride) as isize - self.g.padding as isize;
        let x0 = (ox * self.g.stride) as isize - self.g.padding as isize;
        let k = self.g.kernel;
        let inside = y0 >= 0 && x0 >= 0 && y0 as usize + k <= self.h && x0 as usize + k <= self.w;
        if inside {
            // The window lies in the image: no clipping, a plain scan.
            let start = y0 as usize * self.w + x0 as usize;
            let mut best_i = start;
            for y in 0..k {
                for i in start + y * self.w..start + y * self.w + k {
                    let (v, best) = (plane[i], plane[best_i]);
                    #[allow(clippy::eq_op)]
                    if best != best {
                        return best_i;
                    }
                    #[allow(clippy::eq_op)]
                    if v > best || v != v {
                        best_i = i;
                    }
                }
            }
            return best_i;
        }
        let (mut best, mut best_i) = (plane[0], usize::MAX);
        for y in y0.max(0)..(y0 + self.g.kernel as isize).min(self.h as isize) {
            for x in x0.max(0)..(x0 + self.g.kernel as isize).min(self.w as isize) {
                let i = y as usize * self.w + x as usize;
                let v = plane[i];
                #[allow(clippy::eq_op)]
                let is_nan = v != v;
                if best_i == usize::MAX || v > best || is_nan {
                    best = v;
                    best_i = i;
                    if is_nan {
                        return i;
                    }
                }
            }
        }
        best_i
    }
}

/// The common 2×2, stride-2, unpadded pool.
const POOL_2X2: PoolGeometry = PoolGeometry {
    kernel: 2,
    stride: 2,
    padding: 0,
};

/// `argmax` for the 2×2 window at (2·oy, 2·ox), in scan order (first maximum wins; a NaN wins).
#[inline]
#[allow(clippy::eq_op)]
fn argmax_2x2<T: WithDType>(plane: &[T], w: usize, oy: usize, ox: usize) -> usize {
    let i0 = 2 * oy * w + 2 * ox;
    let mut best_i = i0;
    for i in [i0 + 1, i0 + w, i0 + w + 1] {
        let (v, best) = (plane[i], plane[best_i]);
        if best != best {
            return best_i;
        }
        if v > best || v != v {
            best_i = i;
        }
    }
    best_i
}

/// Where each pooled value's maximum lies in its input plane (one per output value).
type Argmax = Arc<Vec<u32>>;

/// The forward op. It keeps each output's argmax, so the backward pass routes the gradient
/// without scanning the windows again.
pub struct MaxPool2dOp {
    geometry: PoolGeometry,
    argmax: ForwardStash<Vec<u32>>,
}

impl MaxPool2dOp {
    pub fn new(geometry: PoolGeometry) -> MaxPool2dOp {
        MaxPool2dOp {
            geometry,
            argmax: ForwardStash::default(),
        }
    }
}

impl CustomOp1 for MaxPool2dOp {
    fn name(&self) -> &'static str {
        "fakelens-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::new(l.dims(), self.geometry)?;
        let (storage, shape, argmax) = dispatch_float!(s, "max_pool2d", pool_forward(&d, s, l))?;
        self.argmax.put(argmax);
        Ok((storage, shape))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let argmax = self.argmax.get("max_pool2d")?;
        let d = Dims::new(arg.dims(), self.geometry)?;
        let grad = grad.contiguous()?;
        Ok(Some(
            grad.apply_op1_no_bwd(&MaxPool2dGrad { dims: d, argmax })?,
        ))
    }
}

/// `dL/dx`: each output gradient added at its window's first maximum.
struct MaxPool2dGrad {
    dims: Dims,
    argmax: Argmax,
}

impl CustomOp1 for MaxPool2dGrad {
    fn name(&self) -> &'static str {
        "fakelens-max-pool2d-grad"
    }

    fn cpu_fwd(&self, gs: &CpuStorage, gl: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(
            gs,
            "max_pool2d",
            pool_backward(&self.dims, &self.argmax, gs, gl)
        )
    }
}

fn pool_forward<T: WithDType>(
    d: &Dims,
    s: &CpuStorage,
    l: &Layout,
) -> candle_core::Result<(CpuStorage, Shape, Vec<u32>)> {
    let x = contiguous::<T>(s, l)?;
    if d.h * d.w > u32::MAX as usize {
        candle_core::bail!("max_pool2d: planes of {}x{} are too large", d.h, d.w)
    }
    let mut out = filled(d.planes * d.oh * d.ow, T::from_f64(0.0));
    let mut argmax = filled(out.len(), 0u32);
    out.par_chunks_mut(d.oh * d.ow)
        .zip(argmax.par_chunks_mut(d.oh * d.ow))
        .zip(x.par_chunks(d.h * d.w))
        .for_each(|((y, at), plane)| {
            for oy in 0..d.oh {
                for ox in 0..d.ow {
                    let i = d.argmax(plane, oy, ox);
                    y[oy * d.ow + ox] = plane[i];
                    at[oy * d.ow + ox] = i as u32;
                }
            }
        });
    let dims = l.dims();
    Ok((
        T::to_cpu_storage_owned(out),
        Shape::from((dims[0], dims[1], d.oh, d.ow)),
        argmax,
    ))
}

fn pool_backward<T: WithDType>(
    d: &Dims,
    argmax: &[u32],
    gs: &CpuStorage,
    gl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let g = contiguous::<T>(gs, gl)?;
    let outputs = d.oh * d.ow;
    if g.len() != d.planes * outputs || argmax.len() != g.len() {
        candle_core::bail!("max_pool2d backward: gradient size does not match its forward pass")
    }
    let mut out = filled(d.planes * d.h * d.w, T::from_f64(0.0));
    out.par_chunks_mut(d.h * d.w)
        .zip(argmax.par_chunks(outputs).zip(g.par_chunks(outputs)))
        .for_each(|(dx, (at, gy))| {
            for (&i, &v) in at.iter().zip(gy) {
                if let Some(slot) = dx.get_mut(i as usize) {
                    *slot += v;
                }
            }
        });
    let shape = Shape::from((d.planes / d.channels, d.channels, d.h, d.w));
    Ok((T::to_cpu_storage_owned(out), shape))
}

/// Max-pooling with the fast CPU op. Elsewhere a pool whose kernel equals its stride (and
/// has no padding) is composed from a reshape and two `max` reductions, so its gradient is
/// Candle's reduction gradient (the window maximum gets the whole upstream gradient) rather
/// than Candle's stock pool backward, which scales it by 1/kernel². Other geometries
/// (Xception's padded 3×3 stride 2) are composed from strided shifts (`shifted.rs`).
pub fn max_pool2d(x: &Tensor, g: PoolGeometry) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        return x.contiguous()?.apply_op1(MaxPool2dOp::new(g));
    }
    if g.padding == 0 && g.kernel == g.stride {
        max_pool2d_by_reduction(x, g)
    } else {
        super::shifted::max_pool2d_by_shifts(x, g)
    }
}

/// The device-independent pool behind [`max_pool2d`] off the CPU (any device, any dtype).
pub fn max_pool2d_by_reduction(x: &Tensor, g: PoolGeometry) -> candle_core::Result<Tensor> {
    if g.padding != 0 || g.kernel != g.stride || g.kernel == 0 {
        candle_core::bail!(
            "max-pool with kernel {}, stride {}, padding {} is not implemented on {:?} yet",
            g.kernel,
            g.stride,
            g.padding,
            x.device().location()
        )
    }
    let (n, c, h, w) = x.dims4()?;
    let k = g.kernel;
    let (oh, ow) = (h / k, w / k);
    x.narrow(2, 0, oh * k)?
        .narrow(3, 0, ow * k)?
        .contiguous()?
        .reshape((n, c, oh, k, ow, k))?
        .max(5)?
        .max(3)
}
