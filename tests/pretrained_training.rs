//! Training from an imported checkpoint: a LilXception run with `pretrained` and a frozen
//! backbone records where its weights came from in run.json, keeps the imported backbone
//! weights, and trains the head; without a checkpoint run.json says it trains from scratch.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use fakelens::config::{ModelKind, TrainConfig};
use fakelens::data::profile::Framing;
use fakelens::models;
use fakelens::runs::RunStatus;
use fakelens::train::{TrainData, train};

#[test]
fn frozen_backbone_keeps_the_imported_weights_and_the_head_trains() {
    let demo = common::small_demo(16, 5);
    let data = TrainData::prepare(
        &demo.path().join("demo"),
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    let pth = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/import/partial.pth");
    let config = TrainConfig {
        model: ModelKind::LilXception,
        epochs: 1,
        batch_size: 4,
        lr: 1e-3,
        pretrained: Some(pth),
        freeze_backbone: true,
        input: Framing::Whole,
        ..TrainConfig::default()
    };
    let run_dir = demo.path().join("run");
    let record = train(
        &config,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert!(
        record.initialization.contains("pretrained")
            && record.initialization.contains("27 tensors loaded")
    );
    assert!(
        record.initialization.contains("frozen"),
        "{}",
        record.initialization
    );

    let trained = models::load(
        ModelKind::LilXception,
        &run_dir.join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let dims = trained
        .params()
        .get("conv1.weight")
        .unwrap()
        .dims()
        .to_vec();
    let imported = common::formula::formula_value("conv1.weight", &dims);
    let err = common::param_values(trained.as_ref(), "conv1.weight")
        .iter()
        .zip(&imported)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max);
    assert!(err < 1e-6, "the frozen backbone moved by {err:e}");
    let fresh = models::build(ModelKind::LilXception, &Device::Cpu, config.seed).unwrap();
    assert_ne!(
        common::param_values(trained.as_ref(), "fc.6.weight"),
        common::param_values(fresh.as_ref(), "fc.6.weight"),
        "the head trained"
    );

    let scratch = TrainConfig {
        pretrained: None,
        freeze_backbone: false,
        ..config
    };
    let run_dir = demo.path().join("scratch");
    let record = train(
        &scratch,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert!(
        record.initialization.contains("from scratch"),
        "{}",
        record.initialization
    );
}
