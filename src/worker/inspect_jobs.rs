//! The compute thread's Inspect job: photos judged one at a time, each answered as soon as
//! it is done (a card per file, an error card for a file that cannot be read), with every
//! ticked detector's verdict at its threshold and, if asked, its map of the face crop.
//! Detectors and the face finder are kept loaded between drops.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use image::RgbImage;

use super::loaded_runs::LoadedRuns;
use super::{Event, EventSink, Task};
use crate::data::face::{FaceBox, FaceFinder};
use crate::device::DeviceChoice;
use crate::explain::{Heatmap, Method};
use crate::inspect::judge::judge_photo;
use crate::inspect::photo::InputOverride;
use crate::inspect::verdict::{Judge, Verdict};

/// Photos to judge.
#[derive(Clone, Debug)]
pub struct InspectRequest {
    /// `(card id, file)`: the id names the card the answer fills.
    pub files: Vec<(u64, PathBuf)>,
    pub runs: Vec<PathBuf>,
    /// Each detector's own framing, or one for all in this drop.
    pub crop: InputOverride,
    /// Half-width of the unsure band around each threshold.
    pub unsure_band: f64,
    /// A face other than the largest (when re-judging one card).
    pub face: Option<usize>,
    /// The map drawn over the crop, if any.
    pub method: Option<Method>,
}

/// One detector's answer on a photo.
#[derive(Clone, Debug)]
pub struct RunVerdict {
    pub verdict: Verdict,
    pub threshold_source: String,
    /// What the detector saw, framed by its profile (or the drop's override).
    pub input: Arc<RgbImage>,
    /// The face it saw; `None`: the whole photo.
    pub face: Option<usize>,
    /// `face crop 1.3×` or `whole image`.
    pub framing: String,
    /// What the detector learned from, and how well it did on its val split.
    pub provenance: Provenance,
    pub map: Option<Heatmap>,
}

/// What a detector knows: its training data and its val accuracy.
#[derive(Clone, Debug, PartialEq)]
pub struct Provenance {
    /// The dataset folder's name, `demo data (synthetic faces)`, or `imported`.
    pub trained_on: String,
    pub val_accuracy: Option<f64>,
    /// Trained on the generated demo set only: its verdicts on real photos mean nothing.
    pub demo_only: bool,
}

impl Provenance {
    pub fn of(record: &crate::runs::RunRecord) -> Provenance {
        let demo_only = crate::data::demo::is_demo_dataset(&record.dataset);
        let trained_on = if record.status == crate::runs::RunStatus::Imported {
            "imported".to_string()
        } else if demo_only {
            "demo data (synthetic faces)".to_string()
        } else {
            record
                .dataset
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| record.dataset.display().to_string())
        };
        Provenance {
            trained_on,
            val_accuracy: record.best_val_acc,
            demo_only,
        }
    }
}

/// A judged photo.
#[derive(Clone, Debug)]
pub struct InspectedPhoto {
    pub width: u32,
    pub height: u32,
    /// The photo scaled to at most `PREVIEW_SIDE` px, and the scale applied.
    pub preview: Arc<RgbImage>,
    pub preview_scale: f32,
    pub faces: Vec<FaceBox>,
    /// The face the first detector saw (drawn highlighted).
    pub face: Option<usize>,
    pub note: Option<String>,
    pub verdicts: Vec<RunVerdict>,
    /// Detectors that could not answer (`run folder`, why): the others still do.
    pub failures: Vec<(PathBuf, String)>,
    /// Milliseconds from the start of this file to its verdicts (and maps).
    pub elapsed_ms: f64,
}

/// Longest side of a card's preview of the whole photo.
pub const PREVIEW_SIDE: u32 = 320;

/// The detectors' thresholds and the face finder, kept between jobs (the runs themselves
/// are in the worker's one cache of loaded runs).
#[derive(Default)]
pub(super) struct InspectState {
    thresholds: Vec<(PathBuf, Option<crate::runs::layout::RunStamp>, f64, String)>,
    finder: Option<FaceFinder>,
}

