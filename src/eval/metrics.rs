//! Detection metrics over per-image scores, with `fake` (label 1) as the positive class,
//! computed as scikit-learn computes them (checked against it on committed fixtures,
//! `tests/fixtures/metrics/make.py`): the ROC curve with tied scores collapsed into one
//! point and collinear points dropped, ROC AUC by the trapezoid rule, the DET curve trimmed
//! to where false positives start at their minimum and false negatives reach zero, and
//! average precision as the step integral of the precision-recall curve. EER is taken the
//! DeepfakeBench way (the false positive rate where |FNR − FPR| is smallest on the ROC
//! curve); BPCER20 is the BPCER at the first threshold whose APCER is at most 5 % (the
//! attack is the fake, bona fide the real: APCER = FNR, BPCER = FPR).

/// Why a metric could not be computed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum MetricsError {
    #[error("no scores to evaluate")]
    Empty,
    #[error("{labels} labels for {scores} scores")]
    LengthMismatch { labels: usize, scores: usize },
    #[error("score {index} is not a finite number ({value})")]
    NonFinite { index: usize, value: f64 },
    #[error(
        "every image is {present}: {what} needs both real and fake images (evaluate a split \
         that has both)"
    )]
    OneClass {
        present: &'static str,
        what: &'static str,
    },
}

/// Cumulative true and false positives at each distinct score, from the highest score
/// down (an image counts as fake when its score is at least the threshold).
#[derive(Debug, Clone, PartialEq)]
pub struct Counts {
    pub thresholds: Vec<f64>,
    pub tps: Vec<f64>,
    pub fps: Vec<f64>,
}

impl Counts {
    /// Validates and counts; `labels[i]` is true for a fake image.
    pub fn new(labels: &[bool], scores: &[f64]) -> Result<Counts, MetricsError> {
        if labels.len() != scores.len() {
            return Err(MetricsError::LengthMismatch {
                labels: labels.len(),
                scores: scores.len(),
            });
        }
        if scores.is_empty() {
            return Err(MetricsError::Empty);
        }
        if let Some((index, &value)) = scores.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(MetricsError::NonFinite { index, value });
        }
        let mut order: Vec<usize> = (0..scores.len()).collect();
        order.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
        let mut counts = Counts {
            thresholds: Vec::new(),
            tps: Vec::new(),
            fps: Vec::new(),
        };
        let (mut tp, mut fp) = (0.0, 0.0);
        for (rank, &i) in order.iter().enumerate() {
            if labels[i] {
                tp += 1.0;
            } else {
                fp += 1.0;
            }
            let last_of_tie = order
                .get(rank + 1)
                .is_none_or(|&next| scores[next] != scores[i]);
            if last_of_tie {
                counts.thresholds.push(scores[i]);
                counts.tps.push(tp);
                counts.fps.push(fp);
            }
        }
        Ok(counts)
    }

    fn positives(&self) -> f64 {
        self.tps.last().copied().unwrap_or(0.0)
    }

    fn negatives(&self) -> f64 {
        self.fps.last().copied().unwrap_or(0.0)
    }

    fn both_classes(&self, what: &'static str) -> Result<(), MetricsError> {
        match (self.positives() > 0.0, self.negatives() > 0.0) {
            (true, true) => Ok(()),
            (false, _) => Err(MetricsError::OneClass {
                present: "real",
                what,
            }),
            (true, false) => Err(MetricsError::OneClass {
                present: "fake",
                what,
            }),
        }
    }
}

/// A ROC curve: false and true positive rates as the threshold falls from +∞ (the first
/// point, (0, 0)) to the lowest score.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Roc {
    pub fpr: Vec<f64>,
    pub tpr: Vec<f64>,
    #[serde(with = "super::nonfinite::vec")]
    pub thresholds: Vec<f64>,
}

/// `sklearn.metrics.roc_curve` (with its default `drop_intermediate=True`).
pub fn roc_curve(labels: &[bool], scores: &[f64]) -> Result<Roc, MetricsError> {
    let c = Counts::new(labels, scores)?;
    c.both_classes("a ROC curve")?;
    let n = c.tps.len();
    let keep: Vec<usize> = (0..n)
        .filter(|&i| {
            if i == 0 || i + 1 == n || n <= 2 {
                return true;
            }
            let second = |v: &[f64]| v[i + 1] - 2.0 * v[i] + v[i - 1];
            second(&c.fps) != 0.0 || second(&c.tps) != 0.0
        })
        .collect();
    let (p, neg) = (c.positives(), c.negatives());
    let mut roc = Roc {
        fpr: vec![0.0],
        tpr: vec![0.0],
        thresholds: vec![f64::INFINITY],
    };
    for i in keep {
        roc.fpr.push(c.fps[i] / neg);
        roc.tpr.push(c.tps[i] / p);
        roc.thresholds.push(c.thresholds[i]);
    }
    Ok(roc)
}

