//! The right operand of the 1×1 product (`k` rows of `n` pixels), and how each pass fills
//! the contiguous 32-column strip that every panel then reads from L1: copied from a
//! matrix, or computed there as the 3×3 depthwise convolution before the 1×1 one (the
//! frozen separable conv), so that the depthwise output is never written to memory and read
//! back (at 125 × 125 pixels and 128 channels, 8 MB each way per image).

use super::NR;
use crate::ops::cpu::lane_mask;

/// The right operand of `product_of`.
#[derive(Clone, Copy)]
pub enum Rhs<'a> {
    /// `k` rows of `n` values at row stride `ldb`.
    Dense { b: &'a [f32], ldb: usize },
    /// The 3×3, stride-1, padding-1 depthwise convolution of `k` planes of `h × w` pixels
    /// (`n = h·w`), read through a ReLU if `relu`, with `taps` (9 per plane, row-major).
    Depthwise3x3 {
        x: &'a [f32],
        hw: (usize, usize),
        taps: &'a [f32],
        relu: bool,
    },
    /// The im2col matrix of `planes` of `h × w` pixels for a `kernel × kernel` window at
    /// `stride`, without padding: row `(c·kernel + dy)·kernel + dx`, column `oy·ow + ox`
    /// holds `x[c][oy·stride + dy][ox·stride + dx]`. Read from `x` as each strip is filled,
    /// so the matrix is never written (kernel 1: a strided 1×1 conv's subsampled input).
    Patches {
        x: &'a [f32],
        hw: (usize, usize),
        kernel: usize,
        stride: usize,
    },
}

impl Rhs<'_> {
    /// Whether `k` rows of `n` columns lie inside the operand.
    pub(super) fn fits(&self, k: usize, n: usize) -> bool {
        match *self {
            Rhs::Dense { b, ldb } => ldb >= n && b.len() >= (k - 1) * ldb + n,
            Rhs::Depthwise3x3 { x, hw, taps, .. } => {
                hw.0 * hw.1 == n && x.len() >= k * n && taps.len() >= 9 * k
            }
            Rhs::Patches {
                x,
                hw: (h, w),
                kernel,
                stride,
            } => {
                let window = kernel * kernel;
                let (oh, ow) = patch_grid((h, w), kernel, stride);
                // Offsets fit the gather's i32 lanes (one plane's pixels).
                window > 0
                    && k.is_multiple_of(window)
                    && oh * ow == n
                    && x.len() >= (k / window) * h * w
                    && i32::try_from(h * w).is_ok()
            }
        }
    }

    /// Fills each strip of `fill.columns` (strip `s`, the columns from `start + s·NR`, at
    /// `strips[s·strip_stride..]`): `[p·NR..][..NR]` = row `depth.start + p` of those
    /// columns, zero past the chunk's end. A copy or a gather fills strip by strip and
    /// prefetches what the next strip will read first from memory (the rows of a large
    /// image lie a plane apart, and the hardware prefetcher does not follow hundreds of
    /// streams: the loads missed to memory). The depthwise conv fills channel by channel
    /// (`depthwise_chunk`).
    ///
    /// # Safety
    /// AVX-512F; `fits(k, n)` for `depth.end ≤ k` and `columns_end ≤ n`; `strips` holds
    /// the chunk's strips, `depth.len() × NR` values each, `strip_stride` apart.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn fill_chunk(&self, fill: &FillChunk, strips: &mut [f32]) {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let (p0, depth) = (fill.depth.start, fill.depth.len());
        let each_strip = fill.columns.clone().step_by(NR).enumerate().map(|(s, j)| {
            let width = NR.min(fill.columns.end - j);
            let next = Some(j + NR).filter(|&next| next < fill.columns_end);
            (s * fill.strip_stride, j, width, next)
        });
        match *self {
            Rhs::Dense { b, ldb } => {
                for (at, j, width, next) in each_strip {
                    if let Some(next) = next {
                        for p in p0..p0 + depth {
                            // A prefetch does not fault: its address need not lie inside `b`.
                            let row = b.as_ptr().wrapping_add(p * ldb + next);
                            _mm_prefetch::<_MM_HINT_T0>(row.cast());
                            _mm_prefetch::<_MM_HINT_T0>(row.wrapping_add(16).cast());
                        }
                    }
                    let strip = &mut strips[at..][..depth * NR];
                    // SAFETY: the caller's bounds.
                    unsafe { copy_strip(b.as_ptr().add(p0 * ldb + j), ldb, depth, width, strip) }
                }
            }
            Rhs::Depthwise3x3 { x, hw, taps, relu } => {
                // SAFETY: the caller's bounds (`fits`).
                unsafe { depthwise_chunk(x, hw, taps, relu, fill, strips) }
            }
            Rhs::Patches {
                x,
                hw,
                kernel,
                stride,
            } => {
                for (at, j, width, next) in each_strip {
                    let strip = &mut strips[at..][..depth * NR];
                    // SAFETY: the caller's bounds (`fits`).
                    unsafe {
                        patch_strip(x, hw, (kernel, stride), (p0, depth), (j, width), strip);
                        if let Some(next) = next {
                            prefetch_patches(x, hw, (kernel, stride), (p0, depth), next);
                        }
                    }
                }
            }
        }
    }
}

