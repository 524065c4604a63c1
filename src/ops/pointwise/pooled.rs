//! A 1×1 product followed by the 3×3, stride-2, padding-1 max-pool and the residual that end
//! every strided Xception block, in bands of output rows: each band's product is stored into
//! a buffer of the band's input rows (about 1 MiB: the core's L2) and pooled from there, so
//! the product's output is never written whole. Unbanded, LilXception's first block stored its
//! 128 planes of 125² (8 MB) and the pool read them back from L3.
//!
//! Measured on LilXception at one image, 2 threads, the blocks' laps interleaved with the
//! unbanded path (4 × 80 passes each): the four strided blocks 13.3 → 12.8 ms at the median,
//! 10.5 → 8.9 at best. At one thread the pool of the first block took 297 µs from the bands
//! against 654 from the stored planes.
//!
//! Two bands' windows share one input row. A worker keeps that row for the next band of its
//! own run, and computes it again for the first band of its run and for a band taken out of
//! turn (`schedule::Units`).

use rayon::prelude::*;

use super::schedule::Units;
use super::{Block, Epilogue, Lhs, PackedLhs, Rhs, available, block};
use crate::ops::cpu::SharedMut;
use crate::ops::pool::stride2_3x3::{input_rows, output_hw, pool_add};

/// Values of a band's buffer at most (1 MiB): its input rows of every channel.
const BAND_VALUES: usize = 1 << 18;

/// A packed 1×1 weight with its bias (and ReLU) as the product's epilogue, and its right
/// operand: `k` rows of `h × w` pixels.
#[derive(Clone, Copy)]
pub struct PooledProduct<'a> {
    pub weight: &'a PackedLhs,
    pub bias: &'a [f32],
    pub relu: bool,
    pub rhs: Rhs<'a>,
    pub hw: (usize, usize),
}

/// What a pooled product adds to the pool's output (`m × oh × ow`).
#[derive(Clone, Copy)]
pub enum PoolResidual<'a> {
    /// These values, as they are.
    Values(&'a [f32]),
    /// A 1×1 product over the pool's output pixels (the strided skip conv: `rhs` has
    /// `oh · ow` columns), computed band by band after the pool and added as it stores:
    /// its values never stored apart, nor the pool's read back from memory.
    Product {
        weight: &'a PackedLhs,
        bias: &'a [f32],
        rhs: Rhs<'a>,
    },
}

