//! Judging one photo: decode it, find its faces, and for each detector frame it as that
//! detector sees it, give the verdict at the detector's threshold and, if asked, the map of
//! the fake class. The engine step the Inspect tab's worker and `fakelens predict` share;
//! they only loop over files, report progress, and send a card or write a CSV row.

use std::path::Path;

use super::photo::{DetectorInput, InputOverride, PreparedPhoto, prepare_photo};
use super::verdict::{Judge, Verdict};
use crate::data::decode::DecodeError;
use crate::data::face::FaceFinder;
use crate::explain::error::ExplainError;
use crate::explain::{Heatmap, Method, explain};

/// One detector's answer on a photo.
#[derive(Clone, Debug)]
pub struct DetectorAnswer {
    /// The photo as this detector saw it (framing, face, note).
    pub seen: DetectorInput,
    pub verdict: Verdict,
    /// The map of the fake class, when one was asked for.
    pub map: Option<Heatmap>,
}

/// A photo and each detector's answer (or why that detector could not give one), in the
/// order the judges were given.
pub struct JudgedPhoto {
    pub photo: PreparedPhoto,
    pub answers: Vec<Result<DetectorAnswer, ExplainError>>,
}

impl JudgedPhoto {
    /// The face box (index into `photo.faces`) of the first detector that saw a face.
    pub fn face(&self) -> Option<usize> {
        self.answers
            .iter()
            .flatten()
            .find_map(|answer| answer.seen.face)
    }

    /// The first note a detector's framing left (no face found, …).
    pub fn note(&self) -> Option<String> {
        self.answers
            .iter()
            .flatten()
            .find_map(|answer| answer.seen.note.clone())
    }
}

/// `judge`'s answer on `photo`: one input serves the verdict and the map.
pub fn judge_with(
    photo: &PreparedPhoto,
    judge: &Judge,
    unsure_band: f64,
    method: Option<&Method>,
    cancelled: &dyn Fn() -> bool,
) -> Result<DetectorAnswer, ExplainError> {
    let seen = photo.input_for(&judge.run.profile());
    let input = judge.input_of(&seen)?;
    let verdict = judge.verdict(&input, unsure_band)?;
    let map = match method {
        Some(method) => explain(
            judge.run.model.as_ref(),
            &input,
            &[crate::LABEL_FAKE],
            method,
            cancelled,
        )?
        .into_iter()
        .next(),
        None => None,
    };
    Ok(DetectorAnswer { seen, verdict, map })
}

/// Decodes and judges the photo at `path` with every one of `judges`; `choose` picks a
/// face other than the largest. Fails only when the file cannot be read as an image.
#[allow(clippy::too_many_arguments)]
pub fn judge_photo(
    path: &Path,
    crop: InputOverride,
    choose: Option<usize>,
    finder: &mut FaceFinder,
    judges: &[&Judge],
    unsure_band: f64,
    method: Option<&Method>,
    cancelled: &dyn Fn() -> bool,
) -> Result<JudgedPhoto, DecodeError> {
    let photo = prepare_photo(path, crop, finder, choose)?;
    let answers = judges
        .iter()
        .map(|judge| judge_with(&photo, judge, unsure_band, method, cancelled))
        .collect();
    Ok(JudgedPhoto { photo, answers })
}
