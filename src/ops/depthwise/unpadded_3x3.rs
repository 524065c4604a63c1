//! The frozen path's 3×3, stride-1, padding-1 depthwise plane (every one in Xception) in
//! AVX-512, reading the input where it lies: the zero border is the lanes that masked loads
//! leave out, so no padded copy of the plane is written (that copy and the auto-vectorised
//! taps were 12 % of an Xception evaluation). Each group of 16 outputs is accumulated in a
//! register over the nine taps, in the padded loop's order (with fused multiply-adds, so
//! within float32 rounding of it, not bit-identical).

use crate::ops::cpu::lane_mask;

/// `y (h × w) = relu?(x) ⋆ w9` with one zero of padding around `x` (`h × w`); false,
/// touching nothing, where AVX-512F is absent or a length does not fit.
pub fn correlate(
    x: &[f32],
    (h, w): (usize, usize),
    w9: &[f32; 9],
    relu: bool,
    y: &mut [f32],
) -> bool {
    if !crate::ops::cpu::available() || h == 0 || w == 0 || x.len() < h * w || y.len() < h * w {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        // SAFETY: AVX-512F is present; the lengths were checked above.
        unsafe { correlate_avx512(x, (h, w), w9, relu, y) };
        true
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (w9, relu);
        false
    }
}

/// # Safety
/// AVX-512F; `x` and `y` hold at least `h × w` values.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn correlate_avx512(
    x: &[f32],
    (h, w): (usize, usize),
    w9: &[f32; 9],
    relu: bool,
    y: &mut [f32],
) {
    use std::arch::x86_64::*;
    let taps: [__m512; 9] = std::array::from_fn(|t| _mm512_set1_ps(w9[t]));
    let zero = _mm512_setzero_ps();
    let (x, y) = (x.as_ptr(), y.as_mut_ptr());
    for oy in 0..h {
        for x0 in (0..w).step_by(16) {
            let centre = lane_mask(w - x0);
            // Column x0 + i − 1 lies left of the plane only for lane 0 of the first group;
            // column x0 + i + 1 lies inside while i < w − x0 − 1.
            let left = if x0 == 0 { centre & !1 } else { centre };
            let right = centre & lane_mask(w - x0 - 1);
            let mut acc = zero;
            for ky in 0..3 {
                let Some(iy) = (oy + ky).checked_sub(1).filter(|&iy| iy < h) else {
                    continue;
                };
                // The addresses may point one value before the plane (lane 0 of `left`, at
                // x0 = 0) or past a row's end: only lanes inside the plane are read, and
                // masked-off lanes do not fault.
                let row = x.wrapping_add(iy * w + x0);
                // A macro, not a closure: the intrinsics need this function's features.
                macro_rules! load {
                    ($mask:expr, $at:expr) => {{
                        // SAFETY: every unmasked lane reads a value of row iy of `x`.
                        let v = unsafe { _mm512_maskz_loadu_ps($mask, $at) };
                        if relu { _mm512_max_ps(v, zero) } else { v }
                    }};
                }
                let (l, c, r) = (
                    load!(left, row.wrapping_sub(1)),
                    load!(centre, row),
                    load!(right, row.wrapping_add(1)),
                );
                acc = _mm512_fmadd_ps(taps[3 * ky], l, acc);
                acc = _mm512_fmadd_ps(taps[3 * ky + 1], c, acc);
                acc = _mm512_fmadd_ps(taps[3 * ky + 2], r, acc);
            }
            // SAFETY: the `centre` lanes are columns x0.. of row oy, inside `y`.
            unsafe { _mm512_mask_storeu_ps(y.add(oy * w + x0), centre, acc) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Against the padded plane loop, with and without the ReLU, for widths below, at and
    /// past one vector, and single rows and columns.
    #[test]
    fn equals_the_padded_loop() {
        if !crate::ops::cpu::available() {
            eprintln!("skipped: no AVX-512F on this processor");
            return;
        }
        for &(h, w) in &[
            (1, 1),
            (3, 5),
            (16, 16),
            (8, 8),
            (7, 17),
            (125, 125),
            (2, 33),
        ] {
            let x: Vec<f32> = (0..h * w).map(|i| ((i as f32) * 0.37).sin()).collect();
            let w9: [f32; 9] = std::array::from_fn(|t| ((t as f32) * 0.71 + 0.2).cos());
            for relu in [false, true] {
                let mut padded = vec![0.0f32; (h + 2) * (w + 2)];
                for yy in 0..h {
                    for xx in 0..w {
                        let v = x[yy * w + xx];
                        padded[(yy + 1) * (w + 2) + xx + 1] = if relu { v.max(0.0) } else { v };
                    }
                }
                let mut want = vec![0.0f32; h * w];
                crate::ops::depthwise::plane_3x3::correlate(&padded, w + 2, &w9, &mut want, (h, w));
                let mut got = vec![f32::NAN; h * w + 3];
                assert!(correlate(&x, (h, w), &w9, relu, &mut got));
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-6 * (1.0 + e.abs()),
                        "{h}x{w} at {i}: {g} vs {e}"
                    );
                }
                assert!(
                    got[h * w..].iter().all(|v| v.is_nan()),
                    "wrote past the plane"
                );
            }
        }
    }
}
