//! The Training tab: model, optimiser and hyperparameters (with the named presets); Start and
//! Stop; a progress bar with epoch, batch, images/s and ETA; live curves of loss and accuracy
//! per epoch for train/val/test and the per-batch training loss; the collapse warning; and the
//! best-val epoch with its test accuracy when the run ends.

use std::path::{Path, PathBuf};

use egui_plot::{Legend, Line, Plot, PlotPoints, Points};

use crate::config::{ModelKind, OptimizerKind, Preset, TrainConfig};
use crate::device::DeviceChoice;
use crate::format;
use crate::runs::{EpochRecord, RunRecord, RunStatus};
use crate::train::BatchProgress;
use crate::worker::TrainEventData;

/// What the user asked the app to do.
#[derive(Clone, Debug, PartialEq)]
pub enum TrainingAction {
    Start { data_root: PathBuf },
    Stop,
    Resume { run_dir: PathBuf },
}

pub struct TrainingTab {
    pub config: TrainConfig,
    pub running: bool,
    stopping: bool,
    pub preparing: Option<(String, usize, usize)>,
    preparing_clock: Option<format::StageClock>,
    pub progress: Option<BatchProgress>,
    evaluating: Option<crate::train::EvalProgress>,
    /// Per-epoch results of the current (or last) run.
    pub epochs: Vec<EpochRecord>,
    /// (global step, loss) of every reported batch.
    pub batch_losses: Vec<[f64; 2]>,
    pub collapse: Option<String>,
    pub error: Option<String>,
    /// An earlier run's record being read off the UI thread.
    opening: Option<crossbeam_channel::Receiver<super::run_list::OpenedRun>>,
    pub run_dir: Option<PathBuf>,
    param_count: Option<usize>,
    pub result: Option<RunRecord>,
}

impl TrainingTab {
    pub fn new(config: TrainConfig) -> TrainingTab {
        TrainingTab {
            config,
            running: false,
            stopping: false,
            preparing: None,
            preparing_clock: None,
            progress: None,
            evaluating: None,
            epochs: Vec::new(),
            batch_losses: Vec::new(),
            collapse: None,
            error: None,
            opening: None,
            run_dir: None,
            param_count: None,
            result: None,
        }
    }

    pub fn on_event(&mut self, event: TrainEventData) {
        match event {
            TrainEventData::Started {
                run_dir,
                param_count,
                epochs,
                step_losses,
            } => {
                self.preparing = None;
                self.run_dir = Some(run_dir);
                self.param_count = Some(param_count);
                // A resumed run continues its curves.
                self.epochs = epochs;
                self.batch_losses = step_points(&step_losses);
            }
            TrainEventData::Batch(p) => {
                self.evaluating = None;
                self.batch_losses.push([p.step as f64, p.loss]);
                self.progress = Some(p);
            }
            TrainEventData::Evaluating(p) => self.evaluating = Some(p),
            TrainEventData::Epoch(record) => {
                self.evaluating = None;
                if !record.collapsed {
                    // The warning is about the model now: a recovered model clears it.
                    self.collapse = None;
                }
                self.epochs.push(record);
            }
            TrainEventData::Collapsed { message } => self.collapse = Some(message),
            TrainEventData::CheckpointSaved { .. } => {}
        }
    }

    pub fn finish(&mut self, run_dir: PathBuf, record: RunRecord) {
        self.running = false;
        self.stopping = false;
        self.preparing = None;
        self.evaluating = None;
        // The bar's batch and ETA belonged to the run in progress.
        self.progress = None;
        self.run_dir = Some(run_dir);
        self.result = Some(record);
    }

    /// Reads `dir/run.json` off the UI thread, then shows it or says why it cannot.
    pub fn open_run(&mut self, ctx: &egui::Context, dir: PathBuf) {
        self.opening = Some(super::run_list::read_record(ctx, dir));
    }

    fn take_opened(&mut self) {
        match self.opening.as_ref().map(|rx| rx.try_recv()) {
            Some(Ok((dir, Ok(record)))) => {
                self.error = None;
                self.show_record(dir, record);
            }
            Some(Ok((_, Err(e)))) => self.error = Some(e),
            Some(Err(crossbeam_channel::TryRecvError::Empty)) | None => return,
            Some(Err(crossbeam_channel::TryRecvError::Disconnected)) => {}
        }
        self.opening = None;
    }

