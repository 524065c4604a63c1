//! Decoding any supported image file to 8-bit RGB, and resizing it to the model input size
//! (Pillow-bilinear, `super::resize`).
//! Grayscale, RGBA, 16-bit and palette images are converted; EXIF orientation is applied;
//! decoder limits refuse decompression bombs with a clear message.

use std::path::{Path, PathBuf};

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage};

/// Largest width or height accepted from a file header.
pub const MAX_DIMENSION: u32 = 20_000;
/// Largest allocation the decoder may make for one image.
pub const MAX_DECODE_BYTES: u64 = 1 << 30;

/// Why an image file could not be turned into pixels.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{path}: cannot open: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: empty file (0 bytes)")]
    Empty { path: PathBuf },
    #[error("{path}: not a supported image (JPEG, PNG, BMP, WebP, GIF)")]
    UnknownFormat { path: PathBuf },
    #[error("{path}: image too large to decode safely ({reason})")]
    TooLarge { path: PathBuf, reason: String },
    #[error("{path}: corrupt or truncated image: {reason}")]
    Corrupt { path: PathBuf, reason: String },
}

impl DecodeError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DecodeError::Open { path, .. }
            | DecodeError::Empty { path }
            | DecodeError::UnknownFormat { path }
            | DecodeError::TooLarge { path, .. }
            | DecodeError::Corrupt { path, .. } => path,
        }
    }
}

fn classify(path: &Path, err: image::ImageError) -> DecodeError {
    let path = path.to_path_buf();
    match err {
        image::ImageError::Limits(l) => DecodeError::TooLarge {
            path,
            reason: l.to_string(),
        },
        image::ImageError::Unsupported(_) => DecodeError::UnknownFormat { path },
        image::ImageError::IoError(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            DecodeError::Corrupt {
                path,
                reason: "file ends early".into(),
            }
        }
        other => DecodeError::Corrupt {
            path,
            reason: other.to_string(),
        },
    }
}

/// Decodes `path` to RGB8, honouring EXIF orientation and the decoder limits.
pub fn decode_rgb(path: &Path) -> Result<RgbImage, DecodeError> {
    let meta = std::fs::metadata(path).map_err(|source| DecodeError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() == 0 {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    let bytes = std::fs::read(path).map_err(|source| DecodeError::Open {
        path: path.to_path_buf(),
        source,
    })?;
    let mut reader = ImageReader::new(std::io::Cursor::new(bytes.as_slice()))
        .with_guessed_format()
        .map_err(|source| DecodeError::Open {
            path: path.to_path_buf(),
            source,
        })?;
    match reader.format() {
        None => {
            return Err(DecodeError::UnknownFormat {
                path: path.to_path_buf(),
            });
        }
        // The JPEG decoder fills a truncated file with grey instead of failing; a complete
        // JPEG ends with its end-of-image marker (possibly followed by a little padding).
        Some(image::ImageFormat::Jpeg) if !has_jpeg_end_marker(&bytes) => {
            return Err(DecodeError::Corrupt {
                path: path.to_path_buf(),
                reason: "JPEG data ends early (no end-of-image marker): the file is truncated"
                    .into(),
            });
        }
        Some(_) => {}
    }
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(MAX_DIMENSION);
    limits.max_image_height = Some(MAX_DIMENSION);
    limits.max_alloc = Some(MAX_DECODE_BYTES);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| classify(path, e))?;
    let orientation = decoder.orientation().map_err(|e| classify(path, e))?;
    let mut image = DynamicImage::from_decoder(decoder).map_err(|e| classify(path, e))?;
    image.apply_orientation(orientation);
    Ok(image.to_rgb8())
}

/// Whether a JPEG's last bytes hold the end-of-image marker `FF D9`.
fn has_jpeg_end_marker(bytes: &[u8]) -> bool {
    let tail = &bytes[bytes.len().saturating_sub(64)..];
    tail.windows(2).any(|w| w == [0xFF, 0xD9])
}

/// Resizes an RGB image to the `size`×`size` model input with Pillow's bilinear filter, bit
/// for bit (`super::resize`): PyTorch pipelines decode with Pillow and call
/// `Image.resize((size, size), Image.BILINEAR)`, and a grey level of difference moves a fake
/// probability by up to 0.037. (Augmentation in `degrade` and the face detector's input keep
/// `image`'s filters: neither is the model input.)
pub fn resize_square(image: &RgbImage, size: u32) -> RgbImage {
    if image.width() == size && image.height() == size {
        return image.clone();
    }
    super::resize::resize_bilinear(image, size, size)
}

/// Decodes `path` and resizes it to `size`×`size` RGB8.
pub fn load_resized(path: &Path, size: u32) -> Result<RgbImage, DecodeError> {
    Ok(resize_square(&decode_rgb(path)?, size))
}

/// Writes an HWC RGB8 image into a CHW f32 buffer, scaled to [0, 1] and normalised.
pub fn normalize_into(rgb: &[u8], norm: &crate::data::profile::Normalization, out: &mut [f32]) {
    let plane = rgb.len() / 3;
    for c in 0..3 {
        let scale = 1.0 / (255.0 * norm.std[c]);
        let shift = norm.mean[c] / norm.std[c];
        let dst = &mut out[c * plane..(c + 1) * plane];
        for (i, d) in dst.iter_mut().enumerate() {
            *d = rgb[i * 3 + c] as f32 * scale - shift;
        }
    }
}