/// One chunk of a pass: the operand's rows `depth` at the columns `columns` (of a unit's
/// columns ending at `columns_end`), filled into strips `strip_stride` values apart.
#[cfg(target_arch = "x86_64")]
pub(super) struct FillChunk {
    pub depth: std::ops::Range<usize>,
    pub columns: std::ops::Range<usize>,
    pub columns_end: usize,
    pub strip_stride: usize,
}

/// Planes ahead of the one being filled whose span `depthwise_chunk` prefetches.
#[cfg(target_arch = "x86_64")]
const PLANES_AHEAD: usize = 2;

/// `Rhs::Depthwise3x3`'s strips of one chunk, channel by channel: a channel's strips read one
/// span of its plane (the chunk's pixels and a row either side: about 5 KiB at 125 pixels a
/// row), which stays in L1 while its three rows are read, where strip by strip the 3 rows of
/// 64–128 planes were reread from L2 or missed to L3 (the loads of the row below were a
/// third of the fill's time). The span `PLANES_AHEAD` planes on is prefetched a share at
/// each strip. Measured on one thread, the best of 40 passes: LilXception's first block's
/// second separable conv 5.0 → 4.1 ms, its blocks 21.0 → 19.4 ms.
///
/// # Safety
/// AVX-512F; as `Rhs::fill_chunk`, for `Rhs::Depthwise3x3 { x, hw, taps, relu }`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn depthwise_chunk(
    x: &[f32],
    hw: (usize, usize),
    taps: &[f32],
    relu: bool,
    fill: &FillChunk,
    strips: &mut [f32],
) {
    use std::arch::x86_64::{__m512, _MM_HINT_T0, _mm_prefetch, _mm512_set1_ps};
    let (n, columns) = (hw.0 * hw.1, fill.columns.clone());
    let masks: Vec<(usize, TapMasks)> = columns
        .clone()
        .step_by(NR)
        .map(|j| (j, TapMasks::new(hw, j, NR.min(columns.end - j))))
        .collect();
    // The span of a plane the chunk's taps read, in cache lines, and a share per strip.
    let span_start = columns.start.saturating_sub(hw.1 + 1);
    let span_lines = (columns.end + hw.1 + 1).min(n).saturating_sub(span_start) / 16 + 2;
    let lines_per_strip = span_lines.div_ceil(masks.len().max(1));
    for (p, c) in fill.depth.clone().enumerate() {
        let plane = x.as_ptr().wrapping_add(c * n);
        // A prefetch does not fault: past the last plane its addresses lie outside `x`.
        let ahead = plane.wrapping_add(PLANES_AHEAD * n + span_start);
        let channel_taps = &taps[9 * c..][..9];
        let broadcast: [__m512; 9] = std::array::from_fn(|t| _mm512_set1_ps(channel_taps[t]));
        for (s, (j, masks)) in masks.iter().enumerate() {
            for line in s * lines_per_strip..((s + 1) * lines_per_strip).min(span_lines) {
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16 * line).cast());
            }
            let row = &mut strips[s * fill.strip_stride + p * NR..][..NR];
            // SAFETY: plane c lies inside `x` (`fits`).
            unsafe {
                let at = plane.add(*j);
                if relu {
                    depthwise_strip::<true>(at, hw.1, &broadcast, masks, row)
                } else {
                    depthwise_strip::<false>(at, hw.1, &broadcast, masks, row)
                }
            }
        }
    }
}

