//! One framed picture explained by one run: its fake probability, the class the map
//! explains, and the map. The engine step the Explain tab's worker and
//! `fakelens explain --image` share; they only loop over runs and send or write the result.

use image::RgbImage;

use super::error::ExplainError;
use super::heatmap::Heatmap;
use super::method::{Method, explain};
use crate::runs::loader::RunModel;

/// Which class a map explains.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MapClass {
    /// The class the run predicts at 0.5 (its calibrated fake probability).
    Predicted,
    /// Always this label (0 = real, 1 = fake).
    Label(u32),
}

/// A run's map of one picture.
#[derive(Clone, Debug)]
pub struct PictureMap {
    /// Calibrated, as every probability shown.
    pub fake_probability: f64,
    /// The label the map explains.
    pub class: u32,
    pub map: Heatmap,
}

/// Explains `picture` (already framed as the run sees it, input-sized) with `run`.
pub fn explain_picture(
    run: &RunModel,
    picture: &RgbImage,
    class: MapClass,
    method: &Method,
    cancelled: &dyn Fn() -> bool,
) -> Result<PictureMap, ExplainError> {
    let device = run.model.params().device().clone();
    let input = run.input_of(picture, &device)?;
    let fake_probability = run.fake_probabilities(&input)?[0];
    let class = match class {
        MapClass::Label(label) => label,
        MapClass::Predicted => u32::from(fake_probability >= 0.5),
    };
    let map = explain(run.model.as_ref(), &input, &[class], method, cancelled)?
        .into_iter()
        .next()
        .ok_or(ExplainError::NoGradient)?;
    Ok(PictureMap {
        fake_probability,
        class,
        map,
    })
}