impl InspectState {
    fn judge(
        &mut self,
        runs: &mut LoadedRuns,
        dir: &Path,
        choice: DeviceChoice,
        sink: &EventSink,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Rc<Judge>> {
        let when = crate::runs::layout::run_stamp(dir);
        let known = self
            .thresholds
            .iter()
            .find(|(d, s, ..)| d == dir && *s == when)
            .map(|(.., threshold, source)| (*threshold, source.clone()));
        if known.is_none() {
            sink.send_lossy(Event::Progress {
                task: Task::Inspect,
                stage: format!("loading {} (its threshold is computed once)", dir.display()),
                done: 0,
                total: 1,
            });
        }
        let run = runs.get(dir, choice, sink)?;
        if let Some((threshold, threshold_source)) = known {
            return Ok(Rc::new(Judge {
                run,
                threshold,
                threshold_source,
            }));
        }
        let judge = Judge::of(run, cancel);
        self.thresholds.retain(|(d, ..)| d != dir);
        self.thresholds.push((
            dir.to_path_buf(),
            when,
            judge.threshold,
            judge.threshold_source.clone(),
        ));
        Ok(Rc::new(judge))
    }
}

pub(super) fn inspect(
    state: &mut InspectState,
    runs: &mut LoadedRuns,
    request: &InspectRequest,
    choice: DeviceChoice,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    // A detector that fails to load is reported on every card; the others still judge.
    let judges: Vec<(PathBuf, Result<Rc<Judge>, String>)> = request
        .runs
        .iter()
        .map(|dir| {
            let judge = state
                .judge(runs, dir, choice, sink, cancel)
                .map_err(|e| crate::report::chain(&e));
            (dir.clone(), judge)
        })
        .collect();
    let finder = match &mut state.finder {
        Some(finder) => finder,
        none => none.insert(FaceFinder::new()?),
    };
    let total = request.files.len();
    for (done, (id, path)) in request.files.iter().enumerate() {
        if cancel.load(Ordering::Relaxed) {
            break;
        }
        sink.send_lossy(Event::Progress {
            task: Task::Inspect,
            stage: format!("judging {}", path.display()),
            done,
            total,
        });
        let started = std::time::Instant::now();
        let result = judge_one(path, request, &judges, finder, cancel)
            .map(|mut photo| {
                photo.elapsed_ms = started.elapsed().as_secs_f64() * 1e3;
                photo
            })
            .map_err(|e| crate::report::chain(&e));
        sink.send(Event::Inspected {
            id: *id,
            path: path.clone(),
            result: Box::new(result),
        });
    }
    sink.send(Event::JobDone {
        task: Task::Inspect,
    });
    Ok(())
}

fn judge_one(
    path: &Path,
    request: &InspectRequest,
    judges: &[(PathBuf, Result<Rc<Judge>, String>)],
    finder: &mut FaceFinder,
    cancel: &AtomicBool,
) -> anyhow::Result<InspectedPhoto> {
    // A detector that failed to load answers with its error; the others are asked.
    let loaded: Vec<&Judge> = judges
        .iter()
        .filter_map(|(_, judge)| judge.as_deref().ok())
        .collect();
    let cancelled = || cancel.load(Ordering::Relaxed);
    let judged = judge_photo(
        path,
        request.crop,
        request.face,
        finder,
        &loaded,
        request.unsure_band,
        request.method.as_ref(),
        &cancelled,
    )?;
    let note = judged.note();
    let mut answers = judged.answers.into_iter();
    let mut verdicts = Vec::with_capacity(judges.len());
    let mut failures = Vec::new();
    for (dir, judge) in judges {
        let judge = match judge {
            Ok(judge) => judge,
            Err(e) => {
                failures.push((dir.clone(), e.clone()));
                continue;
            }
        };
        match answers.next() {
            Some(Ok(answer)) => verdicts.push(RunVerdict {
                verdict: answer.verdict,
                threshold_source: judge.threshold_source.clone(),
                input: Arc::new(answer.seen.input),
                face: answer.seen.face,
                framing: answer.seen.framing.describe(),
                provenance: Provenance::of(&judge.run.record),
                map: answer.map,
            }),
            Some(Err(e)) => failures.push((dir.clone(), e.to_string())),
            None => {}
        }
    }
    let photo = judged.photo;
    let scale = (PREVIEW_SIDE as f32 / photo.width.max(photo.height) as f32).min(1.0);
    let preview = image::imageops::resize(
        &photo.picture,
        ((photo.width as f32 * scale).round() as u32).max(1),
        ((photo.height as f32 * scale).round() as u32).max(1),
        image::imageops::Triangle,
    );
    Ok(InspectedPhoto {
        width: photo.width,
        height: photo.height,
        preview: Arc::new(preview),
        preview_scale: scale,
        face: verdicts.iter().find_map(|v| v.face),
        faces: photo.faces,
        note,
        verdicts,
        failures,
        elapsed_ms: 0.0,
    })
}
