//! The Explain tab's work over a split: the buttons that start mean maps, faithfulness and
//! the grid figure for the ticked runs, their progress, and their results (scrolled into
//! view as each arrives).

use std::path::PathBuf;

use super::explain_tab::{ExplainAction, ExplainTab, ImageSource};
use super::explain_view::{faithfulness_ui, mean_maps_ui};
use crate::data::Split;
use crate::explain::grid::grid_figure;
use crate::explain::selection::Pick;
use crate::worker::DatasetSummary;
use crate::worker::explain_jobs::{SplitJobKind, SplitMapsRequest};

/// Side of one tile of the grid figure, in pixels.
const GRID_TILE_PX: u32 = 96;

/// Fakes a faithfulness job measures at most (each costs a map and 11 forward passes).
const FAITHFULNESS_LIMIT: usize = 200;

impl ExplainTab {
    pub(super) fn jobs_ui(
        &mut self,
        ui: &mut egui::Ui,
        dataset: Option<&DatasetSummary>,
    ) -> Option<ExplainAction> {
        ui.strong("Over a split");
        let root = dataset.map(|d| d.root.clone());
        let split = match &self.source {
            ImageSource::Dataset { split, .. } => *split,
            ImageSource::File(_) => Split::Test,
        };
        let mut action = None;
        ui.horizontal(|ui| {
            let enabled = root.is_some() && !self.selected.is_empty() && self.split_pending == 0;
            let kinds = [
                ("Mean maps", SplitJobKind::MeanMaps),
                (
                    "Faithfulness",
                    SplitJobKind::Faithfulness {
                        limit: Some(FAITHFULNESS_LIMIT),
                    },
                ),
                ("Grid", SplitJobKind::Grid(self.grid_choice)),
            ];
            for (text, kind) in kinds {
                if ui.add_enabled(enabled, egui::Button::new(text)).clicked()
                    && let Some(root) = &root
                {
                    // A grid is one figure, for the first ticked run.
                    let runs: Vec<PathBuf> = match kind {
                        SplitJobKind::Grid(_) => self.selected.iter().take(1).cloned().collect(),
                        _ => self.selected.iter().cloned().collect(),
                    };
                    let requests: Vec<SplitMapsRequest> = runs
                        .into_iter()
                        .map(|run| SplitMapsRequest {
                            run,
                            data: root.clone(),
                            split,
                            method: self.method(),
                            kind,
                        })
                        .collect();
                    self.split_pending = requests.len();
                    self.error = None;
                    action = Some(ExplainAction::Split(requests));
                }
            }
            if self.split_pending > 0 && ui.button("Stop").clicked() {
                self.split_pending = 0;
                self.progress = None;
                action = Some(ExplainAction::Stop);
            }
        });
        egui::ComboBox::from_label("grid images")
            .selected_text(self.grid_choice.pick.name())
            .show_ui(ui, |ui| {
                for pick in Pick::ALL {
                    ui.selectable_value(&mut self.grid_choice.pick, pick, pick.name());
                }
            });
        ui.weak(format!(
            "On the {} split, for each ticked run (faithfulness: up to {FAITHFULNESS_LIMIT} \
             fakes; the grid: {} images and their maps, for the first ticked run).",
            split.name(),
            self.grid_choice.count
        ));
        if let Some((stage, done, total)) = &self.progress {
            // The stage names the run and the method: wrapped above the bar, not cut off
            // at the panel's edge inside it.
            ui.add(egui::Label::new(stage.as_str()).wrap());
            ui.add(
                egui::ProgressBar::new(*done as f32 / (*total).max(1) as f32)
                    .text(format!("{done}/{total}")),
            );
        }
        action
    }

    /// The grid, mean maps and faithfulness table, the newest scrolled into view.
    pub(super) fn split_results_ui(&mut self, ui: &mut egui::Ui) {
        let grid = ui.scope(|ui| self.grid_ui(ui)).response.rect;
        let means = ui
            .scope(|ui| mean_maps_ui(ui, &self.means, self.style, &mut self.mean_textures))
            .response
            .rect;
        let faithfulness = ui
            .scope(|ui| faithfulness_ui(ui, &self.faithfulness))
            .response
            .rect;
        let target = match self.scroll_to.take() {
            Some(SplitJobKind::Grid(_)) => Some(grid),
            Some(SplitJobKind::MeanMaps) => Some(means),
            Some(SplitJobKind::Faithfulness { .. }) => Some(faithfulness),
            None => None,
        };
        if let Some(rect) = target {
            ui.scroll_to_rect(rect, Some(egui::Align::TOP));
        }
    }

    fn grid_ui(&mut self, ui: &mut egui::Ui) {
        let Some((title, tiles)) = &self.grid else {
            return;
        };
        if self.grid_texture.as_ref().map(|(style, _)| *style) != Some(self.style) {
            let figure = grid_figure(tiles, self.style, GRID_TILE_PX);
            let size = [figure.width() as usize, figure.height() as usize];
            let image = egui::ColorImage::from_rgb(size, figure.as_raw());
            let texture =
                ui.ctx()
                    .load_texture("explain-grid", image, egui::TextureOptions::LINEAR);
            self.grid_texture = Some((self.style, texture));
        }
        ui.label(title);
        if let Some((_, texture)) = &self.grid_texture {
            ui.add(egui::Image::new(texture).fit_to_original_size(self.zoom));
        }
        ui.separator();
    }
}
