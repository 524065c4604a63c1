//! The matrix product of a 1×1 convolution whose left operand is the layer's weight (forward:
//! `y = w · x`; input gradient: `dx = wᵀ · dy`), in f32 on AVX-512. The weight is packed once
//! per op call into 12-row panels and shared by every image, where a general blocked product
//! repacks it for each image (for Xception's 728×728 middle-flow weights at 16×16 pixels that
//! packing is half as much work as the product itself); the image's `channels × pixels`
//! operand is read in place, row by row, with no packing at all. Other cases keep
//! `gemm::matmul` (`WeightLhs` picks).

use rayon::prelude::*;

use super::cpu_float::CpuFloat;
use super::gemm::{GemmShapeError, MatRef, matmul};

/// Rows of a packed panel (12 × 2 accumulator vectors: 24 of the 32 vector registers).
const MR: usize = 12;
/// Columns of one kernel call: two 16-lane vectors.
const NR: usize = 32;
/// Depth of one pass over the right operand (32 columns × 256 rows = 32 KiB stay in L1).
const KC: usize = 256;

/// Whether the product runs here (AVX-512F present and the portable paths not forced).
pub fn available() -> bool {
    super::kernels::available()
}

/// A `m × k` left operand packed into panels of `MR` rows: element (i, p) of panel `r` at
/// `(r·k + p)·MR + i - r·MR`, zero below the last row.
pub struct PackedLhs {
    data: Vec<f32>,
    m: usize,
    k: usize,
}

impl PackedLhs {
    /// Packs the `m × k` matrix whose element (i, p) is `a[i·row_stride + p·col_stride]`;
    /// `None` if that reaches outside `a`.
    pub fn pack(
        a: &[f32],
        m: usize,
        k: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Option<PackedLhs> {
        let last = (m.checked_sub(1)?) * row_stride + (k.checked_sub(1)?) * col_stride;
        if last >= a.len() {
            return None;
        }
        let panels = m.div_ceil(MR);
        let mut data = reused_buffer(panels * k * MR);
        // In parallel: for a single image (saliency) packing is a tenth of the work.
        data.par_chunks_mut(k * MR)
            .enumerate()
            .for_each(|(r, panel)| {
                let (first, rows) = (r * MR, MR.min(m - r * MR));
                if row_stride == 1 {
                    // A transposed weight: each panel column lies in one piece.
                    for (p, column) in panel.chunks_exact_mut(MR).enumerate() {
                        let src = &a[p * col_stride + first..];
                        match src.first_chunk::<MR>() {
                            // A copy of fixed length: unrolled, where a slice copy calls
                            // memmove for every 12 values.
                            Some(full) if rows == MR => {
                                for (v, &s) in column.iter_mut().zip(full) {
                                    *v = s;
                                }
                            }
                            _ => column[..rows].copy_from_slice(&src[..rows]),
                        }
                    }
                } else if col_stride == 1 {
                    // A row-major weight: rows are read in one piece and scattered.
                    for i in 0..rows {
                        let row = &a[(first + i) * row_stride..][..k];
                        for (column, &v) in panel.chunks_mut(MR).zip(row) {
                            column[i] = v;
                        }
                    }
                } else {
                    for (p, column) in panel.chunks_mut(MR).enumerate() {
                        for (i, v) in column.iter_mut().take(rows).enumerate() {
                            *v = a[(first + i) * row_stride + p * col_stride];
                        }
                    }
                }
            });
        Some(PackedLhs { data, m, k })
    }

    /// Packs `blocks` side-by-side `m × block_k` row-major matrices, block `b` starting at
    /// `a[b·block_stride]` with row stride `block_k`, as one `m × (blocks·block_k)` matrix
    /// (a batch of `channels × pixels` gradients laid end to end along the reduction axis);
    /// `None` if that reaches outside `a`.
    pub fn pack_blocks(
        a: &[f32],
        m: usize,
        blocks: usize,
        block_k: usize,
        block_stride: usize,
    ) -> Option<PackedLhs> {
        let last = (blocks.checked_sub(1)?) * block_stride + m.checked_sub(1)? * block_k;
        if last + block_k.checked_sub(1)? >= a.len() {
            return None;
        }
        let k = blocks * block_k;
        let mut data = reused_buffer(m.div_ceil(MR) * k * MR);
        data.par_chunks_mut(k * MR)
            .enumerate()
            .for_each(|(r, panel)| {
                let rows = MR.min(m - r * MR);
                for (b, block) in panel.chunks_mut(block_k * MR).enumerate() {
                    for i in 0..rows {
                        let src = &a[b * block_stride + (r * MR + i) * block_k..][..block_k];
                        for (column, &v) in block.chunks_mut(MR).zip(src) {
                            column[i] = v;
                        }
                    }
                }
            });
        Some(PackedLhs { data, m, k })
    }
}

thread_local! {
    /// Buffers of dropped packed operands, for the next packing on this thread: a fresh
    /// multi-megabyte buffer per op call was measured at a third of the packing time (page
    /// faults and zeroing).
    static SPARE_BUFFERS: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare buffers kept per thread (a forward pass holds one packed weight at a time; the
/// backward pass, one per gradient).
const MAX_SPARE_BUFFERS: usize = 2;

/// `len` zeros, in a spare buffer when this thread has one.
fn reused_buffer(len: usize) -> Vec<f32> {
    let spare = SPARE_BUFFERS
        .try_with(|spares| spares.borrow_mut().pop())
        .ok()
        .flatten();
    let mut data = spare.unwrap_or_default();
    data.clear();
    data.resize(len, 0.0);
    data
}

impl Drop for PackedLhs {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        let _ = SPARE_BUFFERS.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < MAX_SPARE_BUFFERS {
                spares.push(data);
            }
        });
    }
}

