//! Dense 2-D convolution as a Candle `CustomOp3` (input, weight, bias), optionally fused with
//! the ReLU that follows it: im2col + gemm forward, and a gemm backward that computes the input
//! gradient only when something upstream needs it (never for the raw image), unlike Candle's
//! stock CPU conv backward. The gemm crate works on column-major destinations (it transposes a
//! row-major one), so writing `y (c_out × pixels)` row-major makes the long pixel dimension
//! the microkernel's row dimension: a 6-channel conv uses whole kernels.

use candle_core::{CpuStorage, CustomOp1, CustomOp2, CustomOp3, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::ops::conv::direct::{self, DirectDims};
use crate::ops::cpu::float::{CpuFloat, contiguous, dispatch_float, zeros};
use crate::ops::cpu::gemm::{MatRef, matmul};
use crate::ops::elementwise::{ReluGradMask, add_bias};
use crate::ops::pointwise::WeightLhs;
use crate::ops::pointwise::weight_grad::weight_gradient;

/// Output channels up to which a stride-1 conv runs on the direct kernels.
const DIRECT_MAX_CHANNELS: usize = 32;

use crate::ops::geometry::{ConvGeometry, ConvShape, Grouping};

/// The sizes of one convolution, derived from its input and weight shapes.
#[derive(Clone, Copy, Debug)]
struct Dims {
    n: usize,
    c_in: usize,
    h: usize,
    w: usize,
    c_out: usize,
    k: usize,
    oh: usize,
    ow: usize,
    stride: usize,
    pad: usize,
}

impl Dims {
    fn new(x: &[usize], w: &[usize], g: ConvGeometry) -> candle_core::Result<Dims> {
        let s = ConvShape::new("conv2d", x, w, g, Grouping::Dense)?;
        Ok(Dims {
            n: s.n,
            c_in: s.c_in,
            h: s.h,
            w: s.w,
            c_out: s.c_out,
            k: s.k,
            oh: s.oh,
            ow: s.ow,
            stride: s.stride,
            pad: s.pad,
        })
    }
    /// The direct kernels' view of this convolution, when they can run it (stride 1, f32,
    /// AVX-512 present) and beat a gemm: few output channels and a spatial kernel. Wide
    /// layers (Xception's pointwise 1×1 convs) fill a gemm's microkernel and stay there.
    fn direct(&self, storage: &CpuStorage) -> Option<DirectDims> {
        let f32_storage = matches!(storage, CpuStorage::F32(_));
        let narrow = self.k > 1 && self.c_out <= DIRECT_MAX_CHANNELS;
        (f32_storage && narrow && self.stride == 1 && direct::available()).then_some(DirectDims {
            n: self.n,
            c_in: self.c_in,
            h: self.h,
            w: self.w,
            c_out: self.c_out,
            k: self.k,
            pad: self.pad,
        })
    }
    fn in_plane(&self) -> usize {
        self.c_in * self.h * self.w
    }
    fn out_hw(&self) -> usize {
        self.oh * self.ow
    }
    fn patch(&self) -> usize {
        self.c_in * self.k * self.k
    }
    /// A 1×1, stride-1, unpadded conv: the input planes are already the im2col matrix
    /// (`patch × pixels`), so no copy is made in either direction.
    fn is_pointwise(&self) -> bool {
        self.k == 1 && self.stride == 1 && self.pad == 0
    }

    /// Calls `f(row, oy, ox_range, src_row_start, src_x0)` for every (col-row, output-row)
    /// pair: the output columns `ox_range` read input row `iy` starting at input column
    /// `x0 + ox*stride`. Shared by im2col and col2im so both agree on the geometry.
    fn for_each_patch_row(&self, mut f: impl FnMut(usize, usize, usize, usize)) {
        for c in 0..self.c_in {
            for ky in 0..self.k {
                for kx in 0..self.k {
                    let row = (c * self.k + ky) * self.k + kx;
                    for oy in 0..self.oh {
                        let iy = (oy * self.stride + ky) as isize - self.pad as isize;
                        if iy < 0 || iy >= self.h as isize {
                            continue;
                        }
                        f(row, oy, (c * self.h + iy as usize) * self.w, kx);
                    }
                }
            }
        }
    }

    /// Output columns whose input column `ox*stride + kx - pad` is inside the image.
    fn valid_ox(&self, kx: usize) -> std::ops::Range<usize> {
        let lo = self.pad.saturating_sub(kx).div_ceil(self.stride);
        let hi_excl = (self.w + self.pad).saturating_sub(kx);
        let hi = hi_excl.div_ceil(self.stride).min(self.ow);
        lo.min(hi)..hi
    }
}

fn im2col<T: WithDType>(x: &[T], d: &Dims, col: &mut [T]) {
    if d.pad > 0 {
        col.fill(T::from_f64(0.0));
    }
    let ohw = d.out_hw();
    d.for_each_patch_row(|row, oy, src_row, kx| {
        let dst = &mut col[row * ohw + oy * d.ow..row * ohw + (oy + 1) * d.ow];
        let src = &x[src_row..src_row + d.w];
        let valid = d.valid_ox(kx);
        if d.stride == 1 {
            let shift = kx as isize - d.pad as isize;
            let (lo, hi) = (valid.start, valid.end);
            dst[lo..hi].copy_from_slice(
                &src[(lo as isize + shift) as usize..(hi as isize + shift) as usize],
            );
        } else {
            for ox in valid {
                dst[ox] = src[ox * d.stride + kx - d.pad];
            }
        }
    });
}

fn col2im<T: WithDType>(col: &[T], d: &Dims, x: &mut [T]) {
    x.fill(T::from_f64(0.0));
    let ohw = d.out_hw();
    d.for_each_patch_row(|row, oy, src_row, kx| {
        let src = &col[row * ohw + oy * d.ow..row * ohw + (oy + 1) * d.ow];
        let dst = &mut x[src_row..src_row + d.w];
        let valid = d.valid_ox(kx);
        if d.stride == 1 {
            // Contiguous on both sides: a plain slice add the compiler vectorises.
            let (lo, hi) = (valid.start, valid.end);
            let start = (lo + kx) as isize - d.pad as isize;
            let dst = &mut dst[start as usize..start as usize + (hi - lo)];
            for (a, b) in dst.iter_mut().zip(&src[lo..hi]) {
                *a += *b;
            }
        } else {
            for ox in valid {
                dst[ox * d.stride + kx - d.pad] += src[ox];
            }
        }
    });
}

/// One image's im2col on plain slices, for the frozen inference path: `col` (patch ×
/// pixels) from `x` (`c_in × h × w`) for a `k × k` kernel at `g`. Returns the output's
/// `(oh, ow)`.
pub fn im2col_image<T: WithDType>(
    x: &[T],
    (c_in, h, w): (usize, usize, usize),
    k: usize,
    g: ConvGeometry,
    col: &mut Vec<T>,
) -> candle_core::Result<(usize, usize)> {
    let d = Dims::new(&[1, c_in, h, w], &[1, c_in, k, k], g)?;
    if x.len() < d.in_plane() {
        candle_core::bail!("im2col: {} values for a {c_in}x{h}x{w} image", x.len())
    }
    // Every value is written (`im2col` zeroes the buffer first when there is padding); the
    // buffer only grows, so that its reuse for smaller activations zeroes nothing.
    let len = d.patch() * d.out_hw();
    if col.len() < len {
        col.resize(len, T::from_f64(0.0));
    }
    im2col(x, &d, &mut col[..len]);
    Ok((d.oh, d.ow))
}

/// Threads for gemm inside one image: all of them when there are fewer images than threads.
fn inner_threads(n: usize) -> usize {
    let threads = rayon::current_num_threads();
    if n >= threads { 1 } else { threads }
}

fn gemm_err(e: crate::ops::cpu::gemm::GemmShapeError) -> candle_core::Error {
    candle_core::Error::Msg(e.to_string())
}

/// The activation fused into the convolution's output.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Identity,
    Relu,
}

