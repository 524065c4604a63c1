//! How faithful an explanation is, measured. Where a fake's ground-truth manipulation mask
//! is known (the demo data stores one beside each fake): the pointing game (does the map's
//! maximum fall inside the mask?) against the rate of a uniformly random point (the mask's
//! share of the image), and the share of the normalised map's energy inside the mask. On
//! any fake: the deletion curve — the `top-k %` pixels by the map replaced by the
//! normalisation's mean (0 after normalising), the fake score re-measured at k = 0, 10, …,
//! 100 %, and the area under that curve (lower: the map found what the score rests on).

use candle_core::Tensor;
use std::path::{Path, PathBuf};

use super::error::ExplainError;
use super::heatmap::Heatmap;
use super::mean_maps::SplitJob;
use super::method::{Method, explain};
use crate::data::index::mask_path_for;
use crate::data::profile::INPUT_SIZE;
use crate::models::Evaluator;

/// A ground-truth manipulation mask at the model's input size.
#[derive(Clone, Debug, PartialEq)]
pub struct Mask {
    pub width: usize,
    pub height: usize,
    pub inside: Vec<bool>,
}

impl Mask {
    /// Reads a mask image (white inside), resized to `size`×`size` by nearest neighbour.
    pub fn load(path: &Path, size: usize) -> Result<Mask, image::ImageError> {
        let gray = image::open(path)?.into_luma8();
        let gray =
            image::imageops::resize(&gray, size as u32, size as u32, image::imageops::Nearest);
        Ok(Mask {
            width: size,
            height: size,
            inside: gray.pixels().map(|p| p.0[0] >= 128).collect(),
        })
    }

    /// Reads the mask of a picture of `picture_size` (width, height) and frames it as
    /// `profile` frames that picture with `faces` and the chosen `face`: the mask over the
    /// model's input, for drawing its outline on the map.
    pub fn load_framed(
        path: &Path,
        picture_size: (u32, u32),
        profile: &crate::data::profile::InputProfile,
        faces: &[crate::data::face::FaceBox],
        face: Option<usize>,
    ) -> Result<Mask, image::ImageError> {
        let mut rgb = image::open(path)?.into_rgb8();
        if rgb.dimensions() != picture_size {
            let (width, height) = picture_size;
            rgb = image::imageops::resize(&rgb, width, height, image::imageops::Nearest);
        }
        let framed = profile.frame(&rgb, faces, face).input;
        Ok(Mask {
            width: framed.width() as usize,
            height: framed.height() as usize,
            inside: framed.pixels().map(|p| p.0[0] >= 128).collect(),
        })
    }

    /// The mask grown by `radius` pixels (Euclidean): the pointing game's tolerance.
    pub fn dilated(&self, radius: usize) -> Mask {
        let r = radius as isize;
        let offsets: Vec<(isize, isize)> = (-r..=r)
            .flat_map(|dy| (-r..=r).map(move |dx| (dx, dy)))
            .filter(|&(dx, dy)| dx * dx + dy * dy <= r * r)
            .collect();
        let (w, h) = (self.width as isize, self.height as isize);
        let inside = (0..h)
            .flat_map(|y| (0..w).map(move |x| (x, y)))
            .map(|(x, y)| {
                offsets.iter().any(|&(dx, dy)| {
                    let (nx, ny) = (x + dx, y + dy);
                    nx >= 0 && ny >= 0 && nx < w && ny < h && self.inside[(ny * w + nx) as usize]
                })
            })
            .collect();
        Mask {
            inside,
            ..self.clone()
        }
    }

    /// The share of pixels inside: the hit rate of a uniformly random point.
    pub fn area_fraction(&self) -> f64 {
        self.inside.iter().filter(|&&b| b).count() as f64 / self.inside.len().max(1) as f64
    }
}

/// Whether the map's maximum (its first, in row-major order) lies inside the mask.
pub fn pointing_hit(map: &Heatmap, mask: &Mask) -> bool {
    let best = map
        .values
        .iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 { (i, v) } else { best }
        });
    mask.inside.get(best.0).copied().unwrap_or(false)
}

/// The share of the normalised map's total inside the mask (0 for a flat map).
pub fn energy_inside(map: &Heatmap, mask: &Mask) -> f64 {
    let values = map.normalized();
    let total: f64 = values.iter().map(|&v| f64::from(v)).sum();
    if total <= 0.0 {
        return 0.0;
    }
    let inside: f64 = values
        .iter()
        .zip(&mask.inside)
        .filter(|(_, b)| **b)
        .map(|(&v, _)| f64::from(v))
        .sum();
    inside / total
}