    /// Shows a finished run's curves and result (from its run.json).
    pub fn show_record(&mut self, run_dir: PathBuf, record: RunRecord) {
        self.epochs = record.epochs.clone();
        self.batch_losses = step_points(&record.step_losses);
        self.collapse = record.epochs.last().filter(|e| e.collapsed).map(|e| {
            crate::train::collapse_message(e.epoch, e.val_predicted_fake, record.config.lr)
        });
        self.param_count = Some(record.param_count);
        self.config = record.config.clone();
        self.finish(run_dir, record);
    }

    pub fn fail(&mut self, error: String) {
        self.running = false;
        self.stopping = false;
        self.preparing = None;
        self.evaluating = None;
        self.error = Some(error);
    }

    /// The shown run, when it stopped before its last epoch and kept a state to resume from.
    fn resumable_run(&self) -> Option<PathBuf> {
        let record = self.result.as_ref()?;
        let dir = self.run_dir.as_ref()?;
        let unfinished = !matches!(record.status, RunStatus::Completed | RunStatus::Imported);
        let saved = dir.join(crate::train::resume::STATE_FILE).is_file();
        (!self.running && unfinished && saved).then(|| dir.clone())
    }

    fn reset_for_start(&mut self) {
        self.running = true;
        self.stopping = false;
        self.progress = None;
        self.epochs.clear();
        self.batch_losses.clear();
        self.collapse = None;
        self.error = None;
        self.result = None;
        self.run_dir = None;
    }

    pub fn ui(
        &mut self,
        ui: &mut egui::Ui,
        data_root: Option<&Path>,
        device: &mut DeviceChoice,
    ) -> Option<TrainingAction> {
        self.take_opened();
        let mut action = None;
        egui::Panel::left("training-settings")
            .default_size(270.0)
            .show(ui, |ui| action = self.settings_ui(ui, data_root, device));
        egui::CentralPanel::default_margins().show(ui, |ui| self.status_ui(ui));
        action
    }

    /// The pretrained checkpoint: pick a file or clear it; without one the UI says plainly
    /// that the backbone trains from scratch.
    fn pretrained_ui(&mut self, ui: &mut egui::Ui) {
        ui.vertical(|ui| {
            ui.horizontal(|ui| {
                match &self.config.pretrained {
                    Some(path) => {
                        let name = path.file_name().map_or_else(
                            || path.display().to_string(),
                            |n| n.to_string_lossy().into_owned(),
                        );
                        ui.label(name).on_hover_text(path.display().to_string());
                    }
                    None => {
                        ui.weak("none: the backbone trains from scratch");
                    }
                }
                if ui
                    .button("Choose…")
                    .on_hover_text(
                        "A .pth, .pth.tar or .safetensors checkpoint (nothing is downloaded)",
                    )
                    .clicked()
                    && let Some(file) = rfd::FileDialog::new()
                        .add_filter("checkpoint", &["pth", "tar", "safetensors"])
                        .pick_file()
                {
                    self.config.pretrained = Some(file);
                }
                if self.config.pretrained.is_some() && ui.button("Clear").clicked() {
                    self.config.pretrained = None;
                }
            });
            ui.checkbox(
                &mut self.config.freeze_backbone,
                "freeze backbone (train the head only)",
            );
        });
    }