/// The forward op: `y = act(conv(x, w) + b)`.
pub struct Conv2dOp(pub ConvGeometry, pub Activation);

impl CustomOp3 for Conv2dOp {
    fn name(&self) -> &'static str {
        "fakelens-conv2d"
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
        let d = Dims::new(xl.dims(), wl.dims(), self.0)?;
        let relu = self.1 == Activation::Relu;
        if let Some(dd) = d.direct(xs) {
            let (x, w, b) = (
                contiguous::<f32>(xs, xl)?,
                contiguous::<f32>(ws, wl)?,
                contiguous::<f32>(bs, bl)?,
            );
            check_bias(b.len(), &d)?;
            let y = direct::forward(x, w, b, &dd, relu);
            return Ok((CpuStorage::F32(y), Shape::from((d.n, d.c_out, d.oh, d.ow))));
        }
        dispatch_float!(xs, "conv2d", conv_forward(&d, relu, xs, xl, ws, wl, bs, bl))
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = match self.1 {
            Activation::Identity => grad.contiguous()?,
            // ReLU's output is positive exactly where its input was: mask the gradient by it.
            Activation::Relu => grad.contiguous()?.apply_op2_no_bwd(res, &ReluGradMask)?,
        };
        let grad_x = if x.track_op() {
            Some(grad.apply_op2_no_bwd(w, &ConvGradInput(self.0, x.dims().to_vec()))?)
        } else {
            None
        };
        let grad_w = if w.track_op() {
            Some(x.apply_op2_no_bwd(&grad, &ConvGradWeight(self.0, w.dims().to_vec()))?)
        } else {
            None
        };
        let grad_b = if b.track_op() {
            Some(grad.apply_op1_no_bwd(&ChannelSum)?)
        } else {
            None
        };
        Ok((grad_x, grad_w, grad_b))
    }
}

