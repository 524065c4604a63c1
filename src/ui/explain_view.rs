//! Drawing an explained image: each run's map over the same picture, composed on the UI
//! thread from plain data (no tensors) and cached as textures until the maps or the style
//! change; the per-class mean maps and the faithfulness table.

use std::collections::BTreeMap;
use std::path::PathBuf;

use image::RgbImage;

use crate::explain::faithfulness::FaithfulnessReport;
use crate::explain::mean_maps::MeanMaps;
use crate::explain::render::{OverlayStyle, colored, outline, overlay};
use crate::worker::explain_jobs::ExplainedImage;

/// What the cached textures were drawn from.
#[derive(Clone, Debug, PartialEq)]
struct DrawnFrom {
    generation: u64,
    style: (u8, u32, u32),
    shared_scale: bool,
    outline_mask: bool,
}

/// Textures of the current overlays, redrawn only when their inputs change.
#[derive(Default)]
pub struct OverlayCache {
    drawn: Option<DrawnFrom>,
    textures: Vec<egui::TextureHandle>,
    /// The composed overlays (what the textures show), one per run.
    pub images: Vec<RgbImage>,
}

/// Colour of the ground-truth mask's outline.
const MASK_OUTLINE: [u8; 3] = [255, 255, 255];

/// Each run's map over the picture, scaled per map or by the maps' common maximum, with the
/// ground-truth mask's outline when asked and known.
pub fn compose_overlays(
    explained: &ExplainedImage,
    style: OverlayStyle,
    shared_scale: bool,
    outline_mask: bool,
) -> Vec<RgbImage> {
    let shared_max = explained
        .maps
        .iter()
        .map(|m| m.map.range().1)
        .fold(0.0f32, f32::max);
    explained
        .maps
        .iter()
        .map(|m| {
            let scaled = if shared_scale {
                m.map.scaled_by(0.0, shared_max)
            } else {
                m.map.normalized()
            };
            let mut drawn = overlay(&explained.picture, &scaled, style);
            if let Some(mask) = explained.mask.as_ref().filter(|_| outline_mask) {
                outline(&mut drawn, mask, MASK_OUTLINE);
            }
            drawn
        })
        .collect()
}

fn texture(ctx: &egui::Context, name: &str, image: &RgbImage) -> egui::TextureHandle {
    let size = [image.width() as usize, image.height() as usize];
    let color = egui::ColorImage::from_rgb(size, image.as_raw());
    ctx.load_texture(name, color, egui::TextureOptions::LINEAR)
}

impl OverlayCache {
    /// The textures for `explained` in `style`, redrawn when needed.
    pub fn textures(
        &mut self,
        ctx: &egui::Context,
        explained: &ExplainedImage,
        generation: u64,
        style: OverlayStyle,
        shared_scale: bool,
        outline_mask: bool,
    ) -> &[egui::TextureHandle] {
        let key = DrawnFrom {
            generation,
            style: (
                style.colormap as u8,
                style.alpha.to_bits(),
                style.top_fraction.to_bits(),
            ),
            shared_scale,
            outline_mask,
        };
        if self.drawn.as_ref() != Some(&key) {
            self.images = compose_overlays(explained, style, shared_scale, outline_mask);
            self.textures = self
                .images
                .iter()
                .enumerate()
                .map(|(i, image)| texture(ctx, &format!("explain-overlay-{i}"), image))
                .collect();
            self.drawn = Some(key);
        }
        &self.textures
    }
}

/// Mean maps per run, real beside fake, in `style`'s colormap.
pub fn mean_maps_ui(
    ui: &mut egui::Ui,
    means: &BTreeMap<PathBuf, (String, String, MeanMaps)>,
    style: OverlayStyle,
    textures: &mut BTreeMap<(PathBuf, u8), [egui::TextureHandle; 2]>,
) {
    for (dir, (label, method, maps)) in means {
        let key = (dir.clone(), style.colormap as u8);
        let pair = textures.entry(key).or_insert_with(|| {
            [&maps.real, &maps.fake].map(|m| {
                let image = colored(&m.values, m.width, m.height, style.colormap);
                texture(ui.ctx(), &format!("mean-{}", dir.display()), &image)
            })
        });
        ui.strong(format!("{label} — {method}: mean maps"));
        let counts = [maps.real_images, maps.fake_images];
        ui.horizontal_top(|ui| {
            for ((t, class), count) in pair.iter().zip(crate::CLASS_NAMES).zip(counts) {
                ui.vertical(|ui| {
                    ui.add(egui::Image::new(t).fit_to_exact_size(egui::vec2(192.0, 192.0)));
                    ui.label(format!("{class} · mean of {count} images"));
                });
            }
        });
    }
}

/// The faithfulness of each measured run and method.
pub fn faithfulness_ui(
    ui: &mut egui::Ui,
    reports: &BTreeMap<PathBuf, (String, FaithfulnessReport)>,
) {
    if reports.is_empty() {
        return;
    }
    let percent = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{:.1} %", 100.0 * v));
    egui::Grid::new("faithfulness")
        .striped(true)
        .show(ui, |ui| {
            for head in [
                "run",
                "method",
                "fakes",
                "pointing game",
                "random point",
                "energy in mask",
                "deletion AUC",
            ] {
                ui.strong(head);
            }
            ui.end_row();
            for (label, r) in reports.values() {
                ui.label(label);
                ui.label(&r.method);
                ui.label(format!("{} ({} masked)", r.fakes, r.masked));
                ui.label(percent(r.pointing_rate));
                ui.label(percent(r.random_pointing_rate));
                ui.label(percent(r.energy_inside));
                ui.label(format!("{:.3}", r.deletion_area));
                ui.end_row();
            }
        });
    ui.weak(
        "Pointing game: the map's maximum inside the manipulation mask (random point: the mask's \
         share of the image). Deletion AUC: the fake score as the map's top pixels are removed \
         (lower is more faithful).",
    );
}