    fn settings_ui(
        &mut self,
        ui: &mut egui::Ui,
        data_root: Option<&Path>,
        device: &mut DeviceChoice,
    ) -> Option<TrainingAction> {
        let mut action = None;
        ui.add_enabled_ui(!self.running, |ui| {
            egui::Grid::new("train-settings")
                .num_columns(2)
                .show(ui, |ui| {
                    labelled_combo(ui, "Model", &mut self.config.model, &ModelKind::ALL, |m| {
                        m.label().into()
                    });
                    ui.end_row();
                    ui.label("Preset");
                    ui.horizontal(|ui| {
                        for preset in Preset::ALL {
                            if ui
                                .button(preset.name())
                                .on_hover_text(preset_help(preset))
                                .clicked()
                            {
                                self.config = preset.config(self.config.model);
                            }
                        }
                    });
                    ui.end_row();
                    labelled_combo(
                        ui,
                        "Optimizer",
                        &mut self.config.optimizer,
                        &OptimizerKind::ALL,
                        |o| o.name().into(),
                    );
                    ui.end_row();
                    let label = ui.label("Learning rate");
                    ui.add(
                        egui::DragValue::new(&mut self.config.lr)
                            .range(1e-7..=1.0)
                            .speed(1e-5)
                            .custom_formatter(|v, _| format!("{v:.1e}"))
                            .custom_parser(|s| s.trim().parse::<f64>().ok()),
                    )
                    .labelled_by(label.id);
                    ui.end_row();
                    if self.config.optimizer == OptimizerKind::Sgd {
                        let label = ui.label("Momentum");
                        ui.add(
                            egui::DragValue::new(&mut self.config.momentum)
                                .range(0.0..=0.999)
                                .speed(0.01),
                        )
                        .labelled_by(label.id);
                        ui.end_row();
                    }
                    let label = ui.label("Batch size");
                    ui.add(egui::DragValue::new(&mut self.config.batch_size).range(1..=512))
                        .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Epochs");
                    ui.add(egui::DragValue::new(&mut self.config.epochs).range(1..=1000))
                        .labelled_by(label.id);
                    ui.end_row();
                    let label = ui.label("Seed");
                    ui.add(egui::DragValue::new(&mut self.config.seed))
                        .labelled_by(label.id);
                    ui.end_row();
                    ui.label("Input");
                    ui.horizontal(|ui| {
                        let face = crate::data::profile::Framing::face(
                            crate::data::face::CROP_MARGIN,
                        );
                        let mut is_face = self.config.input.is_face();
                        ui.radio_value(&mut is_face, true, "face crop")
                            .on_hover_text("the largest face, cropped 1.3× around it (the whole image where none is found)");
                        ui.radio_value(&mut is_face, false, "whole image");
                        if is_face != self.config.input.is_face() {
                            self.config.input = if is_face {
                                face
                            } else {
                                crate::data::profile::Framing::Whole
                            };
                        }
                        if let crate::data::profile::Framing::Face { scale, .. } =
                            &mut self.config.input
                        {
                            ui.add(
                                egui::DragValue::new(scale)
                                    .range(1.0..=4.0)
                                    .speed(0.05)
                                    .suffix("×"),
                            )
                            .on_hover_text("the crop's side as a multiple of the face box");
                        }
                    });
                    ui.end_row();
                    ui.label("Augment");
                    ui.horizontal(|ui| {
                        ui.checkbox(&mut self.config.augment, "crop + flip");
                        let mut photo = self.config.photo_augment.is_some();
                        ui.checkbox(&mut photo, "photo degradations")
                            .on_hover_text("random rescale, JPEG re-compression and blur, as faces in real photos come");
                        if photo != self.config.photo_augment.is_some() {
                            self.config.photo_augment =
                                photo.then_some(crate::data::degrade::PhotoAugment::DEFAULT);
                        }
                    });
                    ui.end_row();
                    ui.label("Pretrained");
                    self.pretrained_ui(ui);
                    ui.end_row();
                    let devices = [
                        DeviceChoice::Auto,
                        DeviceChoice::Cpu,
                        DeviceChoice::Cuda,
                        DeviceChoice::Metal,
                    ];
                    labelled_combo(ui, "Device", device, &devices, |d| {
                        format!("{d:?}").to_lowercase()
                    });
                    ui.end_row();
                });
        });
        ui.separator();
        match data_root {
            Some(root) => ui.weak(format!("dataset: {}", root.display())),
            None => ui.weak("open a dataset in the Dataset tab first"),
        };
        ui.horizontal(|ui| {
            let can_start = !self.running && data_root.is_some();
            let start = if self.running {
                "Training…"
            } else {
                "Start training"
            };
            if ui
                .add_enabled(can_start, egui::Button::new(start))
                .clicked()
                && let Some(root) = data_root
            {
                self.reset_for_start();
                action = Some(TrainingAction::Start {
                    data_root: root.to_path_buf(),
                });
            }
            if ui
                .add_enabled(self.running && !self.stopping, egui::Button::new("Stop"))
                .clicked()
            {
                self.stopping = true;
                action = Some(TrainingAction::Stop);
            }
            if let Some(run_dir) = self.resumable_run()
                && ui
                    .button("Resume")
                    .on_hover_text("continue this run from its last saved state")
                    .clicked()
            {
                self.reset_for_start();
                action = Some(TrainingAction::Resume { run_dir });
            }
        });
        action
    }

