//! Writing an evaluation to a folder: `metrics.json`, `scores.csv`
//! (`path,label,real_score,fake_score,raw_fake_score` — the scores calibrated by the run's
//! temperature, then the model's own), `roc.csv` (`fpr,tpr,threshold`) and `det.csv`
//! (`fpr,fnr,threshold`), each written atomically. An infinite threshold (the curve's
//! "nothing is fake" end) is written `inf`. Paths are written losslessly (`csv_text`).

use std::path::{Path, PathBuf};

use super::run_eval::EvalOutcome;
use crate::csv_text::{csv_document, escape_path};
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
    #[error("cannot encode {file}: {source}")]
    Csv {
        file: &'static str,
        source: csv::Error,
    },
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

fn number(v: f64) -> String {
    if v.is_infinite() {
        if v > 0.0 { "inf".into() } else { "-inf".into() }
    } else {
        format!("{v}")
    }
}

fn curve_csv(
    file: &'static str,
    header: [&str; 3],
    a: &[f64],
    b: &[f64],
    thresholds: &[f64],
) -> Result<Vec<u8>, ExportError> {
    let header = header.map(String::from);
    let rows = a
        .iter()
        .zip(b)
        .zip(thresholds)
        .map(|((a, b), t)| [number(*a), number(*b), number(*t)]);
    csv_document(std::iter::once(header).chain(rows))
        .map_err(|source| ExportError::Csv { file, source })
}

/// `scores.csv`: one row per image, its path written losslessly.
pub fn scores_csv(scores: &[super::scores::ImageScore]) -> Result<Vec<u8>, ExportError> {
    let header = [
        "path",
        "label",
        "real_score",
        "fake_score",
        "raw_fake_score",
    ];
    let rows = scores.iter().map(|s| {
        [
            escape_path(&s.path),
            s.label.to_string(),
            s.real_score.to_string(),
            s.fake_score.to_string(),
            super::calibration::sigmoid(s.logit_margin, 1.0).to_string(),
        ]
    });
    csv_document(std::iter::once(header.map(String::from)).chain(rows)).map_err(|source| {
        ExportError::Csv {
            file: SCORES_FILE,
            source,
        }
    })
}

/// Writes the eight files into `out` (created if needed); returns their paths.
pub fn write_eval(out: &Path, outcome: &EvalOutcome) -> Result<Vec<PathBuf>, ExportError> {
    let (roc, det) = (&outcome.roc, &outcome.det);
    let files = [
        (
            METRICS_FILE,
            serde_json::to_string_pretty(&outcome.report)?.into_bytes(),
        ),
        (SCORES_FILE, scores_csv(&outcome.scores)?),
        (
            ROC_FILE,
            curve_csv(
                ROC_FILE,
                ["fpr", "tpr", "threshold"],
                &roc.fpr,
                &roc.tpr,
                &roc.thresholds,
            )?,
        ),
        (
            DET_FILE,
            curve_csv(
                DET_FILE,
                ["fpr", "fnr", "threshold"],
                &det.fpr,
                &det.fnr,
                &det.thresholds,
            )?,
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
    let files = files.into_iter().chain(images);
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
    fn numbers_and_curves_are_written_plainly() {
        assert_eq!(number(f64::INFINITY), "inf");
        assert_eq!(number(0.25), "0.25");
        let text = curve_csv(
            ROC_FILE,
            ["fpr", "tpr", "threshold"],
            &[0.0],
            &[0.5],
            &[f64::INFINITY],
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(text).unwrap(),
            "fpr,tpr,threshold\n0,0.5,inf\n"
        );
    }

    /// A file name that is not UTF-8 (and one with a comma) is written so that the row leads
    /// back to the file: each invalid byte as `\xNN`, quoted where the CSV needs it.
    #[cfg(unix)]
    #[test]
    fn scores_csv_keeps_non_utf8_file_names() {
        use std::os::unix::ffi::OsStrExt;
        let odd = std::ffi::OsStr::from_bytes(b"/d/fake/\xff\xfe,x.jpg");
        let score = |path: &Path| super::super::scores::ImageScore {
            path: path.to_path_buf(),
            label: 1,
            real_score: 0.25,
            fake_score: 0.75,
            logit_margin: 0.0,
        };
        let text = scores_csv(&[score(Path::new(odd)), score(Path::new("/d/real/a.jpg"))]);
        let text = String::from_utf8(text.unwrap()).unwrap();
        let mut rows = csv::Reader::from_reader(text.as_bytes());
        let paths: Vec<String> = rows
            .records()
            .map(|r| r.unwrap().get(0).unwrap().to_string())
            .collect();
        assert_eq!(paths, ["/d/fake/\\xff\\xfe,x.jpg", "/d/real/a.jpg"]);
        let back = crate::csv_text::unescape_path(&paths[0]).unwrap();
        assert_eq!(back.as_os_str(), odd);
    }
}
