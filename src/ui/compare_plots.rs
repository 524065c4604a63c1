//! The Compare tab's plots: ROC and DET curves of every chosen run overlaid, each with its
//! operating point at the current threshold (the DET on normal-deviate axes with
//! scikit-learn's DetCurveDisplay ticks), and the chosen runs' training curves overlaid.
//! Curves are drawn as plain polylines: egui_plot would draw a staircase (several points at
//! one x) as a filled min-max band.

use egui_plot::{GridInput, GridMark, Legend, Line, Plot, PlotPoints, Points};

use crate::eval::probit::probit;
use crate::eval::run_eval::EvalOutcome;
use crate::runs::RunRecord;

/// Probabilities marked on the DET axes (scikit-learn's DetCurveDisplay).
const DET_TICKS: [f64; 9] = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999];
/// The DET axes span ±3.35 normal deviates, so the 0.1 % and 99.9 % ticks sit inside the
/// plot with room around them; rates of 0 or 1 are drawn at the edge.
const DET_LIMIT: f64 = 3.35;

/// False and true positive rates of "fake when the fake score ≥ `threshold`".
pub fn operating_point(outcome: &EvalOutcome, threshold: f64) -> (f64, f64) {
    let (mut fp, mut tp, mut reals, mut fakes) = (0usize, 0usize, 0usize, 0usize);
    for s in &outcome.scores {
        let called_fake = s.fake_score >= threshold;
        if s.label == crate::LABEL_FAKE {
            fakes += 1;
            tp += usize::from(called_fake);
        } else {
            reals += 1;
            fp += usize::from(called_fake);
        }
    }
    (
        fp as f64 / reals.max(1) as f64,
        tp as f64 / fakes.max(1) as f64,
    )
}

/// Run `i`'s colour, the same in every plot (and in the PNG exports' palette).
pub fn run_color(i: usize) -> egui::Color32 {
    let [r, g, b] = crate::eval::chart_png::PALETTE[i % crate::eval::chart_png::PALETTE.len()];
    egui::Color32::from_rgb(r, g, b)
}

fn deviate(rate: f64) -> f64 {
    probit(rate).clamp(-DET_LIMIT, DET_LIMIT)
}

fn det_marks(input: GridInput) -> Vec<GridMark> {
    let _ = input;
    DET_TICKS
        .iter()
        .map(|&p| GridMark {
            value: probit(p),
            step_size: 1.0,
        })
        .collect()
}

fn det_label(mark: GridMark, _range: &std::ops::RangeInclusive<f64>) -> String {
    DET_TICKS
        .iter()
        .find(|&&p| (probit(p) - mark.value).abs() < 1e-6)
        .map(|&p| {
            let percent = p * 100.0;
            if (percent - percent.round()).abs() < 1e-9 {
                format!("{percent:.0}%")
            } else {
                format!("{percent:.1}%")
            }
        })
        .unwrap_or_default()
}

/// One run's curve (a plain polyline) and its operating point, in its colour.
fn curve_with_point(
    plot: &mut egui_plot::PlotUi<'_>,
    name: &str,
    color: egui::Color32,
    curve: Vec<[f64; 2]>,
    point: [f64; 2],
) {
    plot.line(
        Line::new(name, PlotPoints::from(curve))
            .allow_band(false)
            .color(color),
    );
    plot.points(Points::new(name, vec![point]).radius(5.0).color(color));
}

/// ROC (left) and DET (right) of `runs` (legend name, outcome), side by side.
pub fn curves_ui(ui: &mut egui::Ui, runs: &[(String, &EvalOutcome)], threshold: f64) {
    let width = (ui.available_width() / 2.0 - 8.0).max(220.0);
    let height = width.min(340.0);
    ui.horizontal(|ui| {
        Plot::new("compare-roc")
            .legend(Legend::default())
            .allow_scroll(false)
            .width(width)
            .height(height)
            .x_axis_label("false positive rate")
            .y_axis_label("true positive rate")
            .include_x(0.0)
            .include_x(1.0)
            .include_y(0.0)
            .include_y(1.0)
            .show(ui, |plot| {
                plot.line(
                    Line::new("chance", PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]))
                        .style(egui_plot::LineStyle::dashed_dense()),
                );
                for (i, (name, outcome)) in runs.iter().enumerate() {
                    let color = run_color(i);
                    let points: Vec<[f64; 2]> = outcome
                        .roc
                        .fpr
                        .iter()
                        .zip(&outcome.roc.tpr)
                        .map(|(&x, &y)| [x, y])
                        .collect();
                    let (fpr, tpr) = operating_point(outcome, threshold);
                    curve_with_point(plot, name, color, points, [fpr, tpr]);
                }
            });
        Plot::new("compare-det")
            .legend(Legend::default())
            .allow_scroll(false)
            .width(width)
            .height(height)
            .x_axis_label("false positive rate (BPCER)")
            .y_axis_label("false negative rate (APCER)")
            .default_x_bounds(-DET_LIMIT, DET_LIMIT)
            .default_y_bounds(-DET_LIMIT, DET_LIMIT)
            .x_grid_spacer(det_marks)
            .y_grid_spacer(det_marks)
            .x_axis_formatter(det_label)
            .y_axis_formatter(det_label)
            .show(ui, |plot| {
                for (i, (name, outcome)) in runs.iter().enumerate() {
                    let color = run_color(i);
                    let points: Vec<[f64; 2]> = outcome
                        .det
                        .fpr
                        .iter()
                        .zip(&outcome.det.fnr)
                        .map(|(&x, &y)| [deviate(x), deviate(y)])
                        .collect();
                    let (fpr, tpr) = operating_point(outcome, threshold);
                    let point = [deviate(fpr), deviate(1.0 - tpr)];
                    curve_with_point(plot, name, color, points, point);
                }
            });
    });
    reliability_ui(ui, runs, width, height);
}

