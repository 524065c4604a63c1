//! Train-time photo degradations: faces in real photos come at other sizes, resamplings and
//! compressions than a dataset's files. Each training image is, independently and at random,
//! scaled down and back up with a random pair of filters, re-compressed as JPEG at a random
//! quality, and blurred a little — before the course's crop and flip. Draws are seeded by
//! (run seed, epoch, position), like the crop, so a run's batches are reproducible.

use image::codecs::jpeg::{JpegDecoder, JpegEncoder};
use image::imageops::{self, FilterType};
use image::{DynamicImage, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

/// How often and how strongly training images are degraded (recorded in `run.json`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PhotoAugment {
    /// Chance of a down-and-up rescale.
    pub rescale_prob: f64,
    /// Smallest scale factor (the factor is uniform in `[rescale_min, 1)`).
    pub rescale_min: f32,
    /// Chance of a JPEG re-compression.
    pub jpeg_prob: f64,
    /// Quality range, inclusive.
    pub jpeg_quality_min: u8,
    pub jpeg_quality_max: u8,
    /// Chance of a Gaussian blur.
    pub blur_prob: f64,
    /// Largest blur σ in pixels (σ is uniform in `[0.3, blur_sigma_max]`).
    pub blur_sigma_max: f32,
}

impl PhotoAugment {
    /// The degradations `train --photo-augment` (and the Training tab's checkbox) adds.
    pub const DEFAULT: PhotoAugment = PhotoAugment {
        rescale_prob: 0.5,
        rescale_min: 0.35,
        jpeg_prob: 0.5,
        jpeg_quality_min: 30,
        jpeg_quality_max: 95,
        blur_prob: 0.2,
        blur_sigma_max: 1.2,
    };

    /// [`PhotoAugment::DEFAULT`] with only the `kept` degradations left on (each at its
    /// default chance and strength), for measuring one degradation at a time.
    pub fn only(kept: &[Degradation]) -> PhotoAugment {
        let on = |d: Degradation| kept.contains(&d);
        let all = PhotoAugment::DEFAULT;
        PhotoAugment {
            rescale_prob: if on(Degradation::Rescale) {
                all.rescale_prob
            } else {
                0.0
            },
            jpeg_prob: if on(Degradation::Jpeg) {
                all.jpeg_prob
            } else {
                0.0
            },
            blur_prob: if on(Degradation::Blur) {
                all.blur_prob
            } else {
                0.0
            },
            ..all
        }
    }
}

/// One kind of photo degradation (`train --photo-augment rescale,jpeg,blur`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Degradation {
    /// Down- and up-scaling with a random pair of filters.
    Rescale,
    /// JPEG re-compression at a random quality.
    Jpeg,
    /// A mild Gaussian blur.
    Blur,
}

/// The filters a down- or up-scale draws from.
const FILTERS: [FilterType; 4] = [
    FilterType::Nearest,
    FilterType::Triangle,
    FilterType::CatmullRom,
    FilterType::Lanczos3,
];

/// One image's draws.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Draw {
    rescale: Option<(f32, FilterType, FilterType)>,
    jpeg_quality: Option<u8>,
    blur_sigma: Option<f32>,
}

impl Draw {
    fn random(aug: &PhotoAugment, seed: u64, epoch: usize, position: usize) -> Draw {
        let stream = seed
            .wrapping_mul(0xD1B5_4A32_D192_ED03)
            .wrapping_add((epoch as u64) << 32)
            .wrapping_add(position as u64)
            ^ 0x5851_F42D_4C95_7F2D;
        let mut rng = ChaCha8Rng::seed_from_u64(stream);
        let rescale = rng.random_bool(aug.rescale_prob.clamp(0.0, 1.0)).then(|| {
            let min = aug.rescale_min.clamp(0.05, 1.0);
            let factor = if min < 1.0 {
                rng.random_range(min..1.0)
            } else {
                1.0
            };
            let down = FILTERS[rng.random_range(0..FILTERS.len())];
            let up = FILTERS[rng.random_range(1..FILTERS.len())];
            (factor, down, up)
        });
        let jpeg_quality = rng.random_bool(aug.jpeg_prob.clamp(0.0, 1.0)).then(|| {
            let lo = aug.jpeg_quality_min.clamp(1, 100);
            let hi = aug.jpeg_quality_max.clamp(lo, 100);
            rng.random_range(lo..=hi)
        });
        let blur_sigma = rng
            .random_bool(aug.blur_prob.clamp(0.0, 1.0))
            .then(|| rng.random_range(0.3..=aug.blur_sigma_max.max(0.3)));
        Draw {
            rescale,
            jpeg_quality,
            blur_sigma,
        }
    }
}