/// `y = maxpool₃ₓ₃,₂(act(weight · rhs + bias)) + residual` (`y` is `m × oh × ow`, the
/// pool's output) on up to `threads` threads, in bands (see the module docs); `scratch`
/// holds the bands' buffers. The pool equals the product stored whole and then pooled, bit
/// for bit; a `Product` residual's passes (256 deep) are added to the pool one by one and
/// its bias last, float32 roundings away from the skip stored and then added. False,
/// touching nothing but `scratch`, where the kernel is unavailable or a length or shape
/// does not fit.
pub fn product_pool_add(
    p: PooledProduct<'_>,
    residual: PoolResidual<'_>,
    y: &mut [f32],
    scratch: &mut Vec<f32>,
    threads: usize,
) -> bool {
    let lhs = Lhs::Packed(p.weight);
    let ((m, k), (h, w)) = (lhs.dims(), p.hw);
    let (oh, ow) = output_hw((h, w));
    let out_len = m * oh * ow;
    // A depthwise operand's planes are the pool's (`fits` checks only their pixel count).
    let same_planes = !matches!(p.rhs, Rhs::Depthwise3x3 { hw, .. } if hw != p.hw);
    let fits = h > 0 && w > 0 && m > 0 && k > 0 && same_planes && p.rhs.fits(k, h * w);
    let fits = fits && p.bias.len() >= m;
    let residual_fits = match residual {
        PoolResidual::Values(add) => add.len() >= out_len,
        PoolResidual::Product { weight, bias, rhs } => {
            let (rows, depth) = Lhs::Packed(weight).dims();
            rows == m && depth > 0 && bias.len() >= m && rhs.fits(depth, oh * ow)
        }
    };
    if !(available() && fits && residual_fits && y.len() >= out_len) {
        return false;
    }
    let workers = threads.clamp(1, oh);
    let (band_rows, bands) = bands(oh, band_rows_at_most(m, w), workers);
    let Some(units) = Units::new(bands, band_rows, oh, workers, 1, 1) else {
        return false;
    };
    // A band's input rows of one channel: 2·band_rows + 1 at most (`input_rows`).
    let ldc = (2 * band_rows + 1) * w;
    let per_worker = m * ldc;
    let len = units.workers() * per_worker;
    if scratch.len() < len {
        scratch.resize(len, 0.0);
    }
    let epilogue = Epilogue {
        bias: p.bias,
        residual: None,
        relu: p.relu,
    };
    let y_at = SharedMut(y.as_mut_ptr());
    let worker = |(worker, band): (usize, &mut [f32])| {
        // The next band of this worker's run, and where its first input row lies.
        let mut carried: Option<(usize, usize)> = None;
        while let Some(rows) = units.take(worker) {
            let (first, last) = input_rows(h, &rows);
            let mut from = first;
            if let Some((_, at)) = carried.filter(|&(next, _)| next == rows.start) {
                for plane in band.chunks_mut(ldc) {
                    plane.copy_within(at * w..(at + 1) * w, 0);
                }
                from = first + 1;
            }
            if from <= last {
                let c = Block {
                    c: band.as_mut_ptr(),
                    ldc,
                    col0: first * w,
                    accumulate: false,
                    epilogue: Some(epilogue),
                };
                // SAFETY: `fits` bounds the operand's rows and columns; the columns
                // `from·w..(last + 1)·w` less `first·w` lie inside each of the band's `m`
                // rows of `ldc` (at most 2·band_rows + 1 input rows); this worker alone
                // uses its buffer; AVX-512F is present (`available`).
                unsafe { block(lhs, p.rhs, 0..m, from * w..(last + 1) * w, c) };
            }
            let pixels = rows.start * ow..rows.end * ow;
            for (plane, x) in band.chunks(ldc).enumerate() {
                let at = plane * oh * ow + pixels.start;
                let add = match residual {
                    PoolResidual::Values(add) => Some(&add[at..at + pixels.len()]),
                    PoolResidual::Product { .. } => None,
                };
                // SAFETY: each unit is taken by one worker, and writes only its output
                // rows of each plane, inside `y` (`out_len`).
                let y = unsafe { std::slice::from_raw_parts_mut(y_at.get().add(at), pixels.len()) };
                let x = (&x[..(last + 1 - first) * w], first);
                if !pool_add(x, (h, w), rows.clone(), add, y) {
                    return false;
                }
            }
            if let PoolResidual::Product { weight, bias, rhs } = residual {
                let c = Block {
                    c: y_at.get(),
                    ldc: oh * ow,
                    col0: 0,
                    accumulate: true,
                    epilogue: Some(Epilogue {
                        bias,
                        residual: None,
                        relu: false,
                    }),
                };
                // SAFETY: `residual_fits` bounds the operand; `y` holds `m` rows of
                // `oh · ow`; this unit alone writes the columns of its output rows.
                unsafe { block(Lhs::Packed(weight), rhs, 0..m, pixels, c) };
            }
            carried = Some((rows.end, last - first));
        }
        true
    };
    let scratch = &mut scratch[..len];
    if units.workers() == 1 {
        // On this thread: a parallel iterator would let it take another image's pass while
        // it waited (one image a thread in a batch), each holding its own scratch.
        return worker((0, scratch));
    }
    scratch.par_chunks_mut(per_worker).enumerate().all(worker)
}

/// Output rows a band at most: those whose input rows (2·rows + 1) of `channels` planes
/// `w` wide fit `BAND_VALUES`, at least one.
fn band_rows_at_most(channels: usize, w: usize) -> usize {
    ((BAND_VALUES / (channels * w).max(1)).saturating_sub(1) / 2).max(1)
}