/// The reliability diagram of each run's shown (calibrated) probabilities: share of fakes
/// against the mean fake probability per bin, with the diagonal of perfect calibration.
fn reliability_ui(ui: &mut egui::Ui, runs: &[(String, &EvalOutcome)], width: f32, height: f32) {
    ui.label("Reliability (15 bins of the shown fake probability)");
    Plot::new("compare-reliability")
        .legend(Legend::default())
        .allow_scroll(false)
        .width(width)
        .height(height * 0.8)
        .x_axis_label("mean fake probability")
        .y_axis_label("share of fakes")
        .include_x(0.0)
        .include_x(1.0)
        .include_y(0.0)
        .include_y(1.0)
        .show(ui, |plot| {
            plot.line(
                Line::new(
                    "perfectly calibrated",
                    PlotPoints::from(vec![[0.0, 0.0], [1.0, 1.0]]),
                )
                .style(egui_plot::LineStyle::dashed_dense()),
            );
            for (i, (name, outcome)) in runs.iter().enumerate() {
                let Some(c) = &outcome.report.calibration else {
                    continue;
                };
                let shown = c.calibrated.as_ref().unwrap_or(&c.raw);
                let points: Vec<[f64; 2]> = shown
                    .reliability
                    .iter()
                    .map(|b| [b.mean_probability, b.fake_fraction])
                    .collect();
                plot.line(
                    Line::new(name.clone(), PlotPoints::from(points.clone())).color(run_color(i)),
                );
                plot.points(
                    Points::new(name.clone(), points)
                        .radius(3.0)
                        .color(run_color(i)),
                );
            }
        });
}

/// How the training curves are drawn.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CurveOptions {
    /// Exponential smoothing of the per-step loss, 0 (none) to 0.99.
    pub smoothing: f64,
    pub log_y: bool,
    /// Per optimiser step (training loss) instead of per epoch (val accuracy).
    pub by_step: bool,
}

impl Default for CurveOptions {
    fn default() -> Self {
        CurveOptions {
            smoothing: 0.6,
            log_y: false,
            by_step: false,
        }
    }
}

/// `values` smoothed as TensorBoard does (exponential moving average, debiased).
pub fn smoothed(values: &[f32], weight: f64) -> Vec<f64> {
    let mut average = 0.0;
    values
        .iter()
        .enumerate()
        .map(|(i, &v)| {
            average = average * weight + (1.0 - weight) * f64::from(v);
            average / (1.0 - weight.powi(i as i32 + 1)).max(f64::MIN_POSITIVE)
        })
        .collect()
}

/// The training curves of `runs` overlaid.
pub fn training_ui(ui: &mut egui::Ui, runs: &[(String, &RunRecord)], options: CurveOptions) {
    let y_of = |v: f64| {
        if options.log_y {
            v.max(1e-12).log10()
        } else {
            v
        }
    };
    let (x_label, y_label) = match (options.by_step, options.log_y) {
        (true, false) => ("step", "training loss (smoothed)"),
        (true, true) => ("step", "log10 training loss (smoothed)"),
        (false, false) => ("epoch", "val accuracy"),
        (false, true) => ("epoch", "log10 val accuracy"),
    };
    Plot::new("compare-training")
        .legend(Legend::default())
        .allow_scroll(false)
        .height(220.0)
        .x_axis_label(x_label)
        .y_axis_label(y_label)
        .show(ui, |plot| {
            for (i, (name, record)) in runs.iter().enumerate() {
                let color = run_color(i);
                let points: Vec<[f64; 2]> = if options.by_step {
                    smoothed(&record.step_losses, options.smoothing)
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| [i as f64 + 1.0, y_of(v)])
                        .collect()
                } else {
                    record
                        .epochs
                        .iter()
                        .map(|e| [e.epoch as f64, y_of(e.val_acc)])
                        .collect()
                };
                plot.line(
                    Line::new(name.clone(), PlotPoints::from(points))
                        .allow_band(false)
                        .color(color),
                );
            }
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn smoothing_is_debiased_and_zero_weight_keeps_values() {
        assert_eq!(smoothed(&[1.0, 3.0], 0.0), vec![1.0, 3.0]);
        let s = smoothed(&[2.0, 2.0, 2.0], 0.9);
        assert!(s.iter().all(|v| (v - 2.0).abs() < 1e-12), "{s:?}");
    }

    #[test]
    fn det_ticks_are_labelled_as_percentages() {
        let mark = GridMark {
            value: probit(0.05),
            step_size: 1.0,
        };
        assert_eq!(det_label(mark, &(0.0..=1.0)), "5%");
        let mark = GridMark {
            value: probit(0.001),
            step_size: 1.0,
        };
        assert_eq!(det_label(mark, &(0.0..=1.0)), "0.1%");
    }
}