/// `dL/dx = col2im(wᵀ · dL/dy)` per image.
struct ConvGradInput(ConvGeometry, Vec<usize>);

impl CustomOp2 for ConvGradInput {
    fn name(&self) -> &'static str {
        "fakelens-conv2d-grad-input"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::new(&self.1, wl.dims(), self.0)?;
        if let Some(dd) = d.direct(gs) {
            let (g, w) = (contiguous::<f32>(gs, gl)?, contiguous::<f32>(ws, wl)?);
            let dx = direct::grad_input(g, w, &dd);
            return Ok((CpuStorage::F32(dx), Shape::from((d.n, d.c_in, d.h, d.w))));
        }
        dispatch_float!(gs, "conv2d", conv_grad_input(&d, gs, gl, ws, wl))
    }
}

/// `dL/dw = Σₙ dL/dyₙ · im2col(xₙ)ᵀ`, accumulated per thread and then summed.
struct ConvGradWeight(ConvGeometry, Vec<usize>);

impl CustomOp2 for ConvGradWeight {
    fn name(&self) -> &'static str {
        "fakelens-conv2d-grad-weight"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        gs: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let d = Dims::new(xl.dims(), &self.1, self.0)?;
        if let Some(dd) = d.direct(xs) {
            let (x, g) = (contiguous::<f32>(xs, xl)?, contiguous::<f32>(gs, gl)?);
            let dw = direct::grad_weight(x, g, &dd);
            return Ok((
                CpuStorage::F32(dw),
                Shape::from((d.c_out, d.c_in, d.k, d.k)),
            ));
        }
        dispatch_float!(xs, "conv2d", conv_grad_weight(&d, xs, xl, gs, gl))
    }
}

