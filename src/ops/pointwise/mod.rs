//! The matrix product of a 1×1 convolution whose left operand is the layer's weight (forward:
//! `y = w · x`; input gradient: `dx = wᵀ · dy`), in f32 on AVX-512. For a batch the weight is
//! packed once per op call into 12-row panels shared by every image, where a general blocked
//! product repacks it for each image; for one image it is read in place (`pointwise_lhs`).
//! Each pass fills a chunk of 32-column strips of the image's `channels × pixels` operand in
//! contiguous rows (copied, or computed there as a depthwise conv: `rhs.rs`), and each panel
//! in turn runs along the chunk's strips; an `Epilogue` (bias, residual, ReLU) is applied as
//! the kernel stores. The threads share the work in units (`schedule.rs`). Other cases keep
//! `gemm::matmul` (`WeightLhs` picks).

pub mod lhs;
pub mod pooled;
pub mod rhs;
mod schedule;
pub mod weight_grad;

use rayon::prelude::*;

use crate::ops::cpu::float::CpuFloat;
use crate::ops::cpu::gemm::{GemmShapeError, MatRef, matmul};
use crate::ops::cpu::{SharedMut, lane_mask};
use lhs::MR;
pub use lhs::{Lhs, PackedLhs, StridedLhs};
#[cfg(target_arch = "x86_64")]
use rhs::FillChunk;
pub use rhs::Rhs;
use schedule::Units;

/// Columns of one kernel call: two 16-lane vectors.
const NR: usize = 32;
/// Depth of one pass over the right operand (a strip of 32 columns × 256 rows, 32 KiB: L1).
const KC: usize = 256;
/// The strips one chunk fills, in values (256 KiB, a quarter of a core's L2): each panel then
/// runs along the chunk's strips before the next panel does, storing runs of `CHUNK_VALUES /
/// depth` values of each of its output rows, where one strip at a time stored 32. With 128
/// planes of 125 × 125 pixels (LilXception's first block) the stores of 32-value runs to as
/// many rows missed to memory: 68–79 GFLOP/s, 86–93 chunked; 92 → 98–102 on 256 × 256 at
/// 63 × 63; Xception's 728-channel shapes unchanged (one thread, AVX-512).
const CHUNK_VALUES: usize = 1 << 16;
/// How many panels ahead a panel's last strip prefetches the packed left operand. A panel's
/// 12 rows of one pass (12 KiB) are read from L3 or memory once per pass, and with few
/// columns (`conv3` and `conv4` of Xception: 64 pixels, two strips) the kernel waited for
/// them. One thread, Xception at one image, five interleaved runs per setting, the median
/// of the per-pass sums of its products of ≥ 1024 rows (block 12's second conv at 256
/// pixels, `conv3`, `conv4`): 10.5 ms without, 8.7 one panel ahead, 8.6 two; its middle
/// flow's 728 × 728 × 256 products, the median of each: 2.84 → 2.64 ms.
const PREFETCH_PANELS_AHEAD: usize = 2;
/// The depth of one pass for a transposed left operand read in place (see `depth_per_pass`).
const KC_TRANSPOSED_IN_PLACE: usize = 128;

/// Whether the product runs here (AVX-512F present and the portable paths not forced).
pub fn available() -> bool {
    crate::ops::cpu::available()
}