/// A convolution's weight as the left operand of every image's product: packed once per op
/// call when the kernel runs (f32, AVX-512), otherwise read in place by `gemm::matmul`.
pub enum WeightLhs<'a, T> {
    Packed(PackedLhs),
    Plain(MatRef<'a, T>),
}

impl<'a, T: CpuFloat> WeightLhs<'a, T> {
    /// The `m × k` matrix whose element (i, p) is `w[i·row_stride + p·col_stride]`, packed
    /// if `pack` (the callers pack for stride-1 1×1 convs only: on the spatial and strided
    /// convs, with few output channels and many pixels, measuring showed no gain).
    pub fn new(
        w: &'a [T],
        (m, k): (usize, usize),
        (row_stride, col_stride): (usize, usize),
        pack: bool,
    ) -> Self {
        let packed = T::as_f32(w)
            .filter(|_| pack && available())
            .and_then(|w| PackedLhs::pack(w, m, k, row_stride, col_stride));
        match packed {
            Some(p) => WeightLhs::Packed(p),
            None => WeightLhs::Plain(MatRef {
                data: w,
                rows: m,
                cols: k,
                row_stride,
                col_stride,
            }),
        }
    }

    /// `dst (m × n) = self · rhs (k × n)`, both row-major.
    pub fn product(
        &self,
        dst: &mut [T],
        rhs: &[T],
        n: usize,
        threads: usize,
    ) -> Result<(), GemmShapeError> {
        match self {
            WeightLhs::Packed(a) => {
                let done = match (T::as_f32(rhs), T::as_f32_mut(dst)) {
                    (Some(b), Some(c)) => product(a, b, n, n, c, n, false, threads),
                    _ => false,
                };
                if done {
                    Ok(())
                } else {
                    Err(GemmShapeError(format!(
                        "packed product of {}x{} by {} values for {n} columns into {}",
                        a.m,
                        a.k,
                        rhs.len(),
                        dst.len()
                    )))
                }
            }
            WeightLhs::Plain(lhs) => {
                let rhs = MatRef::row_major(rhs, lhs.cols, n);
                matmul(dst, *lhs, rhs, false, threads)
            }
        }
    }
}

