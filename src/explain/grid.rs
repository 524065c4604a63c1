//! The course's figure of a split: `count` images (36 by default), each followed by its
//! map, twelve tiles a row — chosen at random or by a filter on the model's scores.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use image::RgbImage;

use super::error::ExplainError;
use super::heatmap::Heatmap;
use super::mean_maps::SplitJob;
use super::method::{Method, explain};
use super::render::{OverlayStyle, grid, overlay};
use super::selection::{Pick, pick_images};
use crate::data::profile::INPUT_SIZE;

/// One image of the figure and its map (for the image's true class).
#[derive(Clone, Debug)]
pub struct GridTile {
    pub path: PathBuf,
    pub label: u32,
    /// 256×256 RGB8, as the model saw it.
    pub pixels: Arc<[u8]>,
    pub map: Heatmap,
}

/// How the figure's images are chosen.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GridChoice {
    pub pick: Pick,
    pub count: usize,
    pub seed: u64,
}

impl Default for GridChoice {
    fn default() -> Self {
        GridChoice {
            pick: Pick::Random,
            count: 36,
            seed: 0,
        }
    }
}

/// Chooses the images and computes their maps; `progress(done, total)` per map.
pub fn grid_maps(
    job: &SplitJob<'_>,
    method: &Method,
    choice: GridChoice,
    cancelled: &dyn Fn() -> bool,
    progress: &mut dyn FnMut(usize, usize),
) -> Result<Vec<GridTile>, ExplainError> {
    let scores = if choice.pick.needs_scores() {
        let stop = AtomicBool::new(false);
        Some(crate::eval::scores::score_split(
            // The picks' ranking: no graph needed, so through the frozen copy where it is.
            crate::models::Evaluator::new(job.model, job.frozen),
            job.split,
            16,
            job.norm,
            // The picks rank by confidence and the 0.5 decision, which no temperature moves.
            1.0,
            job.device,
            &stop,
            &mut |_, _| {},
        )?)
    } else {
        None
    };
    let chosen = pick_images(
        choice.pick,
        job.split.len(),
        scores.as_deref(),
        choice.count,
        choice.seed,
    );
    let mut tiles = Vec::with_capacity(chosen.len());
    for (done, &i) in chosen.iter().enumerate() {
        if cancelled() {
            return Err(ExplainError::Cancelled);
        }
        let sample = &job.split.samples[i];
        let input = job.image(i)?;
        let map = explain(job.model, &input, &[sample.label], method, cancelled)?
            .into_iter()
            .next()
            .ok_or(ExplainError::NoGradient)?;
        tiles.push(GridTile {
            path: sample.path.clone(),
            label: sample.label,
            pixels: job.split.pixels[i].clone(),
            map,
        });
        progress(done + 1, chosen.len());
    }
    Ok(tiles)
}

/// The figure: each image then its map (drawn opaque in `style`'s colormap), `tile_px`
/// square tiles, twelve a row.
pub fn grid_figure(tiles: &[GridTile], style: OverlayStyle, tile_px: u32) -> RgbImage {
    let size = INPUT_SIZE as u32;
    let mut images = Vec::with_capacity(2 * tiles.len());
    for tile in tiles {
        let picture = RgbImage::from_raw(size, size, tile.pixels.to_vec())
            .unwrap_or_else(|| RgbImage::new(size, size));
        let shown = overlay(
            &picture,
            &tile.map.normalized(),
            OverlayStyle {
                alpha: 1.0,
                ..style
            },
        );
        for t in [picture, shown] {
            images.push(image::imageops::resize(
                &t,
                tile_px,
                tile_px,
                image::imageops::Triangle,
            ));
        }
    }
    grid(&images, 12, 2)
}
