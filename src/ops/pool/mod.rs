//! 2-D max-pooling with any kernel, stride and padding, as a Candle `CustomOp1` with a real
//! backward. Candle's own max-pool has no padding, and its backward scales the gradient of a
//! unique maximum by 1/(kernel area) and misaligns windows on odd sizes; this op routes each
//! output gradient to the first maximum of its window, as PyTorch does.

pub mod stride2_3x3;

use candle_core::{CpuStorage, CustomOp1, CustomOp3, Layout, Shape, Tensor, WithDType};

use crate::ops::cpu::float::{CpuFloat, contiguous, dispatch_float, zeros};
use rayon::prelude::*;

use crate::ops::geometry::PoolGeometry;

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

    /// The input rows (or columns: the same rule) of output row `o`'s window, clipped to
    /// the `size` of the plane; never empty, as `2·padding ≤ kernel` and the output fits.
    fn window(&self, o: usize, size: usize) -> std::ops::Range<usize> {
        let start = (o * self.g.stride).saturating_sub(self.g.padding);
        let end = (o * self.g.stride + self.g.kernel - self.g.padding).min(size);
        start..end
    }
}

/// The larger of two values, NaN winning (as PyTorch's pool propagates NaN).
#[inline(always)]
#[allow(clippy::eq_op)]
fn max_nan<T: WithDType>(a: T, b: T) -> T {
    if b > a || b != b { b } else { a }
}

/// The forward op. Windows are reduced column-wise first (contiguous rows, vectorised),
/// then along each row; nothing is kept for the backward pass, which finds each window's
/// maximum again from the input and the output.
pub struct MaxPool2dOp {
    geometry: PoolGeometry,
}

impl MaxPool2dOp {
    pub fn new(geometry: PoolGeometry) -> MaxPool2dOp {
        MaxPool2dOp { geometry }
    }
}

impl CustomOp1 for MaxPool2dOp {
    fn name(&self) -> &'static str {
        "fakelens-max-pool2d"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::new(l.dims(), self.geometry)?;
        dispatch_float!(s, "max_pool2d", pool_forward(&d, s, l))
    }

    fn bwd(
        &self,
        arg: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let d = Dims::new(arg.dims(), self.geometry)?;
        let grad = grad.contiguous()?;
        Ok(Some(grad.apply_op3_no_bwd(
            &arg.contiguous()?,
            &res.contiguous()?,
            &MaxPool2dGrad { dims: d },
        )?))
    }
}

/// `dL/dx` from (`dL/dy`, x, y): each output gradient added at its window's first maximum in
/// scan order (the first element equal to the output; the first NaN when it is NaN), as
/// PyTorch routes it.
struct MaxPool2dGrad {
    dims: Dims,
}

impl CustomOp3 for MaxPool2dGrad {
    fn name(&self) -> &'static str {
        "fakelens-max-pool2d-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ys: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(
            gs,
            "max_pool2d",
            pool_backward(&self.dims, (gs, gl), (xs, xl), (ys, yl))
        )
    }
}

/// One plane's window maxima into `y` (`oh × ow`, any contents): the window rows' maximum
/// per column first (a vectorised pass), then the window columns' maximum of that.
fn plane_maxima<T: WithDType>(d: &Dims, plane: &[T], y: &mut [T]) {
    let mut column_max = plane[..d.w].to_vec();
    for (oy, y_row) in y.chunks_mut(d.ow).enumerate() {
        let rows = d.window(oy, d.h);
        column_max.copy_from_slice(&plane[rows.start * d.w..][..d.w]);
        for row in rows.skip(1) {
            for (m, &v) in column_max.iter_mut().zip(&plane[row * d.w..][..d.w]) {
                *m = max_nan(*m, v);
            }
        }
        let g = d.g;
        if (g.kernel, g.stride, g.padding) == (3, 2, 1) {
            // Xception's pool: columns 2·ox − 1, 2·ox, 2·ox + 1 (the first clipped), in
            // the general loop's order.
            for (ox, out) in y_row.iter_mut().enumerate() {
                let centre = 2 * ox;
                let mut m = column_max[centre];
                if ox > 0 {
                    m = max_nan(column_max[centre - 1], m);
                }
                if let Some(&right) = column_max.get(centre + 1) {
                    m = max_nan(m, right);
                }
                *out = m;
            }
            continue;
        }
        for (ox, out) in y_row.iter_mut().enumerate() {
            let columns = d.window(ox, d.w);
            let mut m = column_max[columns.start];
            for &v in &column_max[columns.start + 1..columns.end] {
                m = max_nan(m, v);
            }
            *out = m;
        }
    }
}