/// A deletion curve: the fake score after removing each fraction of the pixels.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct DeletionCurve {
    pub fractions: Vec<f64>,
    pub fake_scores: Vec<f64>,
    /// Trapezoidal area under `fake_scores` over `fractions` ∈ [0, 1].
    pub area: f64,
}

/// Removes the top `k / steps` of `image`'s pixels (1×3×H×W, normalised) by `map`, for
/// k = 0…steps, scoring all copies in one batch.
pub fn deletion_curve(
    model: Evaluator<'_>,
    image: &Tensor,
    map: &Heatmap,
    steps: usize,
) -> Result<DeletionCurve, ExplainError> {
    let steps = steps.max(1);
    let (_, channels, height, width) = image.dims4()?;
    let plane = height * width;
    let original: Vec<f32> = image
        .flatten_all()?
        .to_dtype(candle_core::DType::F32)?
        .to_vec1()?;
    let mut order: Vec<usize> = (0..plane.min(map.values.len())).collect();
    order.sort_by(|&a, &b| map.values[b].total_cmp(&map.values[a]).then(a.cmp(&b)));
    let mut batch = Vec::with_capacity((steps + 1) * original.len());
    let mut fractions = Vec::with_capacity(steps + 1);
    for k in 0..=steps {
        let fraction = k as f64 / steps as f64;
        let mut copy = original.clone();
        for &pixel in &order[..(fraction * order.len() as f64).round() as usize] {
            for c in 0..channels {
                copy[c * plane + pixel] = 0.0;
            }
        }
        batch.extend(copy);
        fractions.push(fraction);
    }
    let batch = Tensor::from_vec(batch, (steps + 1, channels, height, width), image.device())?
        .to_dtype(image.dtype())?;
    let logits = model.logits(&batch)?;
    let probs = candle_nn::ops::softmax_last_dim(&logits.to_dtype(candle_core::DType::F32)?)?;
    let fake_scores: Vec<f64> = probs
        .to_vec2::<f32>()?
        .iter()
        .map(|p| f64::from(p[1]))
        .collect();
    let area = fractions
        .windows(2)
        .zip(fake_scores.windows(2))
        .map(|(f, s)| (f[1] - f[0]) * (s[0] + s[1]) / 2.0)
        .sum();
    Ok(DeletionCurve {
        fractions,
        fake_scores,
        area,
    })
}

/// The pointing game's tolerance (Zhang et al. 2016, "Top-down neural attention by
/// excitation backprop"): a maximum within this many pixels of the mask is a hit.
pub const POINTING_TOLERANCE_PX: usize = 15;

/// Steps of the deletion curve (0, 10, …, 100 %).
pub const DELETION_STEPS: usize = 10;

/// One fake's measurements.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FakeMeasure {
    pub path: PathBuf,
    /// Pointing-game hit and the tolerant mask's area (the random point's hit rate), and the
    /// energy inside the exact mask, where a mask exists.
    pub hit: Option<bool>,
    pub energy_inside: Option<f64>,
    pub mask_area: Option<f64>,
    pub deletion_area: f64,
    /// The fake score with 0, 10, …, 100 % of the pixels removed.
    pub deletion_scores: Vec<f64>,
}

/// The faithfulness of one method for one model over the fakes of a split.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct FaithfulnessReport {
    pub method: String,
    pub fakes: usize,
    /// Fakes with a ground-truth mask (the pointing game and energy use only these).
    pub masked: usize,
    pub pointing_rate: Option<f64>,
    /// The pointing rate of a uniformly random point: the mean mask area.
    pub random_pointing_rate: Option<f64>,
    pub energy_inside: Option<f64>,
    pub deletion_area: f64,
    /// The mean deletion curve: fake score with 0, 10, …, 100 % of the pixels removed.
    pub mean_deletion_curve: Vec<f64>,
    pub per_image: Vec<FakeMeasure>,
}

