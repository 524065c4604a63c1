//! Scoring a split: one score pair per readable image, in file order, with its path and
//! label, the two softmax scores summing to 1; the summary's metrics are consistent with
//! each other (the real-score AUC is 1 − the fake-score AUC, the confusion matrix counts
//! every image); cancelling stops the pass; a kept evaluation is reused until the
//! checkpoint or the split's files change.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use fakelens::config::ModelKind;
use fakelens::data::profile::Framing;
use fakelens::data::profile::Normalization;
use fakelens::eval::scores::{ScoreError, Summary, score_split};
use fakelens::models;
use fakelens::train::TrainData;

#[test]
fn every_image_is_scored_in_order_and_the_summary_is_consistent() {
    let demo = common::small_demo(40, 3);
    let data = TrainData::prepare(
        &demo.path().join("demo"),
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    let model = models::build(ModelKind::SimpleNet, &Device::Cpu, 5).unwrap();
    // Scored as a loaded run is: through the frozen copy where this CPU has one.
    let frozen = model.freeze().unwrap();
    let evaluator = models::Evaluator::new(model.as_ref(), frozen.as_ref());
    let val = data.val.clone();
    let mut seen = Vec::new();
    let scores = score_split(
        evaluator,
        &val,
        3,
        Normalization::COURSE,
        1.0,
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
        evaluator,
        &val,
        3,
        Normalization::COURSE,
        1.0,
        &Device::Cpu,
        &AtomicBool::new(true),
        &mut |_, _| {},
    );
    assert!(matches!(cancelled, Err(ScoreError::Cancelled)));
}

/// A kept evaluation is reused while the checkpoint and the split are unchanged, and
/// dropped when either changes.
#[test]
fn kept_evaluations_are_reused_until_the_checkpoint_or_the_data_change() {
    use fakelens::config::TrainConfig;
    use fakelens::data::Split;
    use fakelens::eval::cache;
    use fakelens::eval::confusion::ThresholdRule;
    use fakelens::eval::run_eval::{EvalRequest, evaluate_run};
    let demo = common::small_demo(16, 8);
    let root = demo.path().join("demo");
    let data = TrainData::prepare(
        &root,
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    let run = demo.path().join("run");
    let config = TrainConfig {
        epochs: 1,
        batch_size: 4,
        input: Framing::Whole,
        ..TrainConfig::default()
    };
    let no = AtomicBool::new(false);
    fakelens::train::train(&config, &data, &run, &Device::Cpu, &no, &mut |_| {}).unwrap();
    let request = EvalRequest {
        run_dir: run.clone(),
        data: root.clone(),
        split: Split::Test,
        threshold: ThresholdRule::Eer,
        batch_size: 4,
    };
    assert!(cache::load(&request).is_none());
    let outcome = evaluate_run(&request, &Device::Cpu, &no, &mut |_, _, _| {}).unwrap();
    cache::store(&request, &outcome).unwrap();
    let kept = cache::load(&request).expect("reused");
    assert_eq!(kept.report, outcome.report);
    assert_eq!(kept.roc, outcome.roc);
    assert!(kept.roc.thresholds[0].is_infinite());

    let other_rule = EvalRequest {
        threshold: ThresholdRule::Half,
        ..request.clone()
    };
    assert!(
        cache::load(&other_rule).is_none(),
        "kept per threshold rule"
    );

    let image = std::fs::read_dir(root.join("test/real"))
        .unwrap()
        .flatten()
        .next()
        .unwrap()
        .path();
    let bytes = std::fs::read(&image).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&image, &bytes).unwrap();
    assert!(
        cache::load(&request).is_none(),
        "a changed split file drops it"
    );
    cache::store(&request, &outcome).unwrap();
    assert!(cache::load(&request).is_some());
    let checkpoint = run.join("model.safetensors");
    let weights = std::fs::read(&checkpoint).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(&checkpoint, &weights).unwrap();
    assert!(cache::load(&request).is_none(), "a new checkpoint drops it");
}
