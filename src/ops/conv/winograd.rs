//! Winograd's minimal filtering F(2×2, 3×3) for a stride-1 3×3 convolution of one image, f32
//! on AVX-512 (Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks", 2016):
//! each 2×2 output tile is `Aᵀ [Σ_c U_c ⊙ (Bᵀ d_c B)] A` for the 4×4 input tile `d_c` of
//! each input channel and the transformed weights `U = G g Gᵀ`, so the 36 multiply-adds per
//! output pixel and input channel of the direct conv become 16 per tile: 2.25 times fewer.
//! The sum over channels is one product per tile position (16 of `c_out × c_in` times
//! `c_in × tiles`, on the 1×1 convs' kernel), run a row of tiles at a time so that the
//! transformed input and the products of one row stay in a core's L2. The transforms'
//! coefficients are 0, ±1 and ±½ (F(2×2) rather than F(4×4), whose ±2, ±4 and ¼ grow the
//! rounding error several-fold), and the weight transform runs in f64 once per model.
//!
//! The frozen path runs Xception's and LilXception's `conv2` (32 → 64 channels at 127 × 127)
//! this way: 3.0 against the direct kernels' 4.4 ms on one thread, 1.45 against 2.2 ms on
//! two (best of 300 on a 2-core Xeon with AVX-512); LilXception's one-image pass on one
//! thread, median of 10 interleaved: 34.0 against 37.8 ms.

use std::cell::RefCell;

use rayon::prelude::*;

use crate::ops::cpu::SharedMut;
use crate::ops::pointwise::{self, Lhs, PackedLhs};

/// Positions of a 4×4 input tile, each with its own product.
const POSITIONS: usize = 16;
/// Tiles per vector (one output row of 16 tiles is 32 pixels).
const LANES: usize = 16;
/// Values between the planes of two positions beyond their own (one cache line): at a
/// multiple of 4 KiB apart, the 16 planes each transform stores to or loads from map to the
/// same L1 sets, more of them than a set has ways.
const PLANE_SKEW: usize = 16;

/// `G`: the weight transform (4 × 3).
const G: [[f64; 3]; 4] = [
    [1.0, 0.0, 0.0],
    [0.5, 0.5, 0.5],
    [0.5, -0.5, 0.5],
    [0.0, 0.0, 1.0],
];

/// A 3×3 convolution's weight, transformed and packed for the 16 products, with its bias.
pub struct WinogradConv {
    /// `U` at each tile position, a `c_out × c_in` operand packed for the product.
    positions: Vec<PackedLhs>,
    bias: Vec<f32>,
    c_out: usize,
    c_in: usize,
}

/// The tile grid of one image's `oh × ow` output: `tiles_y` rows of 2×2 tiles, `padded_x`
/// tiles computed per row (whole vectors; those past the right edge are not stored).
#[derive(Clone, Copy)]
struct Tiles {
    oh: usize,
    ow: usize,
    tiles_y: usize,
    padded_x: usize,
}

