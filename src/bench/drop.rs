//! `fakelens bench --mode drop`: what a user waits for after dropping a photo on the Inspect
//! tab — a 4000×3000 JPEG (12 megapixels, a face in a larger scene: an lfw-faceswap test
//! face where the dataset is on this machine, else a demo face) decoded, its face found and
//! framed as the detector's input profile says, then the detector's calibrated verdict
//! (drop-to-verdict), then its saliency map (drop-to-heatmap). The detector is the bundled
//! one where it ships (else an untrained model of `--model`: the same work). FakeLens only:
//! the face detector has no PyTorch twin.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;
use candle_core::Device;

use crate::config::ModelKind;
use crate::data::face::FaceFinder;
use crate::explain::{Method, explain};
use crate::inspect::photo::{InputOverride, prepare_photo};
use crate::inspect::verdict::{DEFAULT_UNSURE_BAND, Judge};
use crate::runs::loader::RunModel;

/// Side lengths of the dropped photo.
pub const DROP_PHOTO: (u32, u32) = (4000, 3000);

/// What one drop measured.
#[derive(Clone, Debug)]
pub struct DropLatency {
    pub verdict_ms: f64,
    pub heatmap_ms: f64,
    pub faces: usize,
    /// The detector that judged.
    pub detector: String,
}

/// The face placed in the scene: a test face of lfw-faceswap when present.
fn face_picture() -> image::RgbImage {
    let test = PathBuf::from("../shared/datasets/lfw-faceswap/test/real");
    let found = std::fs::read_dir(&test).ok().and_then(|entries| {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        paths
            .first()
            .and_then(|p| crate::data::decode::decode_rgb(p).ok())
    });
    found.unwrap_or_else(|| crate::data::demo::generate_sample(11, true).image)
}

/// The bundled detector (or, where none ships, an untrained `kind` made a run in `dir`).
fn detector(kind: ModelKind, dir: &std::path::Path, device: &Device) -> anyhow::Result<Judge> {
    let bundled = crate::runs::layout::bundled_runs_dir().and_then(|root| {
        let mut runs: Vec<_> = std::fs::read_dir(root)
            .ok()?
            .flatten()
            .map(|e| e.path())
            .collect();
        runs.sort();
        runs.into_iter()
            .find(|r| crate::runs::layout::unusable_reason(r).is_none())
    });
    let run_dir = match bundled {
        Some(run) => run,
        None => {
            let model = crate::models::build(kind, device, 0)?;
            let checkpoint = dir.join("untrained.safetensors");
            model.params().save(&checkpoint)?;
            crate::train::imported::import_as_run(&checkpoint, kind, dir)?.0
        }
    };
    Judge::load(&run_dir, device, &AtomicBool::new(false))
        .with_context(|| format!("loading {}", run_dir.display()))
}

/// Median milliseconds of drop-to-verdict and drop-to-heatmap over `steps` drops.
pub fn drop_latency(kind: ModelKind, steps: usize, device: &Device) -> anyhow::Result<DropLatency> {
    let dir = std::env::temp_dir().join(format!("fakelens-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let photo_path = dir.join("photo.jpg");
    let face = image::imageops::resize(&face_picture(), 900, 900, image::imageops::CatmullRom);
    let (w, h) = DROP_PHOTO;
    let mut scene = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x / 16) as u8, (y / 12) as u8, 120])
    });
    image::imageops::overlay(&mut scene, &face, 1500, 900);
    scene
        .save(&photo_path)
        .with_context(|| format!("writing {}", photo_path.display()))?;
    drop(scene);
    let judge = detector(kind, &dir, device)?;
    let run: &RunModel = &judge.run;
    let mut finder = FaceFinder::new()?;
    let (mut verdict_ms, mut heatmap_ms, mut faces) = (Vec::new(), Vec::new(), 0);
    for step in 0..steps + 1 {
        let started = Instant::now();
        let photo = prepare_photo(&photo_path, InputOverride::Own, &mut finder, None)?;
        faces = photo.faces.len();
        let seen = photo.input_for(&run.profile());
        let input = judge.input_of(&seen)?;
        judge.verdict(&input, DEFAULT_UNSURE_BAND)?;
        let verdict = started.elapsed().as_secs_f64() * 1e3;
        explain(
            run.model.as_ref(),
            &input,
            &[crate::LABEL_FAKE],
            &Method::Saliency,
            &|| false,
        )?;
        let heatmap = started.elapsed().as_secs_f64() * 1e3;
        if step > 0 {
            verdict_ms.push(verdict);
            heatmap_ms.push(heatmap);
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    let median = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    };
    Ok(DropLatency {
        verdict_ms: median(&mut verdict_ms),
        heatmap_ms: median(&mut heatmap_ms),
        faces,
        detector: run.label(),
    })
}
