//! How far a fake probability can be taken at its word: temperature scaling fitted on a
//! val split (one scalar T dividing the logits, minimising the negative log-likelihood, as
//! in Guo et al. 2017, "On Calibration of Modern Neural Networks"), the expected calibration
//! error (top-label, 15 equal-width bins of the confidence), the Brier score of the fake
//! probability, and the reliability diagram (fraction of fakes against the mean fake
//! probability, in equal-width bins, as scikit-learn's `calibration_curve` bins it but for
//! values exactly on an inner edge).
//!
//! Every function takes the logit margin `m = logit_fake − logit_real`: the fake
//! probability at temperature T is `σ(m / T)`.

use serde::{Deserialize, Serialize};

/// Bins of the expected calibration error and the reliability diagram.
pub const CALIBRATION_BINS: usize = 15;

/// Range of the temperature search, T in [0.1, 20]: a trained model's best T lies well
/// inside it. An optimum on its edge (a val split the model separates perfectly, where the
/// NLL falls towards T → 0) is no calibration, and none is fitted.
const LOG_T_RANGE: (f64, f64) = (-std::f64::consts::LN_10, 2.995_732_273_553_991);

pub use crate::runs::loader::sigmoid;

/// Mean negative log-likelihood of `labels` (true = fake) under `σ(m / t)`.
pub fn nll(margins: &[f64], labels: &[bool], t: f64) -> f64 {
    let sum: f64 = margins
        .iter()
        .zip(labels)
        .map(|(&m, &fake)| {
            // −log σ(z) = log(1 + e^(−z)), computed without overflow.
            let z = if fake { m / t } else { -m / t };
            if z > 0.0 {
                (-z).exp().ln_1p()
            } else {
                -z + z.exp().ln_1p()
            }
        })
        .sum();
    sum / margins.len().max(1) as f64
}

/// The temperature minimising the val NLL: golden-section search over log T, which is
/// unimodal there (the NLL is convex in 1/T). `None` when there is nothing to fit or the
/// optimum lies on the search range's edge.
pub fn fit_temperature(margins: &[f64], labels: &[bool]) -> Option<f64> {
    if margins.is_empty() || margins.len() != labels.len() || margins.iter().any(|m| !m.is_finite())
    {
        return None;
    }
    let f = |log_t: f64| nll(margins, labels, log_t.exp());
    let ratio = (5f64.sqrt() - 1.0) / 2.0;
    let (mut a, mut b) = LOG_T_RANGE;
    let mut c = b - ratio * (b - a);
    let mut d = a + ratio * (b - a);
    let (mut fc, mut fd) = (f(c), f(d));
    for _ in 0..200 {
        if (b - a).abs() < 1e-12 {
            break;
        }
        if fc < fd {
            b = d;
            d = c;
            fd = fc;
            c = b - ratio * (b - a);
            fc = f(c);
        } else {
            a = c;
            c = d;
            fc = fd;
            d = a + ratio * (b - a);
            fd = f(d);
        }
    }
    let log_t = (a + b) / 2.0;
    let on_edge = (log_t - LOG_T_RANGE.0).abs() < 1e-6 || (LOG_T_RANGE.1 - log_t).abs() < 1e-6;
    (!on_edge).then(|| log_t.exp())
}

/// One bin of a reliability diagram.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// The bin's range of the fake probability.
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean fake probability of the bin's images.
    pub mean_probability: f64,
    /// Share of them that are fake.
    pub fake_fraction: f64,
}

/// Equal-width bin of `p` in [0, 1]: `[k/n, (k+1)/n)`, the last closed (scikit-learn puts
/// a value exactly on an inner edge in the lower bin; the two agree everywhere else).
fn bin_of(p: f64, bins: usize) -> usize {
    ((p * bins as f64).floor().max(0.0) as usize).min(bins - 1)
}

/// The non-empty bins of the reliability diagram of fake probabilities `probs`.
pub fn reliability(probs: &[f64], labels: &[bool], bins: usize) -> Vec<ReliabilityBin> {
    let bins = bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&p, &fake) in probs.iter().zip(labels) {
        let k = bin_of(p, bins);
        sums[k].0 += 1;
        sums[k].1 += p;
        sums[k].2 += usize::from(fake);
    }
    sums.iter()
        .enumerate()
        .filter(|(_, (n, ..))| *n > 0)
        .map(|(k, &(n, p_sum, fakes))| ReliabilityBin {
            lower: k as f64 / bins as f64,
            upper: (k + 1) as f64 / bins as f64,
            count: n,
            mean_probability: p_sum / n as f64,
            fake_fraction: fakes as f64 / n as f64,
        })
        .collect()
}

