//! The Explain tab: tick one or more runs, pick an image (from the open dataset, a file, or
//! a drop) and a method; each run's map appears over the same picture, side by side, with
//! one zoom and (optionally) one colour scale for all. Per-class mean maps and faithfulness
//! over a split run as background jobs with progress and Stop.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::explain_view::OverlayCache;
use super::run_list::{Catalog, run_checkbox};
use crate::data::Split;
use crate::explain::Method;
use crate::explain::colormap::Colormap;
use crate::explain::faithfulness::FaithfulnessReport;
use crate::explain::grid::{GridChoice, GridTile};
use crate::explain::mean_maps::MeanMaps;
use crate::explain::method::METHOD_NAMES;
use crate::explain::render::OverlayStyle;
use crate::explain::smoothgrad::SmoothGradSettings;
use crate::runs::RunEntry;
use crate::runs::catalog::default_run;
use crate::worker::DatasetSummary;
use crate::worker::explain_jobs::{
    ClassChoice, ExplainImageRequest, ExplainedImage, SplitJobKind, SplitMapsRequest,
    SplitMapsResult,
};

/// What the user asked for this frame.
pub enum ExplainAction {
    Image(ExplainImageRequest),
    Split(Vec<SplitMapsRequest>),
    Stop,
}

/// The image being explained.
#[derive(Clone, Debug, PartialEq)]
pub enum ImageSource {
    /// The `index`-th image of a split of the open dataset.
    Dataset { split: Split, index: usize },
    /// A file the user opened or dropped.
    File(PathBuf),
}

pub struct ExplainTab {
    pub runs: Vec<RunEntry>,
    pub selected: BTreeSet<PathBuf>,
    /// Index into [`METHOD_NAMES`].
    pub method: usize,
    pub layer: String,
    pub smoothgrad: SmoothGradSettings,
    pub class: ClassChoice,
    pub source: ImageSource,
    pub style: OverlayStyle,
    pub shared_scale: bool,
    pub zoom: f32,
    pub result: Option<ExplainedImage>,
    /// Bumped when `result` changes (keys the overlay textures).
    pub(super) generation: u64,
    /// The request whose answer is showing or awaited.
    last_request: Option<(Vec<PathBuf>, PathBuf, String, ClassChoice)>,
    pub image_running: bool,
    /// Split jobs queued or running.
    pub split_pending: usize,
    pub progress: Option<(String, usize, usize)>,
    pub error: Option<String>,
    pub means: BTreeMap<PathBuf, (String, String, MeanMaps)>,
    pub faithfulness: BTreeMap<PathBuf, (String, FaithfulnessReport)>,
    pub overlays: OverlayCache,
    /// How the grid's images are chosen, and the last grid (title, tiles).
    pub grid_choice: GridChoice,
    pub grid: Option<(String, Vec<GridTile>)>,
    pub(super) grid_texture: Option<(OverlayStyle, egui::TextureHandle)>,
    pub(super) mean_textures: BTreeMap<(PathBuf, u8), [egui::TextureHandle; 2]>,
    catalog: Catalog,
    /// Draw the ground-truth mask's outline over the maps, when the image has one.
    pub show_mask: bool,
    /// The split result that just arrived, to scroll to once.
    pub(super) scroll_to: Option<SplitJobKind>,
    /// A new image's maps arrived: show them (the view may be down at the split results).
    scroll_to_image: bool,
}

impl Default for ExplainTab {
    fn default() -> Self {
        ExplainTab {
            runs: Vec::new(),
            selected: BTreeSet::new(),
            method: 2,
            layer: crate::explain::cam::COURSE_LAYER.to_string(),
            smoothgrad: SmoothGradSettings::default(),
            class: ClassChoice::Predicted,
            source: ImageSource::Dataset {
                split: Split::Test,
                index: 0,
            },
            style: OverlayStyle::default(),
            shared_scale: false,
            zoom: 1.0,
            result: None,
            generation: 0,
            last_request: None,
            image_running: false,
            split_pending: 0,
            progress: None,
            error: None,
            means: BTreeMap::new(),
            faithfulness: BTreeMap::new(),
            overlays: OverlayCache::default(),
            grid_choice: GridChoice::default(),
            grid: None,
            grid_texture: None,
            mean_textures: BTreeMap::new(),
            catalog: Catalog::default(),
            show_mask: true,
            scroll_to: None,
            scroll_to_image: false,
        }
    }
}