impl FaithfulnessReport {
    fn from_measures(method: &Method, per_image: Vec<FakeMeasure>) -> FaithfulnessReport {
        let mean = |values: Vec<f64>| {
            (!values.is_empty()).then(|| values.iter().sum::<f64>() / values.len() as f64)
        };
        let hits: Vec<f64> = per_image
            .iter()
            .filter_map(|m| m.hit.map(|h| f64::from(u8::from(h))))
            .collect();
        let masked = hits.len();
        FaithfulnessReport {
            method: method.label(),
            fakes: per_image.len(),
            masked,
            pointing_rate: mean(hits),
            random_pointing_rate: mean(per_image.iter().filter_map(|m| m.mask_area).collect()),
            energy_inside: mean(per_image.iter().filter_map(|m| m.energy_inside).collect()),
            deletion_area: mean(per_image.iter().map(|m| m.deletion_area).collect())
                .unwrap_or(f64::NAN),
            mean_deletion_curve: (0..=DELETION_STEPS)
                .map(|k| {
                    mean(
                        per_image
                            .iter()
                            .filter_map(|m| m.deletion_scores.get(k).copied())
                            .collect(),
                    )
                    .unwrap_or(f64::NAN)
                })
                .collect(),
            per_image,
        }
    }
}

/// Measures `method` on (at most `limit`) fakes of `split`, each explained for the fake
/// class; a mask that cannot be read is treated as absent.
pub fn measure_faithfulness(
    job: &SplitJob<'_>,
    method: &Method,
    limit: Option<usize>,
    cancelled: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<FaithfulnessReport, ExplainError> {
    let (model, split) = (job.model, job.split);
    // The deletion curves need no graph: through the frozen copy where the run has one.
    let evaluator = Evaluator::new(model, job.frozen);
    let fakes: Vec<usize> = (0..split.len())
        .filter(|&i| split.samples[i].label == crate::LABEL_FAKE)
        .take(limit.unwrap_or(usize::MAX))
        .collect();
    let mut per_image = Vec::with_capacity(fakes.len());
    for (done, &i) in fakes.iter().enumerate() {
        if cancelled() {
            return Err(ExplainError::Cancelled);
        }
        let image = job.image(i)?;
        let map = explain(model, &image, &[crate::LABEL_FAKE], method, cancelled)?
            .into_iter()
            .next()
            .ok_or(ExplainError::NoGradient)?;
        let path = split.samples[i].path.clone();
        // A mask is drawn over the whole picture: it lines up only with an input that is
        // the whole picture.
        let whole = !split.framing.is_face() || split.no_face.contains(&path);
        let mask = whole
            .then(|| Mask::load(&mask_path_for(&path), INPUT_SIZE).ok())
            .flatten();
        let tolerant = mask.as_ref().map(|m| m.dilated(POINTING_TOLERANCE_PX));
        let curve = deletion_curve(evaluator, &image, &map, DELETION_STEPS)?;
        per_image.push(FakeMeasure {
            hit: tolerant.as_ref().map(|m| pointing_hit(&map, m)),
            energy_inside: mask.as_ref().map(|m| energy_inside(&map, m)),
            mask_area: tolerant.as_ref().map(Mask::area_fraction),
            deletion_area: curve.area,
            deletion_scores: curve.fake_scores,
            path,
        });
        progress(done + 1, fakes.len());
    }
    Ok(FaithfulnessReport::from_measures(method, per_image))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pointing_and_energy_follow_the_mask() {
        let mask = Mask {
            width: 2,
            height: 2,
            inside: vec![false, true, false, false],
        };
        let map = Heatmap {
            width: 2,
            height: 2,
            values: vec![0.0, 4.0, 2.0, 0.0],
        };
        assert!(pointing_hit(&map, &mask));
        // Normalised: 0, 1, 0.5, 0 → inside 1 of 1.5.
        assert!((energy_inside(&map, &mask) - 2.0 / 3.0).abs() < 1e-12);
        let elsewhere = Heatmap {
            values: vec![0.0, 1.0, 3.0, 0.0],
            ..map
        };
        assert!(!pointing_hit(&elsewhere, &mask));
        assert_eq!(mask.area_fraction(), 0.25);
        let dot = Mask {
            width: 5,
            height: 5,
            inside: (0..25).map(|i| i == 12).collect(),
        };
        // Radius 1 adds the four neighbours, not the diagonals.
        let grown = dot.dilated(1);
        let inside: Vec<usize> = (0..25).filter(|&i| grown.inside[i]).collect();
        assert_eq!(inside, vec![7, 11, 12, 13, 17]);
    }
}
