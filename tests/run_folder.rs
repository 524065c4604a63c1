//! A run folder is safe to share: a run that never saved a state says so on resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use fakelens::config::TrainConfig;
use fakelens::data::profile::Framing;
use fakelens::train::{RunRecord, RunStatus, TrainData, resume, train};

fn prepare(root: &Path) -> TrainData {
    TrainData::prepare(
        root,
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap()
}

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        seed: 3,
        input: Framing::Whole,
        ..TrainConfig::default()
    }
}

/// A run killed before its first save (run.json says running, no state) is told it never
/// saved one; a completed run that it keeps none once done.
#[test]
fn resuming_a_run_that_never_saved_a_state_says_so() {
    let demo = common::small_demo(24, 8);
    let data = prepare(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    let done = train(
        &config(1),
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let never = AtomicBool::new(false);
    let err = resume(&data, &run_dir, &Device::Cpu, &never, &mut |_| {}).unwrap_err();
    assert!(
        err.to_string()
            .contains("a run keeps a resumable state only until it completes"),
        "{err}"
    );
    // As a run killed during its first epoch leaves it.
    let killed = RunRecord {
        status: RunStatus::Running,
        epochs: Vec::new(),
        best_epoch: None,
        ..done
    };
    killed.save(&run_dir).unwrap();
    std::fs::remove_file(run_dir.join("model.safetensors")).unwrap();
    let text = resume(&data, &run_dir, &Device::Cpu, &never, &mut |_| {})
        .unwrap_err()
        .to_string();
    assert!(
        text.contains(&run_dir.display().to_string())
            && text.contains("never saved")
            && !text.contains("only until it completes"),
        "{text}"
    );
}
