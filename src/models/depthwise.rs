//! Depthwise convolution (groups = channels, one k×k filter per channel, no bias) as a
//! Candle `CustomOp2` with its own backward: a direct per-plane kernel, parallel over
//! batch × channel for the output and the input gradient, and over channels for the weight
//! gradient. Candle's grouped convolution runs one convolution per group, 728 per Xception
//! layer. Any stride and padding; f32 and f64.

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use super::conv::ConvGeometry;
use super::cpu_float::{CpuFloat, contiguous, dispatch_float};

#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    k: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    pad: usize,
    /// Read the input through a ReLU (the `relu → separable conv` of Xception's blocks).
    relu: bool,
}

impl Dims {
    fn new(x: &[usize], w: &[usize], g: ConvGeometry) -> candle_core::Result<Dims> {
        let (&[n, c, h, wd], &[wc, one, k, k2]) = (x, w) else {
            candle_core::bail!(
                "depthwise conv expects NCHW input and C×1×k×k weight, got {x:?}, {w:?}"
            )
        };
        if wc != c
            || one != 1
            || k != k2
            || g.stride == 0
            || h + 2 * g.padding < k
            || wd + 2 * g.padding < k
        {
            candle_core::bail!("depthwise conv: weight {w:?} does not fit input {x:?}")
        }
        Ok(Dims {
            n,
            c,
            h,
            w: wd,
            k,
            oh: (h + 2 * g.padding - k) / g.stride + 1,
            ow: (wd + 2 * g.padding - k) / g.stride + 1,
            stride: g.stride,
            pad: g.padding,
            relu: false,
        })
    }
    fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }
    fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }
    fn plane(&self) -> usize {
        self.h * self.w
    }
    fn out_plane(&self) -> usize {
        self.oh * self.ow
    }

    /// `x` (one plane, through a ReLU if `relu`) with `pad` zeros around it, in `buf`
    /// (hp × wp).
    fn pad_into<T: WithDType>(&self, x: &[T], buf: &mut [T]) {
        let zero = T::from_f64(0.0);
        if self.pad > 0 {
            buf.fill(zero);
        }
        for y in 0..self.h {
            let start = (y + self.pad) * self.wp() + self.pad;
            let (dst, src) = (
                &mut buf[start..start + self.w],
                &x[y * self.w..(y + 1) * self.w],
            );
            if self.relu {
                for (d, s) in dst.iter_mut().zip(src) {
                    *d = if *s > zero { *s } else { zero };
                }
            } else {
                dst.copy_from_slice(src);
            }
        }
    }

    /// Calls `f(out_row, padded_row_start_for_kx0, weight_row)` per output row and kernel row.
    fn rows(&self, mut f: impl FnMut(usize, usize, usize)) {
        for oy in 0..self.oh {
            for ky in 0..self.k {
                f(oy, (oy * self.stride + ky) * self.wp(), ky * self.k);
            }
        }
    }
}

/// The forward op: `y[n][c] = x[n][c] ⋆ w[c]`, or `relu(x[n][c]) ⋆ w[c]` when `.1` is set
/// (the ReLU's output never becomes a tensor, and its backward is one masking pass).
pub struct DepthwiseConv(pub ConvGeometry, pub bool);

impl CustomOp2 for DepthwiseConv {
    fn name(&self) -> &'static str {
        "fakelens-depthwise-conv"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims {
            relu: self.1,
            ..Dims::new(xl.dims(), wl.dims(), self.0)?
        };
        dispatch_float!(xs, "depthwise conv", forward(&d, xs, xl, ws, wl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        let grad_x = if x.track_op() {
            let dx = grad.apply_op2_no_bwd(w, &GradInput(self.0, x.dims().to_vec()))?;
            Some(if self.1 {
                // ReLU passes the gradient where its input was positive.
                dx.apply_op2_no_bwd(&x.contiguous()?, &super::conv::ReluGradMask)?
            } else {
                dx
            })
        } else {
            None
        };
        let grad_w = if w.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &GradWeight(self.0, w.dims().to_vec(), self.1))?)
        } else {
            None
        };
        Ok((grad_x, grad_w))
    }
}

fn forward<T: CpuFloat>(
    d: &Dims,
    xs: &CpuStorage,
    xl: &Layout,
    ws: &CpuStorage,
    wl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, w) = (contiguous::<T>(xs, xl)?, contiguous::<T>(ws, wl)?);
    let kk = d.k * d.k;
    let mut y = vec![T::from_f64(0.0); d.n * d.c * d.out_plane()];
    y.par_chunks_mut(d.out_plane())
        .zip(x.par_chunks(d.plane()))
        .enumerate()
        .for_each(|(plane_index, (y, x))| {
            let wc = &w[(plane_index % d.c) * kk..][..kk];
            T::with_scratch(d.hp() * d.wp(), |padded| {
                d.pad_into(x, padded);
                d.rows(|oy, row, wrow| {
                    let out = &mut y[oy * d.ow..(oy + 1) * d.ow];
                    for kx in 0..d.k {
                        let wv = wc[wrow + kx];
                        if d.stride == 1 {
                            let src = &padded[row + kx..row + kx + d.ow];
                            for (o, s) in out.iter_mut().zip(src) {
                                *o += wv * *s;
                            }
                        } else {
                            for (ox, o) in out.iter_mut().enumerate() {
                                *o += wv * padded[row + ox * d.stride + kx];
                            }
                        }
                    }
                });
            });
        });
    Ok((
        T::to_cpu_storage_owned(y),
        Shape::from((d.n, d.c, d.oh, d.ow)),
    ))
}

