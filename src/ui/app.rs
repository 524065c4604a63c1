//! The app shell: settings that persist, the tab bar, the status line, and the event pump
//! that turns worker events into tab state. Commands chosen by tab UIs are sent after the
//! frame's widgets are drawn.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::compare_tab::{CompareAction, CompareTab};
use super::dataset_tab::{DatasetAction, DatasetTab};
use super::explain_tab::{ExplainAction, ExplainTab};
use super::inspect_tab::InspectTab;
use super::thumbnails::Thumbnails;
use super::training_tab::{TrainingAction, TrainingTab};
use crate::config::TrainConfig;
use crate::device::DeviceChoice;
use crate::worker::{Command, Event, Task, WorkerHandle};

/// The tabs that work today.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
pub enum Tab {
    #[default]
    Dataset,
    Training,
    Compare,
    Explain,
    Inspect,
}

impl Tab {
    pub const ALL: [Tab; 5] = [
        Tab::Dataset,
        Tab::Training,
        Tab::Compare,
        Tab::Explain,
        Tab::Inspect,
    ];
    pub fn label(self) -> &'static str {
        match self {
            Tab::Dataset => "Dataset",
            Tab::Training => "Training",
            Tab::Compare => "Compare",
            Tab::Explain => "Explain",
            Tab::Inspect => "Inspect",
        }
    }
}

impl std::str::FromStr for Tab {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Tab::ALL
            .into_iter()
            .find(|t| t.label().eq_ignore_ascii_case(s))
            .ok_or_else(|| {
                format!("unknown tab '{s}' (dataset, training, compare, explain, inspect)")
            })
    }
}

/// What survives a restart.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Settings {
    /// The settings' format: 0 for settings saved before input profiles, whose training
    /// recipe lacks the framing and photo degradations new runs get.
    #[serde(default)]
    pub version: u32,
    pub tab: Tab,
    /// The dataset last opened; `None` opens the built-in demo data.
    pub data_root: Option<PathBuf>,
    pub train: TrainConfig,
    pub device: DeviceChoice,
    pub runs_dir: PathBuf,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            version: SETTINGS_VERSION,
            tab: Tab::Dataset,
            data_root: None,
            train: TrainConfig::default(),
            device: DeviceChoice::Auto,
            runs_dir: crate::runs::layout::default_runs_dir(),
        }
    }
}

/// The current settings format.
pub const SETTINGS_VERSION: u32 = 2;

impl Settings {
    /// Settings saved by an older version, brought up to date: a recipe saved before input
    /// profiles trains new runs on 1.3× face crops, as the CLI's.
    pub fn upgraded(mut self) -> Settings {
        if self.version < SETTINGS_VERSION {
            let fresh = TrainConfig::default();
            self.train.input = fresh.input;
            self.train.photo_augment = fresh.photo_augment;
            self.version = SETTINGS_VERSION;
        }
        self
    }
}

/// Time the UI spends draining worker events per frame.
const EVENT_BUDGET: Duration = Duration::from_millis(8);

pub struct FakeLensApp {
    pub settings: Settings,
    pub dataset: DatasetTab,
    pub training: TrainingTab,
    pub compare: CompareTab,
    pub explain: ExplainTab,
    pub inspect: InspectTab,
    worker: WorkerHandle,
    thumbnails: Thumbnails,
    /// Messages for the status bar, newest last.
    pub notices: Vec<String>,
    screenshot: Option<PathBuf>,
    screenshot_requested: bool,
    screenshot_done: Arc<AtomicBool>,
    started: Instant,
    /// For the background jobs that repaint when they finish.
    ctx: egui::Context,
}