thread_local! {
    /// One row's transformed input and products, reused by the next row this thread runs.
    static ROW_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl WinogradConv {
    /// From an OIHW `c_out × c_in × 3 × 3` weight and its bias; `None` where the product's
    /// kernel does not run (no AVX-512, or the portable paths forced) or a length is wrong.
    pub fn new(w: &[f32], bias: Vec<f32>, (c_out, c_in): (usize, usize)) -> Option<Self> {
        if !pointwise::available() || w.len() != c_out * c_in * 9 || bias.len() != c_out {
            return None;
        }
        let plane = c_out * c_in;
        let mut u = vec![0.0f32; POSITIONS * plane];
        for (oc, kernel) in w.chunks_exact(9).enumerate() {
            // G g (4 × 3), then (G g) Gᵀ (4 × 4).
            let mut gg = [[0.0f64; 3]; 4];
            for (i, row) in gg.iter_mut().enumerate() {
                for (s, v) in row.iter_mut().enumerate() {
                    *v = (0..3).map(|r| G[i][r] * f64::from(kernel[r * 3 + s])).sum();
                }
            }
            for i in 0..4 {
                for j in 0..4 {
                    let v: f64 = (0..3).map(|s| gg[i][s] * G[j][s]).sum();
                    u[(i * 4 + j) * plane + oc] = v as f32;
                }
            }
        }
        let positions = u
            .chunks_exact(plane)
            .map(|u| PackedLhs::pack(u, c_out, c_in, c_in, 1))
            .collect::<Option<Vec<_>>>()?;
        Some(WinogradConv {
            positions,
            bias,
            c_out,
            c_in,
        })
    }

    pub fn c_out(&self) -> usize {
        self.c_out
    }

    /// The output size of an `h × w` input zero-padded by `pad`; `None` if it is empty.
    pub fn output_hw((h, w): (usize, usize), pad: usize) -> Option<(usize, usize)> {
        let (oh, ow) = ((h + 2 * pad).checked_sub(2)?, (w + 2 * pad).checked_sub(2)?);
        (h > 0 && w > 0 && oh > 0 && ow > 0).then_some((oh, ow))
    }

    /// `out = act(conv(x) + bias)` for one image `x` (`c_in × h × w`) zero-padded by `pad`,
    /// into `out` (`c_out × oh × ow` values, every one written; `relu` clamps at zero and
    /// lets a NaN pass). Rows of tiles run on up to `threads` threads. Returns the output
    /// size, or `None`, touching nothing, if the lengths do not fit.
    pub fn forward_image(
        &self,
        x: &[f32],
        (h, w): (usize, usize),
        pad: usize,
        relu: bool,
        out: &mut [f32],
        threads: usize,
    ) -> Option<(usize, usize)> {
        let (oh, ow) = Self::output_hw((h, w), pad)?;
        let tiles = Tiles {
            oh,
            ow,
            tiles_y: oh.div_ceil(2),
            padded_x: ow.div_ceil(2).next_multiple_of(LANES),
        };
        if x.len() < self.c_in * h * w || out.len() < self.c_out * oh * ow {
            return None;
        }
        let image = Image {
            x: &x[..self.c_in * h * w],
            h,
            w,
            pad,
        };
        let out_at = SharedMut(out.as_mut_ptr());
        let row = |ty: usize| {
            ROW_SCRATCH.with(|cell| match cell.try_borrow_mut() {
                Ok(mut scratch) => self.tile_row(&image, tiles, ty, relu, out_at, &mut scratch),
                Err(_) => self.tile_row(&image, tiles, ty, relu, out_at, &mut Vec::new()),
            })
        };
        if threads > 1 {
            (0..tiles.tiles_y).into_par_iter().for_each(row);
        } else {
            (0..tiles.tiles_y).for_each(row);
        }
        Some((oh, ow))
    }

    /// Output rows `2·ty` and `2·ty + 1` of every channel.
    fn tile_row(
        &self,
        image: &Image<'_>,
        tiles: Tiles,
        ty: usize,
        relu: bool,
        out: SharedMut<f32>,
        scratch: &mut Vec<f32>,
    ) {
        let n = tiles.padded_x;
        let (v_plane, m_plane) = (self.c_in * n + PLANE_SKEW, self.c_out * n + PLANE_SKEW);
        let (v_len, m_len) = (POSITIONS * v_plane, POSITIONS * m_plane);
        if scratch.len() < v_len + m_len {
            scratch.resize(v_len + m_len, 0.0);
        }
        let (v, m) = scratch.split_at_mut(v_len);
        let top = (2 * ty) as isize - image.pad as isize;
        for (c, plane) in image.x.chunks_exact(image.h * image.w).enumerate() {
            // SAFETY: AVX-512F is present (`new`); `plane` is one `h × w` channel; `v` holds
            // POSITIONS planes of `c_in` rows of `n`, `v_plane` apart.
            unsafe {
                kernels::input_transform(
                    plane,
                    (image.h, image.w),
                    (top, image.pad),
                    n,
                    &mut v[c * n..],
                    v_plane,
                )
            };
        }
        for (p, lhs) in self.positions.iter().enumerate() {
            let v = &v[p * v_plane..][..self.c_in * n];
            let m = &mut m[p * m_plane..][..self.c_out * n];
            // Sized above: `product` only returns false when they do not fit.
            let done = pointwise::product(Lhs::Packed(lhs), v, n, n, m, n, false, 1);
            debug_assert!(done, "winograd: product lengths");
        }
        let rows_here = 2.min(tiles.oh - 2 * ty);
        for (o, &bias) in self.bias.iter().enumerate() {
            // SAFETY: AVX-512F is present; `m` holds POSITIONS planes of `c_out` rows of `n`,
            // `m_plane` apart;
            // rows 2·ty.. 2·ty + rows_here of output channel `o` lie inside `out` (sized in
            // `forward_image`), and only this task writes them.
            unsafe {
                let dst = out.get().add((o * tiles.oh + 2 * ty) * tiles.ow);
                kernels::output_transform(
                    &m[o * n..],
                    m_plane,
                    n,
                    (bias, relu),
                    (dst, tiles.oh * tiles.ow),
                    (rows_here, tiles.ow),
                );
            }
        }
    }
}

/// The input image and its zero padding.
struct Image<'a> {
    x: &'a [f32],
    h: usize,
    w: usize,
    pad: usize,
}

