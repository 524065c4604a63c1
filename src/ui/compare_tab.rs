//! The Compare tab: pick trained runs, evaluate them on a dataset split (each run's own
//! dataset, or one for all: cross-dataset), and compare them in a sortable table, in
//! overlaid ROC and DET curves with a live threshold, a confusion matrix, and their
//! training curves. Evaluation runs on the worker; the tab only holds plain results.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use super::compare_plots::{self, CurveOptions};
use super::run_list::{Catalog, run_checkbox};
use crate::data::Split;
use crate::eval::confusion::{Confusion, ThresholdRule};
use crate::eval::run_eval::{EvalOutcome, EvalRequest};
use crate::runs::RunEntry;
use crate::runs::RunRecord;

/// What the user asked for this frame.
#[derive(Debug)]
pub enum CompareAction {
    Evaluate(Vec<EvalRequest>),
    Stop,
    Export {
        outcome: Box<EvalOutcome>,
        out_dir: PathBuf,
    },
    /// Import a checkpoint trained elsewhere as a run of this model.
    ImportCheckpoint {
        file: PathBuf,
        model: crate::config::ModelKind,
    },
}

/// Table columns, in order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Column {
    Run,
    Dataset,
    Parameters,
    BestEpoch,
    ValAcc,
    TestAcc,
    Auc,
    Eer,
    Ap,
    Ece,
    Brier,
    MsPerImage,
}

impl Column {
    const ALL: [Column; 12] = [
        Column::Run,
        Column::Dataset,
        Column::Parameters,
        Column::BestEpoch,
        Column::ValAcc,
        Column::TestAcc,
        Column::Auc,
        Column::Eer,
        Column::Ap,
        Column::Ece,
        Column::Brier,
        Column::MsPerImage,
    ];

    fn title(self) -> &'static str {
        match self {
            Column::Run => "run",
            Column::Dataset => "dataset",
            Column::Parameters => "parameters",
            Column::BestEpoch => "best epoch",
            Column::ValAcc => "val acc",
            Column::TestAcc => "test acc at best val",
            Column::Auc => "AUC",
            Column::Eer => "EER",
            Column::Ap => "AP",
            Column::Ece => "ECE",
            Column::Brier => "Brier",
            Column::MsPerImage => "ms / image",
        }
    }
}

/// One table row as text and sort key.
struct Row {
    dir: PathBuf,
    cells: Vec<(String, f64)>,
}

#[derive(Default)]
pub struct CompareTab {
    pub runs: Vec<RunEntry>,
    pub selected: BTreeSet<PathBuf>,
    /// Finished evaluations by run folder.
    pub results: BTreeMap<PathBuf, EvalOutcome>,
    /// `None`: each run on its own dataset.
    pub data: Option<PathBuf>,
    pub split: Option<Split>,
    pub threshold: f64,
    pub sort: Option<(Column, bool)>,
    /// Evaluations waiting to be sent, one at a time (so Stop can drop the rest).
    pub queue: std::collections::VecDeque<EvalRequest>,
    /// One evaluation is on the worker.
    pub running: bool,
    pub progress: Option<(String, usize, usize)>,
    pub error: Option<String>,
    pub curves: Option<CurveOptions>,
    /// The model an imported checkpoint is read as.
    pub import_model: crate::config::ModelKind,
    catalog: Catalog,
}

impl CompareTab {
    /// An empty tab with the argmax threshold (0.5).
    pub fn new() -> CompareTab {
        CompareTab {
            threshold: 0.5,
            ..CompareTab::default()
        }
    }

    /// Lists the runs in `runs_dir` (folders with a readable `run.json`) in the background,
    /// keeping any added from elsewhere.
    pub fn scan(&mut self, ctx: &egui::Context, runs_dir: &Path) {
        self.catalog.rescan(ctx, runs_dir);
    }

    /// Adds one run folder from anywhere (an imported or copied run), ticked once loaded.
    pub fn add_run(&mut self, ctx: &egui::Context, dir: PathBuf) {
        self.catalog.add(ctx, dir);
    }

    /// Whether the run list is still being read.
    pub fn listing(&self) -> bool {
        self.catalog.busy()
    }

    pub fn on_evaluated(&mut self, outcome: EvalOutcome) {
        self.running = false;
        self.progress = None;
        self.results.insert(outcome.report.run.clone(), outcome);
    }

    pub fn fail(&mut self, error: String) {
        self.running = false;
        self.progress = None;
        self.error = Some(error);
    }