impl ExplainTab {
    /// The method as chosen.
    pub fn method(&self) -> Method {
        match Method::parse(METHOD_NAMES[self.method.min(3)], Some(&self.layer)) {
            Some(Method::SmoothGrad(_)) => Method::SmoothGrad(self.smoothgrad),
            Some(method) => method,
            None => Method::Saliency,
        }
    }

    pub fn on_explained(&mut self, explained: ExplainedImage) {
        self.image_running = false;
        self.error = explained
            .failures
            .first()
            .map(|(dir, e)| format!("{}: {e}", dir.display()));
        self.result = Some(explained);
        self.generation += 1;
        self.scroll_to_image = true;
    }

    pub fn on_split_maps(
        &mut self,
        request: SplitMapsRequest,
        label: String,
        result: SplitMapsResult,
    ) {
        self.split_pending = self.split_pending.saturating_sub(1);
        self.progress = None;
        self.scroll_to = Some(request.kind);
        match result {
            SplitMapsResult::Mean(maps) => {
                self.mean_textures.retain(|(dir, _), _| dir != &request.run);
                self.means
                    .insert(request.run, (label, request.method.label(), maps));
            }
            SplitMapsResult::Faithfulness(report) => {
                self.faithfulness.insert(request.run, (label, report));
            }
            SplitMapsResult::Grid(tiles) => {
                let pick = match request.kind {
                    SplitJobKind::Grid(choice) => choice.pick.name(),
                    _ => "",
                };
                let title = format!(
                    "{label} — {}, {} images of the {} split ({pick})",
                    request.method.label(),
                    tiles.len(),
                    request.split.name(),
                );
                self.grid = Some((title, tiles));
                self.grid_texture = None;
            }
        }
    }

    pub fn fail(&mut self, error: String) {
        self.image_running = false;
        self.split_pending = 0;
        self.progress = None;
        self.error = Some(error);
    }

    /// Whether an image job is on the worker (the screenshot waits for it).
    pub fn busy(&self) -> bool {
        self.image_running || self.split_pending > 0 || self.catalog.busy()
    }

    /// Adds a run folder from anywhere; it is ticked once loaded.
    pub fn add_run(&mut self, ctx: &egui::Context, dir: PathBuf) {
        self.catalog.add(ctx, dir);
    }

    /// Shows a dropped or opened file.
    pub fn open_file(&mut self, path: PathBuf) {
        self.source = ImageSource::File(path);
    }

    /// The picture's path and label under the current source.
    fn image(&self, dataset: Option<&DatasetSummary>) -> Option<(PathBuf, Option<u32>)> {
        match &self.source {
            ImageSource::File(path) => Some((path.clone(), None)),
            ImageSource::Dataset { split, index } => {
                let samples = &dataset?.splits.iter().find(|(s, _)| s == split)?.1;
                let sample = samples.get((*index).min(samples.len().checked_sub(1)?))?;
                Some((sample.path.clone(), Some(sample.label)))
            }
        }
    }

    /// The image request for the current choices, when it differs from the last one sent.
    fn wanted(&mut self, dataset: Option<&DatasetSummary>) -> Option<ExplainImageRequest> {
        if self.image_running || self.selected.is_empty() {
            return None;
        }
        let (image, label) = self.image(dataset)?;
        let method = self.method();
        let runs: Vec<PathBuf> = self
            .runs
            .iter()
            .filter(|r| self.selected.contains(&r.dir))
            .map(|r| r.dir.clone())
            .collect();
        let key = (
            runs.clone(),
            image.clone(),
            format!("{method:?}"),
            self.class,
        );
        if self.last_request.as_ref() == Some(&key) {
            return None;
        }
        self.last_request = Some(key);
        self.image_running = true;
        Some(ExplainImageRequest {
            runs,
            image,
            label,
            class: self.class,
            method,
        })
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        runs_dir: &Path,
        dataset: Option<&DatasetSummary>,
    ) -> Option<ExplainAction> {
        self.catalog.scan_once(ui.ctx(), runs_dir);
        let applied = self.catalog.apply(&mut self.runs, &mut self.selected);
        if let Some(e) = applied.errors.into_iter().next() {
            self.error = Some(e);
        }
        // Arriving with nothing ticked: the bundled detector (or the newest run).
        if applied.first_scan
            && self.selected.is_empty()
            && let Some(first) = default_run(&self.runs)
        {
            self.selected.insert(first.dir.clone());
        }
        let mut action = None;
        egui::Panel::left("explain-controls")
            .resizable(true)
            .default_size(300.0)
            .show(ui, |ui| {
                egui::ScrollArea::vertical().show(ui, |ui| {
                    self.runs_ui(ui, runs_dir);
                    ui.separator();
                    self.method_ui(ui);
                    ui.separator();
                    self.source_ui(ui, dataset);
                    ui.separator();
                    self.style_ui(ui);
                    ui.separator();
                    action = self.jobs_ui(ui, dataset);
                });
            });
        egui::ScrollArea::both().show(ui, |ui| self.maps_ui(ui));
        if action.is_none() {
            action = self.wanted(dataset).map(ExplainAction::Image);
        }
        action
    }