fn pool_forward<T: CpuFloat>(
    d: &Dims,
    s: &CpuStorage,
    l: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let x = contiguous::<T>(s, l)?;
    let mut out = zeros(d.planes * d.oh * d.ow);
    out.par_chunks_mut(d.oh * d.ow)
        .zip(x.par_chunks(d.h * d.w))
        .for_each(|(y, plane)| plane_maxima(d, plane, y));
    let dims = l.dims();
    Ok((
        T::to_cpu_storage_owned(out),
        Shape::from((dims[0], dims[1], d.oh, d.ow)),
    ))
}

/// One image's max-pool on plain f32 slices plus a residual, for the frozen inference path:
/// `y = maxpool(x) + add` (`x` is `c × h × w`, `add` and `y` are `c × oh × ow`), the
/// channels in parallel when `parallel`. The window maxima are the op's (NaN wins).
/// Returns `(oh, ow)`.
pub fn max_pool_add_image(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    g: PoolGeometry,
    add: &[f32],
    y: &mut [f32],
    parallel: bool,
) -> candle_core::Result<(usize, usize)> {
    let d = Dims::new(&[1, c, h, w], g)?;
    let out_plane = d.oh * d.ow;
    if x.len() < c * h * w || add.len() < c * out_plane || y.len() < c * out_plane {
        candle_core::bail!("max_pool2d: buffers too small for {c}x{h}x{w}")
    }
    let stride2_3x3 = (g.kernel, g.stride, g.padding) == (3, 2, 1);
    let pool_rows = |x: &[f32], rows: std::ops::Range<usize>, add: &[f32], y: &mut [f32]| {
        stride2_3x3::pool_add((x, 0), (h, w), rows, Some(add), y)
    };
    let plane = |((y, add), plane): ((&mut [f32], &[f32]), &[f32])| {
        if stride2_3x3 && pool_rows(plane, 0..d.oh, add, y) {
            return;
        }
        plane_maxima(&d, plane, y);
        for (v, &a) in y.iter_mut().zip(add) {
            *v += a;
        }
    };
    let (y, add, x) = (
        &mut y[..c * out_plane],
        &add[..c * out_plane],
        &x[..c * h * w],
    );
    if parallel && stride2_3x3 && crate::ops::cpu::available() {
        // A band of output rows of every plane per thread: the band's input rows are those
        // the same thread wrote in the product before (split by pixels), where a split by
        // planes read half of each plane from the other core (LilXception's first block:
        // 8 MB, slower on 2 threads than on one).
        let bands = rayon::current_num_threads().max(1);
        let band_rows = d.oh.div_ceil(bands);
        let band_len = band_rows * d.ow;
        let mut tasks: Vec<Vec<_>> = (0..bands).map(|_| Vec::with_capacity(c)).collect();
        for ((y, add), x) in y
            .chunks_mut(out_plane)
            .zip(add.chunks(out_plane))
            .zip(x.chunks(h * w))
        {
            for (task, part) in tasks
                .iter_mut()
                .zip(y.chunks_mut(band_len).zip(add.chunks(band_len)))
            {
                task.push((part, x));
            }
        }
        let pooled = tasks
            .into_par_iter()
            .enumerate()
            .map(|(band, planes)| {
                let rows = band * band_rows..((band + 1) * band_rows).min(d.oh);
                planes
                    .into_iter()
                    .all(|((y, add), x)| pool_rows(x, rows.clone(), add, y))
            })
            .collect::<Vec<bool>>();
        if pooled.iter().all(|&pooled| pooled) {
            return Ok((d.oh, d.ow));
        }
    }
    if parallel {
        y.par_chunks_mut(out_plane)
            .zip(add.par_chunks(out_plane))
            .zip(x.par_chunks(h * w))
            .for_each(plane);
    } else {
        y.chunks_mut(out_plane)
            .zip(add.chunks(out_plane))
            .zip(x.chunks(h * w))
            .for_each(plane);
    }
    Ok((d.oh, d.ow))
}