    /// Queues an evaluation of every ticked run.
    pub fn evaluate_selected(&mut self) {
        self.error = None;
        let requests = self.requests();
        self.queue.extend(requests);
    }

    /// Evaluations queued or running.
    pub fn pending(&self) -> usize {
        self.queue.len() + usize::from(self.running)
    }

    /// The next evaluation to send, if the worker is free.
    pub fn next_request(&mut self) -> Option<EvalRequest> {
        if self.running {
            return None;
        }
        let next = self.queue.pop_front()?;
        self.running = true;
        Some(next)
    }

    /// Drops the queued evaluations (the running one is cancelled by the caller).
    pub fn stop(&mut self) {
        self.queue.clear();
    }

    /// A run imported from a checkpoint or just trained: ticked, listed, and its folder
    /// scanned again.
    pub fn on_imported(&mut self, ctx: &egui::Context, run_dir: PathBuf) {
        if let Some(runs_dir) = self.catalog.runs_dir().map(Path::to_path_buf) {
            self.scan(ctx, &runs_dir);
        }
        self.add_run(ctx, run_dir);
    }

    fn requests(&self) -> Vec<EvalRequest> {
        self.runs
            .iter()
            .filter(|r| self.selected.contains(&r.dir))
            // An imported checkpoint has no dataset of its own: it needs "another…".
            .filter(|r| self.data.is_some() || !r.record.dataset.as_os_str().is_empty())
            .map(|r| EvalRequest {
                run_dir: r.dir.clone(),
                data: self
                    .data
                    .clone()
                    .unwrap_or_else(|| r.record.dataset.clone()),
                split: self.split.unwrap_or(Split::Test),
                threshold: ThresholdRule::Half,
                batch_size: 32,
            })
            .collect()
    }

    /// The chosen runs that have results, in table order, with their legend names.
    fn evaluated(&self) -> Vec<(&RunEntry, &EvalOutcome)> {
        let mut rows: Vec<(&RunEntry, &EvalOutcome)> = self
            .runs
            .iter()
            .filter(|r| self.selected.contains(&r.dir))
            .filter_map(|r| self.results.get(&r.dir).map(|o| (r, o)))
            .collect();
        if let Some((column, ascending)) = self.sort {
            let key =
                |entry: &(&RunEntry, &EvalOutcome)| row(entry.0, entry.1).cells[column as usize].1;
            rows.sort_by(|a, b| {
                let order = key(a).total_cmp(&key(b));
                if ascending { order } else { order.reverse() }
            });
        }
        rows
    }

    pub fn ui(&mut self, ui: &mut egui::Ui, runs_dir: &Path) -> Option<CompareAction> {
        self.catalog.scan_once(ui.ctx(), runs_dir);
        let applied = self.catalog.apply(&mut self.runs, &mut self.selected);
        if let Some(e) = applied.errors.into_iter().next() {
            self.error = Some(e);
        }
        let mut action = None;
        self.controls_ui(ui, runs_dir, &mut action);
        ui.separator();
        egui::ScrollArea::vertical().show(ui, |ui| {
            self.runs_ui(ui);
            ui.separator();
            self.table_ui(ui);
            let mut threshold = self.threshold;
            let mut options = self.curves.unwrap_or_default();
            let evaluated = self.evaluated();
            if evaluated.is_empty() {
                ui.weak("Choose runs and press Evaluate to compare them.");
                return;
            }
            ui.horizontal(|ui| {
                let slider = egui::Slider::new(&mut threshold, 0.0..=1.0)
                    .text("threshold (fake when score ≥)");
                ui.add(slider);
            });
            let named: Vec<(String, &EvalOutcome)> =
                evaluated.iter().map(|(r, o)| (r.name(), *o)).collect();
            compare_plots::curves_ui(ui, &named, threshold);
            if let Some((entry, outcome)) = evaluated.first()
                && let Some(export) = confusion_ui(ui, entry, outcome, threshold)
            {
                action = Some(export);
            }
            let records: Vec<(String, &RunRecord)> = evaluated
                .iter()
                .map(|(r, _)| (r.name(), &r.record))
                .collect();
            ui.horizontal(|ui| {
                ui.label("Training curves:");
                ui.radio_value(&mut options.by_step, false, "val accuracy per epoch");
                ui.radio_value(&mut options.by_step, true, "loss per step");
                ui.add(egui::Slider::new(&mut options.smoothing, 0.0..=0.99).text("smoothing"));
                ui.checkbox(&mut options.log_y, "log y");
            });
            compare_plots::training_ui(ui, &records, options);
            self.threshold = threshold;
            self.curves = Some(options);
        });
        action
    }

