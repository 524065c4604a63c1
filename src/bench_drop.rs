//! `fakelens bench --mode drop`: what a user waits for after dropping a photo on the Inspect
//! tab — a 1600×1000 JPEG (1.6 megapixels, a demo face in a larger scene) decoded, its face
//! found and cropped, then the detector's verdict (drop-to-verdict), then its saliency map
//! of the crop (drop-to-heatmap). FakeLens only: the face detector has no PyTorch twin.

use std::time::Instant;

use anyhow::Context;
use candle_core::Device;

use crate::config::ModelKind;
use crate::explain::{Method, explain};
use crate::inspect::face::FaceFinder;
use crate::inspect::photo::{CropMode, prepare_photo};

/// Median milliseconds of drop-to-verdict and drop-to-heatmap over `steps` drops, and the
/// number of faces found in the photo.
pub fn drop_latency(
    kind: ModelKind,
    steps: usize,
    device: &Device,
) -> anyhow::Result<(f64, f64, usize)> {
    let dir = std::env::temp_dir().join(format!("fakelens-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let photo_path = dir.join("photo.jpg");
    let face = crate::data::demo::generate_sample(11, true).image;
    let face = image::imageops::resize(&face, 600, 600, image::imageops::Triangle);
    let mut scene = image::RgbImage::from_fn(1600, 1000, |x, y| {
        image::Rgb([(x / 7) as u8, (y / 5) as u8, 120])
    });
    image::imageops::overlay(&mut scene, &face, 500, 200);
    scene
        .save(&photo_path)
        .with_context(|| format!("writing {}", photo_path.display()))?;
    let model = crate::models::build(kind, device, 0)?;
    let norm = kind.normalization();
    let mut finder = FaceFinder::new()?;
    let (mut verdict_ms, mut heatmap_ms, mut faces) = (Vec::new(), Vec::new(), 0);
    for step in 0..steps + 1 {
        let started = Instant::now();
        let photo = prepare_photo(&photo_path, CropMode::Auto, &mut finder, None)?;
        faces = photo.faces.len();
        let mut buffer = vec![0.0f32; 3 * crate::config::INPUT_SIZE.pow(2)];
        crate::data::decode::normalize_into(photo.input.as_raw(), &norm, &mut buffer);
        let size = crate::config::INPUT_SIZE;
        let input = candle_core::Tensor::from_vec(buffer, (1, 3, size, size), device)?;
        let logits = model.forward_t(&input, false)?;
        candle_nn::ops::softmax_last_dim(&logits)?.to_vec2::<f32>()?;
        let verdict = started.elapsed().as_secs_f64() * 1e3;
        explain(
            model.as_ref(),
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
    Ok((median(&mut verdict_ms), median(&mut heatmap_ms), faces))
}