/// A convolution's weight as the left operand of every image's product: for f32 on AVX-512,
/// packed once per op call when several images share it, read in place for one image (the
/// packing then cost as much as the product: measured 1.9 vs 0.9 ms for Xception's 728×728
/// weight at 16×16 pixels, 2.0 vs 0.9 ms for a 1024×1024 one at 8×8); otherwise read in
/// place by `gemm::matmul`.
pub enum WeightLhs<'a, T> {
    Packed(PackedLhs),
    InPlace(StridedLhs<'a>),
    Plain(MatRef<'a, T>),
}

impl<'a, T: CpuFloat> WeightLhs<'a, T> {
    /// The `m × k` matrix whose element (i, p) is `w[i·row_stride + p·col_stride]`, for
    /// `images` products; on this file's kernel if `pointwise` (the callers use it for
    /// stride-1 1×1 convs only: on the spatial and strided convs, with few output channels
    /// and many pixels, measuring showed no gain).
    pub fn new(
        w: &'a [T],
        (m, k): (usize, usize),
        (row_stride, col_stride): (usize, usize),
        images: usize,
        pointwise: bool,
    ) -> Self {
        let here = T::as_f32(w).filter(|_| pointwise && available());
        let lhs = here.and_then(|w| {
            if images > 1 {
                PackedLhs::pack(w, m, k, row_stride, col_stride).map(WeightLhs::Packed)
            } else {
                StridedLhs::new(w, m, k, row_stride, col_stride).map(WeightLhs::InPlace)
            }
        });
        lhs.unwrap_or(WeightLhs::Plain(MatRef {
            data: w,
            rows: m,
            cols: k,
            row_stride,
            col_stride,
        }))
    }

    /// `dst (m × n) = self · rhs (k × n)`, both row-major.
    pub fn product(
        &self,
        dst: &mut [T],
        rhs: &[T],
        n: usize,
        threads: usize,
    ) -> Result<(), GemmShapeError> {
        let lhs = match self {
            WeightLhs::Packed(a) => Lhs::Packed(a),
            WeightLhs::InPlace(a) => Lhs::InPlace(*a),
            WeightLhs::Plain(lhs) => {
                let rhs = MatRef::row_major(rhs, lhs.cols, n);
                return matmul(dst, *lhs, rhs, false, threads);
            }
        };
        let done = match (T::as_f32(rhs), T::as_f32_mut(dst)) {
            (Some(b), Some(c)) => product(lhs, b, n, n, c, n, false, threads),
            _ => false,
        };
        if done {
            return Ok(());
        }
        let (m, k) = lhs.dims();
        Err(GemmShapeError(format!(
            "product of {m}x{k} by {} values for {n} columns into {}",
            rhs.len(),
            dst.len()
        )))
    }
}

/// Depth of one pass over the right operand. A transposed weight read in place (an input
/// gradient's `wᵀ`) brings a cache line or two per depth step where a panel brings three
/// quarters of one, and at `KC` those lines crowded the copied strip out of L1: 128 measured
/// 1.3–1.6× faster on Xception's shapes (256 kept elsewhere: no difference).
fn depth_per_pass(a: &Lhs<'_>) -> usize {
    if a.is_transposed_in_place() {
        KC_TRANSPOSED_IN_PLACE
    } else {
        KC
    }
}

/// Strips in one chunk of a pass `pass_depth` deep (`CHUNK_VALUES`), at least one.
fn strips_per_chunk(pass_depth: usize) -> usize {
    (CHUNK_VALUES / (pass_depth * NR)).max(1)
}

/// `c (m × n, row stride ldc) = [c +] a · b`, `b` being `k × n` with row stride `ldb`, on up
/// to `threads` threads (`schedule::Units`). Returns false, touching nothing, when the kernel
/// is unavailable or a length does not fit.
#[allow(clippy::too_many_arguments)]
pub fn product(
    a: Lhs<'_>,
    b: &[f32],
    ldb: usize,
    n: usize,
    c: &mut [f32],
    ldc: usize,
    accumulate: bool,
    threads: usize,
) -> bool {
    let out = Out {
        c,
        ldc,
        accumulate,
        epilogue: None,
    };
    product_of(a, Rhs::Dense { b, ldb }, n, out, threads)
}

/// Where a product goes: `c` (rows of stride `ldc`), added to its values if `accumulate`,
/// through the `epilogue` if any.
pub struct Out<'a, 'e> {
    pub c: &'a mut [f32],
    pub ldc: usize,
    pub accumulate: bool,
    pub epilogue: Option<Epilogue<'e>>,
}

/// Applied to each output value as the kernel stores it after the last pass, while it is
/// in a register: `max(0, v + bias[row] + residual[row][col])` (the residual laid out as
/// `c`; the maximum only if `relu`, and a NaN passes, as PyTorch's ReLU lets it).
#[derive(Clone, Copy)]
pub struct Epilogue<'e> {
    pub bias: &'e [f32],
    pub residual: Option<&'e [f32]>,
    pub relu: bool,
}