    fn controls_ui(
        &mut self,
        ui: &mut egui::Ui,
        runs_dir: &Path,
        action: &mut Option<CompareAction>,
    ) {
        ui.horizontal(|ui| {
            ui.label(format!("Runs in {}", runs_dir.display()));
            if ui.button("Refresh").clicked() {
                self.scan(ui.ctx(), runs_dir);
            }
            if ui.button("Add run…").clicked()
                && let Some(dir) = rfd::FileDialog::new().pick_folder()
            {
                self.add_run(ui.ctx(), dir);
            }
            ui.separator();
            let label = ui.label("import a checkpoint as");
            egui::ComboBox::from_id_salt(label.id)
                .selected_text(self.import_model.label())
                .show_ui(ui, |ui| {
                    for model in crate::config::ModelKind::ALL {
                        ui.selectable_value(&mut self.import_model, model, model.label());
                    }
                })
                .response
                .labelled_by(label.id);
            if ui.button("Import checkpoint…").clicked()
                && let Some(file) = rfd::FileDialog::new()
                    .add_filter("checkpoint", &["pth", "tar", "safetensors"])
                    .pick_file()
            {
                *action = Some(CompareAction::ImportCheckpoint {
                    file,
                    model: self.import_model,
                });
            }
        });
        ui.horizontal_wrapped(|ui| {
            ui.label("Dataset:");
            let own = self.data.is_none();
            if ui.radio(own, "each run's own").clicked() {
                self.data = None;
            }
            let chosen = self
                .data
                .as_ref()
                .map(|d| d.display().to_string())
                .unwrap_or_else(|| "another…".into());
            if ui.radio(!own, chosen).clicked()
                && let Some(dir) = rfd::FileDialog::new().pick_folder()
            {
                self.data = Some(dir);
            }
            let split = self.split.get_or_insert(Split::Test);
            let label = ui.label("split");
            egui::ComboBox::from_id_salt(label.id)
                .selected_text(split.name())
                .show_ui(ui, |ui| {
                    for option in Split::NAMED {
                        ui.selectable_value(split, option, option.name());
                    }
                })
                .response
                .labelled_by(label.id);
            let requests = self.requests();
            let button = ui.add_enabled(
                !requests.is_empty() && self.pending() == 0,
                egui::Button::new("Evaluate"),
            );
            if button.clicked() {
                self.error = None;
                *action = Some(CompareAction::Evaluate(requests));
            }
            if self.pending() > 0 && ui.button("Stop").clicked() {
                *action = Some(CompareAction::Stop);
            }
        });
        let without_data = self
            .runs
            .iter()
            .filter(|r| self.selected.contains(&r.dir) && r.record.dataset.as_os_str().is_empty())
            .count();
        if self.data.is_none() && without_data > 0 {
            ui.weak(format!(
                "{without_data} ticked run(s) imported from a checkpoint have no dataset of their \
                 own: choose one under \"another…\" to evaluate them."
            ));
        }
        if let Some((stage, done, total)) = &self.progress {
            let fraction = *done as f32 / (*total).max(1) as f32;
            ui.add(egui::ProgressBar::new(fraction).text(format!("{stage} {done}/{total}")));
        }
        if let Some(error) = &self.error {
            ui.colored_label(ui.visuals().error_fg_color, error);
        }
    }

    fn runs_ui(&mut self, ui: &mut egui::Ui) {
        if self.runs.is_empty() && self.catalog.busy() {
            ui.weak("Reading the runs folder…");
        } else if self.runs.is_empty() {
            ui.weak("No runs yet: train one in the Training tab, or add a run folder.");
        }
        for entry in &self.runs {
            let status = format!("{:?}", entry.record.status).to_lowercase();
            let text = format!(
                "{}  ({} epochs, {status})",
                entry.name(),
                entry.record.epochs.len()
            );
            run_checkbox(ui, entry, text, &mut self.selected);
        }
    }