/// The output rows of a band (at most `most`) and the bands of `oh` rows, for `workers`:
/// the size at which the worker with the most bands does the least, a band costing a
/// quarter row more (its shared row and its partly filled strips). With 63 rows on 2
/// workers: bands of 4 rows (8 each), where bands of 7 left one worker a ninth.
fn bands(oh: usize, most: usize, workers: usize) -> (usize, usize) {
    let cost = |rows: usize| {
        let per_worker = oh.div_ceil(rows).div_ceil(workers);
        4 * per_worker * rows + per_worker
    };
    let rows = (1..=most.min(oh).max(1))
        .rev()
        .min_by_key(|&rows| cost(rows))
        .unwrap_or(1);
    (rows, oh.div_ceil(rows))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ops::pool::max_pool_add_image;

    #[test]
    fn bands_balance_the_workers() {
        assert_eq!(bands(63, 7, 2), (4, 16));
        assert_eq!(bands(32, 7, 2), (4, 8));
        assert_eq!(bands(63, 7, 1), (7, 9));
        assert_eq!(bands(1, 7, 2), (1, 1));
        assert_eq!(band_rows_at_most(128, 125), 7);
        assert_eq!(band_rows_at_most(1 << 20, 125), 1);
    }

    /// `act(weight · rhs + bias)` stored whole (`n` columns), by `product_of` on one thread.
    fn stored(weight: &PackedLhs, rhs: Rhs<'_>, n: usize, bias: &[f32], relu: bool) -> Vec<f32> {
        let mut c = vec![0.0f32; Lhs::Packed(weight).dims().0 * n];
        let out = super::super::Out {
            c: &mut c,
            ldc: n,
            accumulate: false,
            epilogue: Some(Epilogue {
                bias,
                residual: None,
                relu,
            }),
        };
        assert!(super::super::product_of(
            Lhs::Packed(weight),
            rhs,
            n,
            out,
            1
        ));
        c
    }

    /// Equal, bit for bit, to the product stored whole and then pooled, on one to three
    /// threads, at sizes with one band and with several a worker, odd and even rows, a last
    /// panel of 4 rows, a product deeper than one pass, and a depthwise right operand; with a
    /// skip product added band by band, equal within float32 rounding.
    #[test]
    fn equals_the_product_then_the_pool() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this processor");
            return;
        }
        let wave =
            |len: usize, f: f32| -> Vec<f32> { (0..len).map(|i| ((i as f32) * f).sin()).collect() };
        // 128 × 125² and 300 × 40 × 64: several bands a worker (a carried row) on one thread
        // and on two; 300 deep: two passes of the band's product and of the skip's.
        for &(m, k, h, w, depthwise) in &[
            (16, 8, 3, 5, false),
            (28, 40, 125, 125, true),
            (12, 24, 33, 17, false),
            (64, 16, 64, 20, true),
            (128, 8, 125, 125, true),
            (300, 300, 40, 64, false),
        ] {
            let weight = wave(m * k, 0.31);
            let packed = PackedLhs::pack(&weight, m, k, k, 1).unwrap();
            let bias = wave(m, 0.7);
            let x = wave(k * h * w, 0.013);
            let taps = wave(9 * k, 0.5);
            let rhs = if depthwise {
                Rhs::Depthwise3x3 {
                    x: &x,
                    hw: (h, w),
                    taps: &taps,
                    relu: true,
                }
            } else {
                Rhs::Dense { b: &x, ldb: h * w }
            };
            let whole = stored(&packed, rhs, h * w, &bias, true);
            let (oh, ow) = ((h - 1) / 2 + 1, (w - 1) / 2 + 1);
            let add = wave(m * oh * ow, 0.11);
            let mut want = vec![0.0f32; m * oh * ow];
            let g = crate::ops::geometry::PoolGeometry {
                kernel: 3,
                stride: 2,
                padding: 1,
            };
            max_pool_add_image(&whole, (m, h, w), g, &add, &mut want, false).unwrap();
            // The skip conv's product, stored and then added, as the unbanded path does.
            let skip_weight = wave(m * k, 0.23);
            let skip_packed = PackedLhs::pack(&skip_weight, m, k, k, 1).unwrap();
            let bias_of_skip = wave(m, 0.9);
            let skip_rhs = Rhs::Patches {
                x: &x,
                hw: (h, w),
                kernel: 1,
                stride: 2,
            };
            let skip = stored(&skip_packed, skip_rhs, oh * ow, &bias_of_skip, false);
            let mut want_skip = vec![0.0f32; m * oh * ow];
            max_pool_add_image(&whole, (m, h, w), g, &skip, &mut want_skip, false).unwrap();
            for threads in [1, 2, 3] {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let p = PooledProduct {
                    weight: &packed,
                    bias: &bias,
                    relu: true,
                    rhs,
                    hw: (h, w),
                };
                let run = |residual| {
                    let (mut got, mut scratch) = (vec![f32::NAN; m * oh * ow], Vec::new());
                    let done = pool
                        .install(|| product_pool_add(p, residual, &mut got, &mut scratch, threads));
                    assert!(done);
                    got
                };
                let got = run(PoolResidual::Values(&add));
                for (i, (g, e)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        g.to_bits(),
                        e.to_bits(),
                        "{m}x{h}x{w}, {threads} threads, at {i}"
                    );
                }
                // The skip added band by band: its sum rounds once differently.
                let got = run(PoolResidual::Product {
                    weight: &skip_packed,
                    bias: &bias_of_skip,
                    rhs: skip_rhs,
                });
                for (i, (g, e)) in got.iter().zip(&want_skip).enumerate() {
                    assert!(
                        (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                        "{m}x{h}x{w}, {threads} threads, skip at {i}: {g} vs {e}"
                    );
                }
            }
        }
    }
}
