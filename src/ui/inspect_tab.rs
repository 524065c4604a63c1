//! The Inspect tab: drop photos (or a folder, or pick them, or paste a path); each becomes a
//! card with the photo and its face boxes, the crop the detectors saw, and every ticked
//! detector's verdict, fake probability and threshold, with its heatmap over the crop on a
//! toggle. Cards fill in as the worker answers; drops made meanwhile wait in a queue.

use std::collections::{BTreeSet, VecDeque};
use std::path::{Path, PathBuf};

use super::run_list::{Catalog, run_checkbox};
use crate::explain::Method;
use crate::explain::render::{OverlayStyle, overlay};
use crate::inspect::inputs::{Inputs, expand_inputs};
use crate::inspect::photo::InputOverride;
use crate::inspect::verdict::Decision;
use crate::runs::RunEntry;
use crate::runs::catalog::default_run;
use crate::worker::inspect_jobs::{InspectRequest, InspectedPhoto, RunVerdict};

/// Files sent to the worker per request (the rest wait, so Stop and new choices apply soon).
const FILES_PER_REQUEST: usize = 8;

/// A dropped file and what is known of it.
pub struct Card {
    pub id: u64,
    pub path: PathBuf,
    pub result: Option<Result<InspectedPhoto, String>>,
    textures: Option<Vec<egui::TextureHandle>>,
}

/// The heatmap drawn over each crop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OverlayChoice {
    None,
    Saliency,
    GradCam,
}

pub struct InspectTab {
    pub runs: Vec<RunEntry>,
    pub selected: BTreeSet<PathBuf>,
    pub cards: Vec<Card>,
    /// Card ids waiting to be judged (with a face choice when re-judging).
    queue: VecDeque<(u64, Option<usize>)>,
    pub running: bool,
    pub crop: InputOverride,
    /// Half-width of the unsure band around each threshold.
    pub unsure_band: f64,
    pub overlay: OverlayChoice,
    pub style: OverlayStyle,
    pub path_text: String,
    pub progress: Option<(String, usize, usize)>,
    pub error: Option<String>,
    next_id: u64,
    /// Dropped folders being listed off the UI thread.
    listings: Vec<crossbeam_channel::Receiver<Inputs>>,
    catalog: Catalog,
    /// The first card of the latest drop: the view scrolls to it once.
    scroll_to: Option<u64>,
}

impl Default for InspectTab {
    fn default() -> Self {
        InspectTab {
            runs: Vec::new(),
            selected: BTreeSet::new(),
            cards: Vec::new(),
            queue: VecDeque::new(),
            running: false,
            crop: InputOverride::Own,
            unsure_band: crate::inspect::verdict::DEFAULT_UNSURE_BAND,
            overlay: OverlayChoice::Saliency,
            style: OverlayStyle::default(),
            path_text: String::new(),
            progress: None,
            error: None,
            next_id: 0,
            listings: Vec::new(),
            catalog: Catalog::default(),
            scroll_to: None,
        }
    }
}

impl InspectTab {
    /// Adds a run folder from anywhere; it is ticked once loaded.
    pub fn add_run(&mut self, ctx: &egui::Context, dir: PathBuf) {
        self.catalog.add(ctx, dir);
    }

    /// Adds files (folders are walked) as cards waiting for their verdicts.
    /// Adds files as cards at once; folders are walked on a thread of their own, and their
    /// files arrive as cards when listed.
    pub fn add_paths(&mut self, ctx: &egui::Context, paths: &[PathBuf]) {
        let (folders, files): (Vec<PathBuf>, Vec<PathBuf>) =
            paths.iter().cloned().partition(|p| p.is_dir());
        self.add_listed(Inputs {
            files,
            errors: Vec::new(),
        });
        if folders.is_empty() {
            return;
        }
        let (tx, rx) = crossbeam_channel::bounded(1);
        let listed = move || expand_inputs(&folders);
        match super::background::spawn(ctx, "fakelens-list-drop", tx, listed) {
            Ok(()) => self.listings.push(rx),
            Err(e) => self.error = Some(format!("cannot start a thread to list the folder: {e}")),
        }
    }

    /// Cards for the folders listed since the last frame.
    fn take_listings(&mut self) {
        let mut listed = Vec::new();
        self.listings.retain(|rx| match rx.try_recv() {
            Ok(inputs) => {
                listed.push(inputs);
                false
            }
            Err(crossbeam_channel::TryRecvError::Empty) => true,
            Err(crossbeam_channel::TryRecvError::Disconnected) => false,
        });
        for inputs in listed {
            self.add_listed(inputs);
        }
    }