/// The output grid of a `kernel` window at `stride` without padding over `h × w`.
pub(crate) fn patch_grid((h, w): (usize, usize), kernel: usize, stride: usize) -> (usize, usize) {
    let side =
        |len: usize| (len.saturating_sub(kernel) / stride.max(1) + 1) * usize::from(len >= kernel);
    (side(h), side(w))
}

/// Where, inside its plane, column `q` of `Rhs::Patches` has its window's corner (output
/// grid `ow` wide).
fn patch_corner(q: usize, ow: usize, stride: usize, w: usize) -> usize {
    (q / ow) * stride * w + (q % ow) * stride
}

/// Where, inside `x`, rows `p0, p0 + 1, …` of `Rhs::Patches` read their plane, offset by
/// their tap: stepped along the rows (two divisions for the first, none after).
fn patch_row_offsets(
    p0: usize,
    kernel: usize,
    (h, w): (usize, usize),
) -> impl Iterator<Item = usize> {
    let taps = kernel * kernel;
    let (mut plane, mut tap) = (p0 / taps, p0 % taps);
    std::iter::from_fn(move || {
        let offset = plane * h * w + (tap / kernel) * w + tap % kernel;
        tap += 1;
        if tap == taps {
            (plane, tap) = (plane + 1, 0);
        }
        Some(offset)
    })
}

