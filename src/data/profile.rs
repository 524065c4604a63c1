//! The input profile: how a picture becomes a model's input — the framing (a face crop, or
//! the whole picture), the input size and the normalisation. It is chosen when a run trains,
//! recorded in its `run.json`, and applied by every path that feeds that run's model
//! (training and its evaluations, `eval`, `explain`, `predict`, and the Compare, Explain and
//! Inspect tabs), so a detector is shown the framing it learned.
//!
//! Face framing: the largest face the bundled detector finds (SeetaFace frontal, faces of at
//! least [`MIN_FACE_PX`]), grown `scale`× into a square around its centre, clipped to the
//! picture, resized to the input. A picture with no face found is used whole (the stated
//! policy); training records which files those were.

use image::RgbImage;
use serde::{Deserialize, Serialize};

use super::decode::resize_square;
use super::face::{CROP_MARGIN, FaceBox, FaceFinder, MIN_FACE_PX, crop_face};

/// Side length of every model input.
pub const INPUT_SIZE: usize = 256;

/// Per-channel mean and standard deviation applied after scaling pixels to [0, 1].
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The course's normalisation, used for every model there.
    pub const COURSE: Normalization = Normalization {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2023, 0.1994, 0.2010],
    };
    /// What ImageNet-pretrained Xception checkpoints expect.
    pub const HALF: Normalization = Normalization {
        mean: [0.5; 3],
        std: [0.5; 3],
    };

    /// Refuses a normalisation no input survives: a non-finite mean or a std that is not a
    /// positive finite number (a zero std makes every image the same input).
    pub fn validate(&self) -> Result<(), String> {
        if let Some(m) = self.mean.iter().find(|m| !m.is_finite()) {
            return Err(format!("its mean {:?} holds {m}", self.mean));
        }
        if let Some(s) = self.std.iter().find(|s| !(s.is_finite() && **s > 0.0)) {
            return Err(format!(
                "its std {:?} holds {s}; each std must be a positive number",
                self.std
            ));
        }
        Ok(())
    }
}

/// The face detector a face framing uses (there is one today; the name is recorded so a
/// later detector cannot silently change what a run sees).
pub const FACE_DETECTOR: &str = "seetaface-frontal-1.0";

/// Which part of a picture the model sees.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Framing {
    /// The whole picture, resized to the input (what every run before input profiles saw).
    Whole,
    /// The largest face, cropped as a square `scale`× its box; the whole picture when no
    /// face is found.
    Face {
        /// Margin: the square's side is `scale` × the face box's longer side.
        scale: f32,
        /// The detector's name ([`FACE_DETECTOR`]).
        detector: String,
        /// Smallest face reported, in pixels.
        min_face_px: u32,
    },
}

impl Framing {
    /// A face crop with the bundled detector at margin `scale`.
    pub fn face(scale: f32) -> Framing {
        Framing::Face {
            scale,
            detector: FACE_DETECTOR.to_string(),
            min_face_px: MIN_FACE_PX,
        }
    }

    /// The default for new runs: the 1.3× face crop (chosen by measurement; README, "Input
    /// profiles").
    pub fn default_for_new_runs() -> Framing {
        Framing::face(CROP_MARGIN)
    }

    /// What a run recorded before input profiles existed saw.
    pub fn legacy() -> Framing {
        Framing::Whole
    }

    pub fn is_face(&self) -> bool {
        matches!(self, Framing::Face { .. })
    }

    /// Refuses a margin no crop can use.
    pub fn validate(&self) -> Result<(), String> {
        match self {
            Framing::Whole => Ok(()),
            Framing::Face { scale, .. } if scale.is_finite() && (1.0..=4.0).contains(scale) => {
                Ok(())
            }
            Framing::Face { scale, .. } => Err(format!(
                "the face margin must be between 1 and 4 (× the face box), got {scale}"
            )),
        }
    }

