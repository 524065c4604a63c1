//! The compute thread's Inspect job: photos judged one at a time, each answered as soon as
//! it is done (a card per file, an error card for a file that cannot be read), with every
//! ticked detector's verdict at its threshold and, if asked, its map of the face crop.
//! Detectors and the face finder are kept loaded between drops.

use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use image::RgbImage;

use super::{Event, EventSink, Task};
use crate::data::decode::decode_rgb;
use crate::device::DeviceChoice;
use crate::explain::{Heatmap, Method, explain};
use crate::inspect::face::{FaceBox, FaceFinder};
use crate::inspect::photo::{CropMode, prepare_decoded};
use crate::inspect::verdict::{Judge, Verdict};
use crate::train::history::CHECKPOINT_FILE;

/// Photos to judge.
#[derive(Clone, Debug)]
pub struct InspectRequest {
    /// `(card id, file)`: the id names the card the answer fills.
    pub files: Vec<(u64, PathBuf)>,
    pub runs: Vec<PathBuf>,
    pub crop: CropMode,
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
    pub map: Option<Heatmap>,
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
    pub face: Option<usize>,
    /// The 256×256 input the detectors saw.
    pub input: Arc<RgbImage>,
    pub note: Option<String>,
    pub verdicts: Vec<RunVerdict>,
    /// Milliseconds from the start of this file to its verdicts (and maps).
    pub elapsed_ms: f64,
}

/// Longest side of a card's preview of the whole photo.
pub const PREVIEW_SIDE: u32 = 320;

/// Detectors and the face finder, kept between jobs.
#[derive(Default)]
pub(super) struct InspectState {
    judges: Vec<(PathBuf, Option<SystemTime>, DeviceChoice, Rc<Judge>)>,
    finder: Option<FaceFinder>,
}

fn stamp(dir: &Path) -> Option<SystemTime> {
    std::fs::metadata(dir.join(CHECKPOINT_FILE))
        .and_then(|m| m.modified())
        .ok()
}

impl InspectState {
    fn judge(
        &mut self,
        dir: &Path,
        choice: DeviceChoice,
        sink: &EventSink,
        cancel: &AtomicBool,
    ) -> anyhow::Result<Rc<Judge>> {
        let when = stamp(dir);
        if let Some((.., judge)) = self
            .judges
            .iter()
            .find(|(d, s, c, _)| d == dir && *s == when && *c == choice)
        {
            return Ok(judge.clone());
        }
        let (device, notice) = crate::device::open(choice)?;
        if let Some(notice) = notice {
            sink.send(Event::Notice(notice));
        }
        sink.send_lossy(Event::Progress {
            task: Task::Inspect,
            stage: format!("loading {} (its threshold is computed once)", dir.display()),
            done: 0,
            total: 1,
        });
        let judge = Rc::new(
            Judge::load(dir, &device, cancel)
                .map_err(|e| anyhow::anyhow!("loading run {}: {e}", dir.display()))?,
        );
        self.judges.retain(|(d, ..)| d != dir);
        self.judges
            .push((dir.to_path_buf(), when, choice, judge.clone()));
        Ok(judge)
    }
}

pub(super) fn inspect(
    state: &mut InspectState,
    request: &InspectRequest,
    choice: DeviceChoice,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    let judges = request
        .runs
        .iter()
        .map(|dir| state.judge(dir, choice, sink, cancel))
        .collect::<anyhow::Result<Vec<_>>>()?;
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
            .map_err(|e| format!("{e:#}"));
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
    judges: &[Rc<Judge>],
    finder: &mut FaceFinder,
    cancel: &AtomicBool,
) -> anyhow::Result<InspectedPhoto> {
    let decoded = decode_rgb(path)?;
    let photo = prepare_decoded(path, &decoded, request.crop, finder, request.face);
    let mut verdicts = Vec::with_capacity(judges.len());
    for judge in judges {
        // One input per run serves its verdict and its map.
        let input = judge.input_of(&photo)?;
        let verdict = judge.verdict(&input)?;
        let map = match &request.method {
            Some(method) => {
                let stop = || cancel.load(Ordering::Relaxed);
                explain(
                    judge.run.model.as_ref(),
                    &input,
                    &[crate::LABEL_FAKE],
                    method,
                    &stop,
                )?
                .into_iter()
                .next()
            }
            None => None,
        };
        verdicts.push(RunVerdict {
            verdict,
            threshold_source: judge.threshold_source.clone(),
            map,
        });
    }
    let scale = (PREVIEW_SIDE as f32 / photo.width.max(photo.height) as f32).min(1.0);
    let preview = image::imageops::resize(
        &decoded,
        ((photo.width as f32 * scale).round() as u32).max(1),
        ((photo.height as f32 * scale).round() as u32).max(1),
        image::imageops::Triangle,
    );
    Ok(InspectedPhoto {
        width: photo.width,
        height: photo.height,
        preview: Arc::new(preview),
        preview_scale: scale,
        faces: photo.faces,
        face: photo.face,
        input: Arc::new(photo.input),
        note: photo.note,
        verdicts,
        elapsed_ms: 0.0,
    })
}