    fn status_ui(&mut self, ui: &mut egui::Ui) {
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
        if let Some(message) = &self.collapse {
            ui.colored_label(ui.visuals().warn_fg_color, format!("Warning: {message}"));
        }
        if let Some((stage, done, total)) = &self.preparing {
            let fraction = *done as f32 / (*total).max(1) as f32;
            let text = format::StageClock::text(&mut self.preparing_clock, stage, *done, *total);
            ui.add(egui::ProgressBar::new(fraction).text(text));
        } else if let Some(p) = &self.progress {
            let mut done =
                ((p.epoch - 1) * p.batches + p.batch) as f32 / (p.epochs * p.batches).max(1) as f32;
            let mut text = format!(
                "epoch {}/{} · batch {}/{} · {:.1} img/s · ETA {}",
                p.epoch,
                p.epochs,
                p.batch,
                p.batches,
                p.images_per_sec,
                format::duration(p.eta_secs)
            );
            if let Some(e) = &self.evaluating {
                done = e.images_done as f32 / e.images_total.max(1) as f32;
                text = format!(
                    "epoch {}/{} · evaluating on {} · {}/{} images",
                    e.epoch,
                    p.epochs,
                    e.split.name(),
                    e.images_done,
                    e.images_total
                );
            }
            if self.stopping {
                text = "stopping after this batch…".into();
            }
            ui.add(egui::ProgressBar::new(done).text(text));
        } else if self.running {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label("starting…");
            });
        }
        if let Some(record) = &self.result {
            ui.label(result_text(record));
            if self.resumable_run().is_some() {
                ui.weak(
                    "A state saved during the run (every 10 minutes, after each epoch and on \
                     Stop) is kept: Resume continues from it with the same batches.",
                );
            }
        }
        if self.epochs.is_empty() && self.batch_losses.is_empty() && !self.running {
            ui.weak(
                "No run yet. Start training to see loss and accuracy per epoch (train, val, \
                 test) and the loss of every batch.",
            );
            if ui.button("Open an earlier run…").clicked()
                && let Some(dir) = rfd::FileDialog::new()
                    .set_directory(crate::runs::layout::default_runs_dir())
                    .pick_folder()
            {
                self.open_run(ui.ctx(), dir);
            }
        }
        if let (Some(dir), Some(count)) = (&self.run_dir, self.param_count) {
            ui.weak(format!(
                "run: {} · {} parameters",
                dir.display(),
                crate::format::group_thousands(count)
            ));
        }
        self.plots_ui(ui);
    }

    fn plots_ui(&self, ui: &mut egui::Ui) {
        // Before any run there is nothing to plot: empty axes would only mislead.
        if self.epochs.is_empty() && self.batch_losses.is_empty() {
            return;
        }
        let height = ((ui.available_height() - 20.0) / 2.0).max(120.0);
        let width = (ui.available_width() / 2.0 - 8.0).max(200.0);
        let series = |f: fn(&EpochRecord) -> Option<f64>| -> Vec<[f64; 2]> {
            self.epochs
                .iter()
                .filter_map(|r| f(r).map(|v| [r.epoch as f64, v]))
                .collect()
        };
        ui.horizontal(|ui| {
            Plot::new("loss-per-epoch")
                .legend(Legend::default())
                .allow_scroll(false)
                .height(height)
                .width(width)
                .x_axis_label("epoch")
                .y_axis_label("loss")
                .show(ui, |plot| {
                    epoch_series(plot, "train loss", series(|r| Some(r.train_loss)));
                    epoch_series(plot, "val loss", series(|r| Some(r.val_loss)));
                    epoch_series(plot, "test loss", series(|r| r.test_loss));
                });
            Plot::new("acc-per-epoch")
                .legend(Legend::default())
                .allow_scroll(false)
                .height(height)
                .width(width)
                .x_axis_label("epoch")
                .y_axis_label("accuracy")
                .include_y(0.0)
                .include_y(1.0)
                .show(ui, |plot| {
                    epoch_series(plot, "train acc", series(|r| Some(r.train_acc)));
                    epoch_series(plot, "val acc", series(|r| Some(r.val_acc)));
                    epoch_series(plot, "test acc", series(|r| r.test_acc));
                });
        });
        Plot::new("loss-per-batch")
            .legend(Legend::default())
            .allow_scroll(false)
            .height(height)
            .x_axis_label("step")
            .y_axis_label("training loss")
            .show(ui, |plot| {
                plot.line(Line::new(
                    "batch loss",
                    PlotPoints::from(self.batch_losses.clone()),
                ));
            });
    }
}

