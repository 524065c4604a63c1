//! Scoring a split: one score pair per readable image, in file order, with its path and
//! label, the two softmax scores summing to 1; the summary's metrics are consistent with
//! each other (the real-score AUC is 1 − the fake-score AUC, the confusion matrix counts
//! every image); cancelling stops the pass.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use fakelens::config::{ModelKind, Normalization};
use fakelens::eval::scores::{ScoreError, Summary, score_split};
use fakelens::models;
use fakelens::train::TrainData;

#[test]
fn every_image_is_scored_in_order_and_the_summary_is_consistent() {
    let demo = common::small_demo(40, 3);
    let data = TrainData::prepare(
        &demo.path().join("demo"),
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    let model = models::build(ModelKind::SimpleNet, &Device::Cpu, 5).unwrap();
    let val = data.val.clone();
    let mut seen = Vec::new();
    let scores = score_split(
        model.as_ref(),
        &val,
        3,
        Normalization::COURSE,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |done, total| seen.push((done, total)),
    )
    .unwrap();
    assert_eq!(scores.len(), val.len());
    assert_eq!(seen.last(), Some(&(val.len(), val.len())));
    for (score, sample) in scores.iter().zip(&val.samples) {
        assert_eq!(score.path, sample.path);
        assert_eq!(score.label, sample.label);
        assert!(
            (score.real_score + score.fake_score - 1.0).abs() < 1e-6,
            "{score:?}"
        );
    }
    let summary = Summary::of(&scores, 0.5).unwrap();
    assert_eq!(summary.images, val.len());
    assert_eq!(summary.confusion.total(), val.len());
    assert!(
        (summary.auc + summary.auc_real_score - 1.0).abs() < 1e-9,
        "{summary:?}"
    );
    assert!((0.0..=1.0).contains(&summary.eer) && (0.0..=1.0).contains(&summary.ap));

    let cancelled = score_split(
        model.as_ref(),
        &val,
        3,
        Normalization::COURSE,
        &Device::Cpu,
        &AtomicBool::new(true),
        &mut |_, _| {},
    );
    assert!(matches!(cancelled, Err(ScoreError::Cancelled)));
}