/// `dL/dx`: each output gradient spread back over its window, then the padding cropped.
struct GradInput(ConvGeometry, Vec<usize>);

impl CustomOp2 for GradInput {
    fn name(&self) -> &'static str {
        "fakelens-depthwise-grad-input"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::new(&self.1, wl.dims(), self.0)?;
        dispatch_float!(gs, "depthwise conv", grad_input(&d, gs, gl, ws, wl))
    }
}

fn grad_input<T: CpuFloat>(
    d: &Dims,
    gs: &CpuStorage,
    gl: &Layout,
    ws: &CpuStorage,
    wl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (g, w) = (contiguous::<T>(gs, gl)?, contiguous::<T>(ws, wl)?);
    let kk = d.k * d.k;
    let mut dx = vec![T::from_f64(0.0); d.n * d.c * d.plane()];
    dx.par_chunks_mut(d.plane())
        .zip(g.par_chunks(d.out_plane()))
        .enumerate()
        .for_each(|(plane_index, (dx, g))| {
            let wc = &w[(plane_index % d.c) * kk..][..kk];
            T::with_scratch(d.hp() * d.wp(), |padded| {
                padded.fill(T::from_f64(0.0));
                d.rows(|oy, row, wrow| {
                    let gy = &g[oy * d.ow..(oy + 1) * d.ow];
                    for kx in 0..d.k {
                        let wv = wc[wrow + kx];
                        if d.stride == 1 {
                            let dst = &mut padded[row + kx..row + kx + d.ow];
                            for (p, s) in dst.iter_mut().zip(gy) {
                                *p += wv * *s;
                            }
                        } else {
                            for (ox, s) in gy.iter().enumerate() {
                                padded[row + ox * d.stride + kx] += wv * *s;
                            }
                        }
                    }
                });
                for y in 0..d.h {
                    let start = (y + d.pad) * d.wp() + d.pad;
                    dx[y * d.w..(y + 1) * d.w].copy_from_slice(&padded[start..start + d.w]);
                }
            });
        });
    Ok((
        T::to_cpu_storage_owned(dx),
        Shape::from((d.n, d.c, d.h, d.w)),
    ))
}

/// `dL/dw[c] = Σₙ Σ gy[n][c] · window of x[n][c]`, one channel per task.
struct GradWeight(ConvGeometry, Vec<usize>, bool);

impl CustomOp2 for GradWeight {
    fn name(&self) -> &'static str {
        "fakelens-depthwise-grad-weight"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims {
            relu: self.2,
            ..Dims::new(xl.dims(), &self.1, self.0)?
        };
        dispatch_float!(xs, "depthwise conv", grad_weight(&d, xs, xl, gs, gl))
    }
}

fn grad_weight<T: CpuFloat>(
    d: &Dims,
    xs: &CpuStorage,
    xl: &Layout,
    gs: &CpuStorage,
    gl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, g) = (contiguous::<T>(xs, xl)?, contiguous::<T>(gs, gl)?);
    let kk = d.k * d.k;
    let zero = T::from_f64(0.0);
    let mut dw = vec![zero; d.c * kk];
    dw.par_chunks_mut(kk).enumerate().for_each(|(c, dwc)| {
        T::with_scratch(d.hp() * d.wp(), |padded| {
            for n in 0..d.n {
                let plane = (n * d.c + c) * d.plane();
                d.pad_into(&x[plane..plane + d.plane()], padded);
                let gplane = &g[(n * d.c + c) * d.out_plane()..][..d.out_plane()];
                d.rows(|oy, row, wrow| {
                    let gy = &gplane[oy * d.ow..(oy + 1) * d.ow];
                    for kx in 0..d.k {
                        let sum = if d.stride == 1 {
                            gy.iter()
                                .zip(&padded[row + kx..row + kx + d.ow])
                                .fold(zero, |acc, (a, b)| acc + *a * *b)
                        } else {
                            gy.iter().enumerate().fold(zero, |acc, (ox, a)| {
                                acc + *a * padded[row + ox * d.stride + kx]
                            })
                        };
                        dwc[wrow + kx] += sum;
                    }
                });
            }
        });
    });
    Ok((T::to_cpu_storage_owned(dw), Shape::from((d.c, 1, d.k, d.k))))
}

/// Depthwise convolution with the fast CPU op, or composed from strided shifts elsewhere
/// (same values; Candle's grouped convolution would run one convolution per channel).
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, g: ConvGeometry) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        return x.contiguous()?.apply_op2(w, DepthwiseConv(g, false));
    }
    super::shifted::depthwise_conv2d_by_shifts(x, w, g)
}

/// `depthwise_conv2d(relu(x), w)`, fused on the CPU.
pub fn relu_depthwise_conv2d(
    x: &Tensor,
    w: &Tensor,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        return x.contiguous()?.apply_op2(w, DepthwiseConv(g, true));
    }
    super::shifted::depthwise_conv2d_by_shifts(&x.relu()?, w, g)
}