fn check_bias(len: usize, d: &Dims) -> candle_core::Result<()> {
    if len != d.c_out {
        candle_core::bail!("conv2d bias has {len} values for {} channels", d.c_out)
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn conv_forward<T: CpuFloat>(
    d: &Dims,
    relu: bool,
    xs: &CpuStorage,
    xl: &Layout,
    ws: &CpuStorage,
    wl: &Layout,
    bs: &CpuStorage,
    bl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, w, b) = (
        contiguous::<T>(xs, xl)?,
        contiguous::<T>(ws, wl)?,
        contiguous::<T>(bs, bl)?,
    );
    check_bias(b.len(), d)?;
    let ohw = d.out_hw();
    let zero = T::from_f64(0.0);
    let mut out = zeros(d.n * d.c_out * ohw);
    let threads = inner_threads(d.n);
    // y (c_out × pixels) = w (c_out × patch) · col (patch × pixels)
    let lhs = WeightLhs::new(
        w,
        (d.c_out, d.patch()),
        (d.patch(), 1),
        d.n,
        d.is_pointwise(),
    );
    // Xception's separable convs have no bias: then the product is the result as it is.
    let epilogue = relu || b.iter().any(|&v| v != zero);
    out.par_chunks_mut(d.c_out * ohw)
        .zip(x.par_chunks(d.in_plane()))
        .try_for_each(|(y, x)| {
            let product = |y: &mut [T], col: &[T]| {
                lhs.product(y, col, ohw, threads).map_err(gemm_err)?;
                if !epilogue {
                    return Ok(());
                }
                for (plane, &bias) in y.chunks_mut(ohw).zip(b) {
                    add_bias(plane, bias, relu);
                }
                Ok::<(), candle_core::Error>(())
            };
            if d.is_pointwise() {
                return product(y, x);
            }
            T::with_scratch(d.patch() * ohw, |col| {
                im2col(x, d, col);
                product(y, col)
            })
        })?;
    Ok((
        T::to_cpu_storage_owned(out),
        Shape::from((d.n, d.c_out, d.oh, d.ow)),
    ))
}

fn conv_grad_input<T: CpuFloat>(
    d: &Dims,
    gs: &CpuStorage,
    gl: &Layout,
    ws: &CpuStorage,
    wl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (g, w) = (contiguous::<T>(gs, gl)?, contiguous::<T>(ws, wl)?);
    let ohw = d.out_hw();
    let mut out = zeros(d.n * d.in_plane());
    let threads = inner_threads(d.n);
    // col (patch × pixels) = wᵀ (patch × c_out) · gy (c_out × pixels)
    let lhs = WeightLhs::new(
        w,
        (d.patch(), d.c_out),
        (1, d.patch()),
        d.n,
        d.is_pointwise(),
    );
    out.par_chunks_mut(d.in_plane())
        .zip(g.par_chunks(d.c_out * ohw))
        .try_for_each(|(dx, gy)| {
            if d.is_pointwise() {
                return lhs.product(dx, gy, ohw, threads).map_err(gemm_err);
            }
            T::with_scratch(d.patch() * ohw, |col| {
                lhs.product(col, gy, ohw, threads).map_err(gemm_err)?;
                col2im(col, d, dx);
                Ok::<(), candle_core::Error>(())
            })
        })?;
    Ok((
        T::to_cpu_storage_owned(out),
        Shape::from((d.n, d.c_in, d.h, d.w)),
    ))
}

fn conv_grad_weight<T: CpuFloat>(
    d: &Dims,
    xs: &CpuStorage,
    xl: &Layout,
    gs: &CpuStorage,
    gl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (x, g) = (contiguous::<T>(xs, xl)?, contiguous::<T>(gs, gl)?);
    let ohw = d.out_hw();
    if d.is_pointwise() {
        let threads = rayon::current_num_threads();
        let dims = (d.c_out, d.c_in, ohw);
        let dw = T::as_f32(g)
            .zip(T::as_f32(x))
            .and_then(|(g, x)| weight_gradient(g, x, d.n, dims, threads));
        if let Some(dw) = dw {
            return Ok((CpuStorage::F32(dw), Shape::from((d.c_out, d.c_in, 1, 1))));
        }
    }
    let wlen = d.c_out * d.patch();
    let threads = inner_threads(d.n);
    let zero = T::from_f64(0.0);
    // dwᵀ (patch × c_out) = Σₙ col (patch × pixels) · gyᵀ (pixels × c_out), per thread:
    // with the gemm crate's column-major view this keeps the long pixel axis as the reduction
    // and the patch axis as the kernel rows (5× faster than dw = gy · colᵀ for conv1).
    let dwt = x
        .par_chunks(d.in_plane())
        .zip(g.par_chunks(d.c_out * ohw))
        .try_fold(
            || vec![zero; wlen],
            |mut dwt, (x, gy)| {
                let rhs = MatRef::transposed(gy, d.c_out, ohw);
                if d.is_pointwise() {
                    let lhs = MatRef::row_major(x, d.patch(), ohw);
                    matmul(&mut dwt, lhs, rhs, true, threads).map_err(gemm_err)?;
                } else {
                    T::with_scratch(d.patch() * ohw, |col| {
                        im2col(x, d, col);
                        let lhs = MatRef::row_major(&*col, d.patch(), ohw);
                        matmul(&mut dwt, lhs, rhs, true, threads).map_err(gemm_err)
                    })?;
                }
                Ok::<_, candle_core::Error>(dwt)
            },
        )
        .try_reduce(
            || vec![zero; wlen],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += *b);
                Ok(a)
            },
        )?;
    let patch = d.patch();
    let dw: Vec<T> = (0..wlen)
        .map(|i| dwt[(i % patch) * d.c_out + i / patch])
        .collect();
    Ok((
        T::to_cpu_storage_owned(dw),
        Shape::from((d.c_out, d.c_in, d.k, d.k)),
    ))
}

