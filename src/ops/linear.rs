//! A fully connected layer for a few rows with a frozen weight (explaining one image):
//! `y = x·Wᵀ + b` as one matrix-vector product per row, and its input gradient `dx = dy·W`,
//! each streaming the weight once. A general matrix product packs the weight first, which for
//! SimpleNet's 1024 × 16224 `fc1` (66 MB) at batch 1 costs more than the product itself.
//! Used only where no weight gradient is needed; training keeps Candle's product.

use candle_core::{CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::cpu::float::{CpuFloat, contiguous, dispatch_float};

/// Rows up to which the matrix-vector path is taken.
pub const MAX_ROWS: usize = 4;

/// Output values per parallel task of the forward product.
const OUTPUTS_PER_TASK: usize = 16;
/// Partial sums per dot product (vectorisable: 16 f32 lanes).
const LANES: usize = 16;

/// `x·Wᵀ + b` for the `N × K` input and `M × K` weight.
pub fn linear(x: &Tensor, w: &Tensor, b: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let fast = x.device().is_cpu()
        && matches!(x.dtype(), DType::F32 | DType::F64)
        && x.rank() == 2
        && x.dim(0)? <= MAX_ROWS
        && !w.track_op()
        && b.is_none_or(|b| !b.track_op());
    let y = if fast {
        x.contiguous()?.apply_op2(&w.contiguous()?, MatVec)?
    } else {
        x.matmul(&w.t()?)?
    };
    match b {
        Some(b) => y.broadcast_add(b),
        None => Ok(y),
    }
}

/// The forward op (x, W) → x·Wᵀ.
struct MatVec;

impl CustomOp2 for MatVec {
    fn name(&self) -> &'static str {
        "fakelens-small-batch-linear"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(xs, "small-batch linear", forward(xs, xl, ws, wl))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        w: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let dx = grad.contiguous()?.apply_op2_no_bwd(w, &InputGrad)?;
        Ok((Some(dx), None))
    }
}

/// (dy, W) → dy·W.
struct InputGrad;

impl CustomOp2 for InputGrad {
    fn name(&self) -> &'static str {
        "fakelens-small-batch-linear-grad"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(gs, "small-batch linear", input_grad(gs, gl, ws, wl))
    }
}

/// Rows of `a`, and the weight's `M × K`, with `a` having `columns` columns.
fn dims(
    a: &Layout,
    w: &Layout,
    columns: impl Fn(usize, usize) -> usize,
) -> candle_core::Result<(usize, usize, usize)> {
    let (rows, inner) = a.shape().dims2()?;
    let (m, k) = w.shape().dims2()?;
    if inner != columns(m, k) {
        candle_core::bail!("small-batch linear: {rows}x{inner} does not fit weight {m}x{k}")
    }
    Ok((rows, m, k))
}

/// `y (rows × m) = x (rows × k) · Wᵀ + b` on plain f32 slices for a few rows, each weight
/// row streamed once (the frozen inference path's head at small batches). `None` if a
/// length does not fit.
pub fn matvec_rows(
    x: &[f32],
    rows: usize,
    w: &[f32],
    b: &[f32],
    (m, k): (usize, usize),
) -> Option<Vec<f32>> {
    if x.len() != rows * k || w.len() != m * k || b.len() != m {
        return None;
    }
    let mut y = matvec(x, rows, w, (m, k));
    for row in y.chunks_mut(m) {
        for (v, &bias) in row.iter_mut().zip(b) {
            *v += bias;
        }
    }
    Some(y)
}

/// `x (rows × k) · Wᵀ` (`W` being `m × k`), output-major so that each task streams its
/// weight rows once for every input row, then turned back to `rows × m`.
fn matvec<T: CpuFloat>(x: &[T], rows: usize, w: &[T], (m, k): (usize, usize)) -> Vec<T> {
    let mut yt = vec![T::from_f64(0.0); m * rows];
    yt.par_chunks_mut(OUTPUTS_PER_TASK * rows)
        .zip(w.par_chunks(OUTPUTS_PER_TASK * k))
        .for_each(|(yt, w)| {
            for (y_o, w_o) in yt.chunks_mut(rows).zip(w.chunks(k)) {
                for (y, x_n) in y_o.iter_mut().zip(x.chunks(k)) {
                    *y = dot(w_o, x_n);
                }
            }
        });
    let mut y = vec![T::from_f64(0.0); rows * m];
    for (o, y_o) in yt.chunks(rows).enumerate() {
        for (n, &v) in y_o.iter().enumerate() {
            y[n * m + o] = v;
        }
    }
    y
}