/// Rows `p0..p0 + depth` of `Rhs::Patches` at columns `j..j + width` into `strip` (zero
/// past `width`). At stride 1 or 2, each run of at most 16 columns within one output row
/// reads one span of its input row: two loads and a permute (a gather cost ~8 ns, and the
/// gathers were a third of LilXception's strip fills); other strides gather.
///
/// # Safety
/// AVX-512F; `Rhs::Patches::fits` for `p0 + depth` rows and `j + width` columns; `strip`
/// holds `depth × NR` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn patch_strip(
    x: &[f32],
    (h, w): (usize, usize),
    (kernel, stride): (usize, usize),
    (p0, depth): (usize, usize),
    (j, width): (usize, usize),
    strip: &mut [f32],
) {
    use std::arch::x86_64::*;
    let ow = patch_grid((h, w), kernel, stride).1.max(1);
    // Each lane's window corner inside a plane (`fits`: plane offsets fit in i32), walked
    // along the output grid from the strip's first column (one division per strip, not two
    // per lane), and the runs of at most 16 lanes within one output row.
    let mut corner = [0i32; NR];
    let mut runs = [Run::default(); NR];
    let mut run_count = 0;
    let (mut at, mut ox) = (patch_corner(j, ow, stride, w), j % ow);
    let (mut first, mut lanes, mut start) = (0, 0, 0);
    for (lane, lane_corner) in corner.iter_mut().enumerate().take(width) {
        *lane_corner = at as i32;
        if lanes > 0 && (lanes == 16 || ox == 0) {
            runs[run_count] = Run::new(first, lanes, start, stride);
            run_count += 1;
            lanes = 0;
        }
        if lanes == 0 {
            (first, start) = (lane, at);
        }
        lanes += 1;
        (at, ox) = (at + stride, ox + 1);
        if ox == ow {
            // The next output row's first window.
            (at, ox) = (at - ow * stride + stride * w, 0);
        }
    }
    if lanes > 0 {
        runs[run_count] = Run::new(first, lanes, start, stride);
        run_count += 1;
    }
    let runs = &runs[..run_count];
    // SAFETY: `corner` holds NR values; every unmasked lane of a load, gather or store reads
    // a pixel of its plane (the window fits the plane, the plane lies inside `x`: `fits`) or
    // writes inside the strip row (a run ends at lane `width ≤ NR`).
    unsafe {
        let zero = _mm512_setzero_ps();
        let even = _mm512_set_epi32(30, 28, 26, 24, 22, 20, 18, 16, 14, 12, 10, 8, 6, 4, 2, 0);
        let (m0, m1) = (lane_mask(width), lane_mask(width.saturating_sub(16)));
        let (c0, c1) = (
            _mm512_loadu_si512(corner.as_ptr().cast()),
            _mm512_loadu_si512(corner.as_ptr().add(16).cast()),
        );
        let rows = strip.chunks_exact_mut(NR).take(depth);
        for (row, offset) in rows.zip(patch_row_offsets(p0, kernel, (h, w))) {
            let base = x.as_ptr().add(offset);
            let out = row.as_mut_ptr();
            if stride > 2 {
                let v0 = _mm512_mask_i32gather_ps::<4>(zero, m0, c0, base);
                let v1 = _mm512_mask_i32gather_ps::<4>(zero, m1, c1, base);
                _mm512_storeu_ps(out, v0);
                _mm512_storeu_ps(out.add(16), v1);
                continue;
            }
            if width < NR {
                _mm512_storeu_ps(out, zero);
                _mm512_storeu_ps(out.add(16), zero);
            }
            for run in runs {
                let src = base.add(run.start);
                let lo = _mm512_maskz_loadu_ps(run.loads.0, src);
                let picked = if stride == 1 {
                    lo
                } else {
                    let hi = _mm512_maskz_loadu_ps(run.loads.1, src.add(16));
                    _mm512_permutex2var_ps(lo, even, hi)
                };
                _mm512_mask_storeu_ps(out.add(run.first), run.store, picked);
            }
        }
    }
}

/// Up to 16 lanes of a strip whose windows lie along one output row, `stride` apart: the
/// first lane, the first window's corner in its plane, and the masks of the two loads of
/// their span (`stride·(lanes − 1) + 1` values) and of their store.
#[derive(Clone, Copy, Default)]
struct Run {
    first: usize,
    start: usize,
    loads: (u16, u16),
    store: u16,
}

impl Run {
    fn new(first: usize, lanes: usize, start: usize, stride: usize) -> Run {
        let span = stride * (lanes - 1) + 1;
        Run {
            first,
            start,
            loads: (lane_mask(span.min(16)), lane_mask(span.saturating_sub(16))),
            store: lane_mask(lanes),
        }
    }
}

/// Prefetches the lines the strip at column `next` gathers first for rows `p0..p0 + depth`
/// of `Rhs::Patches`: its lanes 0, 8, 16 and 24 (the pixels of 32 columns at stride 2 span
/// four lines of a row; the gathers of a subsampled 125 × 125 plane missed to memory).
///
/// # Safety
/// AVX-512F (a prefetch does not fault: its addresses need not lie inside `x`).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn prefetch_patches(
    x: &[f32],
    (h, w): (usize, usize),
    (kernel, stride): (usize, usize),
    (p0, depth): (usize, usize),
    next: usize,
) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    let ow = patch_grid((h, w), kernel, stride).1.max(1);
    let corners: [usize; 4] = std::array::from_fn(|i| patch_corner(next + 8 * i, ow, stride, w));
    for offset in patch_row_offsets(p0, kernel, (h, w)).take(depth) {
        let base = x.as_ptr().wrapping_add(offset);
        for &corner in &corners {
            _mm_prefetch::<_MM_HINT_T0>(base.wrapping_add(corner).cast());
        }
    }
}

