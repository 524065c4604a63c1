//! Pillow's bilinear resize of 8-bit RGB, bit for bit: a port of `ImagingResample` in
//! Pillow's `src/libImaging/Resample.c` with the bilinear (triangle) filter and the box set to
//! the whole image, which is what `Image.resize(size, Image.BILINEAR)` runs.
//!
//! Users compare FakeLens with PyTorch pipelines that decode with Pillow and resize this way;
//! `image`'s triangle filter lands up to a grey level away, which moves a fake probability
//! by up to 0.037. So the model input is resized exactly as Pillow does it: the same
//! coefficients (computed in `f64`, normalised by their sum, then turned into 22-bit fixed
//! point with Pillow's rounding), the same integer accumulation and clipping, the horizontal
//! pass first (over only the rows the vertical pass reads), then the vertical pass, each
//! skipped when its axis keeps its size.

use image::RgbImage;
use rayon::prelude::*;

/// Bits of fraction in a fixed-point weight: 32 bits less 8 for the sample and 2 of headroom
/// for filters whose partial sums leave [0, 1] (Pillow's `PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// The accumulator's starting value: one half in fixed point, so that the final shift
/// rounds to nearest instead of truncating (Pillow's `ss = 1 << (PRECISION_BITS - 1)`).
const ROUNDING_HALF: i32 = 1 << (PRECISION_BITS - 1);

/// How far the triangle filter reaches, in input pixels at scale 1 (Pillow's `BILINEAR`).
const BILINEAR_SUPPORT_PX: f64 = 1.0;

/// Multiply-adds of one pass below which it runs on the calling thread: a 250 → 256 face
/// (about 0.2 M) finishes faster than rayon can hand its rows out, and the data pipeline
/// already decodes many files in parallel.
const PARALLEL_MIN_MULTIPLY_ADDS: usize = 1 << 20;

/// Samples per pixel of RGB8.
const CHANNELS: usize = 3;