    fn add_listed(&mut self, inputs: Inputs) {
        for path in inputs.files {
            let id = self.next_id;
            self.next_id += 1;
            self.scroll_to.get_or_insert(id);
            self.cards.push(Card {
                id,
                path,
                result: None,
                textures: None,
            });
            self.queue.push_back((id, None));
        }
        if let Some((dir, reason)) = inputs.errors.first() {
            self.error = Some(format!("{}: {reason}", dir.display()));
        }
    }

    pub fn on_inspected(&mut self, id: u64, result: Result<InspectedPhoto, String>) {
        if let Some(card) = self.cards.iter_mut().find(|c| c.id == id) {
            card.result = Some(result);
            card.textures = None;
        }
    }

    /// The worker finished a request (or failed it).
    pub fn on_done(&mut self) {
        self.running = false;
        self.progress = None;
    }

    pub fn fail(&mut self, error: String) {
        self.on_done();
        self.error = Some(error);
    }

    /// Whether cards are waiting or being judged.
    pub fn busy(&self) -> bool {
        if !self.listings.is_empty() {
            return true;
        }
        self.running || !self.queue.is_empty()
    }

    /// The next request for the worker, when it is free and cards wait.
    pub fn next_request(&mut self) -> Option<InspectRequest> {
        if self.running || self.queue.is_empty() || self.selected.is_empty() {
            return None;
        }
        // One request carries cards of the same face choice.
        let face = self.queue.front().and_then(|(_, f)| *f);
        let mut files = Vec::new();
        while files.len() < FILES_PER_REQUEST && self.queue.front().is_some_and(|(_, f)| *f == face)
        {
            if let Some((id, _)) = self.queue.pop_front()
                && let Some(card) = self.cards.iter().find(|c| c.id == id)
            {
                files.push((id, card.path.clone()));
            }
        }
        self.running = true;
        Some(InspectRequest {
            files,
            runs: self
                .runs
                .iter()
                .filter(|r| self.selected.contains(&r.dir))
                .map(|r| r.dir.clone())
                .collect(),
            crop: self.crop,
            unsure_band: self.unsure_band,
            face,
            method: match self.overlay {
                OverlayChoice::None => None,
                OverlayChoice::Saliency => Some(Method::Saliency),
                OverlayChoice::GradCam => Method::parse("gradcam", None),
            },
        })
    }

    /// Drops what is queued (the running request is stopped by the worker's cancel).
    pub fn stop(&mut self) {
        self.queue.clear();
    }

    /// Judges every card again (after the runs, crop or overlay changed).
    fn rejudge_all(&mut self) {
        self.queue = self.cards.iter().map(|c| (c.id, None)).collect();
        for card in &mut self.cards {
            card.result = None;
            card.textures = None;
        }
    }

    /// Lists the runs in `runs_dir` once (in the background), ticking the bundled detector or
    /// the newest run when the first list arrives with none ticked.
    pub fn ui_scan(&mut self, ctx: &egui::Context, runs_dir: &Path) {
        self.catalog.scan_once(ctx, runs_dir);
        let applied = self.catalog.apply(&mut self.runs, &mut self.selected);
        if let Some(e) = applied.errors.into_iter().next() {
            self.error = Some(e);
        }
        if applied.first_scan
            && self.selected.is_empty()
            && let Some(newest) = default_run(&self.runs)
        {
            self.selected.insert(newest.dir.clone());
        }
    }

    /// Whether the detector list is still being read.
    pub fn listing(&self) -> bool {
        self.catalog.busy()
    }

    /// Returns true when the user pressed Stop.
    pub fn ui(&mut self, ui: &mut egui::Ui, runs_dir: &Path) -> bool {
        self.ui_scan(ui.ctx(), runs_dir);
        self.take_listings();
        let mut stop = false;
        let before = (self.selected.clone(), self.crop, self.overlay);
        self.controls_ui(ui, &mut stop);
        if (self.selected.clone(), self.crop, self.overlay) != before {
            self.rejudge_all();
        }
        ui.separator();
        egui::ScrollArea::vertical().show(ui, |ui| {
            if self.cards.is_empty() {
                ui.weak("Drop photos or a folder on the window, or use Open images…");
            }
            let mut rejudge = None;
            for card in &mut self.cards {
                if self.scroll_to == Some(card.id) {
                    ui.scroll_to_cursor(Some(egui::Align::TOP));
                    self.scroll_to = None;
                }
                card_ui(ui, card, self.style, &mut rejudge);
                ui.separator();
            }
            if let Some((id, face)) = rejudge {
                if let Some(card) = self.cards.iter_mut().find(|c| c.id == id) {
                    card.result = None;
                    card.textures = None;
                }
                self.queue.push_front((id, Some(face)));
            }
        });
        stop
    }