/// `strip[p·NR..][..width] = b[p·ldb..][..width]` for `p < depth`.
///
/// # Safety
/// AVX-512F; `b` holds `depth` rows of `width ≤ NR` values at stride `ldb`; `strip` holds
/// at least `depth × NR` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn copy_strip(b: *const f32, ldb: usize, depth: usize, width: usize, strip: &mut [f32]) {
    use std::arch::x86_64::*;
    let (m0, m1) = (lane_mask(width), lane_mask(width.saturating_sub(16)));
    for (p, row) in strip.chunks_exact_mut(NR).take(depth).enumerate() {
        // SAFETY: the caller's bounds; masked lanes are neither read nor written.
        unsafe {
            let src = b.add(p * ldb);
            _mm512_storeu_ps(row.as_mut_ptr(), _mm512_maskz_loadu_ps(m0, src));
            _mm512_storeu_ps(
                row.as_mut_ptr().add(16),
                _mm512_maskz_loadu_ps(m1, src.add(16)),
            );
        }
    }
}

/// For the two 16-pixel halves of a strip, the lanes whose tap (dy, dx) lies inside the
/// plane: `[half][3·(dy + 1) + dx + 1]`. The same for every channel of a pass.
struct TapMasks([[u16; 9]; 2]);

impl TapMasks {
    fn new((h, w): (usize, usize), j: usize, width: usize) -> TapMasks {
        // Lanes whose row above, own row, row below (and column left, own, right) exist.
        let (mut rows, mut columns) = ([0u32; 3], [0u32; 3]);
        let (mut y, mut x) = (j / w, j % w);
        for lane in 0..width.min(32) {
            let bit = 1u32 << lane;
            rows[0] |= if y >= 1 { bit } else { 0 };
            rows[1] |= bit;
            rows[2] |= if y + 1 < h { bit } else { 0 };
            columns[0] |= if x >= 1 { bit } else { 0 };
            columns[1] |= bit;
            columns[2] |= if x + 1 < w { bit } else { 0 };
            x += 1;
            if x == w {
                (x, y) = (0, y + 1);
            }
        }
        let half = |shift: u32| -> [u16; 9] {
            std::array::from_fn(|t| ((rows[t / 3] & columns[t % 3]) >> shift) as u16)
        };
        TapMasks([half(0), half(16)])
    }
}

/// One channel's 32 depthwise outputs starting at pixel `at` (of a plane `w` wide), into
/// `out` (zero where no tap is inside), its input through a ReLU if `RELU`; `taps` holds
/// the channel's 9 taps broadcast (once per channel, for all the chunk's strips).
///
/// # Safety
/// AVX-512F; every lane `masks` leaves on reads a pixel of the plane `at` lies in; `out`
/// holds `NR`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn depthwise_strip<const RELU: bool>(
    at: *const f32,
    w: usize,
    taps: &[std::arch::x86_64::__m512; 9],
    masks: &TapMasks,
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    let zero = _mm512_setzero_ps();
    let [low, high] = &masks.0;
    let (mut acc0, mut acc1) = (zero, zero);
    for (t, &tap) in taps.iter().enumerate() {
        // The tap's pixels: `w` per row up or down, one per column; lanes outside the plane
        // are masked off (their addresses may lie outside it and are not read).
        let src = at
            .wrapping_offset(((t / 3) as isize - 1) * w as isize)
            .wrapping_offset((t % 3) as isize - 1);
        // SAFETY: the caller's bounds for every unmasked lane.
        unsafe {
            let mut v0 = _mm512_maskz_loadu_ps(low[t], src);
            let mut v1 = _mm512_maskz_loadu_ps(high[t], src.wrapping_add(16));
            if RELU {
                v0 = _mm512_max_ps(v0, zero);
                v1 = _mm512_max_ps(v1, zero);
            }
            acc0 = _mm512_fmadd_ps(tap, v0, acc0);
            acc1 = _mm512_fmadd_ps(tap, v1, acc1);
        }
    }
    // SAFETY: `out` holds NR = 32 values.
    unsafe {
        _mm512_storeu_ps(out.as_mut_ptr(), acc0);
        _mm512_storeu_ps(out.as_mut_ptr().add(16), acc1);
    }
}