    /// `face crop 1.3×` or `whole image`, for the user.
    pub fn describe(&self) -> String {
        match self {
            Framing::Whole => "whole image".to_string(),
            Framing::Face { scale, .. } => format!("face crop {scale}×"),
        }
    }
}

/// How a picture becomes one run's input.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InputProfile {
    pub framing: Framing,
    /// Side of the square input, in pixels.
    pub size: usize,
    pub normalization: Normalization,
}

/// A picture framed for a model: the input and which face (if any) it shows.
#[derive(Clone, Debug)]
pub struct Framed {
    /// `size`×`size` RGB.
    pub input: RgbImage,
    /// Index into the faces given to [`InputProfile::frame`]; `None`: the whole picture.
    pub face: Option<usize>,
}

impl InputProfile {
    /// The profile of a run trained with `framing` and `normalization`.
    pub fn new(framing: Framing, normalization: Normalization) -> InputProfile {
        InputProfile {
            framing,
            size: INPUT_SIZE,
            normalization,
        }
    }

    /// Frames `picture`, whose faces (largest first) are `faces`: the chosen face (or the
    /// largest) for a face framing, else the whole picture.
    pub fn frame(&self, picture: &RgbImage, faces: &[FaceBox], choose: Option<usize>) -> Framed {
        let size = self.size as u32;
        match &self.framing {
            Framing::Face { scale, .. } => {
                let face = choose
                    .filter(|&i| i < faces.len())
                    .or((!faces.is_empty()).then_some(0));
                match face.and_then(|i| faces.get(i)) {
                    Some(b) => Framed {
                        input: crop_face(picture, b, *scale, size),
                        face,
                    },
                    None => Framed {
                        input: resize_square(picture, size),
                        face: None,
                    },
                }
            }
            Framing::Whole => Framed {
                input: resize_square(picture, size),
                face: None,
            },
        }
    }

    /// Frames `picture`, finding its faces with `finder` only when the framing needs them.
    /// Returns the input and whether a face framing found no face.
    pub fn frame_with(&self, picture: &RgbImage, finder: &mut FaceFinder) -> (RgbImage, bool) {
        match self.framing {
            Framing::Whole => (resize_square(picture, self.size as u32), false),
            Framing::Face { .. } => {
                let faces = finder.detect(picture);
                let framed = self.frame(picture, &faces, None);
                (framed.input, framed.face.is_none())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_face_framing_crops_the_chosen_face_and_falls_back_to_the_whole_picture() {
        let picture = RgbImage::from_fn(400, 300, |x, y| image::Rgb([x as u8, y as u8, 7]));
        let faces = [
            FaceBox {
                x: 10,
                y: 10,
                width: 100,
                height: 100,
                score: 5.0,
            },
            FaceBox {
                x: 300,
                y: 200,
                width: 40,
                height: 40,
                score: 3.0,
            },
        ];
        let profile = InputProfile::new(Framing::face(1.3), Normalization::COURSE);
        let largest = profile.frame(&picture, &faces, None);
        assert_eq!(largest.face, Some(0));
        assert_eq!(largest.input.dimensions(), (256, 256));
        let second = profile.frame(&picture, &faces, Some(1));
        assert_eq!(second.face, Some(1));
        assert_ne!(largest.input, second.input);
        let none = profile.frame(&picture, &[], None);
        assert_eq!(none.face, None);
        let whole = InputProfile::new(Framing::Whole, Normalization::COURSE);
        assert_eq!(none.input, whole.frame(&picture, &faces, None).input);
    }

    #[test]
    fn framings_read_back_and_bad_margins_are_refused() {
        let face: Framing = serde_json::from_str(
            r#"{"kind":"face","scale":1.3,"detector":"seetaface-frontal-1.0","min_face_px":40}"#,
        )
        .unwrap();
        assert_eq!(face, Framing::face(1.3));
        assert!(Framing::face(0.5).validate().is_err());
        assert!(Framing::face(f32::NAN).validate().is_err());
        assert!(Framing::face(2.0).validate().is_ok());
    }
}