/// Pillow's `bilinear_filter`: the triangle 1 − |x| on (−1, 1).
fn bilinear_filter(x: f64) -> f64 {
    let x = if x < 0.0 { -x } else { x };
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// One output sample's reach into its input axis.
#[derive(Clone, Copy, Debug)]
struct Span {
    /// The first input index it reads.
    first: usize,
    /// How many input samples from `first` it reads (at most `AxisTaps::stride`).
    len: usize,
}

/// Every output sample's input span and fixed-point weights along one axis, computed once
/// per call (Pillow's `precompute_coeffs` followed by `normalize_coeffs_8bpc`).
#[derive(Debug)]
struct AxisTaps {
    spans: Vec<Span>,
    /// `stride` weights per output sample, `spans[i].len` of them used (Pillow's `ksize`
    /// layout: the unused tail is zero).
    weights: Vec<i32>,
    stride: usize,
}

impl AxisTaps {
    /// The taps that map `in_size` samples onto `out_size` (> 0) with the triangle filter,
    /// the box being the whole axis.
    fn bilinear(in_size: usize, out_size: usize) -> AxisTaps {
        // Pillow takes the box as floats, `(float)(in1 - in0)`; the sizes FakeLens accepts
        // (≤ 20 000) are exact in f32, so this is the same number.
        let scale = in_size as f32 as f64 / out_size as f64;
        let filter_scale = scale.max(1.0);
        let support = BILINEAR_SUPPORT_PX * filter_scale;
        let stride = support.ceil() as usize * 2 + 1;
        let inv_filter_scale = 1.0 / filter_scale;
        let in_size_i64 = in_size as i64;

        let mut spans = Vec::with_capacity(out_size);
        let mut weights = vec![0_i32; out_size * stride];
        let mut raw = vec![0.0_f64; stride];
        for (xx, row) in weights.chunks_exact_mut(stride).enumerate() {
            let center = (xx as f64 + 0.5) * scale;
            // C's `(int)` truncates toward zero, as `as` does.
            let first = ((center - support + 0.5) as i64).max(0);
            let end = ((center + support + 0.5) as i64).min(in_size_i64);
            let len = (end - first).clamp(0, stride as i64) as usize;
            let mut total = 0.0_f64;
            for (x, w) in raw[..len].iter_mut().enumerate() {
                // Same operation order as Pillow: ((x + xmin) - center + 0.5) * ss.
                *w = bilinear_filter(((x as i64 + first) as f64 - center + 0.5) * inv_filter_scale);
                total += *w;
            }
            for (fixed, &w) in row.iter_mut().zip(&raw[..len]) {
                let w = if total != 0.0 { w / total } else { w };
                *fixed = to_fixed_point(w);
            }
            spans.push(Span {
                first: first as usize,
                len,
            });
        }
        AxisTaps {
            spans,
            weights,
            stride,
        }
    }

    /// The span and weights of output sample `i`.
    fn taps(&self, i: usize) -> (Span, &[i32]) {
        let span = self.spans[i];
        let start = i * self.stride;
        (span, &self.weights[start..start + span.len])
    }

    /// The input rows `[first, end)` that some output sample reads (Pillow's `ybox_first`,
    /// `ybox_last`).
    fn used_range(&self) -> (usize, usize) {
        match (self.spans.first(), self.spans.last()) {
            (Some(first), Some(last)) => {
                let end = last.first + last.len;
                (first.first, end.max(first.first))
            }
            _ => (0, 0),
        }
    }
}

/// Pillow's `normalize_coeffs_8bpc` for one weight: round half away from zero into
/// `PRECISION_BITS` of fraction (triangle weights are never negative, but the formula is
/// Pillow's whole one).
fn to_fixed_point(weight: f64) -> i32 {
    let scaled = weight * f64::from(1_u32 << PRECISION_BITS);
    if weight < 0.0 {
        (-0.5 + scaled) as i32
    } else {
        (0.5 + scaled) as i32
    }
}

/// Pillow's `clip8`: drop the fraction and clamp to a byte.
fn clip8(accumulated: i32) -> u8 {
    (accumulated >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Calls `fill(row_index, row)` for each `row_len`-long row of `out`, in parallel when the
/// pass does at least `PARALLEL_MIN_MULTIPLY_ADDS` multiply-adds.
fn for_each_row(
    out: &mut [u8],
    row_len: usize,
    multiply_adds: usize,
    fill: impl Fn(usize, &mut [u8]) + Sync,
) {
    if row_len == 0 {
        return;
    }
    if multiply_adds >= PARALLEL_MIN_MULTIPLY_ADDS {
        out.par_chunks_mut(row_len)
            .enumerate()
            .for_each(|(y, row)| fill(y, row));
    } else {
        out.chunks_mut(row_len)
            .enumerate()
            .for_each(|(y, row)| fill(y, row));
    }
}

/// Pillow's `ImagingResampleHorizontal_8bpc`: resamples the input rows from `first_row` on
/// into `out` (`taps.spans.len()` pixels wide, as many rows as `out` holds).
fn resample_horizontal(
    src: &[u8],
    src_width: usize,
    first_row: usize,
    taps: &AxisTaps,
    out: &mut [u8],
) {
    let out_width = taps.spans.len();
    let row_len = out_width * CHANNELS;
    let rows = out.len() / row_len.max(1);
    let multiply_adds = rows * row_len * taps.stride;
    let src_row_len = src_width * CHANNELS;
    for_each_row(out, row_len, multiply_adds, |y, out_row| {
        let start = (first_row + y) * src_row_len;
        let src_row = &src[start..start + src_row_len];
        for (xx, pixel) in out_row.chunks_exact_mut(CHANNELS).enumerate() {
            let (span, weights) = taps.taps(xx);
            let mut sums = [ROUNDING_HALF; CHANNELS];
            let reads = &src_row[span.first * CHANNELS..(span.first + span.len) * CHANNELS];
            for (px, &k) in reads.chunks_exact(CHANNELS).zip(weights) {
                for (sum, &sample) in sums.iter_mut().zip(px) {
                    *sum += i32::from(sample) * k;
                }
            }
            for (dst, sum) in pixel.iter_mut().zip(sums) {
                *dst = clip8(sum);
            }
        }
    });
}

/// Pillow's `ImagingResampleVertical_8bpc`: resamples `src` (rows counted from its first)
/// into `out`, `taps.spans.len()` rows of `width` pixels. The sums are integers, so adding
/// one input row at a time across the whole output row gives Pillow's exact result.
fn resample_vertical(src: &[u8], width: usize, taps: &AxisTaps, out: &mut [u8]) {
    let row_len = width * CHANNELS;
    let multiply_adds = taps.spans.len() * row_len * taps.stride;
    for_each_row(out, row_len, multiply_adds, |yy, out_row| {
        let (span, weights) = taps.taps(yy);
        let mut sums = vec![ROUNDING_HALF; row_len];
        for (y, &k) in (span.first..span.first + span.len).zip(weights) {
            let src_row = &src[y * row_len..(y + 1) * row_len];
            for (sum, &sample) in sums.iter_mut().zip(src_row) {
                *sum += i32::from(sample) * k;
            }
        }
        for (dst, sum) in out_row.iter_mut().zip(sums) {
            *dst = clip8(sum);
        }
    });
}

/// Resizes `image` to `width`×`height` exactly as Pillow's
/// `Image.resize((width, height), Image.BILINEAR)` does (an empty size gives an empty image).
pub fn resize_bilinear(image: &RgbImage, width: u32, height: u32) -> RgbImage {
    let (in_width, in_height) = (image.width() as usize, image.height() as usize);
    let (out_width, out_height) = (width as usize, height as usize);
    if out_width == 0 || out_height == 0 {
        return RgbImage::new(width, height);
    }
    let need_horizontal = out_width != in_width;
    let need_vertical = out_height != in_height;
    let horizontal = AxisTaps::bilinear(in_width, out_width);
    let vertical = AxisTaps::bilinear(in_height, out_height);

    // The horizontal pass computes only the rows the vertical pass will read, and the
    // vertical spans are then counted from the first of them.
    let (first_row, end_row) = vertical.used_range();
    let (rows_input, vertical) = if need_horizontal {
        let rows = end_row - first_row;
        let mut temp = vec![0_u8; out_width * rows * CHANNELS];
        resample_horizontal(image.as_raw(), in_width, first_row, &horizontal, &mut temp);
        let shifted = AxisTaps {
            spans: vertical
                .spans
                .iter()
                .map(|s| Span {
                    first: s.first - first_row,
                    len: s.len,
                })
                .collect(),
            ..vertical
        };
        (Some(temp), shifted)
    } else {
        (None, vertical)
    };

    if !need_vertical {
        return match rows_input {
            // The height is kept, so the horizontal pass covered every row.
            Some(temp) => {
                let mut out = RgbImage::new(width, height);
                out.copy_from_slice(&temp);
                out
            }
            None => image.clone(),
        };
    }
    let src: &[u8] = rows_input.as_deref().unwrap_or(image.as_raw().as_slice());
    let mut out = RgbImage::new(width, height);
    resample_vertical(src, out_width, &vertical, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weights_of_each_output_sum_to_one_in_fixed_point() {
        for (in_size, out_size) in [(250, 256), (1000, 256), (3, 256), (1, 256), (40, 7)] {
            let taps = AxisTaps::bilinear(in_size, out_size);
            for i in 0..out_size {
                let (span, weights) = taps.taps(i);
                assert!(span.first + span.len <= in_size);
                let total: i64 = weights.iter().map(|&w| i64::from(w)).sum();
                let one = 1_i64 << PRECISION_BITS;
                assert!(
                    (total - one).abs() <= span.len as i64,
                    "{in_size}->{out_size} at {i}"
                );
            }
        }
    }

    #[test]
    fn a_flat_image_stays_flat() {
        let flat = RgbImage::from_pixel(37, 23, image::Rgb([10, 128, 255]));
        let out = resize_bilinear(&flat, 256, 256);
        assert!(out.pixels().all(|p| p.0 == [10, 128, 255]));
    }

    #[test]
    fn the_same_size_is_a_copy_and_an_empty_size_is_empty() {
        let picture = RgbImage::from_fn(5, 4, |x, y| image::Rgb([x as u8 * 40, y as u8 * 60, 7]));
        assert_eq!(resize_bilinear(&picture, 5, 4), picture);
        assert_eq!(resize_bilinear(&picture, 0, 3).dimensions(), (0, 3));
    }

    #[test]
    fn negative_weights_round_away_from_zero() {
        let half_step = 0.5 / f64::from(1_u32 << PRECISION_BITS);
        assert_eq!(to_fixed_point(-3.0 * half_step), -2);
        assert_eq!(to_fixed_point(3.0 * half_step), 2);
        assert_eq!(to_fixed_point(-half_step * 0.9), 0);
    }
}