/// Scales `image` down by `factor` and back to its size.
pub fn rescale(image: &RgbImage, factor: f32, down: FilterType, up: FilterType) -> RgbImage {
    let (w, h) = image.dimensions();
    let small_w = ((w as f32 * factor).round() as u32).max(8);
    let small_h = ((h as f32 * factor).round() as u32).max(8);
    if small_w >= w && small_h >= h {
        return image.clone();
    }
    let small = imageops::resize(image, small_w, small_h, down);
    imageops::resize(&small, w, h, up)
}

/// `image` encoded as a JPEG at `quality` (1–100) and decoded again.
pub fn jpeg_roundtrip(image: &RgbImage, quality: u8) -> image::ImageResult<RgbImage> {
    let mut bytes = Vec::new();
    JpegEncoder::new_with_quality(&mut bytes, quality.clamp(1, 100)).encode_image(image)?;
    let decoder = JpegDecoder::new(std::io::Cursor::new(bytes))?;
    Ok(DynamicImage::from_decoder(decoder)?.to_rgb8())
}

/// `image` blurred by a Gaussian of `sigma` pixels.
pub fn blur(image: &RgbImage, sigma: f32) -> RgbImage {
    imageops::blur(image, sigma)
}

/// The degraded copy of the square HWC RGB8 image `rgb` of side `size`, or `None` when the
/// draws leave it untouched.
pub fn degrade(
    rgb: &[u8],
    size: usize,
    aug: &PhotoAugment,
    seed: u64,
    epoch: usize,
    position: usize,
) -> Option<Vec<u8>> {
    let draw = Draw::random(aug, seed, epoch, position);
    if draw.rescale.is_none() && draw.jpeg_quality.is_none() && draw.blur_sigma.is_none() {
        return None;
    }
    let mut image = RgbImage::from_raw(size as u32, size as u32, rgb.to_vec())?;
    if let Some((factor, down, up)) = draw.rescale {
        image = rescale(&image, factor, down, up);
    }
    if let Some(sigma) = draw.blur_sigma {
        image = blur(&image, sigma);
    }
    if let Some(quality) = draw.jpeg_quality {
        // An encoder failure on an in-memory buffer leaves the image as it was.
        if let Ok(decoded) = jpeg_roundtrip(&image, quality) {
            image = decoded;
        }
    }
    Some(image.into_raw())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn picture(size: u32) -> RgbImage {
        RgbImage::from_fn(size, size, |x, y| {
            image::Rgb([
                (x * 5 % 256) as u8,
                (y * 3 % 256) as u8,
                ((x ^ y) % 256) as u8,
            ])
        })
    }

    #[test]
    fn draws_are_reproducible_and_vary_with_position() {
        let aug = PhotoAugment::DEFAULT;
        let img = picture(64);
        let a = degrade(img.as_raw(), 64, &aug, 3, 1, 10);
        assert_eq!(a, degrade(img.as_raw(), 64, &aug, 3, 1, 10));
        let distinct: std::collections::HashSet<_> = (0..20)
            .map(|p| degrade(img.as_raw(), 64, &aug, 3, 1, p))
            .collect();
        assert!(distinct.len() > 5, "{} distinct outcomes", distinct.len());
    }

    #[test]
    fn no_chance_means_no_change_and_each_degradation_changes_pixels() {
        let never = PhotoAugment {
            rescale_prob: 0.0,
            jpeg_prob: 0.0,
            blur_prob: 0.0,
            ..PhotoAugment::DEFAULT
        };
        let img = picture(64);
        assert_eq!(degrade(img.as_raw(), 64, &never, 0, 1, 0), None);
        let shrunk = rescale(&img, 0.5, FilterType::Triangle, FilterType::Triangle);
        assert_eq!(shrunk.dimensions(), img.dimensions());
        assert_ne!(shrunk, img);
        assert_ne!(jpeg_roundtrip(&img, 30).unwrap(), img);
        assert_ne!(blur(&img, 1.0), img);
        assert_eq!(
            rescale(&img, 1.0, FilterType::Nearest, FilterType::Nearest),
            img
        );
    }

    #[test]
    fn only_keeps_the_named_degradations() {
        let jpeg = PhotoAugment::only(&[Degradation::Jpeg]);
        assert_eq!((jpeg.rescale_prob, jpeg.blur_prob), (0.0, 0.0));
        assert_eq!(jpeg.jpeg_prob, PhotoAugment::DEFAULT.jpeg_prob);
        let all = [Degradation::Rescale, Degradation::Jpeg, Degradation::Blur];
        assert_eq!(PhotoAugment::only(&all), PhotoAugment::DEFAULT);
        assert_eq!(
            degrade(picture(64).as_raw(), 64, &PhotoAugment::only(&[]), 0, 1, 0),
            None
        );
    }
}