/// `c (m × n) = [c +] a · b` for any right operand (`Rhs`), as `product`, through `out`'s
/// epilogue.
pub fn product_of(a: Lhs<'_>, b: Rhs<'_>, n: usize, out: Out<'_, '_>, threads: usize) -> bool {
    let (m, k) = a.dims();
    let Out {
        c,
        ldc,
        accumulate,
        epilogue,
    } = out;
    let c_len = (m.max(1) - 1) * ldc + n;
    let epilogue_fits =
        epilogue.is_none_or(|e| e.bias.len() >= m && e.residual.is_none_or(|r| r.len() >= c_len));
    let fits = n > 0 && k > 0 && ldc >= n && b.fits(k, n) && c.len() >= c_len && epilogue_fits;
    if !(available() && fits) {
        return false;
    }
    let (strips, panels, threads) = (n.div_ceil(NR), m.div_ceil(MR), threads.max(1));
    // The work is split along the operand that is larger, so that each worker reads only
    // its share of it: the columns (every unit reads all of `a`) when there are more columns
    // than rows, else the row panels (every worker fills all of `b`, a handful of pixels at
    // one image, for its rows: one unit a thread, not to fill it again for each). Each worker
    // takes its own run of units, then what is left of the others' (`schedule::Units`).
    let by_rows = m > n && panels >= threads;
    let units = if threads == 1 {
        None
    } else if by_rows {
        Units::new(panels, MR, m, threads, 1, usize::MAX)
    } else {
        // A unit is at most a chunk of strips.
        let per_chunk = strips_per_chunk(depth_per_pass(&a).min(k));
        let per_thread = schedule::UNITS_PER_THREAD;
        Units::new(strips, NR, n, threads, per_thread, per_chunk)
    };
    let c_at = SharedMut(c.as_mut_ptr());
    let c = || Block {
        c: c_at.get(),
        ldc,
        col0: 0,
        accumulate,
        epilogue,
    };
    let Some(units) = units else {
        // SAFETY: `fits` bounds every b, c and epilogue index (rows < k or m, columns < n);
        // AVX-512F is present (`available`); nothing else writes `c`.
        unsafe { block(a, b, 0..m, 0..n, c()) };
        return true;
    };
    (0..units.workers()).into_par_iter().for_each(|worker| {
        while let Some(share) = units.take(worker) {
            let (rows, cols) = if by_rows {
                (share, 0..n)
            } else {
                (0..m, share)
            };
            // SAFETY: as above; each unit is taken by one worker, and writes only c's block
            // of its rows or columns, disjoint from every other unit's.
            unsafe { block(a, b, rows, cols, c()) }
        }
    });
    true
}

