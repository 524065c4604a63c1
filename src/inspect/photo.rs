//! A dropped photo made ready for the detectors: decoded safely (`data::decode`: limits,
//! EXIF orientation, any colour type), its faces found, the chosen face cropped 1.3× and
//! resized to the model input — or the whole photo when cropping is off or no face is found.

use std::path::{Path, PathBuf};

use image::RgbImage;

use super::face::{FaceBox, FaceFinder, crop_face};
use crate::config::INPUT_SIZE;
use crate::data::decode::{DecodeError, decode_rgb, resize_square};

/// Whether to crop to a face.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Default,
    clap::ValueEnum,
    serde::Serialize,
    serde::Deserialize,
)]
pub enum CropMode {
    /// Crop the largest face (or the chosen one); the whole photo when none is found.
    #[default]
    Auto,
    /// Use the whole photo (for inputs that are already face crops).
    Off,
}

/// A photo ready to be judged.
#[derive(Clone, Debug)]
pub struct PreparedPhoto {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// Faces found, largest first (empty when cropping is off).
    pub faces: Vec<FaceBox>,
    /// Which of `faces` was cropped; `None`: the whole photo.
    pub face: Option<usize>,
    /// What the models see: 256×256 RGB.
    pub input: RgbImage,
    /// Something the user should know (no face found, …).
    pub note: Option<String>,
}

/// Decodes `path` and prepares its input; `choose` picks a face other than the largest.
pub fn prepare_photo(
    path: &Path,
    mode: CropMode,
    finder: &mut FaceFinder,
    choose: Option<usize>,
) -> Result<PreparedPhoto, DecodeError> {
    let photo = decode_rgb(path)?;
    Ok(prepare_decoded(path, &photo, mode, finder, choose))
}

/// [`prepare_photo`] for an already decoded photo.
pub fn prepare_decoded(
    path: &Path,
    photo: &RgbImage,
    mode: CropMode,
    finder: &mut FaceFinder,
    choose: Option<usize>,
) -> PreparedPhoto {
    let (width, height) = photo.dimensions();
    let size = INPUT_SIZE as u32;
    let faces = match mode {
        CropMode::Auto => finder.detect(photo),
        CropMode::Off => Vec::new(),
    };
    let face = match mode {
        CropMode::Off => None,
        CropMode::Auto => choose
            .filter(|&i| i < faces.len())
            .or((!faces.is_empty()).then_some(0)),
    };
    let (input, note) = match face.and_then(|i| faces.get(i)) {
        Some(b) => (crop_face(photo, b, size), None),
        None => (
            resize_square(photo, size),
            (mode == CropMode::Auto)
                .then(|| "no face found: the whole photo is judged".to_string()),
        ),
    };
    PreparedPhoto {
        path: path.to_path_buf(),
        width,
        height,
        faces,
        face,
        input,
        note,
    }
}