fn dot<T: CpuFloat>(a: &[T], b: &[T]) -> T {
    #[cfg(target_arch = "x86_64")]
    if crate::ops::cpu::available()
        && let (Some(a), Some(b)) = (T::as_f32(a), T::as_f32(b))
    {
        let n = a.len().min(b.len());
        // SAFETY: AVX-512F is present; both slices hold `n` values.
        return T::from_f64(f64::from(unsafe { avx512::dot(&a[..n], &b[..n]) }));
    }
    let zero = T::from_f64(0.0);
    let mut partial = [zero; LANES];
    let (a_chunks, b_chunks) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: T = a_chunks
        .remainder()
        .iter()
        .zip(b_chunks.remainder())
        .fold(zero, |s, (&x, &y)| s + x * y);
    for (a, b) in a_chunks.zip(b_chunks) {
        for ((p, &x), &y) in partial.iter_mut().zip(a).zip(b) {
            *p += x * y;
        }
    }
    partial.iter().fold(tail, |s, &p| s + p)
}

/// `y += scale · x`.
fn axpy<T: CpuFloat>(y: &mut [T], scale: T, x: &[T]) {
    #[cfg(target_arch = "x86_64")]
    if crate::ops::cpu::available()
        && let (Some(x), Some(y)) = (T::as_f32(x), T::as_f32_mut(y))
    {
        let n = x.len().min(y.len());
        // SAFETY: AVX-512F is present; both slices hold `n` values.
        unsafe { avx512::axpy(&mut y[..n], scale.to_f64() as f32, &x[..n]) };
        return;
    }
    for (d, &v) in y.iter_mut().zip(x) {
        *d += scale * v;
    }
}

fn forward<T: CpuFloat>(
    xs: &CpuStorage,
    xl: &Layout,
    ws: &CpuStorage,
    wl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (rows, m, k) = dims(xl, wl, |_, k| k)?;
    let (x, w) = (contiguous::<T>(xs, xl)?, contiguous::<T>(ws, wl)?);
    let y = matvec(x, rows, w, (m, k));
    Ok((T::to_cpu_storage_owned(y), Shape::from((rows, m))))
}

fn input_grad<T: CpuFloat>(
    gs: &CpuStorage,
    gl: &Layout,
    ws: &CpuStorage,
    wl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (rows, m, k) = dims(gl, wl, |m, _| m)?;
    let (g, w) = (contiguous::<T>(gs, gl)?, contiguous::<T>(ws, wl)?);
    // Each task streams its own band of weight rows front to back into a private sum (a
    // column split would read every row in short pieces, a page apart); the sums are added.
    let band = m.div_ceil(rayon::current_num_threads().max(1)).max(1);
    let zero = T::from_f64(0.0);
    let partial_sums: Vec<Vec<T>> = w
        .par_chunks(band * k)
        .enumerate()
        .map(|(i, w_band)| {
            let mut sum = vec![T::from_f64(0.0); rows * k];
            for (j, w_o) in w_band.chunks(k).enumerate() {
                let o = i * band + j;
                // Behind a ReLU, an inactive unit's gradient is zero in every row: its
                // weight row adds nothing and is not read at all.
                if g.chunks(m).all(|g_n| g_n[o] == zero) {
                    continue;
                }
                for (sum_n, g_n) in sum.chunks_mut(k).zip(g.chunks(m)) {
                    axpy(sum_n, g_n[o], w_o);
                }
            }
            sum
        })
        .collect();
    let mut sums = partial_sums.into_iter();
    let mut dx = sums
        .next()
        .unwrap_or_else(|| vec![T::from_f64(0.0); rows * k]);
    for sum in sums {
        for (d, v) in dx.iter_mut().zip(sum) {
            *d += v;
        }
    }
    Ok((T::to_cpu_storage_owned(dx), Shape::from((rows, k))))
}