/// `c (m × n, row stride ldc) = [c +] a · b`, `b` being `k × n` with row stride `ldb`, on up
/// to `threads` threads (split by columns). Returns false, touching nothing, when the kernel
/// is unavailable or a length does not fit.
#[allow(clippy::too_many_arguments)]
pub fn product(
    a: &PackedLhs,
    b: &[f32],
    ldb: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    threads: usize,
) -> bool {
    let (m, k) = (a.m, a.k);
    let fits = n > 0
        && ldb >= n
        && ldc >= n
        && b.len() >= (k - 1) * ldb + n
        && c.len() >= (m - 1) * ldc + n;
    if !(available() && fits) {
        return false;
    }
    let strips = n.div_ceil(NR);
    let per_thread = strips.div_ceil(threads.max(1));
    let c_at = SharedMut(c.as_mut_ptr());
    (0..strips.div_ceil(per_thread))
        .into_par_iter()
        .for_each(|t| {
            let first = t * per_thread * NR;
            let last = ((t + 1) * per_thread * NR).min(n);
            // SAFETY: `fits` bounds every b and c index below (rows < k or m, columns < n);
            // AVX-512F is present (`available`); this task writes only c's columns
            // first..last, disjoint from every other task's.
            unsafe { columns(a, b.as_ptr(), ldb, first, last, c_at.get(), ldc, accumulate) }
        });
    true
}

/// A pointer to `c` the column tasks of one product share; each writes its own columns.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: the tasks that share it write disjoint elements (see `product`).
unsafe impl Send for SharedMut {}
// SAFETY: as above.
unsafe impl Sync for SharedMut {}
impl SharedMut {
    fn get(self) -> *mut f32 {
        self.0
    }
}