/// `dL/db`: the NCHW gradient summed over everything but the channel (Candle's strided
/// `sum((0, 2, 3))` takes ~30× longer on conv1's 12M values).
struct ChannelSum;

impl CustomOp1 for ChannelSum {
    fn name(&self) -> &'static str {
        "fakelens-channel-sum"
    }

    fn cpu_fwd(&self, s: &CpuStorage, l: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(s, "channel sum", channel_sum(s, l))
    }
}

fn channel_sum<T: CpuFloat>(
    s: &CpuStorage,
    l: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let &[n, c, h, w] = l.dims() else {
        candle_core::bail!("channel sum expects NCHW, got {:?}", l.dims())
    };
    let g = contiguous::<T>(s, l)?;
    let plane = h * w;
    let zero = T::from_f64(0.0);
    let sums: Vec<T> = (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n)
                .map(|i| {
                    let start = (i * c + ch) * plane;
                    g[start..start + plane].iter().fold(zero, |acc, v| acc + *v)
                })
                .fold(zero, |acc, v| acc + v)
        })
        .collect();
    Ok((T::to_cpu_storage_owned(sums), Shape::from(c)))
}

/// `conv(x, w) + b` with the fast CPU op, or Candle's stock conv on other devices (same
/// result; GPU kernels of our own come later).
pub fn conv2d(x: &Tensor, w: &Tensor, b: &Tensor, g: ConvGeometry) -> candle_core::Result<Tensor> {
    conv2d_act(x, w, b, g, Activation::Identity)
}

/// `relu(conv(x, w) + b)`, fused on the CPU.
pub fn conv2d_relu(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    conv2d_act(x, w, b, g, Activation::Relu)
}

fn conv2d_act(
    x: &Tensor,
    w: &Tensor,
    b: &Tensor,
    g: ConvGeometry,
    act: Activation,
) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        return x.contiguous()?.apply_op3(w, b, Conv2dOp(g, act));
    }
    let y = x.conv2d(w, g.padding, g.stride, 1, 1)?;
    let y = y.broadcast_add(&b.reshape((1, b.elem_count(), 1, 1))?)?;
    match act {
        Activation::Identity => Ok(y),
        Activation::Relu => y.relu(),
    }
}