/// The f32 inner loops with AVX-512: four 16-lane partial sums (or updates) per step.
#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    /// `Σ a[i]·b[i]`.
    ///
    /// # Safety
    /// AVX-512F must be present and `b` at least as long as `a`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dot(a: &[f32], b: &[f32]) -> f32 {
        let n = a.len();
        let (pa, pb) = (a.as_ptr(), b.as_ptr());
        let mut i = 0;
        // SAFETY: every load reads 16 values below `n`.
        unsafe {
            let mut acc = [_mm512_setzero_ps(); 4];
            while i + 64 <= n {
                for (j, acc) in acc.iter_mut().enumerate() {
                    let at = i + 16 * j;
                    *acc = _mm512_fmadd_ps(
                        _mm512_loadu_ps(pa.add(at)),
                        _mm512_loadu_ps(pb.add(at)),
                        *acc,
                    );
                }
                i += 64;
            }
            while i + 16 <= n {
                acc[0] = _mm512_fmadd_ps(
                    _mm512_loadu_ps(pa.add(i)),
                    _mm512_loadu_ps(pb.add(i)),
                    acc[0],
                );
                i += 16;
            }
            let sum = _mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3]));
            let tail: f32 = a[i..].iter().zip(&b[i..]).map(|(x, y)| x * y).sum();
            _mm512_reduce_add_ps(sum) + tail
        }
    }

    /// `y[i] += scale · x[i]`.
    ///
    /// # Safety
    /// AVX-512F must be present and `x` at least as long as `y`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn axpy(y: &mut [f32], scale: f32, x: &[f32]) {
        let n = y.len();
        let (py, px) = (y.as_mut_ptr(), x.as_ptr());
        let mut i = 0;
        // SAFETY: every load and store touches 16 values below `n`.
        unsafe {
            let s = _mm512_set1_ps(scale);
            while i + 16 <= n {
                let v = _mm512_fmadd_ps(s, _mm512_loadu_ps(px.add(i)), _mm512_loadu_ps(py.add(i)));
                _mm512_storeu_ps(py.add(i), v);
                i += 16;
            }
        }
        for (d, &v) in y[i..].iter_mut().zip(&x[i..]) {
            *d += scale * v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    /// `linear`'s output and its input gradient for the loss `Σ y·up`, flattened and as f64:
    /// `[fast path, Candle's product]`.
    fn fast_and_reference(
        x: &Tensor,
        w: &Tensor,
        b: Option<&Tensor>,
        up: &Tensor,
    ) -> [(Vec<f64>, Vec<f64>); 2] {
        [true, false].map(|fast| {
            let xv = Var::from_tensor(x).unwrap();
            let y = if fast {
                linear(xv.as_tensor(), w, b).unwrap()
            } else {
                let y = xv.as_tensor().matmul(&w.t().unwrap()).unwrap();
                match b {
                    Some(b) => y.broadcast_add(b).unwrap(),
                    None => y,
                }
            };
            let grads = (y.clone() * up)
                .unwrap()
                .sum_all()
                .unwrap()
                .backward()
                .unwrap();
            let values = |t: &Tensor| {
                let t = t.flatten_all().unwrap().to_dtype(DType::F64).unwrap();
                t.to_vec1::<f64>().unwrap()
            };
            (values(&y), values(grads.get(xv.as_tensor()).unwrap()))
        })
    }

    /// The matrix-vector path gives Candle's product and its input gradient (f64, so the
    /// different summation orders agree to rounding), on shapes with odd tails.
    #[test]
    fn matches_candle_forward_and_input_gradient() {
        let dev = Device::Cpu;
        for (rows, m, k) in [(1, 37, 1000), (3, 5, 16), (4, 100, 2049)] {
            let x = Tensor::randn(0.0f64, 1.0, (rows, k), &dev).unwrap();
            let w = Tensor::randn(0.0f64, 1.0, (m, k), &dev).unwrap();
            let b = Tensor::randn(0.0f64, 1.0, m, &dev).unwrap();
            let up = Tensor::randn(0.0f64, 1.0, (rows, m), &dev).unwrap();
            let [fast, slow] = fast_and_reference(&x, &w, Some(&b), &up);
            for (a, b) in fast.0.iter().zip(&slow.0).chain(fast.1.iter().zip(&slow.1)) {
                assert!(
                    (a - b).abs() <= 1e-9 * (1.0 + b.abs()),
                    "{rows}x{m}x{k}: {a} vs {b}"
                );
            }
        }
    }

    /// The f32 path (AVX-512 where present) matches Candle's product within f32 rounding,
    /// including upstream gradients that are zero for some units (rows skipped) or all.
    #[test]
    fn f32_path_matches_candle_with_zero_gradients() {
        let dev = Device::Cpu;
        for (rows, m, k) in [(1, 64, 16224), (2, 33, 100), (4, 17, 7)] {
            let x = Tensor::randn(0.0f32, 1.0, (rows, k), &dev).unwrap();
            let w = Tensor::randn(0.0f32, 1.0, (m, k), &dev).unwrap();
            // Every third unit gets no gradient, as behind an inactive ReLU.
            let mask: Vec<f32> = (0..rows * m)
                .map(|i| if (i % m) % 3 == 0 { 0.0 } else { 1.0 })
                .collect();
            let mask = Tensor::from_vec(mask, (rows, m), &dev).unwrap();
            let up = (Tensor::randn(0.0f32, 1.0, (rows, m), &dev).unwrap() * mask).unwrap();
            let [fast, slow] = fast_and_reference(&x, &w, None, &up);
            // Sums of k products of unit normals: rounding grows like √k·ε.
            let tolerance = 1e-5 * (k as f64).sqrt();
            for (a, b) in fast.0.iter().zip(&slow.0).chain(fast.1.iter().zip(&slow.1)) {
                assert!(
                    (a - b).abs() <= tolerance * (1.0 + b.abs()),
                    "{rows}x{m}x{k}: {a} vs {b}"
                );
            }
        }
    }
}
