//! The Dataset tab: choose a folder (dialog or typed path; the demo set by default), per-split
//! class counts as numbers and a bar chart, a lazily loaded thumbnail grid filtered by split
//! and class, a large preview of the clicked image, and the list of unreadable files.

use std::path::{Path, PathBuf};

use egui_plot::{Bar, BarChart, Legend, Plot};

use super::thumbnails::{Thumb, Thumbnails};
use crate::data::{Sample, Split, Unreadable};
use crate::format;
use crate::worker::DatasetSummary;

/// Side of a grid thumbnail, in pixels.
const THUMB_SIZE: u32 = 96;
/// Side of the preview image.
const PREVIEW_SIZE: u32 = 320;

/// What the user asked the app to do.
#[derive(Clone, Debug, PartialEq)]
pub enum DatasetAction {
    Open(PathBuf),
    OpenDemo,
}

#[derive(Default)]
pub struct DatasetTab {
    pub path_text: String,
    /// The folder currently shown.
    pub root: Option<PathBuf>,
    pub summary: Option<DatasetSummary>,
    /// Decoding progress: (split, done, total).
    pub progress: Option<(String, usize, usize)>,
    pub unreadable: Option<Vec<Unreadable>>,
    /// Files in which no face was found (face-crop runs use them whole), of how many.
    pub no_face: Option<(Vec<PathBuf>, usize)>,
    pub error: Option<String>,
    filter_split: Option<Split>,
    filter_class: Option<u32>,
    filtered: Vec<Sample>,
    selected: Option<Sample>,
    /// File size and pixel dimensions of the selected image, read once when it is clicked.
    selected_info: (Option<u64>, Option<(u32, u32)>),
    loading: bool,
    clock: Option<crate::format::StageClock>,
    /// Thumbnails per row in the last frame.
    pub grid_columns: usize,
}

impl DatasetTab {
    /// A dataset is being opened; `None` is the built-in demo data. The open one stays
    /// shown until the new one has opened (a mistyped folder only shows its error).
    pub fn begin_load(&mut self, root: Option<&Path>) {
        self.path_text = root.map(|r| r.display().to_string()).unwrap_or_default();
        self.error = None;
        self.progress = None;
        self.loading = true;
    }

    pub fn is_loading(&self) -> bool {
        self.loading
    }

    pub fn set_summary(&mut self, summary: DatasetSummary) {
        if self.root.as_deref() != Some(summary.root.as_path()) {
            self.unreadable = None;
            self.no_face = None;
            self.selected = None;
            self.selected_info = (None, None);
        }
        self.path_text = summary.root.display().to_string();
        self.root = Some(summary.root.clone());
        self.summary = Some(summary);
        self.refilter();
    }

    pub fn set_scanned(
        &mut self,
        root: &Path,
        unreadable: Vec<Unreadable>,
        no_face: Vec<PathBuf>,
        images: usize,
    ) {
        if self.root.as_deref() == Some(root) {
            self.unreadable = Some(unreadable);
            self.no_face = Some((no_face, images));
            self.progress = None;
            self.loading = false;
        }
    }

    pub fn fail(&mut self, error: String) {
        self.error = Some(error);
        self.progress = None;
        self.loading = false;
    }

    /// `[real, fake]` counts per split, as shown.
    pub fn counts(&self) -> Vec<(Split, [usize; 2])> {
        self.summary
            .as_ref()
            .map(|s| s.counts())
            .unwrap_or_default()
    }

    fn refilter(&mut self) {
        self.filtered = self
            .summary
            .iter()
            .flat_map(|s| s.splits.iter())
            .filter(|(split, _)| self.filter_split.is_none_or(|f| f == *split))
            .flat_map(|(_, samples)| samples.iter())
            .filter(|s| self.filter_class.is_none_or(|c| c == s.label))
            .cloned()
            .collect();
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, thumbs: &mut Thumbnails) -> Option<DatasetAction> {
        let mut action = None;
        ui.horizontal(|ui| {
            let label = ui.label("Dataset folder");
            let edit = ui.add(egui::TextEdit::singleline(&mut self.path_text).desired_width(420.0));
            let edit = edit.labelled_by(label.id);
            let entered = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.button("Open").clicked() || entered {
                action = Some(DatasetAction::Open(PathBuf::from(self.path_text.trim())));
            }
            if ui.button("Browse…").clicked()
                && let Some(dir) = rfd::FileDialog::new().pick_folder()
            {
                action = Some(DatasetAction::Open(dir));
            }
            if ui.button("Demo data").clicked() {
                action = Some(DatasetAction::OpenDemo);
            }
        });
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if let Some((stage, done, total)) = &self.progress {
            let fraction = *done as f32 / (*total).max(1) as f32;
            let text = crate::format::StageClock::text(&mut self.clock, stage, *done, *total);
            ui.add(egui::ProgressBar::new(fraction).text(text));
        }
        if self.summary.is_none() {
            if self.loading {
                ui.spinner();
            }
            return action;
        }
        egui::Panel::right("dataset-preview")
            .default_size(360.0)
            .show(ui, |ui| self.preview_ui(ui, thumbs));
        self.counts_ui(ui);
        self.filter_ui(ui);
        self.grid_ui(ui, thumbs);
        action
    }