/// A label and a combo box named by it (so screen readers and UI tests can find it).
/// (global step, loss) plot points of a run's per-step losses.
fn step_points(losses: &[f32]) -> Vec<[f64; 2]> {
    losses
        .iter()
        .enumerate()
        .map(|(i, l)| [(i + 1) as f64, *l as f64])
        .collect()
}

fn labelled_combo<T: Copy + PartialEq>(
    ui: &mut egui::Ui,
    label: &str,
    selected: &mut T,
    options: &[T],
    name: impl Fn(T) -> String,
) {
    let label = ui.label(label);
    egui::ComboBox::from_id_salt(label.id)
        .selected_text(name(*selected))
        .show_ui(ui, |ui| {
            for &option in options {
                ui.selectable_value(selected, option, name(option));
            }
        })
        .response
        .labelled_by(label.id);
}

/// A per-epoch curve: a line with a marker on each epoch (a run's first epoch is one point),
/// coloured by split so train, val and test look the same in every plot.
fn epoch_series(plot: &mut egui_plot::PlotUi<'_>, name: &str, points: Vec<[f64; 2]>) {
    let color = if name.starts_with("train") {
        egui::Color32::from_rgb(80, 140, 230)
    } else if name.starts_with("val") {
        egui::Color32::from_rgb(240, 150, 50)
    } else {
        egui::Color32::from_rgb(90, 190, 110)
    };
    plot.line(Line::new(name, PlotPoints::from(points.clone())).color(color));
    plot.points(
        Points::new(name, PlotPoints::from(points))
            .radius(3.0)
            .color(color),
    );
}

fn preset_help(preset: Preset) -> &'static str {
    match preset {
        Preset::Default => {
            "Adam, lr 1e-4, batch 32, 5 epochs, 1.3× face crops: learns on lfw-faceswap"
        }
        Preset::Course => {
            "The course's command: Adam, lr 1e-3, batch 32, 5 epochs, whole images (collapses \
             on lfw-faceswap)"
        }
    }
}

fn result_text(record: &RunRecord) -> String {
    let status = match &record.status {
        RunStatus::Completed => "finished".to_string(),
        RunStatus::Cancelled => "stopped by you".to_string(),
        RunStatus::Imported => "imported, not trained here".to_string(),
        RunStatus::Running => "still running (or interrupted)".to_string(),
        RunStatus::Failed { reason } => format!("failed: {reason}"),
    };
    match (record.best_epoch, record.best_val_acc) {
        (Some(epoch), Some(val)) => format!(
            "Run {status}. Best val epoch {epoch}: val {}, test {}.",
            format::percent(val),
            record.test_acc_at_best.map_or("—".into(), format::percent)
        ),
        _ if record.status == RunStatus::Cancelled => format!(
            "Run {status} before its first epoch ended: no checkpoint yet (Resume continues it)."
        ),
        _ => format!("Run {status}; no epoch completed, so no checkpoint was saved."),
    }
}
