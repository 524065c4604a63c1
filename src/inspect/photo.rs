//! A dropped photo made ready for the detectors: decoded safely (`data::decode`: limits,
//! EXIF orientation, any colour type) and its faces found once. Each detector then sees it
//! framed by its own input profile (a face crop at its margin, or the whole photo) unless
//! the user overrides the framing for this drop.

use std::path::{Path, PathBuf};

use image::RgbImage;

use crate::data::decode::{DecodeError, decode_rgb};
use crate::data::face::{CROP_MARGIN, FaceBox, FaceFinder};
use crate::data::profile::{Framing, InputProfile};

/// How the detectors see a drop.
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
pub enum InputOverride {
    /// Each detector's own input profile (recorded when it trained).
    #[default]
    Own,
    /// The largest face (or the chosen one) cropped 1.3×, for every detector; the whole
    /// photo when none is found.
    #[value(alias = "auto")]
    Face,
    /// The whole photo, for every detector (for inputs that are already face crops).
    #[value(alias = "off")]
    Whole,
}

impl InputOverride {
    /// The framing a detector whose own framing is `own` sees.
    pub fn framing(self, own: &Framing) -> Framing {
        match self {
            InputOverride::Own => own.clone(),
            InputOverride::Face => Framing::face(CROP_MARGIN),
            InputOverride::Whole => Framing::Whole,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            InputOverride::Own => "each detector's own",
            InputOverride::Face => "largest face (1.3×)",
            InputOverride::Whole => "whole image",
        }
    }
}

/// A photo ready to be judged.
#[derive(Clone, Debug)]
pub struct PreparedPhoto {
    pub path: PathBuf,
    pub width: u32,
    pub height: u32,
    /// The decoded photo.
    pub picture: RgbImage,
    /// Faces found, largest first (empty when the framing is the whole photo for all).
    pub faces: Vec<FaceBox>,
    /// The face the user chose, if not the largest.
    pub choose: Option<usize>,
    pub mode: InputOverride,
}

/// What one detector sees of a photo.
#[derive(Clone, Debug)]
pub struct DetectorInput {
    /// The framed input (size × size RGB).
    pub input: RgbImage,
    /// The face it shows; `None`: the whole photo.
    pub face: Option<usize>,
    pub framing: Framing,
    /// Something the user should know (no face found, …).
    pub note: Option<String>,
}

/// Decodes `path` and finds its faces; `choose` picks a face other than the largest.
pub fn prepare_photo(
    path: &Path,
    mode: InputOverride,
    finder: &mut FaceFinder,
    choose: Option<usize>,
) -> Result<PreparedPhoto, DecodeError> {
    let photo = decode_rgb(path)?;
    Ok(prepare_decoded(path, photo, mode, finder, choose))
}

/// [`prepare_photo`] for an already decoded photo.
pub fn prepare_decoded(
    path: &Path,
    picture: RgbImage,
    mode: InputOverride,
    finder: &mut FaceFinder,
    choose: Option<usize>,
) -> PreparedPhoto {
    let (width, height) = picture.dimensions();
    let faces = match mode {
        InputOverride::Whole => Vec::new(),
        InputOverride::Own | InputOverride::Face => finder.detect(&picture),
    };
    PreparedPhoto {
        path: path.to_path_buf(),
        width,
        height,
        picture,
        faces,
        choose,
        mode,
    }
}

impl PreparedPhoto {
    /// The photo as a detector with input profile `own` sees it in this drop.
    pub fn input_for(&self, own: &InputProfile) -> DetectorInput {
        let framing = self.mode.framing(&own.framing);
        let profile = InputProfile {
            framing: framing.clone(),
            ..own.clone()
        };
        let framed = profile.frame(&self.picture, &self.faces, self.choose);
        let note = (framing.is_face() && framed.face.is_none())
            .then(|| "no face found: the whole photo is judged".to_string());
        DetectorInput {
            input: framed.input,
            face: framed.face,
            framing,
            note,
        }
    }
}