mod kernels {
    #[cfg(target_arch = "x86_64")]
    use std::arch::x86_64::*;

    #[cfg(target_arch = "x86_64")]
    use super::{LANES, POSITIONS};

    /// The masks of the lanes inside a row of `w` values for a load of 16 at `start`.
    #[cfg(target_arch = "x86_64")]
    fn row_mask(w: usize, start: isize) -> u16 {
        let first = (-start).clamp(0, LANES as isize) as u32;
        let end = (w as isize - start).clamp(0, LANES as isize) as u32;
        if first >= end {
            return 0;
        }
        (((1u32 << end) - 1) & !((1u32 << first) - 1)) as u16
    }

    /// `Bᵀ d B` of the `n` tiles whose 4×4 input windows start at row `top` (of the plane
    /// zero-padded by `pad`, in the plane's own rows) and columns `2t − pad`, into
    /// `v[p·plane + t]` for each position `p`.
    ///
    /// # Safety
    /// AVX-512F must be present; `x` must hold `h × w` values and `v` reach
    /// `15·plane + n`; `n` is a multiple of `LANES`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn input_transform(
        x: &[f32],
        (h, w): (usize, usize),
        (top, pad): (isize, usize),
        n: usize,
        v: &mut [f32],
        plane: usize,
    ) {
        debug_assert!(x.len() >= h * w && v.len() >= (POSITIONS - 1) * plane + n);
        let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
        let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
        let v = v.as_mut_ptr();
        let rows: [Option<*const f32>; 4] = std::array::from_fn(|i| {
            let y = top + i as isize;
            (y >= 0 && (y as usize) < h).then(|| x[y as usize * w..].as_ptr())
        });
        for t0 in (0..n).step_by(LANES) {
            // Columns 2t and 2t + 1 of each row (e, o), and 2t + 2, 2t + 3 (e1, o1).
            let mut e = [_mm512_setzero_ps(); 4];
            let mut o = e;
            let mut e1 = e;
            let mut o1 = e;
            let start = (2 * t0) as isize - pad as isize;
            let (m_lo, m_hi) = (row_mask(w, start), row_mask(w, start + 16));
            let (m_lo1, m_hi1) = (row_mask(w, start + 2), row_mask(w, start + 18));
            for (i, row) in rows.iter().enumerate() {
                let Some(row) = *row else { continue };
                // The same columns two channels on (a prefetch does not fault: the address
                // need not lie inside the image): at 64 KiB apart, the rows of successive
                // channels are streams too short for the hardware prefetcher.
                let ahead = row.wrapping_add(2 * h * w).wrapping_offset(start);
                _mm_prefetch::<_MM_HINT_T0>(ahead.cast());
                _mm_prefetch::<_MM_HINT_T0>(ahead.wrapping_add(16).cast());
                // SAFETY: the masks keep each load inside the row's `w` values (the masked-off
                // lanes are not read).
                unsafe {
                    let load =
                        |at: isize, mask| _mm512_maskz_loadu_ps(mask, row.wrapping_offset(at));
                    let (lo, hi) = (load(start, m_lo), load(start + 16, m_hi));
                    let (lo1, hi1) = (load(start + 2, m_lo1), load(start + 18, m_hi1));
                    e[i] = _mm512_permutex2var_ps(lo, even, hi);
                    o[i] = _mm512_permutex2var_ps(lo, odd, hi);
                    e1[i] = _mm512_permutex2var_ps(lo1, even, hi1);
                    o1[i] = _mm512_permutex2var_ps(lo1, odd, hi1);
                }
            }
            // Bᵀ over the rows: d0 − d2, d1 + d2, d2 − d1, d1 − d3.
            let rows_of = |d: [__m512; 4]| {
                [
                    _mm512_sub_ps(d[0], d[2]),
                    _mm512_add_ps(d[1], d[2]),
                    _mm512_sub_ps(d[2], d[1]),
                    _mm512_sub_ps(d[1], d[3]),
                ]
            };
            let (e, o, e1, o1) = (rows_of(e), rows_of(o), rows_of(e1), rows_of(o1));
            for i in 0..4 {
                // B over the columns of each: c0 − c2, c1 + c2, c2 − c1, c1 − c3.
                let values = [
                    _mm512_sub_ps(e[i], e1[i]),
                    _mm512_add_ps(o[i], e1[i]),
                    _mm512_sub_ps(e1[i], o[i]),
                    _mm512_sub_ps(o[i], o1[i]),
                ];
                for (j, value) in values.into_iter().enumerate() {
                    // SAFETY: position 4i + j, tiles t0..t0 + 16 (the caller's bounds).
                    unsafe { _mm512_storeu_ps(v.add((4 * i + j) * plane + t0), value) };
                }
            }
        }
    }

    /// `Aᵀ M A + bias` (through the ReLU if asked) of one output channel's `n` tiles, from
    /// `m[p·plane + t]`, into `rows` rows (1 or 2) of `ow` pixels at `dst`, `ow` apart.
    ///
    /// # Safety
    /// AVX-512F must be present; `m` must reach `15·plane + n`; `dst` must be valid for
    /// writes of `rows × ow` values that nothing else accesses; `2n ≥ ow`.
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn output_transform(
        m: &[f32],
        plane: usize,
        n: usize,
        (bias, relu): (f32, bool),
        (dst, plane_len): (*mut f32, usize),
        (rows, ow): (usize, usize),
    ) {
        debug_assert!(m.len() >= (POSITIONS - 1) * plane + n && 2 * n >= ow);
        let low = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
        let high = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
        let (bias, zero) = (_mm512_set1_ps(bias), _mm512_setzero_ps());
        let m = m.as_ptr();
        for t0 in (0..n).step_by(LANES) {
            let first = 2 * t0;
            if first >= ow {
                break;
            }
            // SAFETY: positions 0..16, tiles t0..t0 + 16 (the caller's bounds).
            let at = |p: usize| unsafe { _mm512_loadu_ps(m.add(p * plane + t0)) };
            // Aᵀ over the rows of each column j of 4 positions: m0 + m1 + m2, m1 − m2 − m3.
            let columns: [(__m512, __m512); 4] = std::array::from_fn(|j| {
                let (m0, m1, m2, m3) = (at(j), at(4 + j), at(8 + j), at(12 + j));
                (
                    _mm512_add_ps(_mm512_add_ps(m0, m1), m2),
                    _mm512_sub_ps(_mm512_sub_ps(m1, m2), m3),
                )
            });
            let s = [columns.map(|c| c.0), columns.map(|c| c.1)];
            for (i, s) in s.iter().enumerate().take(rows) {
                // A over the columns: c0 + c1 + c2, c1 − c2 − c3.
                let mut y0 = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(s[0], s[1]), s[2]), bias);
                let mut y1 = _mm512_add_ps(_mm512_sub_ps(_mm512_sub_ps(s[1], s[2]), s[3]), bias);
                if relu {
                    y0 = _mm512_max_ps(zero, y0);
                    y1 = _mm512_max_ps(zero, y1);
                }
                let left = (ow - first).min(2 * LANES);
                let (mask_lo, mask_hi) = (
                    crate::ops::cpu::lane_mask(left),
                    crate::ops::cpu::lane_mask(left.saturating_sub(LANES)),
                );
                // The same columns two channels on, for writing (see `input_transform`).
                let ahead = dst.wrapping_add(2 * plane_len + i * ow + first);
                _mm_prefetch::<_MM_HINT_ET0>(ahead.cast());
                _mm_prefetch::<_MM_HINT_ET0>(ahead.wrapping_add(16).cast());
                // SAFETY: columns first .. first + left of row i (the caller's bounds).
                unsafe {
                    let row = dst.add(i * ow + first);
                    _mm512_mask_storeu_ps(row, mask_lo, _mm512_permutex2var_ps(y0, low, y1));
                    if mask_hi != 0 {
                        let hi = _mm512_permutex2var_ps(y0, high, y1);
                        _mm512_mask_storeu_ps(row.add(LANES), mask_hi, hi);
                    }
                }
            }
        }
    }

    /// Not reached: `WinogradConv::new` returns `None` without AVX-512.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn input_transform(
        _: &[f32],
        _: (usize, usize),
        _: (isize, usize),
        _: usize,
        _: &mut [f32],
        _: usize,
    ) {
    }

    /// Not reached: as above.
    #[cfg(not(target_arch = "x86_64"))]
    pub(super) unsafe fn output_transform(
        _: &[f32],
        _: usize,
        _: usize,
        _: (f32, bool),
        _: (*mut f32, usize),
        _: (usize, usize),
    ) {
    }
}