/// Expected calibration error (top-label): the confidence `max(p, 1 − p)` of the predicted
/// class (fake when p ≥ 0.5) binned in `bins` equal-width bins of [0, 1]; the count-weighted
/// mean of |accuracy − mean confidence| over the bins.
pub fn expected_calibration_error(probs: &[f64], labels: &[bool], bins: usize) -> f64 {
    let bins = bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for (&p, &fake) in probs.iter().zip(labels) {
        let predicted_fake = p >= 0.5;
        let confidence = if predicted_fake { p } else { 1.0 - p };
        let k = bin_of(confidence, bins);
        sums[k].0 += 1;
        sums[k].1 += confidence;
        sums[k].2 += usize::from(predicted_fake == fake);
    }
    let total = probs.len().max(1) as f64;
    sums.iter()
        .filter(|(n, ..)| *n > 0)
        .map(|&(n, conf, correct)| {
            let n_f = n as f64;
            (n_f / total) * (correct as f64 / n_f - conf / n_f).abs()
        })
        .sum()
}

/// Brier score of the fake probability: mean (p − y)².
pub fn brier(probs: &[f64], labels: &[bool]) -> f64 {
    let sum: f64 = probs
        .iter()
        .zip(labels)
        .map(|(&p, &fake)| (p - f64::from(u8::from(fake))).powi(2))
        .sum();
    sum / probs.len().max(1) as f64
}

/// Calibration of a scored split at one temperature.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    pub temperature: f64,
    pub ece: f64,
    pub brier: f64,
    pub nll: f64,
    pub reliability: Vec<ReliabilityBin>,
}

impl Calibration {
    /// The calibration of `margins` at temperature `t`.
    pub fn at(margins: &[f64], labels: &[bool], t: f64) -> Calibration {
        let probs: Vec<f64> = margins.iter().map(|&m| sigmoid(m, t)).collect();
        Calibration {
            temperature: t,
            ece: expected_calibration_error(&probs, labels, CALIBRATION_BINS),
            brier: brier(&probs, labels),
            nll: nll(margins, labels, t),
            reliability: reliability(&probs, labels, CALIBRATION_BINS),
        }
    }
}

/// The temperature fitted on val margins and the val EER threshold of the calibrated
/// probability (`None` where the split cannot give one: a single class, non-finite logits).
pub fn calibrate_margins(margins: &[f64], labels: &[bool]) -> (Option<f64>, Option<f64>) {
    let Some(t) = fit_temperature(margins, labels) else {
        return (None, None);
    };
    let probs: Vec<f64> = margins.iter().map(|&m| sigmoid(m, t)).collect();
    let threshold = crate::eval::confusion::ThresholdRule::Eer
        .pick(labels, &probs)
        .ok()
        .filter(|t| t.is_finite());
    (Some(t), threshold)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_overconfident_model_gets_a_temperature_above_one() {
        // Margins twice what a calibrated model would give.
        let mut margins = Vec::new();
        let mut labels = Vec::new();
        for i in 0..2000 {
            let m = (i % 41) as f64 / 5.0 - 4.0;
            let p = sigmoid(m, 1.0);
            // Label fake for a deterministic share p of images at this margin.
            let fake = ((i * 7919) % 1000) as f64 / 1000.0 < p;
            margins.push(2.0 * m);
            labels.push(fake);
        }
        let t = fit_temperature(&margins, &labels).unwrap();
        assert!((1.6..2.5).contains(&t), "T = {t}");
        assert!(nll(&margins, &labels, t) < nll(&margins, &labels, 1.0));
        assert_eq!(fit_temperature(&[], &[]), None);
        assert_eq!(fit_temperature(&[f64::NAN], &[true]), None);
        // Perfectly separated: the NLL falls towards T → 0; no temperature is fitted.
        assert_eq!(
            fit_temperature(&[3.0, 2.0, -2.0, -4.0], &[true, true, false, false]),
            None
        );
    }

    #[test]
    fn a_perfect_confident_model_has_no_error() {
        let probs = [1.0, 1.0, 0.0, 0.0];
        let labels = [true, true, false, false];
        assert_eq!(expected_calibration_error(&probs, &labels, 15), 0.0);
        assert_eq!(brier(&probs, &labels), 0.0);
        let bins = reliability(&probs, &labels, 15);
        assert_eq!(bins.len(), 2);
        assert_eq!((bins[0].fake_fraction, bins[1].fake_fraction), (0.0, 1.0));
    }
}