/// Columns `first..last` of the product.
///
/// # Safety
/// AVX-512F must be present; `b` must hold `k` rows of stride `ldb` covering the columns and
/// `c` `m` rows of stride `ldc`; nothing else may access those columns of `c`.
#[allow(clippy::too_many_arguments)]
unsafe fn columns(
    a: &PackedLhs,
    b: *const f32,
    ldb: usize,
    first: usize,
    last: usize,
    c: *mut f32,
    ldc: usize,
    accumulate: bool,
) {
    #[cfg(target_arch = "x86_64")]
    for p0 in (0..a.k).step_by(KC) {
        let depth = KC.min(a.k - p0);
        for j in (first..last).step_by(NR) {
            let width = NR.min(last - j);
            for r in 0..a.m.div_ceil(MR) {
                let rows = MR.min(a.m - r * MR);
                // SAFETY: the caller's bounds; panel r's columns p0..p0+depth are inside
                // `a.data` (panels × k × MR values).
                unsafe {
                    kernel(
                        a.data.as_ptr().add((r * a.k + p0) * MR),
                        b.add(p0 * ldb + j),
                        ldb,
                        depth,
                        c.add(r * MR * ldc + j),
                        ldc,
                        rows,
                        width,
                        accumulate || p0 > 0,
                    )
                }
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, b, ldb, first, last, c, ldc, accumulate);
}

/// `c[0..rows][0..width] (=|+=) Σₚ a[p][0..MR] ⊗ b[p][0..width]` for `p < depth`.
///
/// # Safety
/// AVX-512F; `a` holds `depth × MR` values, `b` `depth` rows of `width` at stride `ldb`, `c`
/// `rows` rows of `width` at stride `ldc`; `width ≤ NR`, `rows ≤ MR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
#[allow(clippy::too_many_arguments)]
unsafe fn kernel(
    a: *const f32,
    b: *const f32,
    ldb: usize,
    depth: usize,
    c: *mut f32,
    ldc: usize,
    rows: usize,
    width: usize,
    load_c: bool,
) {
    use std::arch::x86_64::*;
    let mask = |lanes: usize| -> __mmask16 {
        if lanes >= 16 {
            0xffff
        } else {
            ((1u32 << lanes) - 1) as __mmask16
        }
    };
    let (m0, m1) = (mask(width), mask(width.saturating_sub(16)));
    // Twenty-four named accumulators (an array of them is spilled to the stack every step).
    let z = _mm512_setzero_ps();
    let (mut a0, mut b0, mut a1, mut b1, mut a2, mut b2) = (z, z, z, z, z, z);
    let (mut a3, mut b3, mut a4, mut b4, mut a5, mut b5) = (z, z, z, z, z, z);
    let (mut a6, mut b6, mut a7, mut b7, mut a8, mut b8) = (z, z, z, z, z, z);
    let (mut a9, mut b9, mut a10, mut b10, mut a11, mut b11) = (z, z, z, z, z, z);
    // SAFETY (whole body): the caller's bounds; masked lanes are neither read nor written.
    unsafe {
        for p in 0..depth {
            let row = b.add(p * ldb);
            let x0 = _mm512_maskz_loadu_ps(m0, row);
            let x1 = _mm512_maskz_loadu_ps(m1, row.add(16));
            let ap = a.add(p * MR);
            macro_rules! fma {
                ($i:expr, $lo:ident, $hi:ident) => {
                    let s = _mm512_set1_ps(*ap.add($i));
                    $lo = _mm512_fmadd_ps(s, x0, $lo);
                    $hi = _mm512_fmadd_ps(s, x1, $hi);
                };
            }
            fma!(0, a0, b0);
            fma!(1, a1, b1);
            fma!(2, a2, b2);
            fma!(3, a3, b3);
            fma!(4, a4, b4);
            fma!(5, a5, b5);
            fma!(6, a6, b6);
            fma!(7, a7, b7);
            fma!(8, a8, b8);
            fma!(9, a9, b9);
            fma!(10, a10, b10);
            fma!(11, a11, b11);
        }
        let acc = [
            [a0, b0],
            [a1, b1],
            [a2, b2],
            [a3, b3],
            [a4, b4],
            [a5, b5],
            [a6, b6],
            [a7, b7],
            [a8, b8],
            [a9, b9],
            [a10, b10],
            [a11, b11],
        ];
        for (i, acc) in acc.iter().enumerate().take(rows) {
            let out = c.add(i * ldc);
            let (mut v0, mut v1) = (acc[0], acc[1]);
            if load_c {
                v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, out));
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, out.add(16)));
            }
            _mm512_mask_storeu_ps(out, m0, v0);
            _mm512_mask_storeu_ps(out.add(16), m1, v1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, a: f64) -> Vec<f32> {
        (0..count).map(|i| ((a * i as f64).sin()) as f32).collect()
    }

    /// Against a plain f64 triple loop, for shapes with partial panels, partial column
    /// strips (narrower than one vector too), depths beyond one pass, row strides wider than
    /// the matrix, a transposed left operand, and accumulation.
    #[test]
    fn product_equals_a_plain_triple_loop() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this processor");
            return;
        }
        for &(m, k, n, transposed, accumulate, threads) in &[
            (12, 16, 32, false, false, 1),
            (13, 300, 45, false, true, 2),
            (728, 728, 256, true, false, 2),
            (5, 600, 7, true, true, 1),
            (100, 50, 20, true, false, 2),
            (64, 33, 1000, false, false, 2),
        ] {
            let (ldb, ldc) = (n + 3, n + 5);
            let a = values(m * k, 0.37);
            let b = values(k * ldb, 0.11);
            let before = values(m * ldc, 0.53);
            let (rs, cs) = if transposed { (1, m) } else { (k, 1) };
            let packed = PackedLhs::pack(&a, m, k, rs, cs).unwrap();
            let mut c = before.clone();
            assert!(product(
                &packed, &b, ldb, n, &mut c, ldc, accumulate, threads
            ));
            for i in 0..m {
                for j in 0..n {
                    let mut want: f64 = (0..k)
                        .map(|p| a[i * rs + p * cs] as f64 * b[p * ldb + j] as f64)
                        .sum();
                    if accumulate {
                        want += before[i * ldc + j] as f64;
                    }
                    let got = c[i * ldc + j] as f64;
                    assert!(
                        (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                        "{m}x{k}x{n} at ({i}, {j}): {got} vs {want}"
                    );
                }
                for j in n..ldc.min(before.len() - i * ldc) {
                    assert_eq!(c[i * ldc + j], before[i * ldc + j], "wrote past column {n}");
                }
            }
        }
    }
}
