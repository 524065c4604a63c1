//! The weight gradient of a stride-1 1×1 convolution, `dw (c_out × c_in) = Σₙ dyₙ (c_out ×
//! pixels) · xₙᵀ (pixels × c_in)`, in f32 on AVX-512: one product per group of images, its
//! reduction axis running over all of the group's pixels. The gradients are packed into the
//! product's panels and the inputs transposed once per group, where a blocked product per
//! image repacked both operands (one of them strided) for every image: that packing took
//! more time than the products themselves in an Xception training step at batch 8.

use rayon::prelude::*;

use crate::ops::pointwise::{Lhs, PackedLhs, available, product};

/// Reduction length (images × pixels) of one product: bounds the packed copies (one image of
/// 128 channels at 125×125 is ~8 MiB) while keeping the middle flow's 16×16 planes in one
/// product per 16 images.
const GROUP_PIXELS: usize = 4096;

/// `dw (c_out × c_in, row-major)` for `images` gradients `dy` (`c_out × pixels` each) and
/// inputs `x` (`c_in × pixels` each); `None` when the kernel is unavailable or a length does
/// not fit.
pub fn weight_gradient(
    dy: &[f32],
    x: &[f32],
    images: usize,
    (c_out, c_in, pixels): (usize, usize, usize),
    threads: usize,
) -> Option<Vec<f32>> {
    let empty = images == 0 || c_out == 0 || c_in == 0 || pixels == 0;
    if !available() || empty || dy.len() < images * c_out * pixels {
        return None;
    }
    if x.len() < images * c_in * pixels {
        return None;
    }
    let group = (GROUP_PIXELS / pixels).max(1);
    let mut dw = vec![0.0f32; c_out * c_in];
    let mut xt = Vec::new();
    for first in (0..images).step_by(group) {
        let count = group.min(images - first);
        let dy = &dy[first * c_out * pixels..][..count * c_out * pixels];
        let lhs = PackedLhs::pack_blocks(dy, c_out, count, pixels, c_out * pixels)?;
        xt.resize(count * pixels * c_in, 0.0);
        let x = &x[first * c_in * pixels..][..count * c_in * pixels];
        transpose_images(x, c_in, pixels, &mut xt);
        if !product(
            Lhs::Packed(&lhs),
            &xt,
            c_in,
            c_in,
            &mut dw,
            c_in,
            first > 0,
            threads,
        ) {
            return None;
        }
    }
    Some(dw)
}

/// `xt[(n·pixels + p)·channels + c] = x[(n·channels + c)·pixels + p]`, in tiles.
fn transpose_images(x: &[f32], channels: usize, pixels: usize, xt: &mut [f32]) {
    const TILE: usize = 16;
    let plane = channels * pixels;
    xt.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .for_each(|(t, x)| {
            for c0 in (0..channels).step_by(TILE) {
                for p0 in (0..pixels).step_by(TILE) {
                    for c in c0..(c0 + TILE).min(channels) {
                        let row = &x[c * pixels..(c + 1) * pixels];
                        for (p, &v) in row
                            .iter()
                            .enumerate()
                            .take((p0 + TILE).min(pixels))
                            .skip(p0)
                        {
                            t[p * channels + c] = v;
                        }
                    }
                }
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(count: usize, a: f64) -> Vec<f32> {
        (0..count).map(|i| ((a * i as f64).sin()) as f32).collect()
    }

    /// Against a plain f64 sum, for one image, several images in one group, groups with a
    /// remainder (4096 / 300 = 13 images per group over 29 images), partial panels and
    /// column strips, and planes larger than a group.
    #[test]
    fn weight_gradient_equals_a_plain_sum() {
        if !available() {
            eprintln!("skipped: no AVX-512F on this processor");
            return;
        }
        for &(images, c_out, c_in, pixels) in &[
            (1, 12, 32, 16),
            (3, 13, 45, 64),
            (29, 7, 19, 300),
            (2, 40, 33, 5000),
        ] {
            let dy = values(images * c_out * pixels, 0.37);
            let x = values(images * c_in * pixels, 0.11);
            let dw = weight_gradient(&dy, &x, images, (c_out, c_in, pixels), 2).unwrap();
            for o in 0..c_out {
                for i in 0..c_in {
                    let want: f64 = (0..images)
                        .flat_map(|n| (0..pixels).map(move |p| (n, p)))
                        .map(|(n, p)| {
                            dy[(n * c_out + o) * pixels + p] as f64
                                * x[(n * c_in + i) * pixels + p] as f64
                        })
                        .sum();
                    let got = dw[o * c_in + i] as f64;
                    let scale = (images * pixels) as f64;
                    assert!(
                        (got - want).abs() <= 1e-5 * scale,
                        "{images}x{c_out}x{c_in}x{pixels} at ({o}, {i}): {got} vs {want}"
                    );
                }
            }
        }
    }
}
