//! Which images of a split a grid of maps shows: at random (seeded), or by a filter on the
//! model's scores — misclassified, the most confident fakes or reals.

use rand::SeedableRng;
use rand::seq::SliceRandom;

use crate::eval::scores::ImageScore;

/// How to choose the images of a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Pick {
    #[default]
    Random,
    /// Wrong at the 0.5 decision, the most confidently wrong first.
    Misclassified,
    /// Fakes with the highest fake score.
    ConfidentFake,
    /// Reals with the lowest fake score.
    ConfidentReal,
}

impl Pick {
    pub const ALL: [Pick; 4] = [
        Pick::Random,
        Pick::Misclassified,
        Pick::ConfidentFake,
        Pick::ConfidentReal,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Pick::Random => "random",
            Pick::Misclassified => "misclassified",
            Pick::ConfidentFake => "confident-fake",
            Pick::ConfidentReal => "confident-real",
        }
    }

    /// Whether choosing needs the model's scores of the split.
    pub fn needs_scores(self) -> bool {
        self != Pick::Random
    }
}

impl std::str::FromStr for Pick {
    type Err = String;
    fn from_str(s: &str) -> Result<Pick, String> {
        Pick::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| {
                format!("{s:?}: expected random, misclassified, confident-fake or confident-real")
            })
    }
}

/// Indices of up to `count` images of a split of `len` images. `scores` (in split order)
/// is needed by every pick but `Random`; without it the others fall back to random.
pub fn pick_images(
    pick: Pick,
    len: usize,
    scores: Option<&[ImageScore]>,
    count: usize,
    seed: u64,
) -> Vec<usize> {
    let ranked = |filter: &dyn Fn(&ImageScore) -> bool, key: &dyn Fn(&ImageScore) -> f64| {
        scores.map(|scores| {
            let mut chosen: Vec<usize> =
                (0..scores.len()).filter(|&i| filter(&scores[i])).collect();
            chosen.sort_by(|&a, &b| key(&scores[b]).total_cmp(&key(&scores[a])).then(a.cmp(&b)));
            chosen.truncate(count);
            chosen
        })
    };
    let fake = |s: &ImageScore| s.label == crate::LABEL_FAKE;
    let chosen = match pick {
        Pick::Random => None,
        Pick::Misclassified => ranked(&|s| fake(s) != (s.fake_score >= 0.5), &|s| {
            if fake(s) { s.real_score } else { s.fake_score }
        }),
        Pick::ConfidentFake => ranked(&fake, &|s| s.fake_score),
        Pick::ConfidentReal => ranked(&|s| !fake(s), &|s| s.real_score),
    };
    chosen.unwrap_or_else(|| {
        let mut all: Vec<usize> = (0..len).collect();
        all.shuffle(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
        all.truncate(count);
        all.sort_unstable();
        all
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn score(label: u32, fake_score: f64) -> ImageScore {
        ImageScore {
            path: Default::default(),
            label,
            real_score: 1.0 - fake_score,
            fake_score,
            logit_margin: 0.0,
        }
    }

    #[test]
    fn filters_rank_by_confidence() {
        let scores = [
            score(0, 0.9),
            score(1, 0.2),
            score(1, 0.95),
            score(0, 0.1),
            score(1, 0.6),
        ];
        assert_eq!(
            pick_images(Pick::Misclassified, 5, Some(&scores), 10, 0),
            vec![0, 1]
        );
        assert_eq!(
            pick_images(Pick::ConfidentFake, 5, Some(&scores), 2, 0),
            vec![2, 4]
        );
        assert_eq!(
            pick_images(Pick::ConfidentReal, 5, Some(&scores), 1, 0),
            vec![3]
        );
        let random = pick_images(Pick::Random, 100, None, 36, 7);
        assert_eq!(random.len(), 36);
        assert_eq!(random, pick_images(Pick::Random, 100, None, 36, 7));
        assert_ne!(random, pick_images(Pick::Random, 100, None, 36, 8));
    }
}
