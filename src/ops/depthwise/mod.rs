//! Depthwise convolution (groups = channels, one k×k filter per channel, no bias) as a
//! Candle `CustomOp2` with its own backward: a direct per-plane kernel, parallel over
//! batch × channel for the output and the input gradient, and over channels for the weight
//! gradient. Candle's grouped convolution runs one convolution per group, 728 per Xception
//! layer. Any stride and padding; f32 and f64.

pub mod plane_3x3;

use candle_core::{CpuStorage, CustomOp2, Layout, Shape, Tensor, WithDType};
use rayon::prelude::*;

use crate::ops::cpu::float::{CpuFloat, contiguous, dispatch_float, zeros};
use crate::ops::geometry::{ConvGeometry, ConvShape, Grouping};
use plane_3x3::TapSums;

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
        let s = ConvShape::new("depthwise conv", x, w, g, Grouping::Depthwise)?;
        Ok(Dims {
            n: s.n,
            c: s.c_in,
            h: s.h,
            w: s.w,
            k: s.k,
            oh: s.oh,
            ow: s.ow,
            stride: s.stride,
            pad: s.pad,
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
    #[inline(always)]
    fn pad_into<T: WithDType>(&self, x: &[T], buf: &mut [T]) {
        let zero = T::from_f64(0.0);
        if self.pad > 0 {
            // Only the border: the rows between are overwritten below (a whole-plane fill
            // was 4 % of a LilXception evaluation).
            let (wp, hp) = (self.wp(), self.hp());
            buf[..self.pad * wp].fill(zero);
            buf[(hp - self.pad) * wp..hp * wp].fill(zero);
            for y in self.pad..hp - self.pad {
                let row = &mut buf[y * wp..(y + 1) * wp];
                row[..self.pad].fill(zero);
                row[wp - self.pad..].fill(zero);
            }
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
    #[inline(always)]
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
                dx.apply_op2_no_bwd(&x.contiguous()?, &crate::ops::elementwise::ReluGradMask)?
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
    let mut y = zeros(d.n * d.c * d.out_plane());
    y.par_chunks_mut(d.out_plane())
        .zip(x.par_chunks(d.plane()))
        .enumerate()
        .for_each(|(plane_index, (y, x))| {
            let wc = &w[(plane_index % d.c) * kk..][..kk];
            T::with_scratch(d.hp() * d.wp(), |padded| {
                forward_plane_wide(d, x, wc, y, padded)
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
    let mut dx = zeros(d.n * d.c * d.plane());
    dx.par_chunks_mut(d.plane())
        .zip(g.par_chunks(d.out_plane()))
        .enumerate()
        .for_each(|(plane_index, (dx, g))| {
            let wc = &w[(plane_index % d.c) * kk..][..kk];
            T::with_scratch(d.hp().max(d.h + 2) * d.wp().max(d.w + 2), |padded| {
                grad_input_plane_wide(d, g, wc, dx, padded)
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
        T::with_scratch(d.hp() * d.wp() + kk * d.ow, |scratch| {
            let (padded, sums) = scratch.split_at_mut(d.hp() * d.wp());
            grad_weight_channel_wide(d, c, x, g, dwc, padded, sums)
        });
    });
    Ok((T::to_cpu_storage_owned(dw), Shape::from((d.c, 1, d.k, d.k))))
}

/// Defines `$wide(args)`: `$body(args)` (an `#[inline(always)]` function) compiled into an
/// AVX-512 function when the processor has it, where LLVM vectorises the plane loops below
/// 16 lanes wide (4 in the baseline build), and run as is otherwise.
macro_rules! widened {
    ($wide:ident, $avx512:ident, $body:ident, ($($arg:ident: $ty:ty),*)) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx512f")]
        fn $avx512<T: CpuFloat>($($arg: $ty),*) {
            $body($($arg),*)
        }

        fn $wide<T: CpuFloat>($($arg: $ty),*) {
            #[cfg(target_arch = "x86_64")]
            if crate::ops::cpu::available() {
                // SAFETY: AVX-512F is present (`available`).
                return unsafe { $avx512($($arg),*) };
            }
            $body($($arg),*)
        }
    };
}

widened!(forward_plane_wide, forward_plane_avx512, forward_plane,
    (d: &Dims, x: &[T], wc: &[T], y: &mut [T], padded: &mut [T]));
widened!(grad_input_plane_wide, grad_input_plane_avx512, grad_input_plane,
    (d: &Dims, g: &[T], wc: &[T], dx: &mut [T], padded: &mut [T]));
widened!(grad_weight_channel_wide, grad_weight_channel_avx512, grad_weight_channel,
    (d: &Dims, c: usize, x: &[T], g: &[T], dwc: &mut [T], padded: &mut [T], sums: &mut [T]));

/// One output plane: `y = x ⋆ wc` (`y` starts zeroed).
#[inline(always)]
fn forward_plane<T: CpuFloat>(d: &Dims, x: &[T], wc: &[T], y: &mut [T], padded: &mut [T]) {
    d.pad_into(x, padded);
    if let (3, 1, Ok(w9)) = (d.k, d.stride, <&[T; 9]>::try_from(wc)) {
        return plane_3x3::correlate(padded, d.wp(), w9, y, (d.oh, d.ow));
    }
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
}

/// One input-gradient plane: each output gradient spread over its window in the padded
/// plane, then the padding cropped.
#[inline(always)]
fn grad_input_plane<T: CpuFloat>(d: &Dims, g: &[T], wc: &[T], dx: &mut [T], padded: &mut [T]) {
    if let (3, 1, Ok(w9), true) = (d.k, d.stride, <&[T; 9]>::try_from(wc), d.pad <= 2) {
        // dx = g, padded by 2 - pad, correlated with the kernel turned by 180°.
        let mut flipped = *w9;
        flipped.reverse();
        let transposed = Dims {
            h: d.oh,
            w: d.ow,
            oh: d.h,
            ow: d.w,
            pad: 2 - d.pad,
            relu: false,
            ..*d
        };
        transposed.pad_into(g, padded);
        return plane_3x3::correlate(padded, transposed.wp(), &flipped, dx, (d.h, d.w));
    }
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
}

/// Channel `c`'s weight gradient over the batch. Each tap keeps a row of per-column partial
/// sums (`sums`, k² × ow), so the products vectorise; the rows are added up at the end.
#[inline(always)]
fn grad_weight_channel<T: CpuFloat>(
    d: &Dims,
    c: usize,
    x: &[T],
    g: &[T],
    dwc: &mut [T],
    padded: &mut [T],
    sums: &mut [T],
) {
    let zero = T::from_f64(0.0);
    #[cfg(target_arch = "x86_64")]
    if (d.k, d.stride, dwc.len()) == (3, 1, 9) && crate::ops::cpu::available() {
        let wide = (T::as_f32(x), T::as_f32(g), T::as_f32_mut(padded));
        if let (Some(x), Some(g), Some(padded)) = wide {
            let mut lanes = [[0.0f32; plane_3x3::LANES]; 9];
            for n in 0..d.n {
                let plane = (n * d.c + c) * d.plane();
                d.pad_into(&x[plane..plane + d.plane()], padded);
                let gplane = &g[(n * d.c + c) * d.out_plane()..][..d.out_plane()];
                // SAFETY: AVX-512F is present (`available`).
                unsafe {
                    plane_3x3::weight_taps_f32(padded, d.wp(), gplane, (d.oh, d.ow), &mut lanes)
                };
            }
            for (dw, lanes) in dwc.iter_mut().zip(&lanes) {
                *dw = T::from_f64(lanes.iter().map(|v| f64::from(*v)).sum());
            }
            return;
        }
    }
    if (d.k, d.stride, dwc.len()) == (3, 1, 9) {
        let mut taps = TapSums::default();
        for n in 0..d.n {
            let plane = (n * d.c + c) * d.plane();
            d.pad_into(&x[plane..plane + d.plane()], padded);
            let gplane = &g[(n * d.c + c) * d.out_plane()..][..d.out_plane()];
            plane_3x3::weight_taps(padded, d.wp(), gplane, (d.oh, d.ow), &mut taps);
        }
        dwc.copy_from_slice(&taps.total());
        return;
    }
    sums.fill(zero);
    for n in 0..d.n {
        let plane = (n * d.c + c) * d.plane();
        d.pad_into(&x[plane..plane + d.plane()], padded);
        let gplane = &g[(n * d.c + c) * d.out_plane()..][..d.out_plane()];
        d.rows(|oy, row, wrow| {
            let gy = &gplane[oy * d.ow..(oy + 1) * d.ow];
            for kx in 0..d.k {
                let acc = &mut sums[(wrow + kx) * d.ow..][..d.ow];
                if d.stride == 1 {
                    let src = &padded[row + kx..row + kx + d.ow];
                    for ((a, gv), s) in acc.iter_mut().zip(gy).zip(src) {
                        *a += *gv * *s;
                    }
                } else {
                    for (ox, (a, gv)) in acc.iter_mut().zip(gy).enumerate() {
                        *a += *gv * padded[row + ox * d.stride + kx];
                    }
                }
            }
        });
    }
    for (tap, dw) in dwc.iter_mut().enumerate() {
        *dw = sums[tap * d.ow..(tap + 1) * d.ow]
            .iter()
            .fold(zero, |total, v| total + *v);
    }
}

/// One image's depthwise convolution on plain f32 slices, for the frozen inference path:
/// `y (c × oh × ow) = x ⋆ w` (`relu(x) ⋆ w` if `relu`), `x` being `c × h × w` and `w`
/// `c × k × k`; the channels in parallel when `parallel`. Returns the output's `(oh, ow)`.
/// The same plane loops as the op, so the values are the op's.
#[allow(clippy::too_many_arguments)]
pub fn forward_image(
    x: &[f32],
    (c, h, w): (usize, usize, usize),
    weights: &[f32],
    k: usize,
    g: ConvGeometry,
    relu: bool,
    y: &mut [f32],
    parallel: bool,
) -> candle_core::Result<(usize, usize)> {
    let d = Dims {
        relu,
        ..Dims::new(&[1, c, h, w], &[c, 1, k, k], g)?
    };
    if x.len() < c * d.plane() || weights.len() < c * k * k || y.len() < c * d.out_plane() {
        candle_core::bail!("depthwise conv: buffers too small for {c}x{h}x{w}")
    }
    let kk = k * k;
    // The 3×3 stride-1 loop writes every output; the general one adds into zeros.
    let writes_all = (k, g.stride) == (3, 1);
    let plane = |(ci, y): (usize, &mut [f32])| {
        if !writes_all {
            y.fill(0.0);
        }
        let x = &x[ci * d.plane()..][..d.plane()];
        f32::with_scratch(d.hp() * d.wp(), |padded| {
            forward_plane_wide(&d, x, &weights[ci * kk..][..kk], y, padded)
        });
    };
    let y = &mut y[..c * d.out_plane()];
    if parallel {
        y.par_chunks_mut(d.out_plane()).enumerate().for_each(plane);
    } else {
        y.chunks_mut(d.out_plane()).enumerate().for_each(plane);
    }
    Ok((d.oh, d.ow))
}

/// Depthwise convolution with the fast CPU op, or composed from strided shifts elsewhere
/// (same values; Candle's grouped convolution would run one convolution per channel).
pub fn depthwise_conv2d(x: &Tensor, w: &Tensor, g: ConvGeometry) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && matches!(x.dtype(), candle_core::DType::F32 | candle_core::DType::F64)
    {
        return x.contiguous()?.apply_op2(w, DepthwiseConv(g, false));
    }
    crate::ops::shifted::depthwise_conv2d_by_shifts(x, w, g)
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
    crate::ops::shifted::depthwise_conv2d_by_shifts(&x.relu()?, w, g)
}