impl FakeLensApp {
    /// The app with `settings`, its worker and thumbnail threads started, and the dataset
    /// (or the built-in demo data) being opened.
    pub fn new(ctx: &egui::Context, settings: Settings) -> anyhow::Result<FakeLensApp> {
        let settings = settings.upgraded();
        let repaint = ctx.clone();
        let worker = WorkerHandle::spawn(Arc::new(move || repaint.request_repaint()))?;
        let thumbnails = Thumbnails::new(ctx)?;
        let mut app = FakeLensApp {
            ctx: ctx.clone(),
            dataset: DatasetTab::default(),
            training: TrainingTab::new(settings.train.clone()),
            compare: CompareTab::new(),
            explain: ExplainTab::default(),
            inspect: InspectTab::default(),
            settings,
            worker,
            thumbnails,
            notices: Vec::new(),
            screenshot: None,
            screenshot_requested: false,
            screenshot_done: Arc::new(AtomicBool::new(false)),
            started: Instant::now(),
        };
        app.open_dataset(app.settings.data_root.clone());
        Ok(app)
    }

    /// From eframe: restores saved settings.
    pub fn from_creation_context(
        cc: &eframe::CreationContext<'_>,
        tab: Option<Tab>,
        opts: super::WindowOptions,
    ) -> anyhow::Result<FakeLensApp> {
        let mut settings: Settings = cc
            .storage
            .and_then(|s| eframe::get_value(s, eframe::APP_KEY))
            .unwrap_or_default();
        if let Some(tab) = tab {
            settings.tab = tab;
        }
        if let Some(data) = opts.data {
            settings.data_root = Some(data);
        }
        let mut app = FakeLensApp::new(&cc.egui_ctx, settings)?;
        if let Some(run) = opts.run {
            app.training.open_run(&cc.egui_ctx, run);
        }
        // Each is loaded in the background and ticked on arrival (a run that cannot be read
        // says why in its tab); a tab given runs here ticks no default of its own.
        for run in opts.compare {
            app.compare.add_run(&cc.egui_ctx, run);
        }
        for run in opts.explain {
            app.explain.add_run(&cc.egui_ctx, run);
        }
        for run in opts.detector {
            app.inspect.add_run(&cc.egui_ctx, run);
        }
        app.inspect.add_paths(&cc.egui_ctx, &opts.inspect);
        if !app.compare.selected.is_empty() {
            app.compare.evaluate_selected();
        }
        app.screenshot = opts.screenshot;
        Ok(app)
    }

    fn open_dataset(&mut self, root: Option<PathBuf>) {
        self.dataset.begin_load(root.as_deref());
        self.worker.send(Command::LoadDataset { root });
    }

    /// Drains worker events within a small time budget.
    fn pump_events(&mut self) {
        let start = Instant::now();
        while start.elapsed() < EVENT_BUDGET {
            let Some(event) = self.worker.try_recv() else {
                break;
            };
            match event {
                Event::Notice(text) => self.notices.push(text),
                Event::Progress {
                    task: Task::Dataset,
                    stage,
                    done,
                    total,
                } => {
                    self.dataset.progress = Some((stage, done, total));
                }
                Event::Progress {
                    task: Task::Training,
                    stage,
                    done,
                    total,
                } => {
                    self.training.preparing = Some((stage, done, total));
                }
                Event::DatasetLoaded(summary) => {
                    // Remembered only once it opened: a mistyped folder is not reopened at
                    // the next start.
                    self.settings.data_root = (summary.root != crate::data::demo::demo_data_dir())
                        .then(|| summary.root.clone());
                    self.dataset.set_summary(summary)
                }
                Event::DatasetScanned {
                    root,
                    unreadable,
                    no_face,
                    images,
                } => self.dataset.set_scanned(&root, unreadable, no_face, images),
                Event::Failed {
                    task: Task::Dataset,
                    error,
                } => self.dataset.fail(error),
                Event::Failed {
                    task: Task::Training,
                    error,
                } => self.training.fail(error),
                Event::Progress {
                    task: Task::Evaluation,
                    stage,
                    done,
                    total,
                } => self.compare.progress = Some((stage, done, total)),
                Event::Failed {
                    task: Task::Evaluation,
                    error,
                } => self.compare.fail(error),
                Event::Evaluated(outcome) => self.compare.on_evaluated(*outcome),
                Event::RunImported { run_dir } => self.compare.on_imported(&self.ctx, run_dir),
                Event::Progress {
                    task: Task::Explain,
                    stage,
                    done,
                    total,
                } => self.explain.progress = Some((stage, done, total)),
                Event::Failed {
                    task: Task::Explain,
                    error,
                } => self.explain.fail(error),
                Event::Explained(explained) => self.explain.on_explained(*explained),
                Event::Progress {
                    task: Task::Inspect,
                    stage,
                    done,
                    total,
                } => self.inspect.progress = Some((stage, done, total)),
                Event::Failed {
                    task: Task::Inspect,
                    error,
                } => self.inspect.fail(error),
                Event::Inspected { id, result, .. } => self.inspect.on_inspected(id, *result),
                Event::JobDone {
                    task: Task::Inspect,
                } => self.inspect.on_done(),
                Event::JobDone { .. } => {}
                Event::SplitMaps {
                    request,
                    label,
                    result,
                } => self.explain.on_split_maps(request, label, *result),
                Event::Training(e) => self.training.on_event(e),
                Event::TrainingFinished { run_dir, record } => {
                    // The run just trained is what the user compares next (if it saved a
                    // checkpoint).
                    if crate::runs::layout::unusable_reason(&run_dir).is_none() {
                        self.compare.on_imported(&self.ctx, run_dir.clone());
                    }
                    self.training.finish(run_dir, *record)
                }
            }
        }
    }