type Part<'a> = (&'a CpuStorage, &'a Layout);

#[allow(clippy::eq_op)]
fn pool_backward<T: CpuFloat>(
    d: &Dims,
    (gs, gl): Part,
    (xs, xl): Part,
    (ys, yl): Part,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (g, x, y) = (
        contiguous::<T>(gs, gl)?,
        contiguous::<T>(xs, xl)?,
        contiguous::<T>(ys, yl)?,
    );
    let outputs = d.oh * d.ow;
    if g.len() != d.planes * outputs || y.len() != g.len() || x.len() != d.planes * d.h * d.w {
        candle_core::bail!("max_pool2d backward: gradient size does not match its forward pass")
    }
    let mut out = zeros(d.planes * d.h * d.w);
    out.par_chunks_mut(d.h * d.w)
        .zip(x.par_chunks(d.h * d.w))
        .zip(g.par_chunks(outputs).zip(y.par_chunks(outputs)))
        .for_each(|((dx, plane), (gy, y))| {
            for oy in 0..d.oh {
                let rows = d.window(oy, d.h);
                for ox in 0..d.ow {
                    let (target, grad) = (y[oy * d.ow + ox], gy[oy * d.ow + ox]);
                    let columns = d.window(ox, d.w);
                    let is_nan = target != target;
                    let first_max = rows.clone().find_map(|row| {
                        let at = row * d.w;
                        columns
                            .clone()
                            .find(|&col| {
                                let v = plane[at + col];
                                v == target || (is_nan && v != v)
                            })
                            .map(|col| at + col)
                    });
                    if let Some(i) = first_max {
                        dx[i] += grad;
                    }
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
        crate::ops::shifted::max_pool2d_by_shifts(x, g)
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Ties everywhere (values from {0, 1, 2}): the forward maximum and the backward
    /// routing to the first maximum in scan order match a plain window scan.
    #[test]
    fn ties_route_the_gradient_to_the_first_maximum_in_scan_order() {
        let (n, c, h, w) = (2, 3, 9, 8);
        let values: Vec<f32> = (0..n * c * h * w).map(|i| ((i * 7) % 3) as f32).collect();
        for g in [
            PoolGeometry {
                kernel: 3,
                stride: 2,
                padding: 1,
            },
            PoolGeometry {
                kernel: 2,
                stride: 2,
                padding: 0,
            },
            PoolGeometry {
                kernel: 3,
                stride: 1,
                padding: 0,
            },
        ] {
            let x = Var::from_vec(values.clone(), (n, c, h, w), &Device::Cpu).unwrap();
            let y = max_pool2d(x.as_tensor(), g).unwrap();
            let (oh, ow) = (y.dim(2).unwrap(), y.dim(3).unwrap());
            let upstream: Vec<f32> = (0..n * c * oh * ow).map(|i| 1.0 + i as f32).collect();
            let up = Tensor::from_vec(upstream.clone(), y.shape(), &Device::Cpu).unwrap();
            let grads = (y.clone() * up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let dx = grads
                .get(&x)
                .unwrap()
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let got = y.flatten_all().unwrap().to_vec1::<f32>().unwrap();
            let mut want_dx = vec![0.0f32; values.len()];
            for p in 0..n * c {
                for oy in 0..oh {
                    for ox in 0..ow {
                        let mut best: Option<(f32, usize)> = None;
                        for ky in 0..g.kernel {
                            for kx in 0..g.kernel {
                                let yy = (oy * g.stride + ky) as isize - g.padding as isize;
                                let xx = (ox * g.stride + kx) as isize - g.padding as isize;
                                if yy < 0 || xx < 0 || yy >= h as isize || xx >= w as isize {
                                    continue;
                                }
                                let i = p * h * w + yy as usize * w + xx as usize;
                                if best.is_none_or(|(b, _)| values[i] > b) {
                                    best = Some((values[i], i));
                                }
                            }
                        }
                        let (v, i) = best.unwrap();
                        let o = p * oh * ow + oy * ow + ox;
                        assert_eq!(got[o], v, "{g:?} value at {o}");
                        want_dx[i] += upstream[o];
                    }
                }
            }
            assert_eq!(dx, want_dx, "{g:?} gradient");
        }
    }
}
