//! The frozen path's 3×3, stride-2, padding-1 max-pool of one plane plus a residual (every
//! strided Xception block ends in one), in AVX-512 registers: each group of 16 outputs takes
//! the maxima of its three input rows over 32 columns (two vectors, −∞ past the row), then
//! the even columns, the odd ones and those one to the left by two-source permutes, the
//! column before the group kept from the group before; the groups inside the row load whole,
//! without a mask. Values equal the op's plane loop exactly (a maximum does not round), NaN
//! winning as there. In the band of a pooled product (`pointwise::pooled`), a row of column
//! maxima stored and reloaded one column off (the loads spanning two stores) took 4.2 µs a
//! 125² plane; in registers with a mask made for each load, 4.3 µs on a plane in L2; loaded
//! whole, 1.9–2.3 µs (one thread, this file's kernel alone).

use crate::ops::cpu::lane_mask;

/// The output of an `h × w` plane: `((h − 1)/2 + 1, (w − 1)/2 + 1)`.
pub fn output_hw((h, w): (usize, usize)) -> (usize, usize) {
    ((h.max(1) - 1) / 2 + 1, (w.max(1) - 1) / 2 + 1)
}

/// The input rows (`first..=last`) that the output rows `rows` of an `h`-row plane read.
pub fn input_rows(h: usize, rows: &std::ops::Range<usize>) -> (usize, usize) {
    (
        (2 * rows.start).saturating_sub(1),
        (2 * rows.end).saturating_sub(1).min(h.max(1) - 1),
    )
}

/// `y = maxpool(x) [+ add]` over the output rows `rows` of one `h × w` plane (whose output is
/// `oh × ow`, `output_hw`): `x` holds the plane's rows from
/// `x_row0` on (at least those `rows` read, `input_rows`), `add` and `y` the output rows
/// `rows` only. False, touching nothing, where AVX-512F is absent or a length does not fit.
pub fn pool_add(
    (x, x_row0): (&[f32], usize),
    (h, w): (usize, usize),
    rows: std::ops::Range<usize>,
    add: Option<&[f32]>,
    y: &mut [f32],
) -> bool {
    let (oh, ow) = output_hw((h, w));
    let band = rows.len() * ow;
    let (first, last) = input_rows(h, &rows);
    if !crate::ops::cpu::available()
        || h == 0
        || w == 0
        || rows.is_empty()
        || rows.end > oh
        || x_row0 > first
        || x.len() < (last + 1 - x_row0) * w
        || add.is_some_and(|add| add.len() < band)
        || y.len() < band
    {
        return false;
    }
    // The rows from `x_row0` on, as if the plane's.
    let x = x.as_ptr().wrapping_sub(x_row0 * w);
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX-512F is present; the lengths were checked above (`x` shifted back by
        // `x_row0` rows is read from row `first` on only).
        unsafe { pool_add_avx512(x, (h, w), (rows, ow), add, y) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    false
}

/// # Safety
/// AVX-512F; `x` is the plane's row 0, valid for the input rows that `rows` read
/// (`input_rows`), `add` and `y` hold `rows.len() × ow` values, `rows` inside the output's.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn pool_add_avx512(
    x: *const f32,
    (h, w): (usize, usize),
    (rows, ow): (std::ops::Range<usize>, usize),
    add: Option<&[f32]>,
    y: &mut [f32],
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
    let neg = _mm512_set1_ps(f32::NEG_INFINITY);
    let even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    let odd = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
    let (add, y) = (add.map(<[f32]>::as_ptr), y.as_mut_ptr());
    // Groups whose 32 input columns all lie inside the row: loaded whole, no mask to make.
    let whole_groups = (w / 32).min(ow / 16);
    for oy in rows.clone() {
        let (first, last) = input_rows(h, &(oy..oy + 1));
        let row0 = x.wrapping_add(first * w);
        // The maxima of the window's rows (one to three, in order) over the 16 columns
        // from x0, the lanes outside `lanes` −∞.
        macro_rules! column_maxima {
            ($x0:expr, $lanes:expr) => {{
                let (x0, lanes): (usize, u16) = ($x0, $lanes);
                // SAFETY: the `lanes` columns x0.. of rows first..=last are valid.
                unsafe {
                    let at = row0.wrapping_add(x0);
                    let mut m = _mm512_mask_loadu_ps(neg, lanes, at);
                    if last > first {
                        m = max_nan!(m, _mm512_mask_loadu_ps(neg, lanes, at.wrapping_add(w)));
                    }
                    if last > first + 1 {
                        m = max_nan!(m, _mm512_mask_loadu_ps(neg, lanes, at.wrapping_add(2 * w)));
                    }
                    m
                }
            }};
        }
        // The maxima of the 16 columns before the group (−∞ before column 0).
        let mut before = neg;
        for group in 0..ow.div_ceil(16) {
            let (ox0, x0) = (16 * group, 32 * group);
            let (c0, c1) = if group < whole_groups {
                (column_maxima!(x0, 0xffff), column_maxima!(x0 + 16, 0xffff))
            } else {
                let lanes = |from: usize| if from < w { lane_mask(w - from) } else { 0 };
                (
                    column_maxima!(x0, lanes(x0)),
                    column_maxima!(x0 + 16, lanes(x0 + 16)),
                )
            };
            // Columns x0 − 1 .. x0 + 30: each lane the column to the left of c0's and c1's.
            macro_rules! shift {
                ($hi:expr, $lo:expr) => {
                    _mm512_castsi512_ps(_mm512_alignr_epi32::<15>(
                        _mm512_castps_si512($hi),
                        _mm512_castps_si512($lo),
                    ))
                };
            }
            let (l0, l1) = (shift!(c0, before), shift!(c1, c0));
            let centre = _mm512_permutex2var_ps(c0, even, c1);
            let right = _mm512_permutex2var_ps(c0, odd, c1);
            let left = _mm512_permutex2var_ps(l0, even, l1);
            // The op's order: the left column, the centre, then the right.
            let m = max_nan!(max_nan!(left, centre), right);
            let lanes = if group < whole_groups {
                0xffff
            } else {
                lane_mask(ow - ox0)
            };
            let out = (oy - rows.start) * ow + ox0;
            // SAFETY: the `lanes` outputs of row oy (row oy − rows.start of the band) lie
            // inside `add` and `y`.
            unsafe {
                let sum = match add {
                    Some(add) => _mm512_add_ps(m, _mm512_maskz_loadu_ps(lanes, add.add(out))),
                    None => m,
                };
                _mm512_mask_storeu_ps(y.add(out), lanes, sum);
            }
            before = c1;
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
            (9, 32),
            (6, 64),
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
            // In bands of output rows, as the frozen path splits a pool across threads, the
            // odd bands given only the input rows they read.
            let band = oh.div_ceil(3).max(1);
            for (i, start) in (0..oh).step_by(band).enumerate() {
                let rows = start..(start + band).min(oh);
                let (add, got) = (&add[start * ow..], &mut got[start * ow..]);
                let (first, last) = input_rows(h, &rows);
                let x = match i % 2 {
                    0 => (&x[..], 0),
                    _ => (&x[first * w..(last + 1) * w], first),
                };
                assert!(pool_add(x, (h, w), rows, Some(add), got));
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
