//! The decision rule "fake when the fake score is at least the threshold" applied to a
//! scored split: its confusion matrix and the rates read from it, and the choice of a
//! threshold on one split (val) for use on another (test).

use super::metrics::{Counts, MetricsError, bpcer_at_apcer, eer};

/// Images by true class and decision at one threshold.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Confusion {
    #[serde(with = "super::nonfinite")]
    pub threshold: f64,
    /// Real images called real.
    pub real_as_real: usize,
    /// Real images called fake (bona fide presentation errors).
    pub real_as_fake: usize,
    /// Fake images called real (attack presentation errors).
    pub fake_as_real: usize,
    /// Fake images called fake.
    pub fake_as_fake: usize,
}

fn ratio(part: usize, whole: usize) -> Option<f64> {
    (whole > 0).then(|| part as f64 / whole as f64)
}

impl Confusion {
    /// Counts the decisions at `threshold` (`labels[i]`: true for a fake image).
    pub fn at(labels: &[bool], scores: &[f64], threshold: f64) -> Result<Confusion, MetricsError> {
        Counts::new(labels, scores)?;
        let mut c = Confusion {
            threshold,
            real_as_real: 0,
            real_as_fake: 0,
            fake_as_real: 0,
            fake_as_fake: 0,
        };
        for (&fake, &score) in labels.iter().zip(scores) {
            match (fake, score >= threshold) {
                (false, false) => c.real_as_real += 1,
                (false, true) => c.real_as_fake += 1,
                (true, false) => c.fake_as_real += 1,
                (true, true) => c.fake_as_fake += 1,
            }
        }
        Ok(c)
    }

    pub fn total(&self) -> usize {
        self.real_as_real + self.real_as_fake + self.fake_as_real + self.fake_as_fake
    }

    pub fn accuracy(&self) -> f64 {
        ratio(self.real_as_real + self.fake_as_fake, self.total()).unwrap_or(0.0)
    }

    /// Accuracy on the real images alone (`None` without any).
    pub fn real_accuracy(&self) -> Option<f64> {
        ratio(self.real_as_real, self.real_as_real + self.real_as_fake)
    }

    /// Accuracy on the fake images alone (`None` without any).
    pub fn fake_accuracy(&self) -> Option<f64> {
        ratio(self.fake_as_fake, self.fake_as_fake + self.fake_as_real)
    }

    /// Fakes called real, of all fakes.
    pub fn apcer(&self) -> Option<f64> {
        ratio(self.fake_as_real, self.fake_as_fake + self.fake_as_real)
    }

    /// Reals called fake, of all reals.
    pub fn bpcer(&self) -> Option<f64> {
        ratio(self.real_as_fake, self.real_as_real + self.real_as_fake)
    }
}

/// How to pick the decision threshold on a validation split.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum ThresholdRule {
    /// The argmax of the softmax: fake when its score is at least 0.5.
    Half,
    /// The equal-error-rate point.
    Eer,
    /// The highest threshold whose APCER is at most this fraction.
    Apcer(f64),
    /// This threshold.
    Fixed(f64),
}

impl std::fmt::Display for ThresholdRule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ThresholdRule::Half => write!(f, "half"),
            ThresholdRule::Eer => write!(f, "eer"),
            ThresholdRule::Apcer(max) => write!(f, "apcer={max}"),
            ThresholdRule::Fixed(t) => write!(f, "{t}"),
        }
    }
}

impl std::str::FromStr for ThresholdRule {
    type Err = String;

    /// `half`, `eer`, `apcer=0.05` or a number in [0, 1].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let fraction = |v: &str| {
            v.parse::<f64>()
                .ok()
                .filter(|v| (0.0..=1.0).contains(v))
                .ok_or_else(|| format!("`{v}` is not a number between 0 and 1"))
        };
        match s {
            "half" => Ok(ThresholdRule::Half),
            "eer" => Ok(ThresholdRule::Eer),
            _ => match s.strip_prefix("apcer=") {
                Some(max) => fraction(max).map(ThresholdRule::Apcer),
                None => fraction(s).map(ThresholdRule::Fixed).map_err(|_| {
                    format!(
                        "threshold `{s}`: expected half, eer, apcer=FRACTION or a number in [0, 1]"
                    )
                }),
            },
        }
    }
}

impl ThresholdRule {
    /// The threshold this rule picks on `labels`/`scores` (one split, usually val).
    pub fn pick(&self, labels: &[bool], scores: &[f64]) -> Result<f64, MetricsError> {
        match *self {
            ThresholdRule::Half => Ok(0.5),
            ThresholdRule::Eer => Ok(eer(labels, scores)?.threshold),
            ThresholdRule::Apcer(max) => Ok(bpcer_at_apcer(labels, scores, max)?.threshold),
            ThresholdRule::Fixed(t) => Ok(t),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confusion_counts_each_decision_and_its_rates() {
        let labels = [false, false, false, true, true];
        let scores = [0.1, 0.6, 0.5, 0.5, 0.2];
        let c = Confusion::at(&labels, &scores, 0.5).unwrap();
        assert_eq!(
            (
                c.real_as_real,
                c.real_as_fake,
                c.fake_as_real,
                c.fake_as_fake
            ),
            (1, 2, 1, 1)
        );
        assert_eq!(c.accuracy(), 0.4);
        assert_eq!(c.bpcer(), Some(2.0 / 3.0));
        assert_eq!(c.apcer(), Some(0.5));
        assert_eq!(c.real_accuracy(), Some(1.0 / 3.0));
        assert_eq!(Confusion::at(&[false], &[0.9], 0.5).unwrap().apcer(), None);
    }

    #[test]
    fn a_threshold_picked_on_val_separates_it() {
        let labels = [false, false, true, true, true];
        let scores = [0.1, 0.3, 0.35, 0.8, 0.9];
        let t = ThresholdRule::Eer.pick(&labels, &scores).unwrap();
        let c = Confusion::at(&labels, &scores, t).unwrap();
        assert_eq!(c.accuracy(), 1.0, "threshold {t}");
        let t = ThresholdRule::Apcer(0.4).pick(&labels, &scores).unwrap();
        assert_eq!(
            t, 0.8,
            "the highest threshold missing at most 40 % of fakes"
        );
    }
}