    fn runs_ui(&mut self, ui: &mut egui::Ui, runs_dir: &Path) {
        ui.horizontal(|ui| {
            ui.strong("Runs");
            if ui.small_button("rescan").clicked() {
                self.catalog.rescan(ui.ctx(), runs_dir);
            }
        });
        if self.runs.is_empty() && self.catalog.busy() {
            ui.weak("Reading the runs folder…");
        } else if self.runs.is_empty() {
            ui.weak("No runs yet: train one in the Training tab.");
        }
        for entry in &self.runs {
            run_checkbox(ui, entry, entry.name(), &mut self.selected);
        }
    }

    fn method_ui(&mut self, ui: &mut egui::Ui) {
        egui::ComboBox::from_label("method")
            .selected_text(METHOD_NAMES[self.method.min(3)])
            .show_ui(ui, |ui| {
                for (i, name) in METHOD_NAMES.iter().enumerate() {
                    ui.selectable_value(&mut self.method, i, *name);
                }
            });
        // The layer controls stay in place for every method (greyed where the method has no
        // layer), so the controls below do not jump when the method changes.
        let is_cam = self.method().is_cam();
        ui.add_enabled_ui(is_cam, |ui| {
            let mut kinds: Vec<crate::config::ModelKind> = Vec::new();
            for r in self.runs.iter().filter(|r| self.selected.contains(&r.dir)) {
                if !kinds.contains(&r.record.model) {
                    kinds.push(r.record.model);
                }
            }
            let mut layers: Vec<&str> = Vec::new();
            for kind in &kinds {
                for name in crate::models::spatial_layer_names(*kind) {
                    if kinds
                        .iter()
                        .all(|k| crate::models::spatial_layer_names(*k).contains(&name))
                        && !layers.contains(&name)
                    {
                        layers.push(name);
                    }
                }
            }
            egui::ComboBox::from_label("layer")
                .selected_text(self.layer.clone())
                .show_ui(ui, |ui| {
                    for name in layers {
                        ui.selectable_value(&mut self.layer, name.to_string(), name);
                    }
                });
            ui.horizontal(|ui| {
                if ui.small_button("course layer (conv3)").clicked() {
                    self.layer = crate::explain::cam::COURSE_LAYER.to_string();
                }
                let last = kinds
                    .first()
                    .map(|k| crate::models::spatial_layer_names(*k))
                    .and_then(|names| names.last().copied());
                if let Some(last) = last
                    && ui.small_button("last conv layer").clicked()
                {
                    self.layer = last.to_string();
                }
            });
        })
        .response
        .on_disabled_hover_text("saliency and SmoothGrad explain the input: no layer to choose");
        if matches!(self.method(), Method::SmoothGrad(_)) {
            ui.add(egui::Slider::new(&mut self.smoothgrad.samples, 1..=64).text("noisy copies"));
            ui.add(
                egui::Slider::new(&mut self.smoothgrad.noise_fraction, 0.0..=0.5)
                    .text("σ (share of range)"),
            );
        }
        egui::ComboBox::from_label("explain the class")
            .selected_text(format!("{:?}", self.class).to_lowercase())
            .show_ui(ui, |ui| {
                for class in [
                    ClassChoice::Predicted,
                    ClassChoice::True,
                    ClassChoice::Real,
                    ClassChoice::Fake,
                ] {
                    ui.selectable_value(
                        &mut self.class,
                        class,
                        format!("{class:?}").to_lowercase(),
                    );
                }
            });
    }