    fn counts_ui(&self, ui: &mut egui::Ui) {
        let counts = self.counts();
        ui.horizontal(|ui| {
            egui::Grid::new("counts").striped(true).show(ui, |ui| {
                ui.strong("split");
                ui.strong("real");
                ui.strong("fake");
                ui.strong("total");
                ui.strong("fake share");
                ui.end_row();
                for (split, [real, fake]) in &counts {
                    ui.label(split.name());
                    ui.label(real.to_string());
                    ui.label(fake.to_string());
                    ui.label((real + fake).to_string());
                    ui.label(format::percent(*fake as f64 / (real + fake).max(1) as f64));
                    ui.end_row();
                }
            });
            let bars = |label: u32, offset: f64| -> Vec<Bar> {
                counts
                    .iter()
                    .enumerate()
                    .map(|(i, (split, c))| {
                        Bar::new(i as f64 + offset, c[label as usize] as f64)
                            .width(0.35)
                            .name(split.name())
                    })
                    .collect()
            };
            Plot::new("class-counts")
                .legend(Legend::default())
                .height(150.0)
                .width(360.0)
                .allow_drag(false)
                .allow_zoom(false)
                .allow_scroll(false)
                .show_x(false)
                .x_axis_formatter(|mark, _| {
                    let names = ["train", "val", "test", "all"];
                    let i = mark.value.round();
                    if (mark.value - i).abs() < 1e-6 && i >= 0.0 {
                        names
                            .get(i as usize)
                            .map(|s| s.to_string())
                            .unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .show(ui, |plot| {
                    plot.bar_chart(
                        BarChart::new("real", bars(crate::LABEL_REAL, -0.18))
                            .color(egui::Color32::from_rgb(70, 130, 200)),
                    );
                    plot.bar_chart(
                        BarChart::new("fake", bars(crate::LABEL_FAKE, 0.18))
                            .color(egui::Color32::from_rgb(220, 90, 60)),
                    );
                });
        });
        if let Some(unreadable) = &self.unreadable {
            let title = format!("Unreadable files: {}", unreadable.len());
            egui::CollapsingHeader::new(title)
                .id_salt("unreadable")
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .max_height(120.0)
                        .show(ui, |ui| {
                            for bad in unreadable {
                                ui.label(format!("{} — {}", bad.path.display(), bad.reason));
                            }
                        });
                });
        }
        if let Some((no_face, images)) = &self.no_face {
            let title = format!(
                "No face found: {} of {images} images (face-crop runs use them whole)",
                no_face.len()
            );
            egui::CollapsingHeader::new(title)
                .id_salt("no-face")
                .show(ui, |ui| {
                    egui::ScrollArea::vertical()
                        .id_salt("no-face-list")
                        .max_height(120.0)
                        .show(ui, |ui| {
                            for path in no_face {
                                ui.label(path.display().to_string());
                            }
                        });
                });
        }
    }

    fn filter_ui(&mut self, ui: &mut egui::Ui) {
        let before = (self.filter_split, self.filter_class);
        ui.horizontal(|ui| {
            let label = ui.label("Show");
            egui::ComboBox::from_id_salt("split-filter")
                .selected_text(self.filter_split.map_or("all splits", |s| s.name()))
                .show_ui(ui, |ui| {
                    ui.selectable_value(&mut self.filter_split, None, "all splits");
                    for (split, _) in self.counts() {
                        ui.selectable_value(&mut self.filter_split, Some(split), split.name());
                    }
                })
                .response
                .labelled_by(label.id);
            ui.selectable_value(&mut self.filter_class, None, "both classes");
            ui.selectable_value(&mut self.filter_class, Some(crate::LABEL_REAL), "real");
            ui.selectable_value(&mut self.filter_class, Some(crate::LABEL_FAKE), "fake");
            ui.weak(format!("{} images", self.filtered.len()));
        });
        if before != (self.filter_split, self.filter_class) {
            self.refilter();
        }
    }

    fn grid_ui(&mut self, ui: &mut egui::Ui, thumbs: &mut Thumbnails) {
        let cell = THUMB_SIZE as f32 + 8.0;
        let per_row = ((ui.available_width() / cell).floor() as usize).max(1);
        self.grid_columns = per_row;
        let rows = self.filtered.len().div_ceil(per_row);
        let ctx = ui.ctx().clone();
        let mut clicked = None;
        egui::ScrollArea::vertical()
            .auto_shrink([false, false])
            .show_rows(ui, cell, rows, |ui, range| {
                for row in range {
                    ui.horizontal(|ui| {
                        let start = row * per_row;
                        let end = (start + per_row).min(self.filtered.len());
                        for sample in &self.filtered[start..end] {
                            let size = egui::vec2(THUMB_SIZE as f32, THUMB_SIZE as f32);
                            let response = match thumbs.get(&ctx, &sample.path, THUMB_SIZE) {
                                Thumb::Ready(texture) => ui.add(
                                    egui::Image::new(texture)
                                        .fit_to_exact_size(size)
                                        .sense(egui::Sense::click()),
                                ),
                                Thumb::Loading => ui.add_sized(size, egui::Spinner::new()),
                                Thumb::Failed(_) => {
                                    ui.add_sized(size, egui::Button::new("unreadable"))
                                }
                            };
                            // A class marker in the corner: red for fake, green for real.
                            let (tag, color) = if sample.label == crate::LABEL_FAKE {
                                ("F", egui::Color32::from_rgb(220, 70, 60))
                            } else {
                                ("R", egui::Color32::from_rgb(60, 170, 100))
                            };
                            let corner = egui::Rect::from_min_size(
                                response.rect.min,
                                egui::vec2(14.0, 14.0),
                            );
                            ui.painter().rect_filled(corner, 2.0, color);
                            ui.painter().text(
                                corner.center(),
                                egui::Align2::CENTER_CENTER,
                                tag,
                                egui::FontId::proportional(10.0),
                                egui::Color32::WHITE,
                            );
                            let response = response.on_hover_text(format!(
                                "{} ({})",
                                sample.path.display(),
                                crate::CLASS_NAMES[sample.label as usize]
                            ));
                            if response.clicked() {
                                clicked = Some(sample.clone());
                            }
                        }
                    });
                }
            });
        if let Some(sample) = clicked {
            self.select(sample);
        }
    }

    /// Shows `sample` in the preview panel (what clicking its thumbnail does).
    pub fn select(&mut self, sample: Sample) {
        self.selected_info = (
            std::fs::metadata(&sample.path).ok().map(|m| m.len()),
            image::image_dimensions(&sample.path).ok(),
        );
        self.selected = Some(sample);
    }

    fn preview_ui(&mut self, ui: &mut egui::Ui, thumbs: &mut Thumbnails) {
        let Some(sample) = self.selected.clone() else {
            ui.weak("Click a thumbnail for a large preview.");
            return;
        };
        let ctx = ui.ctx().clone();
        match thumbs.get(&ctx, &sample.path, PREVIEW_SIZE) {
            Thumb::Ready(texture) => {
                // Never wider than the panel: a wider preview would widen it and reflow
                // the grid beside it.
                let side = (PREVIEW_SIZE as f32).min(ui.available_width());
                ui.add(egui::Image::new(texture).max_size(egui::vec2(side, side)));
            }
            Thumb::Loading => {
                ui.spinner();
            }
            Thumb::Failed(error) => {
                ui.colored_label(ui.visuals().error_fg_color, error);
            }
        }
        let name = sample
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let wrapped =
            |text: egui::RichText| egui::Label::new(text).wrap_mode(egui::TextWrapMode::Wrap);
        ui.add(wrapped(egui::RichText::new(name).strong()));
        ui.label(format!(
            "label: {} ({})",
            crate::CLASS_NAMES[sample.label as usize],
            sample.label
        ));
        if let Some(len) = self.selected_info.0 {
            ui.label(format!("size: {}", format::bytes(len)));
        }
        if let Some((w, h)) = self.selected_info.1 {
            ui.label(format!("dimensions: {w}×{h}"));
        }
        ui.add(wrapped(
            egui::RichText::new(sample.path.display().to_string()).weak(),
        ));
    }
}
