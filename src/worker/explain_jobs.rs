//! The compute thread's explanation jobs: the maps of one image for several runs (what the
//! Explain tab shows side by side), and the per-class mean maps and faithfulness of one run
//! over a split, as background jobs with progress and cancel. Loaded runs are kept, so
//! moving through images does not reload checkpoints.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;

use super::{Event, EventSink, Task};
use crate::data::Split;
use crate::data::decode::{decode_rgb, resize_square};
use crate::data::index::mask_path_for;
use crate::data::profile::INPUT_SIZE;
use crate::device::DeviceChoice;
use crate::explain::faithfulness::{FaithfulnessReport, Mask, measure_faithfulness};
use crate::explain::grid::{GridChoice, GridTile, grid_maps};
use crate::explain::mean_maps::{MeanMaps, SplitJob, mean_maps};
use crate::explain::picture::{MapClass, explain_picture};
use crate::explain::{Heatmap, Method};

/// Which class an image's maps explain.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum ClassChoice {
    /// Each model's own verdict.
    #[default]
    Predicted,
    /// The image's label (as the course did), when it comes from a dataset.
    True,
    Real,
    Fake,
}

/// Maps of one image, for each run.
#[derive(Clone, Debug)]
pub struct ExplainImageRequest {
    pub runs: Vec<PathBuf>,
    pub image: PathBuf,
    /// The image's label when it comes from a dataset.
    pub label: Option<u32>,
    pub class: ClassChoice,
    pub method: Method,
}

/// One run's verdict and map of an image.
#[derive(Clone, Debug)]
pub struct RunMap {
    pub run_dir: PathBuf,
    pub label: String,
    pub fake_probability: f64,
    /// The class explained.
    pub class: u32,
    pub map: Heatmap,
}

/// The answer to an [`ExplainImageRequest`].
#[derive(Clone, Debug)]
pub struct ExplainedImage {
    pub request: ExplainImageRequest,
    /// The image as the models saw it (256×256).
    pub picture: Arc<RgbImage>,
    pub maps: Vec<RunMap>,
    /// Runs that could not explain it, with the cause.
    pub failures: Vec<(PathBuf, String)>,
    /// The ground-truth manipulation mask over `picture`, when the image has one.
    pub mask: Option<Mask>,
}

/// A job over one run and one split of the loaded dataset.
#[derive(Clone, Debug)]
pub struct SplitMapsRequest {
    pub run: PathBuf,
    pub data: PathBuf,
    pub split: Split,
    pub method: Method,
    pub kind: SplitJobKind,
}

/// What a split job computes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum SplitJobKind {
    /// Per-class mean maps over the whole split.
    MeanMaps,
    /// Faithfulness over (at most `limit`) fakes.
    Faithfulness { limit: Option<usize> },
    /// The course's figure of chosen images and their maps.
    Grid(GridChoice),
}

impl SplitJobKind {
    pub fn name(self) -> &'static str {
        match self {
            SplitJobKind::MeanMaps => "mean maps",
            SplitJobKind::Faithfulness { .. } => "faithfulness",
            SplitJobKind::Grid(_) => "grid",
        }
    }
}

/// Results of split jobs.
#[derive(Clone, Debug)]
pub enum SplitMapsResult {
    Mean(MeanMaps),
    Faithfulness(FaithfulnessReport),
    Grid(Vec<GridTile>),
}