/// Area under a curve by the trapezoid rule (`sklearn.metrics.auc`; `x` monotonic).
pub fn auc(x: &[f64], y: &[f64]) -> f64 {
    let area: f64 = x
        .windows(2)
        .zip(y.windows(2))
        .map(|(x, y)| (x[1] - x[0]) * (y[1] + y[0]) / 2.0)
        .sum();
    let decreasing = x.first() > x.last();
    if decreasing { -area } else { area }
}

/// `sklearn.metrics.roc_auc_score` for a binary problem.
pub fn roc_auc(labels: &[bool], scores: &[f64]) -> Result<f64, MetricsError> {
    let roc = roc_curve(labels, scores)?;
    Ok(auc(&roc.fpr, &roc.tpr))
}

/// A DET curve: false positive and false negative rates, FPR decreasing.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Det {
    pub fpr: Vec<f64>,
    pub fnr: Vec<f64>,
    #[serde(with = "super::nonfinite::vec")]
    pub thresholds: Vec<f64>,
}

/// `sklearn.metrics.det_curve` (scikit-learn ≥ 1.7: a point at threshold +∞ first, where
/// nothing is called fake, unless no false positive is already reached at a finite one).
pub fn det_curve(labels: &[bool], scores: &[f64]) -> Result<Det, MetricsError> {
    let c = Counts::new(labels, scores)?;
    c.both_classes("a DET curve")?;
    let tps: Vec<f64> = std::iter::once(0.0).chain(c.tps.iter().copied()).collect();
    let fps: Vec<f64> = std::iter::once(0.0).chain(c.fps.iter().copied()).collect();
    let thresholds: Vec<f64> = std::iter::once(f64::INFINITY)
        .chain(c.thresholds.iter().copied())
        .collect();
    let (p, neg) = (c.positives(), c.negatives());
    // The last point where false positives are still at their first value ...
    let first = fps.partition_point(|&v| v <= fps[0]) - 1;
    // ... to the first where every fake is caught.
    let last = tps.partition_point(|&v| v < p) + 1;
    let range = first..last.min(tps.len());
    Ok(Det {
        fpr: range.clone().rev().map(|i| fps[i] / neg).collect(),
        fnr: range.clone().rev().map(|i| (p - tps[i]) / p).collect(),
        thresholds: range.rev().map(|i| thresholds[i]).collect(),
    })
}

/// `sklearn.metrics.average_precision_score`: Σ (Rₙ − Rₙ₋₁) Pₙ over the thresholds.
pub fn average_precision(labels: &[bool], scores: &[f64]) -> Result<f64, MetricsError> {
    let c = Counts::new(labels, scores)?;
    c.both_classes("average precision")?;
    let p = c.positives();
    let mut previous_tp = 0.0;
    let mut sum = 0.0;
    for (&tp, &fp) in c.tps.iter().zip(&c.fps) {
        sum += (tp - previous_tp) / p * (tp / (tp + fp));
        previous_tp = tp;
    }
    Ok(sum.max(0.0))
}

/// A rate read off a curve, with the threshold where it holds.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RateAt {
    pub rate: f64,
    /// The lowest fake score still called fake there (+∞: nothing is).
    #[serde(with = "super::nonfinite")]
    pub threshold: f64,
}

/// The equal error rate, DeepfakeBench's way: on the ROC curve, the FPR where |FNR − FPR| is
/// smallest (the first such point).
pub fn eer(labels: &[bool], scores: &[f64]) -> Result<RateAt, MetricsError> {
    let roc = roc_curve(labels, scores)?;
    let gap = |i: usize| ((1.0 - roc.tpr[i]) - roc.fpr[i]).abs();
    let best = (0..roc.fpr.len())
        .reduce(|best, i| if gap(i) < gap(best) { i } else { best })
        .unwrap_or(0);
    Ok(RateAt {
        rate: roc.fpr[best],
        threshold: roc.thresholds[best],
    })
}

/// BPCER (real images called fake) at the highest threshold whose APCER (fakes called real)
/// is at most `max_apcer`: the lowest BPCER that meets that APCER. BPCER20 is
/// `bpcer_at_apcer(…, 0.05)`.
pub fn bpcer_at_apcer(
    labels: &[bool],
    scores: &[f64],
    max_apcer: f64,
) -> Result<RateAt, MetricsError> {
    let c = Counts::new(labels, scores)?;
    c.both_classes("BPCER at a fixed APCER")?;
    let (p, neg) = (c.positives(), c.negatives());
    let apcer_at_infinity = 1.0;
    if apcer_at_infinity <= max_apcer {
        return Ok(RateAt {
            rate: 0.0,
            threshold: f64::INFINITY,
        });
    }
    let i = c
        .tps
        .iter()
        .position(|&tp| (p - tp) / p <= max_apcer)
        .unwrap_or(c.tps.len() - 1);
    Ok(RateAt {
        rate: c.fps[i] / neg,
        threshold: c.thresholds[i],
    })
}