    fn controls_ui(&mut self, ui: &mut egui::Ui, stop: &mut bool) {
        ui.horizontal_wrapped(|ui| {
            if ui.button("Open images…").clicked()
                && let Some(files) = rfd::FileDialog::new()
                    .add_filter("images", &["jpg", "jpeg", "png", "bmp", "webp", "gif"])
                    .pick_files()
            {
                self.add_paths(ui.ctx(), &files);
            }
            if ui.button("Open folder…").clicked()
                && let Some(dir) = rfd::FileDialog::new().pick_folder()
            {
                self.add_paths(ui.ctx(), &[dir]);
            }
            let field = ui.add(
                egui::TextEdit::singleline(&mut self.path_text)
                    .hint_text("or paste a path")
                    .desired_width(260.0),
            );
            let entered = field.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if (ui.button("Add").clicked() || entered) && !self.path_text.trim().is_empty() {
                let path = PathBuf::from(self.path_text.trim());
                self.add_paths(ui.ctx(), &[path]);
                self.path_text.clear();
            }
            if ui.button("Clear").clicked() {
                self.cards.clear();
                self.queue.clear();
            }
            if self.busy() && ui.button("Stop").clicked() {
                self.stop();
                *stop = true;
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Detectors:");
            if self.runs.is_empty() && self.catalog.busy() {
                ui.weak("reading the runs folder…");
            } else if self.runs.is_empty() {
                ui.weak("none yet — train one in the Training tab");
            }
            for entry in &self.runs {
                run_checkbox(ui, entry, entry.name(), &mut self.selected);
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Input:");
            for choice in [
                InputOverride::Own,
                InputOverride::Face,
                InputOverride::Whole,
            ] {
                ui.selectable_value(&mut self.crop, choice, choice.label());
            }
            ui.separator();
            ui.label("Heatmap:");
            ui.selectable_value(&mut self.overlay, OverlayChoice::None, "off");
            ui.selectable_value(&mut self.overlay, OverlayChoice::Saliency, "saliency");
            ui.selectable_value(&mut self.overlay, OverlayChoice::GradCam, "Grad-CAM");
            ui.add(egui::Slider::new(&mut self.style.alpha, 0.0..=1.0).text("heatmap opacity"));
        });
        if let Some((stage, done, total)) = &self.progress {
            ui.add(
                egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32).text(format!(
                    "{stage} ({done}/{total}; {} queued)",
                    self.queue.len()
                )),
            );
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    }
}

fn texture(ctx: &egui::Context, name: String, image: &image::RgbImage) -> egui::TextureHandle {
    let size = [image.width() as usize, image.height() as usize];
    ctx.load_texture(
        name,
        egui::ColorImage::from_rgb(size, image.as_raw()),
        egui::TextureOptions::LINEAR,
    )
}

/// The colour of a decision, shared by the verdict badge and the colour key.
pub fn decision_color(decision: Decision) -> egui::Color32 {
    match decision {
        Decision::Fake => egui::Color32::from_rgb(220, 70, 60),
        Decision::Real => egui::Color32::from_rgb(60, 170, 100),
        Decision::Unsure => egui::Color32::from_rgb(220, 160, 40),
    }
}

/// Side of the crop and heatmap thumbnails on a card.
const THUMB_SIDE: f32 = 150.0;

fn card_ui(
    ui: &mut egui::Ui,
    card: &mut Card,
    style: OverlayStyle,
    rejudge: &mut Option<(u64, usize)>,
) {
    ui.strong(card.path.display().to_string());
    let Some(result) = &card.result else {
        ui.horizontal(|ui| {
            ui.spinner();
            ui.weak("waiting for its verdict…");
        });
        return;
    };
    let photo = match result {
        Ok(photo) => photo,
        Err(error) => {
            ui.colored_label(ui.visuals().error_fg_color, error);
            return;
        }
    };
    let textures = card.textures.get_or_insert_with(|| {
        let mut list = vec![texture(
            ui.ctx(),
            format!("inspect-{}-photo", card.id),
            &photo.preview,
        )];
        for (i, v) in photo.verdicts.iter().enumerate() {
            list.push(texture(
                ui.ctx(),
                format!("inspect-{}-input-{i}", card.id),
                &v.input,
            ));
            let shown = match &v.map {
                Some(map) => overlay(&v.input, &map.normalized(), style),
                None => (*v.input).clone(),
            };
            list.push(texture(
                ui.ctx(),
                format!("inspect-{}-map-{i}", card.id),
                &shown,
            ));
        }
        list
    });
    ui.horizontal_top(|ui| {
        let size = egui::vec2(photo.preview.width() as f32, photo.preview.height() as f32);
        let response = ui.add(egui::Image::new(&textures[0]).fit_to_exact_size(size));
        let painter = ui.painter_at(response.rect);
        for (i, b) in photo.faces.iter().enumerate() {
            let s = photo.preview_scale;
            let rect = egui::Rect::from_min_size(
                response.rect.min + egui::vec2(b.x as f32 * s, b.y as f32 * s),
                egui::vec2(b.width as f32 * s, b.height as f32 * s),
            );
            let color = if Some(i) == photo.face {
                egui::Color32::from_rgb(80, 220, 80)
            } else {
                egui::Color32::from_rgb(220, 200, 60)
            };
            painter.rect_stroke(
                rect,
                0.0,
                egui::Stroke::new(2.0, color),
                egui::StrokeKind::Outside,
            );
        }
        ui.vertical(|ui| {
            ui.label(format!(
                "{}×{} px; {} face(s) found; {:.0} ms",
                photo.width,
                photo.height,
                photo.faces.len(),
                photo.elapsed_ms
            ));
            if let Some(note) = &photo.note {
                ui.colored_label(ui.visuals().warn_fg_color, note);
            }
            if photo.faces.len() > 1 {
                ui.horizontal(|ui| {
                    ui.label("judge face:");
                    for i in 0..photo.faces.len() {
                        if ui
                            .selectable_label(Some(i) == photo.face, format!("{}", i + 1))
                            .clicked()
                        {
                            *rejudge = Some((card.id, i));
                        }
                    }
                });
            }
            for (i, v) in photo.verdicts.iter().enumerate() {
                ui.separator();
                verdict_ui(ui, style, v, &textures[1 + 2 * i], &textures[2 + 2 * i]);
            }
            for (dir, error) in &photo.failures {
                ui.separator();
                ui.colored_label(
                    ui.visuals().error_fg_color,
                    format!("{}: no verdict: {error}", dir.display()),
                );
            }
        });
    });
}

/// One detector's answer: the verdict badge first and large, then the probability, what it
/// saw and learned from, and (at fixed places) its input and its heatmap.
fn verdict_ui(
    ui: &mut egui::Ui,
    style: OverlayStyle,
    v: &RunVerdict,
    input: &egui::TextureHandle,
    map: &egui::TextureHandle,
) {
    let decision = v.verdict.decision;
    ui.horizontal_top(|ui| {
        ui.add(egui::Image::new(input).fit_to_exact_size(egui::vec2(THUMB_SIDE, THUMB_SIDE)))
            .on_hover_text(format!("what the detector saw: {}", v.framing));
        ui.add(egui::Image::new(map).fit_to_exact_size(egui::vec2(THUMB_SIDE, THUMB_SIDE)))
            .on_hover_text(if v.map.is_some() {
                "heatmap: where the fake score is most sensitive (key below the verdict)"
            } else {
                "heatmap off"
            });
        ui.vertical(|ui| {
            let badge = egui::RichText::new(decision.name().to_uppercase())
                .size(26.0)
                .strong()
                .color(egui::Color32::WHITE)
                .background_color(decision_color(decision));
            ui.label(badge);
            ui.label(
                egui::RichText::new(format!(
                    "fake probability {:.1} %  (threshold {:.1} %)",
                    v.verdict.fake_probability * 100.0,
                    v.verdict.threshold * 100.0
                ))
                .size(15.0),
            )
            .on_hover_text(format!(
                "calibrated; the model's own softmax: {:.3}. Threshold: {}",
                v.verdict.raw_fake_probability, v.threshold_source
            ));
            ui.label(&v.verdict.run);
            let val = v
                .provenance
                .val_accuracy
                .map(|a| format!("; val accuracy {:.1} %", a * 100.0))
                .unwrap_or_default();
            ui.weak(format!(
                "sees the {}; trained on {}{val}",
                v.framing, v.provenance.trained_on
            ));
            if v.provenance.demo_only {
                ui.colored_label(
                    ui.visuals().warn_fg_color,
                    "⚠ trained only on synthetic demo faces: its verdicts on real photos mean \
                     nothing",
                );
            }
            if v.map.is_some() {
                colour_key(ui, style.colormap);
            }
        });
    });
}

/// The heatmap's colour key: a strip from low to high.
fn colour_key(ui: &mut egui::Ui, colormap: crate::explain::colormap::Colormap) {
    ui.horizontal(|ui| {
        ui.weak("low");
        let (rect, _) = ui.allocate_exact_size(egui::vec2(90.0, 10.0), egui::Sense::hover());
        let painter = ui.painter_at(rect);
        let steps = 30;
        for i in 0..steps {
            let t = i as f32 / (steps - 1) as f32;
            let [r, g, b] = colormap.color(t);
            let x0 = rect.left() + rect.width() * i as f32 / steps as f32;
            let x1 = rect.left() + rect.width() * (i + 1) as f32 / steps as f32;
            painter.rect_filled(
                egui::Rect::from_min_max(egui::pos2(x0, rect.top()), egui::pos2(x1, rect.bottom())),
                0.0,
                egui::Color32::from_rgb(r, g, b),
            );
        }
        ui.weak("high");
    });
}
