//! The plane loops of a 3×3, stride-1 depthwise convolution (every one in Xception), written
//! so that each output value, or each group of 16 weight-gradient partial sums, is
//! accumulated in registers and stored once. The general loops in `depthwise.rs` add one
//! tap at a time into the output row, a load and a store per tap: in an Xception training
//! step those stores were the depthwise op's main cost. Forward values are bit-identical to
//! the general loop (same order of additions); the input gradient is the forward loop over
//! the padded output gradient with the kernel flipped.

use candle_core::WithDType;

/// `y (oh × ow) = padded ⋆ w`, where `padded` has row stride `wp ≥ ow + 2` and at least
/// `oh + 2` rows.
#[inline(always)]
pub fn correlate<T: WithDType>(
    padded: &[T],
    wp: usize,
    w: &[T; 9],
    y: &mut [T],
    (oh, ow): (usize, usize),
) {
    let zero = T::from_f64(0.0);
    for (oy, out) in y.chunks_exact_mut(ow).take(oh).enumerate() {
        let row = |ky: usize| &padded[(oy + ky) * wp..][..ow + 2];
        let (r0, r1, r2) = (row(0), row(1), row(2));
        let taps = [
            &r0[..ow],
            &r0[1..ow + 1],
            &r0[2..],
            &r1[..ow],
            &r1[1..ow + 1],
            &r1[2..],
            &r2[..ow],
            &r2[1..ow + 1],
            &r2[2..],
        ];
        for (i, o) in out.iter_mut().enumerate() {
            let mut acc = zero;
            for t in 0..9 {
                acc += w[t] * taps[t][i];
            }
            *o = acc;
        }
    }
}

/// Lanes of one group of partial sums.
pub const LANES: usize = 16;

/// The nine weight-gradient sums of one channel, kept as rows of `LANES` partial sums (plus
/// one for the columns past the last full group) until [`TapSums::total`].
pub struct TapSums<T> {
    lanes: [[T; LANES]; 9],
    tail: [T; 9],
}

impl<T: WithDType> Default for TapSums<T> {
    fn default() -> Self {
        let zero = T::from_f64(0.0);
        TapSums {
            lanes: [[zero; LANES]; 9],
            tail: [zero; 9],
        }
    }
}

impl<T: WithDType> TapSums<T> {
    /// `Σ g[oy][ox] · padded[oy + ky][ox + kx]` per tap `ky·3 + kx`.
    pub fn total(&self) -> [T; 9] {
        std::array::from_fn(|t| self.lanes[t].iter().fold(self.tail[t], |sum, v| sum + *v))
    }
}

/// Adds one plane's products to `sums`: the `oh × ow` output gradient `g` times the windows
/// of `padded` (as in [`correlate`]).
#[inline(always)]
pub fn weight_taps<T: WithDType>(
    padded: &[T],
    wp: usize,
    g: &[T],
    (oh, ow): (usize, usize),
    sums: &mut TapSums<T>,
) {
    let full = ow - ow % LANES;
    for (oy, gy) in g.chunks_exact(ow).take(oh).enumerate() {
        for (chunk, gv) in gy.chunks_exact(LANES).enumerate() {
            let x0 = chunk * LANES;
            for ky in 0..3 {
                let row = &padded[(oy + ky) * wp + x0..][..LANES + 2];
                for kx in 0..3 {
                    let src = &row[kx..kx + LANES];
                    let acc = &mut sums.lanes[ky * 3 + kx];
                    for ((a, g), s) in acc.iter_mut().zip(gv).zip(src) {
                        *a += *g * *s;
                    }
                }
            }
        }
        for (ox, &gv) in gy.iter().enumerate().skip(full) {
            for (t, acc) in sums.tail.iter_mut().enumerate() {
                *acc += gv * padded[(oy + t / 3) * wp + ox + t % 3];
            }
        }
    }
}

/// [`weight_taps`] in f32 with AVX-512 (the ragged last group of each row masked), adding
/// into `sums` (the nine taps' 16-lane partial sums).
///
/// # Safety
/// AVX-512F must be present.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
pub unsafe fn weight_taps_f32(
    padded: &[f32],
    wp: usize,
    g: &[f32],
    (oh, ow): (usize, usize),
    sums: &mut [[f32; LANES]; 9],
) {
    use std::arch::x86_64::*;
    if oh == 0 || ow == 0 || wp < ow + 2 || padded.len() < (oh + 2) * wp || g.len() < oh * ow {
        return;
    }
    // SAFETY (whole body): the check above bounds every masked load (rows < oh + 2 of
    // `padded`, columns < ow + 2 ≤ wp; rows < oh of `g`, columns < ow); masked-off lanes are
    // not read.
    unsafe {
        let mut acc: [__m512; 9] = std::array::from_fn(|t| _mm512_loadu_ps(sums[t].as_ptr()));
        for oy in 0..oh {
            let gy = g.as_ptr().add(oy * ow);
            let rows = [0, 1, 2].map(|ky| padded.as_ptr().add((oy + ky) * wp));
            for x0 in (0..ow).step_by(LANES) {
                let lanes = (ow - x0).min(LANES);
                let mask = if lanes == LANES {
                    0xffff
                } else {
                    ((1u32 << lanes) - 1) as __mmask16
                };
                let gv = _mm512_maskz_loadu_ps(mask, gy.add(x0));
                for ky in 0..3 {
                    for kx in 0..3 {
                        let src = _mm512_maskz_loadu_ps(mask, rows[ky].add(x0 + kx));
                        acc[ky * 3 + kx] = _mm512_fmadd_ps(gv, src, acc[ky * 3 + kx]);
                    }
                }
            }
        }
        for (sum, acc) in sums.iter_mut().zip(acc) {
            _mm512_storeu_ps(sum.as_mut_ptr(), acc);
        }
    }
}