/// The block `rows × cols` of the product (`rows` starting on a panel boundary).
///
/// # Safety
/// AVX-512F must be present; `b` must fit (`Rhs::fits`) `k` rows covering `cols`,
/// `cols.start ≥ c.col0`, and `c.c` hold `m` rows of stride `ldc` covering the columns
/// `cols` less `c.col0` (and the epilogue's bias `m` values, its residual as many as `c`);
/// nothing else may access that block of `c`.
unsafe fn block(
    a: Lhs<'_>,
    b: Rhs<'_>,
    rows: std::ops::Range<usize>,
    cols: std::ops::Range<usize>,
    c: Block<'_>,
) {
    #[cfg(target_arch = "x86_64")]
    {
        let k = a.dims().1;
        let kc = depth_per_pass(&a);
        // A pass is at most `kc` deep, and no deeper than the operand.
        let pass_depth = kc.min(k);
        let per_chunk = strips_per_chunk(pass_depth);
        // The strips of `b` one chunk reads, copied to contiguous rows of NR: read in place,
        // a power-of-two row stride (16×16 or 64×64 pixels) maps all its rows onto a few L1
        // sets, and every panel then reread it from L2 (measured: the kernel ran at half the
        // core's peak).
        // One line between strips: strips lie a multiple of 4 KiB apart at some depths, and
        // a depthwise fill writes row p of every strip in turn.
        let strip_stride = pass_depth * NR + STRIP_ALIGN;
        f32::with_scratch(per_chunk * strip_stride + STRIP_ALIGN, |buffer| {
            let offset = buffer
                .as_ptr()
                .align_offset(STRIP_ALIGN * 4)
                .min(STRIP_ALIGN);
            let strips = &mut buffer[offset..][..per_chunk * strip_stride];
            for p0 in (0..k).step_by(kc) {
                let depth = p0..p0 + kc.min(k - p0);
                for j0 in cols.clone().step_by(per_chunk * NR) {
                    let chunk = j0..(j0 + per_chunk * NR).min(cols.end);
                    let fill = FillChunk {
                        depth: depth.clone(),
                        columns: chunk.clone(),
                        columns_end: cols.end,
                        strip_stride,
                    };
                    // SAFETY: the caller's bounds cover rows `depth` and the chunk's columns;
                    // `strips` holds the chunk's strips at `strip_stride`.
                    unsafe { b.fill_chunk(&fill, strips) };
                    for r in rows.start / MR..rows.end.div_ceil(MR) {
                        let panel_rows = MR.min(rows.end - r * MR);
                        // SAFETY: the caller's bounds; `strips` holds the chunk's strips.
                        unsafe { panel_along_chunk(&a, (r, panel_rows), &fill, strips, &c) }
                    }
                }
            }
        });
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = (a, b, rows, cols, c);
}

/// Panel `r` (its first `panel_rows` rows) times each strip of the chunk `fill` filled,
/// over its depth rows of the left operand, stored through `c` (the epilogue after the last
/// pass).
///
/// # Safety
/// As `block`, for the panel's rows and the chunk's columns; `strips` holds the chunk's
/// strips, `depth.len() × NR` values each, `fill.strip_stride` apart.
#[cfg(target_arch = "x86_64")]
unsafe fn panel_along_chunk(
    a: &Lhs<'_>,
    (r, panel_rows): (usize, usize),
    fill: &FillChunk,
    strips: &[f32],
    c: &Block<'_>,
) {
    let (depth, chunk) = (fill.depth.clone(), fill.columns.clone());
    // Panel r's rows (`Lhs::panel`: padded when packed, the last one repeated when read in
    // place) and its columns `depth` lie inside the operand (the caller's bounds).
    let (panel, a_rows, a_col_stride) = a.panel(r);
    let panel = panel.wrapping_add(depth.start * a_col_stride);
    let last = depth.end == a.dims().1;
    // The rows of this pass of the packed panel `PREFETCH_PANELS_AHEAD` on, brought into L2
    // while the chunk's last strip runs; on the other strips (and past the last panel),
    // this panel's own rows, the lines each step loads anyway. The kernel prefetches only
    // packed panels: an operand read in place has its rows a row stride apart.
    let ahead = r + PREFETCH_PANELS_AHEAD;
    let prefetch_panel = match a {
        Lhs::Packed(_) if ahead * MR < a.dims().0 => {
            a.panel(ahead).0.wrapping_add(depth.start * MR)
        }
        _ => panel,
    };
    let strips_in_chunk = chunk.len().div_ceil(NR);
    for (s, j) in chunk.clone().step_by(NR).enumerate() {
        let prefetch = if s + 1 == strips_in_chunk {
            prefetch_panel
        } else {
            panel
        };
        let at = r * MR * c.ldc + (j - c.col0);
        let store = Store {
            // SAFETY: row r·MR, column j of `c` (the caller's bounds).
            c: unsafe { c.c.add(at) },
            ldc: c.ldc,
            rows: panel_rows,
            width: NR.min(chunk.end - j),
            load_c: c.accumulate || depth.start > 0,
            epilogue: c.epilogue.filter(|_| last).map(|e| StoreEpilogue {
                bias: e.bias[r * MR..].as_ptr(),
                residual: e.residual.map(|res| res[at..].as_ptr()),
                relu: e.relu,
            }),
        };
        let strip = strips[s * fill.strip_stride..].as_ptr();
        // A packed panel's rows lie at fixed offsets: as constants, its kernel keeps twelve
        // registers and a copied array for other things.
        // A short last panel (the 4 rows past 5 × 12 of 64 channels, the 8 past 10 × 12 of
        // 128) runs only the rows it has.
        // SAFETY: the strip holds depth.len() rows of NR; the caller's bounds.
        unsafe {
            let packed = matches!(a, Lhs::Packed(_));
            let (at, stride, depth) = (&a_rows, a_col_stride, depth.len());
            match (packed, panel_rows) {
                (true, 0..=4) => {
                    kernel::<true, 4>(panel, at, stride, strip, depth, store, prefetch)
                }
                (true, 5..=8) => {
                    kernel::<true, 8>(panel, at, stride, strip, depth, store, prefetch)
                }
                (true, _) => kernel::<true, MR>(panel, at, stride, strip, depth, store, prefetch),
                (false, 0..=4) => {
                    kernel::<false, 4>(panel, at, stride, strip, depth, store, prefetch)
                }
                (false, 5..=8) => {
                    kernel::<false, 8>(panel, at, stride, strip, depth, store, prefetch)
                }
                (false, _) => kernel::<false, MR>(panel, at, stride, strip, depth, store, prefetch),
            }
        }
    }
}

/// One unit's view of `Out`: `c` as a raw pointer shared by the workers, its column 0
/// being the product's column `col0`.
struct Block<'e> {
    c: *mut f32,
    ldc: usize,
    col0: usize,
    accumulate: bool,
    epilogue: Option<Epilogue<'e>>,
}

