//! Writing an evaluation to a folder: `metrics.json`, `scores.csv`
//! (`path,label,real_score,fake_score,raw_fake_score` — the scores calibrated by the run's
//! temperature, then the model's own), `roc.csv` (`fpr,tpr,threshold`) and `det.csv`
//! (`fpr,fnr,threshold`), each written atomically. An infinite threshold (the curve's
//! "nothing is fake" end) is written `inf`.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::run_eval::EvalOutcome;
use crate::fsutil::write_atomic;

pub const METRICS_FILE: &str = "metrics.json";
pub const SCORES_FILE: &str = "scores.csv";
pub const ROC_FILE: &str = "roc.csv";
pub const DET_FILE: &str = "det.csv";
pub const ROC_PNG: &str = "roc.png";
pub const DET_PNG: &str = "det.png";
pub const CURVES_PNG: &str = "curves.png";
pub const RELIABILITY_PNG: &str = "reliability.png";

/// Why an export failed.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode the metrics: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("cannot draw {file}: {source}")]
    Plot {
        file: &'static str,
        source: super::plots::PlotError,
    },
    #[error("cannot encode {file}: {source}")]
    Png {
        file: &'static str,
        source: image::ImageError,
    },
}

fn png(image: &image::RgbImage, file: &'static str) -> Result<Vec<u8>, ExportError> {
    let mut bytes = std::io::Cursor::new(Vec::new());
    image
        .write_to(&mut bytes, image::ImageFormat::Png)
        .map_err(|source| ExportError::Png { file, source })?;
    Ok(bytes.into_inner())
}

/// A CSV field, quoted when it holds a comma, a quote or a line break.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v}")
    }
}

fn curve_csv(header: &str, a: &[f64], b: &[f64], thresholds: &[f64]) -> String {
    let mut text = format!("{header}\n");
    for ((a, b), t) in a.iter().zip(b).zip(thresholds) {
        let _ = writeln!(text, "{},{},{}", number(*a), number(*b), number(*t));
    }
    text
}

/// Writes the eight files into `out` (created if needed); returns their paths.
pub fn write_eval(out: &Path, outcome: &EvalOutcome) -> Result<Vec<PathBuf>, ExportError> {
    let mut scores = String::from("path,label,real_score,fake_score,raw_fake_score\n");
    for s in &outcome.scores {
        let _ = writeln!(
            scores,
            "{},{},{},{},{}",
            csv_field(&s.path.to_string_lossy()),
            s.label,
            s.real_score,
            s.fake_score,
            super::calibration::sigmoid(s.logit_margin, 1.0)
        );
    }
    let files = [
        (METRICS_FILE, serde_json::to_string_pretty(&outcome.report)?),
        (SCORES_FILE, scores),
        (
            ROC_FILE,
            curve_csv(
                "fpr,tpr,threshold",
                &outcome.roc.fpr,
                &outcome.roc.tpr,
                &outcome.roc.thresholds,
            ),
        ),
        (
            DET_FILE,
            curve_csv(
                "fpr,fnr,threshold",
                &outcome.det.fpr,
                &outcome.det.fnr,
                &outcome.det.thresholds,
            ),
        ),
    ];
    let plot = |file: &'static str, drawn: Result<image::RgbImage, super::plots::PlotError>| {
        drawn
            .map_err(|source| ExportError::Plot { file, source })
            .and_then(|image| png(&image, file))
    };
    let model = outcome.report.model.clone();
    let images = [
        (ROC_PNG, plot(ROC_PNG, super::plots::roc_png(outcome))?),
        (DET_PNG, plot(DET_PNG, super::plots::det_png(outcome))?),
        (
            CURVES_PNG,
            plot(
                CURVES_PNG,
                super::plots::curves_png(&outcome.record.epochs, &model),
            )?,
        ),
        (
            RELIABILITY_PNG,
            plot(RELIABILITY_PNG, super::plots::reliability_png(outcome))?,
        ),
    ];
    let files = files
        .into_iter()
        .map(|(name, text)| (name, text.into_bytes()))
        .chain(images);
    let mut written = Vec::new();
    for (name, bytes) in files {
        let path = out.join(name);
        write_atomic(&path, &bytes).map_err(|source| ExportError::Write {
            path: path.clone(),
            source,
        })?;
        written.push(path);
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_commas_or_quotes_are_quoted() {
        assert_eq!(csv_field("a/b.jpg"), "a/b.jpg");
        assert_eq!(csv_field("a,b.jpg"), "\"a,b.jpg\"");
        assert_eq!(csv_field("say \"hi\".jpg"), "\"say \"\"hi\"\".jpg\"");
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(number(0.25), "0.25");
    }
}