    /// Draws the whole window into `ui` and carries out what the user chose.
    pub fn show(&mut self, ui: &mut egui::Ui) {
        self.pump_events();
        let ctx = ui.ctx().clone();
        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("FakeLens");
                ui.separator();
                for tab in Tab::ALL {
                    ui.selectable_value(&mut self.settings.tab, tab, tab.label());
                }
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_ui(ui));
        let mut dataset_action = None;
        let mut training_action = None;
        let mut compare_action = None;
        let mut explain_action = None;
        let mut inspect_stop = false;
        egui::CentralPanel::default_margins().show(ui, |ui| match self.settings.tab {
            Tab::Dataset => dataset_action = self.dataset.ui(ui, &mut self.thumbnails),
            Tab::Training => {
                let data_root = self.dataset.root.clone();
                training_action =
                    self.training
                        .ui(ui, data_root.as_deref(), &mut self.settings.device);
            }
            Tab::Compare => {
                let runs_dir = self.settings.runs_dir.clone();
                compare_action = self.compare.ui(ui, &runs_dir);
            }
            Tab::Explain => {
                let runs_dir = self.settings.runs_dir.clone();
                explain_action = self
                    .explain
                    .ui(ui, &runs_dir, self.dataset.summary.as_ref());
            }
            Tab::Inspect => {
                let runs_dir = self.settings.runs_dir.clone();
                inspect_stop = self.inspect.ui(ui, &runs_dir);
            }
        });
        self.take_dropped_files(&ctx);
        self.settings.train = self.training.config.clone();
        match dataset_action {
            Some(DatasetAction::Open(root)) => self.open_dataset(Some(root)),
            Some(DatasetAction::OpenDemo) => {
                self.settings.data_root = None;
                self.open_dataset(None);
            }
            None => {}
        }
        match training_action {
            Some(TrainingAction::Start { data_root }) => {
                self.worker.send(Command::StartTraining {
                    config: self.training.config.clone(),
                    data_root,
                    runs_dir: self.settings.runs_dir.clone(),
                    device: self.settings.device,
                });
            }
            Some(TrainingAction::Resume { run_dir }) => {
                self.worker.send(Command::ResumeTraining {
                    run_dir,
                    device: self.settings.device,
                });
            }
            Some(TrainingAction::Stop) => self.worker.cancel(),
            None => {}
        }
        match compare_action {
            Some(CompareAction::Evaluate(requests)) => self.compare.queue.extend(requests),
            Some(CompareAction::Stop) => {
                self.compare.stop();
                self.worker.cancel();
            }
            Some(CompareAction::ImportCheckpoint { file, model }) => {
                self.worker.send(Command::ImportRun {
                    file,
                    model,
                    runs_dir: self.settings.runs_dir.clone(),
                });
            }
            Some(CompareAction::Export { outcome, out_dir }) => {
                self.worker
                    .send(Command::ExportEvaluation { outcome, out_dir });
            }
            None => {}
        }
        let device = self.settings.device;
        let sent = match explain_action {
            Some(ExplainAction::Image(request)) => {
                self.worker.send(Command::ExplainImage { request, device })
            }
            Some(ExplainAction::Split(requests)) => requests
                .into_iter()
                .all(|request| self.worker.send(Command::SplitMaps { request, device })),
            Some(ExplainAction::Stop) => {
                self.worker.cancel();
                true
            }
            None => true,
        };
        if !sent {
            self.explain
                .fail("the compute thread is busy; try again".into());
        }
        if inspect_stop {
            self.worker.cancel();
        }
        if let Some(request) = self.inspect.next_request()
            && !self.worker.send(Command::Inspect { request, device })
        {
            self.inspect
                .fail("the compute thread is busy; try again".into());
        }
        if let Some(request) = self.compare.next_request() {
            let device = self.settings.device;
            if !self.worker.send(Command::Evaluate { request, device }) {
                self.compare
                    .fail("the compute thread is busy; try again".into());
            }
        }
        self.screenshot_step(&ctx);
    }

    /// Files dropped on the Explain tab open there; anywhere else they are judged in the
    /// Inspect tab.
    fn take_dropped_files(&mut self, ctx: &egui::Context) {
        let dropped: Vec<PathBuf> = ctx.input(|i| {
            i.raw
                .dropped_files
                .iter()
                .map(|f| f.path().to_path_buf())
                .filter(|p| !p.as_os_str().is_empty())
                .collect()
        });
        if dropped.is_empty() {
            return;
        }
        if self.settings.tab == Tab::Explain && dropped.len() == 1 && dropped[0].is_file() {
            self.explain.open_file(dropped[0].clone());
        } else {
            self.settings.tab = Tab::Inspect;
            self.inspect.add_paths(&self.ctx.clone(), &dropped);
        }
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        ui.horizontal(|ui| {
            if let Some(notice) = self.notices.last() {
                ui.label(notice);
                if ui.small_button("dismiss").clicked() {
                    self.notices.clear();
                }
            } else {
                ui.weak("Labels: 0 = real, 1 = fake; fake is the positive class.");
            }
        });
    }

    /// For `--screenshot`: once the window has settled, capture it, save the PNG, and close.
    fn screenshot_step(&mut self, ctx: &egui::Context) {
        if self.screenshot_done.load(Ordering::Relaxed) {
            ctx.send_viewport_cmd(egui::ViewportCommand::Close);
            return;
        }
        let Some(path) = self.screenshot.clone() else {
            return;
        };
        ctx.request_repaint_after(Duration::from_millis(200));
        let settled = !self.dataset.is_loading()
            && self.compare.pending() == 0
            && !self.compare.listing()
            && !self.inspect.listing()
            && !self.explain.busy()
            && !self.inspect.busy()
            && self.started.elapsed() > Duration::from_secs(4);
        if !settled || self.screenshot_requested {
            return;
        }
        self.screenshot_requested = true;
        let done = self.screenshot_done.clone();
        let repaint = ctx.clone();
        ctx.request_screenshot(move |image| {
            let size = [image.size[0] as u32, image.size[1] as u32];
            let bytes: Vec<u8> = image.pixels.iter().flat_map(|c| c.to_array()).collect();
            if let Some(img) = image::RgbaImage::from_raw(size[0], size[1], bytes)
                && let Err(e) = img.save(&path)
            {
                eprintln!("cannot save screenshot {}: {e}", path.display());
            }
            done.store(true, Ordering::Relaxed);
            repaint.request_repaint();
        });
    }
}

impl eframe::App for FakeLensApp {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        self.show(ui);
    }

    fn save(&mut self, storage: &mut dyn eframe::Storage) {
        eframe::set_value(storage, eframe::APP_KEY, &self.settings);
    }
}