pub(super) fn explain_image(
    loaded: &mut super::loaded_runs::LoadedRuns,
    request: ExplainImageRequest,
    choice: DeviceChoice,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    let decoded = decode_rgb(&request.image).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut maps = Vec::new();
    let mut failures = Vec::new();
    // The picture is framed as the first run that loads sees it; a run framed otherwise
    // is reported, not shown a framing it did not learn.
    let mut framed: Option<(crate::data::profile::Framing, image::RgbImage)> = None;
    let mut mask: Option<Option<Mask>> = None;
    for dir in &request.runs {
        if cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let mut one = || -> anyhow::Result<RunMap> {
            let run = loaded.get(dir, choice, sink)?;
            let profile = run.profile();
            let picture = match &framed {
                Some((framing, picture)) if *framing == profile.framing => picture.clone(),
                Some((framing, _)) => anyhow::bail!(
                    "{} sees a {}, the runs before it a {}: explain it on its own",
                    run.label(),
                    profile.framing.describe(),
                    framing.describe()
                ),
                None => {
                    let faces = if profile.framing.is_face() {
                        crate::data::face::FaceFinder::new()?.detect(&decoded)
                    } else {
                        Vec::new()
                    };
                    let picture = profile.frame(&decoded, &faces, None);
                    // A demo fake's ground truth, framed as the picture is.
                    let mask_path = mask_path_for(&request.image);
                    mask = mask_path.is_file().then(|| {
                        let size = decoded.dimensions();
                        Mask::load_framed(&mask_path, size, &profile, &faces, picture.face).ok()
                    });
                    framed = Some((profile.framing.clone(), picture.input.clone()));
                    picture.input
                }
            };
            let class = match (request.class, request.label) {
                (ClassChoice::Real, _) => MapClass::Label(crate::LABEL_REAL),
                (ClassChoice::Fake, _) => MapClass::Label(crate::LABEL_FAKE),
                (ClassChoice::True, Some(label)) => MapClass::Label(label),
                _ => MapClass::Predicted,
            };
            let cancelled = || cancel.load(Ordering::Relaxed);
            let explained = explain_picture(&run, &picture, class, &request.method, &cancelled)?;
            Ok(RunMap {
                run_dir: dir.clone(),
                label: run.label(),
                fake_probability: explained.fake_probability,
                class: explained.class,
                map: explained.map,
            })
        };
        match one() {
            Ok(map) => maps.push(map),
            Err(e) => failures.push((dir.clone(), crate::report::chain(&e))),
        }
    }
    sink.send(Event::Explained(Box::new(ExplainedImage {
        picture: Arc::new(match framed {
            Some((_, picture)) => picture,
            None => resize_square(&decoded, INPUT_SIZE as u32),
        }),
        request,
        maps,
        failures,
        mask: mask.flatten(),
    })));
    Ok(())
}

pub(super) fn split_maps(
    loaded: &mut super::loaded_runs::LoadedRuns,
    split: &Arc<crate::data::PreparedSplit>,
    request: &SplitMapsRequest,
    choice: DeviceChoice,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    let run = loaded.get(&request.run, choice, sink)?;
    let device = run.model.params().device().clone();
    let job = SplitJob {
        model: run.model.as_ref(),
        frozen: run.frozen.as_ref(),
        split,
        norm: run.profile().normalization,
        device: &device,
    };
    let stage = format!(
        "{} — {} {} on {}",
        run.label(),
        request.method.label(),
        request.kind.name(),
        request.split.name()
    );
    let mut progress = |done: usize, total: usize| {
        sink.send_lossy(Event::Progress {
            task: Task::Explain,
            stage: stage.clone(),
            done,
            total,
        });
    };
    let cancelled = || cancel.load(Ordering::Relaxed);
    let result = match request.kind {
        SplitJobKind::Faithfulness { limit } => SplitMapsResult::Faithfulness(
            measure_faithfulness(&job, &request.method, limit, &cancelled, &mut progress)?,
        ),
        SplitJobKind::MeanMaps => {
            SplitMapsResult::Mean(mean_maps(&job, &request.method, &cancelled, &mut progress)?)
        }
        SplitJobKind::Grid(choice) => SplitMapsResult::Grid(grid_maps(
            &job,
            &request.method,
            choice,
            &cancelled,
            &mut progress,
        )?),
    };
    sink.send(Event::SplitMaps {
        request: request.clone(),
        label: run.label(),
        result: Box::new(result),
    });
    Ok(())
}
