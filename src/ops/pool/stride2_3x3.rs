//! The frozen path's 3×3, stride-2, padding-1 max-pool of one plane plus a residual (every
//! strided Xception block ends in one), in AVX-512: each output row takes the maximum of
//! its three input rows 16 columns at a time into a row of column maxima bordered by −∞,
//! then the even and odd columns of that row by two-source permutes. Values equal the
//! op's plane loop exactly (a maximum does not round), NaN winning as there.

use crate::ops::cpu::lane_mask;

/// Columns of −∞ before and after the row of column maxima (one group of 16 each side, so
/// that every load of the row stays inside it).
const BORDER: usize = 16;

/// The scratch `pool_add` needs for planes `w` wide.
pub fn row_len(w: usize) -> usize {
    BORDER + w.next_multiple_of(16) + 2 * BORDER
}

/// `y = maxpool(x) + add` over the output rows `rows` of one `h × w` plane (whose output is
/// `oh × ow`, `oh = (h − 1)/2 + 1` and likewise `ow`): `add` and `y` hold those rows only.
/// `row` is scratch of at least `row_len(w)` values. False, touching nothing, where
/// AVX-512F is absent or a length does not fit.
pub fn pool_add(
    x: &[f32],
    (h, w): (usize, usize),
    rows: std::ops::Range<usize>,
    add: &[f32],
    y: &mut [f32],
    row: &mut [f32],
) -> bool {
    let (oh, ow) = ((h.max(1) - 1) / 2 + 1, (w.max(1) - 1) / 2 + 1);
    let band = rows.len() * ow;
    if !crate::ops::cpu::available()
        || h == 0
        || w == 0
        || rows.end > oh
        || x.len() < h * w
        || add.len() < band
        || y.len() < band
        || row.len() < row_len(w)
    {
        return false;
    }
    row.fill(f32::NEG_INFINITY);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX-512F is present; the lengths were checked above and `row` holds the
        // borders `pool_add_avx512` reads.
        unsafe { pool_add_avx512(x, (h, w), (rows, ow), add, y, row) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// # Safety
/// AVX-512F; `x` holds `h × w` values, `add` and `y` `rows.len() × ow`, `rows` inside the
/// output's; `row` holds `row_len(w)` values, −∞ outside `BORDER..BORDER + w`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pool_add_avx512(
    x: &[f32],
    (h, w): (usize, usize),
    (rows, ow): (std::ops::Range<usize>, usize),
    add: &[f32],
    y: &mut [f32],
    row: &mut [f32],
) {
    use std::arch::x86_64::*;
    // The larger of two vectors lane by lane, a NaN in either winning (vmaxps alone returns
    // its second operand when either is NaN).
    macro_rules! max_nan {
        ($a:expr, $b:expr) => {{
            let (a, b) = ($a, $b);
            let m = _mm512_max_ps(a, b);
            _mm512_mask_mov_ps(m, _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(a, a), a)
        }};
    }
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (x, add, y, maxima) = (x.as_ptr(), add.as_ptr(), y.as_mut_ptr(), row.as_mut_ptr());
    for oy in rows.clone() {
        let (first, last) = ((2 * oy).saturating_sub(1), (2 * oy + 1).min(h - 1));
        for x0 in (0..w).step_by(16) {
            let lanes = lane_mask(w - x0);
            // SAFETY: the `lanes` columns x0.. of rows first..=last lie inside `x`; the row
            // of maxima holds BORDER + w values and more.
            unsafe {
                let mut m = _mm512_maskz_loadu_ps(lanes, x.add(first * w + x0));
                for r in first + 1..=last {
                    m = max_nan!(m, _mm512_maskz_loadu_ps(lanes, x.add(r * w + x0)));
                }
                _mm512_mask_storeu_ps(maxima.add(BORDER + x0), lanes, m);
            }
        }
        for ox0 in (0..ow).step_by(16) {
            let lanes = lane_mask(ow - ox0);
            // SAFETY: columns 2·ox0 − 1 .. 2·ox0 + 31 of the row of maxima lie inside it
            // (BORDER before column 0, 2·BORDER past the last group); the `lanes` outputs of
            // row oy (row oy − rows.start of the band) lie inside `add` and `y`.
            unsafe {
                let at = maxima.add(BORDER + 2 * ox0);
                let (c0, c1) = (_mm512_loadu_ps(at), _mm512_loadu_ps(at.add(16)));
                let (l0, l1) = (_mm512_loadu_ps(at.sub(1)), _mm512_loadu_ps(at.add(15)));
                let centre = _mm512_permutex2var_ps(c0, even, c1);
                let right = _mm512_permutex2var_ps(c0, odd, c1);
                let left = _mm512_permutex2var_ps(l0, even, l1);
                // The op's order: the left column, the centre, then the right.
                let m = max_nan!(max_nan!(left, centre), right);
                let out = (oy - rows.start) * ow + ox0;
                let sum = _mm512_add_ps(m, _mm512_maskz_loadu_ps(lanes, add.add(out)));
                _mm512_mask_storeu_ps(y.add(out), lanes, sum);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::geometry::PoolGeometry;

    /// Equal to the op's plane loop plus the residual, bit for bit, on odd and even sizes
    /// below, at and past one vector, with a NaN inside a window and at a border.
    #[test]
    fn equals_the_op_plane_loop() {
        if !crate::ops::cpu::available() {
            eprintln!("skipped: no AVX-512F on this processor");
            return;
        }
        let g = PoolGeometry {
            kernel: 3,
            stride: 2,
            padding: 1,
        };
        for &(h, w) in &[
            (1, 1),
            (2, 2),
            (3, 5),
            (16, 16),
            (125, 125),
            (63, 63),
            (8, 33),
        ] {
            let mut x: Vec<f32> = (0..h * w).map(|i| ((i as f32) * 0.37).sin()).collect();
            if h * w > 4 {
                x[h * w / 2] = f32::NAN;
                x[w - 1] = f32::NAN;
            }
            let d = super::super::Dims::new(&[1, 1, h, w], g).unwrap();
            let (oh, ow) = (d.oh, d.ow);
            let add: Vec<f32> = (0..oh * ow).map(|i| ((i as f32) * 0.11).cos()).collect();
            let mut want = vec![0.0f32; oh * ow];
            super::super::plane_maxima(&d, &x, &mut want);
            for (v, a) in want.iter_mut().zip(&add) {
                *v += a;
            }
            let mut got = vec![0.5f32; oh * ow + 3];
            let mut row = vec![0.0f32; row_len(w)];
            // In bands of output rows, as the frozen path splits a pool across threads.
            let band = oh.div_ceil(3).max(1);
            for first in (0..oh).step_by(band) {
                let rows = first..(first + band).min(oh);
                let (add, got) = (&add[first * ow..], &mut got[first * ow..]);
                assert!(pool_add(&x, (h, w), rows, add, got, &mut row));
            }
            for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                assert!(
                    g.to_bits() == e.to_bits() || (g.is_nan() && e.is_nan()),
                    "{h}x{w} at {i}: {g} vs {e}"
                );
            }
            assert!(
                got[oh * ow..].iter().all(|&v| v == 0.5),
                "wrote past the plane"
            );
        }
    }
}