/// Where one kernel call stores its `rows × width` block.
struct Store {
    c: *mut f32,
    ldc: usize,
    rows: usize,
    width: usize,
    /// Add the block's values in `c` (a pass after the first, or an accumulating product).
    load_c: bool,
    epilogue: Option<StoreEpilogue>,
}

/// The epilogue at the block: its rows' bias, and its residual (stride `ldc`).
struct StoreEpilogue {
    bias: *const f32,
    residual: Option<*const f32>,
    relu: bool,
}

/// Alignment of the copied strip, in values (one 64-byte cache line).
const STRIP_ALIGN: usize = 16;

/// `c[0..rows][0..width] (=|+=) Σₚ a[p][0..MR] ⊗ b[p][0..width]` for `p < depth`, through
/// the epilogue if any (`Store`).
///
/// # Safety
/// AVX-512F; `a` holds `depth` columns of `MR` rows (at `a_rows`, or `0..MR` if `PACKED`)
/// `a_col_stride` apart (`MR` if `PACKED`), `b` (the strip) `depth` rows of `NR`, `c`
/// `rows` rows of `width` at stride `ldc` (the epilogue's residual too, and its bias `rows`
/// values); `width ≤ NR`, `rows ≤ ROWS ≤ MR` (only the first `ROWS` rows are computed).
/// If `PACKED`, step `p` also prefetches into L2 the line at `prefetch + p·MR` (any
/// address: a prefetch does not fault).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn kernel<const PACKED: bool, const ROWS: usize>(
    a: *const f32,
    a_rows: &[usize; MR],
    a_col_stride: usize,
    b: *const f32,
    depth: usize,
    store: Store,
    prefetch: *const f32,
) {
    use std::arch::x86_64::*;
    let Store {
        c,
        ldc,
        rows,
        width,
        load_c,
        epilogue,
    } = store;
    let (m0, m1) = (lane_mask(width), lane_mask(width.saturating_sub(16)));
    // Twenty-four named accumulators (an array of them is spilled to the stack every step).
    let z = _mm512_setzero_ps();
    let (mut a0, mut b0, mut a1, mut b1, mut a2, mut b2) = (z, z, z, z, z, z);
    let (mut a3, mut b3, mut a4, mut b4, mut a5, mut b5) = (z, z, z, z, z, z);
    let (mut a6, mut b6, mut a7, mut b7, mut a8, mut b8) = (z, z, z, z, z, z);
    let (mut a9, mut b9, mut a10, mut b10, mut a11, mut b11) = (z, z, z, z, z, z);
    // SAFETY (whole body): the caller's bounds; masked lanes are neither read nor written.
    unsafe {
        for p in 0..depth {
            let row = b.add(p * NR);
            let x0 = _mm512_loadu_ps(row);
            let x1 = _mm512_loadu_ps(row.add(16));
            let ap = a.add(p * if PACKED { MR } else { a_col_stride });
            if PACKED {
                // A prefetch does not fault: its address need not lie inside the operand.
                _mm_prefetch::<_MM_HINT_T1>(prefetch.wrapping_add(p * MR).cast());
            }
            macro_rules! fma {
                ($i:expr, $lo:ident, $hi:ident) => {
                    if $i < ROWS {
                        let s = _mm512_set1_ps(*ap.add(if PACKED { $i } else { a_rows[$i] }));
                        $lo = _mm512_fmadd_ps(s, x0, $lo);
                        $hi = _mm512_fmadd_ps(s, x1, $hi);
                    }
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
                v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, out.wrapping_add(16)));
            }
            if let Some(e) = &epilogue {
                let bias = _mm512_set1_ps(*e.bias.add(i));
                v0 = _mm512_add_ps(v0, bias);
                v1 = _mm512_add_ps(v1, bias);
                if let Some(residual) = e.residual {
                    let r = residual.add(i * ldc);
                    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, r));
                    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, r.wrapping_add(16)));
                }
                if e.relu {
                    // The second operand is returned where either is NaN.
                    let zero = _mm512_setzero_ps();
                    v0 = _mm512_max_ps(zero, v0);
                    v1 = _mm512_max_ps(zero, v1);
                }
            }
            _mm512_mask_storeu_ps(out, m0, v0);
            // `wrapping_add`: a block 16 wide or less may end within 16 values of `c`'s end,
            // and its second vector is then fully masked.
            _mm512_mask_storeu_ps(out.wrapping_add(16), m1, v1);
        }
    }
}

#[cfg(test)]
mod tests;