    fn table_ui(&mut self, ui: &mut egui::Ui) {
        let rows: Vec<Row> = self
            .evaluated()
            .into_iter()
            .map(|(entry, outcome)| row(entry, outcome))
            .collect();
        if rows.is_empty() {
            return;
        }
        egui::Grid::new("compare-table")
            .striped(true)
            .show(ui, |ui| {
                for column in Column::ALL {
                    let arrow = match self.sort {
                        Some((c, true)) if c == column => " (asc)",
                        Some((c, false)) if c == column => " (desc)",
                        _ => "",
                    };
                    if ui.button(format!("{}{arrow}", column.title())).clicked() {
                        let ascending = !matches!(self.sort, Some((c, true)) if c == column);
                        self.sort = Some((column, ascending));
                    }
                }
                ui.end_row();
                for row in &rows {
                    for (text, _) in &row.cells {
                        ui.label(text);
                    }
                    let _ = &row.dir;
                    ui.end_row();
                }
            });
    }
}

fn percent(v: Option<f64>) -> (String, f64) {
    match v {
        Some(v) => (format!("{:.2} %", v * 100.0), v),
        None => ("–".into(), f64::NEG_INFINITY),
    }
}

fn row(entry: &RunEntry, outcome: &EvalOutcome) -> Row {
    let r = &entry.record;
    let s = &outcome.report.summary;
    let dataset = outcome
        .report
        .data
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    Row {
        dir: entry.dir.clone(),
        cells: vec![
            (entry.name(), 0.0),
            (format!("{dataset} ({})", outcome.report.split), 0.0),
            (
                crate::format::group_thousands(r.param_count),
                r.param_count as f64,
            ),
            (
                r.best_epoch
                    .map(|e| e.to_string())
                    .unwrap_or_else(|| "–".into()),
                r.best_epoch.map_or(f64::NEG_INFINITY, |e| e as f64),
            ),
            percent(r.best_val_acc),
            percent(r.test_acc_at_best),
            (format!("{:.4}", s.auc), s.auc),
            (format!("{:.2} %", s.eer * 100.0), s.eer),
            (format!("{:.4}", s.ap), s.ap),
            calibration_cell(outcome, |c| c.ece),
            calibration_cell(outcome, |c| c.brier),
            (
                format!("{:.1}", outcome.report.ms_per_image),
                outcome.report.ms_per_image,
            ),
        ],
    }
}

/// A calibration figure of the shown probabilities: after the run's temperature where it
/// has one (marked `T`), else the model's own.
fn calibration_cell(
    outcome: &EvalOutcome,
    figure: fn(&crate::eval::calibration::Calibration) -> f64,
) -> (String, f64) {
    match &outcome.report.calibration {
        Some(c) => match &c.calibrated {
            Some(cal) => (
                format!("{:.3} (raw {:.3})", figure(cal), figure(&c.raw)),
                figure(cal),
            ),
            None => (format!("{:.3} (no T)", figure(&c.raw)), figure(&c.raw)),
        },
        None => ("–".into(), f64::NAN),
    }
}

/// The confusion matrix of `outcome` at `threshold`, and its Export button.
fn confusion_ui(
    ui: &mut egui::Ui,
    entry: &RunEntry,
    outcome: &EvalOutcome,
    threshold: f64,
) -> Option<CompareAction> {
    let (labels, fake): (Vec<bool>, Vec<f64>) = outcome
        .scores
        .iter()
        .map(|s| (s.label == crate::LABEL_FAKE, s.fake_score))
        .unzip();
    let confusion = Confusion::at(&labels, &fake, threshold).ok()?;
    let mut action = None;
    ui.horizontal(|ui| {
        ui.label(format!("{} at threshold {threshold:.3}:", entry.name()));
        ui.label(format!("accuracy {:.2} %", confusion.accuracy() * 100.0));
        if ui.button("Export…").clicked()
            && let Some(out_dir) = rfd::FileDialog::new().pick_folder()
        {
            action = Some(CompareAction::Export {
                outcome: Box::new(outcome.clone()),
                out_dir,
            });
        }
    });
    egui::Grid::new("confusion").striped(true).show(ui, |ui| {
        ui.label("");
        ui.label("called real");
        ui.label("called fake");
        ui.end_row();
        ui.label("real");
        ui.label(format!("real as real: {}", confusion.real_as_real));
        ui.label(format!("real as fake: {}", confusion.real_as_fake));
        ui.end_row();
        ui.label("fake");
        ui.label(format!("fake as real: {}", confusion.fake_as_real));
        ui.label(format!("fake as fake: {}", confusion.fake_as_fake));
        ui.end_row();
    });
    action
}
