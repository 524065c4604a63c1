//! Train-time augmentation as the course did it (random crop 256 with 4 px zero padding, then
//! horizontal flip with probability ½), fused with normalisation into the CHW f32 batch.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::data::profile::Normalization;

/// Padding of the random crop, in pixels.
pub const CROP_PADDING: usize = 4;

/// Where the crop window starts (in padded coordinates) and whether to flip.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CropFlip {
    pub dx: usize,
    pub dy: usize,
    pub flip: bool,
}

impl CropFlip {
    /// No augmentation: the centre window, unflipped.
    pub const IDENTITY: CropFlip = CropFlip {
        dx: CROP_PADDING,
        dy: CROP_PADDING,
        flip: false,
    };

    /// A random crop/flip drawn from a generator seeded by (run seed, epoch, position), so
    /// batches are reproducible however they are parallelised.
    pub fn random(seed: u64, epoch: usize, position: usize) -> CropFlip {
        let stream = seed
            .wrapping_mul(0x9E37_79B9_7F4A_7C15)
            .wrapping_add((epoch as u64) << 32)
            .wrapping_add(position as u64);
        let mut rng = ChaCha8Rng::seed_from_u64(stream);
        CropFlip {
            dx: rng.random_range(0..=2 * CROP_PADDING),
            dy: rng.random_range(0..=2 * CROP_PADDING),
            flip: rng.random_bool(0.5),
        }
    }
}

/// Writes the augmented, normalised CHW image of a square HWC RGB8 image of side `size`.
/// Pixels that fall in the padding are zero before normalisation (black), as torchvision
/// pads.
pub fn augment_normalize_into(
    rgb: &[u8],
    size: usize,
    aug: CropFlip,
    norm: &Normalization,
    out: &mut [f32],
) {
    let plane = size * size;
    for c in 0..3 {
        let scale = 1.0 / (255.0 * norm.std[c]);
        let shift = norm.mean[c] / norm.std[c];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for y in 0..size {
            let sy = (y + aug.dy) as isize - CROP_PADDING as isize;
            let row = &mut dst[y * size..(y + 1) * size];
            if sy < 0 || sy >= size as isize {
                row.fill(-shift);
                continue;
            }
            let src_row = &rgb[sy as usize * size * 3..(sy as usize + 1) * size * 3];
            for (x, d) in row.iter_mut().enumerate() {
                let xo = if aug.flip { size - 1 - x } else { x };
                let sx = (xo + aug.dx) as isize - CROP_PADDING as isize;
                *d = if sx < 0 || sx >= size as isize {
                    -shift
                } else {
                    src_row[sx as usize * 3 + c] as f32 * scale - shift
                };
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_equals_plain_normalisation() {
        let size = 8;
        let rgb: Vec<u8> = (0..size * size * 3).map(|i| (i * 7 % 256) as u8).collect();
        let norm = Normalization::COURSE;
        let mut a = vec![0.0; size * size * 3];
        let mut b = vec![0.0; size * size * 3];
        augment_normalize_into(&rgb, size, CropFlip::IDENTITY, &norm, &mut a);
        crate::data::decode::normalize_into(&rgb, &norm, &mut b);
        assert_eq!(a, b);
    }

    #[test]
    fn shifted_crop_moves_pixels_and_pads_black() {
        let size = 4;
        let rgb: Vec<u8> = (0..size * size * 3).map(|i| i as u8).collect();
        let norm = Normalization {
            mean: [0.0; 3],
            std: [1.0 / 255.0; 3],
        };
        let mut out = vec![0.0; size * size * 3];
        // dx = dy = 0 means the window starts 4 px before the image: all padding.
        let aug = CropFlip {
            dx: 3,
            dy: 4,
            flip: false,
        };
        augment_normalize_into(&rgb, size, aug, &norm, &mut out);
        // Row 0, column 0 comes from x = -1 → padding; column 1 from x = 0.
        assert_eq!(out[0], 0.0);
        assert_eq!(out[1], rgb[0] as f32);
        let flipped = CropFlip {
            flip: true,
            ..CropFlip::IDENTITY
        };
        augment_normalize_into(&rgb, size, flipped, &norm, &mut out);
        assert_eq!(out[0], rgb[(size - 1) * 3] as f32);
    }
}
