//! The evaluation's PNG plots: `roc.png` (the fake score's ROC and the real score's against
//! the same labels, which runs below the chance diagonal), `det.png` (normal-deviate axes)
//! `curves.png` (the run's per-epoch accuracy and loss for train, val and test) and
//! `reliability.png` (calibration before and after the run's temperature).

use image::RgbImage;

use super::chart_png::{Chart, ChartError, PALETTE, Scale, Series, render};
use super::metrics::{MetricsError, roc_curve};
use super::run_eval::EvalOutcome;
use crate::runs::record::EpochRecord;

const WIDTH: u32 = 720;
const HEIGHT: u32 = 540;

/// Why a plot could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    #[error(transparent)]
    Chart(#[from] ChartError),
    #[error(transparent)]
    Metrics(#[from] MetricsError),
}

fn unit() -> Scale {
    Scale::Linear { min: 0.0, max: 1.0 }
}

fn title(outcome: &EvalOutcome, what: &str) -> String {
    let r = &outcome.report;
    format!("{what}: {} on {} ({})", r.model, short(&r.data), r.split)
}

fn short(path: &std::path::Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| path.display().to_string())
}

/// ROC curves of both soft scores, and chance.
pub fn roc_png(outcome: &EvalOutcome) -> Result<RgbImage, PlotError> {
    let labels: Vec<bool> = outcome
        .scores
        .iter()
        .map(|s| s.label == crate::LABEL_FAKE)
        .collect();
    let real: Vec<f64> = outcome.scores.iter().map(|s| s.real_score).collect();
    let real_roc = roc_curve(&labels, &real)?;
    let s = &outcome.report.summary;
    let points = |fpr: &[f64], tpr: &[f64]| fpr.iter().copied().zip(tpr.iter().copied()).collect();
    let chart = Chart {
        title: title(outcome, "ROC"),
        x_label: "false positive rate (real called fake)".into(),
        y_label: "true positive rate (fake caught)".into(),
        x: unit(),
        y: unit(),
        series: vec![
            Series {
                label: format!("fake score (AUC {:.3})", s.auc),
                points: points(&outcome.roc.fpr, &outcome.roc.tpr),
                color: PALETTE[0],
                dashed: false,
            },
            Series {
                label: format!("real score (AUC {:.3})", s.auc_real_score),
                points: points(&real_roc.fpr, &real_roc.tpr),
                color: PALETTE[1],
                dashed: false,
            },
            Series {
                label: "chance".into(),
                points: vec![(0.0, 0.0), (1.0, 1.0)],
                color: [150, 150, 150],
                dashed: true,
            },
        ],
    };
    Ok(render(&chart, WIDTH, HEIGHT)?)
}

/// The DET curve of the fake score.
pub fn det_png(outcome: &EvalOutcome) -> Result<RgbImage, PlotError> {
    let det = &outcome.det;
    let chart = Chart {
        title: title(outcome, "DET"),
        x_label: "false positive rate (BPCER)".into(),
        y_label: "false negative rate (APCER)".into(),
        x: Scale::Probit,
        y: Scale::Probit,
        series: vec![Series {
            label: format!(
                "fake score (EER {:.2} %)",
                outcome.report.summary.eer * 100.0
            ),
            points: det
                .fpr
                .iter()
                .copied()
                .zip(det.fnr.iter().copied())
                .collect(),
            color: PALETTE[0],
            dashed: false,
        }],
    };
    Ok(render(&chart, WIDTH, HEIGHT)?)
}

/// The reliability diagram: the share of fakes against the mean fake probability in each
/// of the 15 bins, before and after the run's temperature, with the diagonal of a perfectly
/// calibrated detector.
pub fn reliability_png(outcome: &EvalOutcome) -> Result<RgbImage, PlotError> {
    let mut series = vec![Series {
        label: "perfectly calibrated".into(),
        points: vec![(0.0, 0.0), (1.0, 1.0)],
        color: [150, 150, 150],
        dashed: true,
    }];
    if let Some(c) = &outcome.report.calibration {
        let points = |cal: &super::calibration::Calibration| {
            cal.reliability
                .iter()
                .map(|b| (b.mean_probability, b.fake_fraction))
                .collect()
        };
        series.push(Series {
            label: format!(
                "model's own (ECE {:.3}, Brier {:.3})",
                c.raw.ece, c.raw.brier
            ),
            points: points(&c.raw),
            color: PALETTE[1],
            dashed: false,
        });
        if let Some(cal) = &c.calibrated {
            series.push(Series {
                label: format!(
                    "T = {:.2} (ECE {:.3}, Brier {:.3})",
                    cal.temperature, cal.ece, cal.brier
                ),
                points: points(cal),
                color: PALETTE[0],
                dashed: false,
            });
        }
    }
    let chart = Chart {
        title: title(outcome, "Reliability"),
        x_label: "mean fake probability in the bin".into(),
        y_label: "share of fakes in the bin".into(),
        x: unit(),
        y: unit(),
        series,
    };
    Ok(render(&chart, WIDTH, HEIGHT)?)
}

/// Accuracy (top) and loss (bottom) per epoch for train, val and test.
pub fn curves_png(epochs: &[EpochRecord], model: &str) -> Result<RgbImage, PlotError> {
    let last = epochs.last().map_or(1, |e| e.epoch).max(1) as f64;
    let x = Scale::Whole {
        min: if last > 1.0 { 1.0 } else { 0.0 },
        max: last,
    };
    let lines = |pick: &dyn Fn(&EpochRecord) -> [Option<f64>; 3]| -> Vec<Series> {
        ["train", "val", "test"]
            .iter()
            .enumerate()
            .map(|(i, name)| Series {
                label: (*name).into(),
                points: epochs
                    .iter()
                    .filter_map(|e| pick(e)[i].map(|v| (e.epoch as f64, v)))
                    .collect(),
                color: PALETTE[i],
                dashed: false,
            })
            .filter(|s| !s.points.is_empty())
            .collect()
    };
    let accuracy = lines(&|e| [Some(e.train_acc), Some(e.val_acc), e.test_acc]);
    let loss = lines(&|e| [Some(e.train_loss), Some(e.val_loss), e.test_loss]);
    let max_loss = loss
        .iter()
        .flat_map(|s| s.points.iter().map(|p| p.1))
        .filter(|v| v.is_finite())
        .fold(0.1, f64::max);
    let top = render(
        &Chart {
            title: format!("{model}: accuracy per epoch"),
            x_label: "epoch".into(),
            y_label: "accuracy".into(),
            x,
            y: unit(),
            series: accuracy,
        },
        WIDTH,
        HEIGHT / 2 + 60,
    )?;
    let bottom = render(
        &Chart {
            title: format!("{model}: loss per epoch"),
            x_label: "epoch".into(),
            y_label: "cross-entropy".into(),
            x,
            y: Scale::Linear {
                min: 0.0,
                max: max_loss * 1.05,
            },
            series: loss,
        },
        WIDTH,
        HEIGHT / 2 + 60,
    )?;
    let mut both = RgbImage::new(WIDTH, top.height() + bottom.height());
    image::imageops::replace(&mut both, &top, 0, 0);
    image::imageops::replace(&mut both, &bottom, 0, i64::from(top.height()));
    Ok(both)
}