    fn source_ui(&mut self, ui: &mut egui::Ui, dataset: Option<&DatasetSummary>) {
        ui.strong("Image");
        if let ImageSource::Dataset { split, index } = &mut self.source {
            let len = dataset
                .and_then(|d| d.splits.iter().find(|(s, _)| s == split))
                .map_or(0, |(_, samples)| samples.len());
            egui::ComboBox::from_label("split")
                .selected_text(split.name())
                .show_ui(ui, |ui| {
                    for s in [Split::Train, Split::Val, Split::Test] {
                        ui.selectable_value(split, s, s.name());
                    }
                });
            ui.horizontal(|ui| {
                if ui.button("previous").clicked() {
                    *index = index.saturating_sub(1);
                }
                let label = ui.label("image");
                // Shown 1-based ("image 1 of 543"), kept 0-based.
                let mut shown = *index + 1;
                ui.add(egui::DragValue::new(&mut shown).range(1..=len.max(1)))
                    .labelled_by(label.id);
                *index = shown.saturating_sub(1);
                ui.label(format!("of {len}"));
                if ui.button("next").clicked() {
                    *index = (*index + 1).min(len.saturating_sub(1));
                }
            });
        } else if ui.button("back to the dataset").clicked() {
            self.source = ImageSource::Dataset {
                split: Split::Test,
                index: 0,
            };
        }
        if ui.button("Open image…").clicked()
            && let Some(file) = rfd::FileDialog::new()
                .add_filter("images", &["jpg", "jpeg", "png", "bmp", "webp", "gif"])
                .pick_file()
        {
            self.open_file(file);
        }
        ui.weak("Or drop an image on the window.");
    }

    fn style_ui(&mut self, ui: &mut egui::Ui) {
        ui.strong("View");
        egui::ComboBox::from_label("colormap")
            .selected_text(self.style.colormap.name())
            .show_ui(ui, |ui| {
                for c in Colormap::ALL {
                    ui.selectable_value(&mut self.style.colormap, c, c.name());
                }
            });
        ui.add(egui::Slider::new(&mut self.style.alpha, 0.0..=1.0).text("overlay opacity"));
        ui.add(
            egui::Slider::new(&mut self.style.top_fraction, 0.01..=1.0)
                .text("show top share")
                .custom_formatter(|v, _| format!("{:.0} %", v * 100.0)),
        );
        ui.checkbox(&mut self.shared_scale, "one colour scale for all runs")
            .on_hover_text("Scale every map by the largest value of all, so strengths compare");
        ui.add(egui::Slider::new(&mut self.zoom, 0.5..=3.0).text("zoom (all)"));
        if self.result.as_ref().is_some_and(|r| r.mask.is_some()) {
            ui.checkbox(&mut self.show_mask, "outline the manipulated region")
                .on_hover_text("The ground-truth mask stored beside this fake, drawn in white");
        }
    }

    fn maps_ui(&mut self, ui: &mut egui::Ui) {
        if std::mem::take(&mut self.scroll_to_image) {
            ui.scroll_to_cursor(Some(egui::Align::TOP));
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if self.selected.is_empty() {
            ui.weak("Tick one or more runs to see where each looks.");
        }
        if let Some(result) = &self.result {
            let label = result
                .request
                .label
                .map(|l| format!(" (labelled {})", crate::CLASS_NAMES[l as usize]))
                .unwrap_or_default();
            ui.label(format!(
                "{}{label} — {}{}",
                result.request.image.display(),
                result.request.method.label(),
                if self.image_running {
                    " (updating…)"
                } else {
                    ""
                }
            ));
            let size = egui::vec2(256.0, 256.0) * self.zoom;
            let textures = self.overlays.textures(
                ui.ctx(),
                result,
                self.generation,
                self.style,
                self.shared_scale,
                self.show_mask,
            );
            ui.horizontal_top(|ui| {
                for (map, texture) in result.maps.iter().zip(textures) {
                    ui.vertical(|ui| {
                        ui.strong(&map.label);
                        let verdict = if map.fake_probability >= 0.5 {
                            "fake"
                        } else {
                            "real"
                        };
                        ui.label(format!(
                            "fake probability {:.3}: {verdict}; map of the {} class",
                            map.fake_probability,
                            crate::CLASS_NAMES[map.class as usize]
                        ));
                        ui.add(egui::Image::new(texture).fit_to_exact_size(size));
                    });
                }
            });
        } else if self.image_running {
            ui.spinner();
        }
        ui.separator();
        self.split_results_ui(ui);
    }
}
