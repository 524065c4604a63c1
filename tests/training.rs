//! End-to-end training on demo data: the loss falls and accuracy beats chance; checkpoints
//! round-trip exactly; a cancelled run leaves a loadable checkpoint and a valid run.json; a
//! diverging run stops with a clear message; a checkpoint for another model is refused.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{Device, Tensor};
use fakelens::config::{ModelKind, OptimizerKind, TrainConfig};
use fakelens::data::profile::Framing;
use fakelens::eval::margins::evaluate_split;
use fakelens::models::{self, ModelError};
use fakelens::runs::{RunRecord, RunStatus};
use fakelens::train::{TrainError, TrainEvent, train};

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        seed: 3,
        input: Framing::Whole,
        ..TrainConfig::default()
    }
}

#[test]
fn short_run_on_demo_data_learns_and_checkpoints_round_trip() {
    let demo = common::small_demo(100, 11);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    // 60 training images, 6 epochs of 8: enough steps to fit them, far from a full run.
    let cfg = TrainConfig {
        lr: 3e-4,
        batch_size: 8,
        augment: false,
        ..config(6)
    };
    let mut batches = 0;
    // The last evaluation progress seen per (epoch, split): the evaluation phase is not silent.
    let mut evaluated = std::collections::BTreeMap::new();
    let record = train(
        &cfg,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |e| match e {
            TrainEvent::Batch(_) => batches += 1,
            TrainEvent::Evaluating(p) => {
                evaluated.insert((p.epoch, p.split), (p.images_done, p.images_total));
            }
            _ => {}
        },
    )
    .unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert!(batches > 0, "progress was reported");
    for epoch in 1..=6 {
        let val = evaluated.get(&(epoch, fakelens::data::Split::Val));
        assert!(
            matches!(val, Some(&(done, total)) if total == data.val.len() && done == total),
            "epoch {epoch}: val evaluation progress {val:?} of {} images",
            data.val.len()
        );
    }
    let first = &record.epochs[0];
    let last = record.epochs.last().unwrap();
    assert!(
        last.train_loss < first.train_loss - 0.1,
        "loss falls: {} → {}",
        first.train_loss,
        last.train_loss
    );
    assert!(
        last.train_acc > 0.7,
        "accuracy beats chance: {}",
        last.train_acc
    );
    let best = record.best_val_acc.unwrap();

    // run.json on disk equals the returned record.
    assert_eq!(RunRecord::load(&run_dir).unwrap(), record);

    // The saved checkpoint reproduces the best epoch's val accuracy exactly.
    let model = models::load(
        ModelKind::SimpleNet,
        &run_dir.join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let norm = ModelKind::SimpleNet.normalization();
    let val = evaluate_split(
        fakelens::models::Evaluator::unfolded(model.as_ref()),
        &data.val,
        16,
        norm,
        &Device::Cpu,
        &AtomicBool::new(false),
    )
    .unwrap()
    .unwrap();
    assert_eq!(val.acc, best);

    // Save → load gives identical outputs.
    let copy = demo.path().join("copy.safetensors");
    model.params().save(&copy).unwrap();
    let reloaded = models::load(ModelKind::SimpleNet, &copy, &Device::Cpu).unwrap();
    let x = Tensor::randn(0f32, 1.0, (2, 3, 256, 256), &Device::Cpu).unwrap();
    let a = model
        .forward_t(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    let b = reloaded
        .forward_t(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap();
    assert_eq!(a, b);
}

#[test]
fn cancelled_run_keeps_a_loadable_checkpoint_and_valid_history() {
    let demo = common::small_demo(60, 5);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    let cancel = Arc::new(AtomicBool::new(false));
    let mut epochs_seen = 0;
    let flag = cancel.clone();
    let record = train(
        &config(5),
        &data,
        &run_dir,
        &Device::Cpu,
        &cancel,
        &mut |e| match e {
            TrainEvent::Epoch(_) => epochs_seen += 1,
            TrainEvent::Batch(p) if p.epoch == 2 => flag.store(true, Ordering::Relaxed),
            _ => {}
        },
    )
    .unwrap();
    assert_eq!(record.status, RunStatus::Cancelled);
    assert_eq!(epochs_seen, 1, "stopped within epoch 2");
    let on_disk = RunRecord::load(&run_dir).unwrap();
    assert_eq!(on_disk.status, RunStatus::Cancelled);
    assert_eq!(on_disk.epochs.len(), 1);
    assert_eq!(on_disk.best_epoch, Some(1));
    models::load(
        ModelKind::SimpleNet,
        &run_dir.join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    let leftovers: Vec<_> = std::fs::read_dir(&run_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no half-written files: {leftovers:?}");
}

#[test]
fn diverging_run_stops_with_a_clear_message() {
    let demo = common::small_demo(24, 2);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    // Steps of 1e30 per weight overflow the activations to inf, so a loss turns NaN.
    let cfg = TrainConfig {
        optimizer: OptimizerKind::Sgd,
        lr: 1e30,
        momentum: 0.0,
        ..config(2)
    };
    let err = train(
        &cfg,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TrainError::NonFinite { .. } | TrainError::NonFiniteEval { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("lower learning rate"));
    let record = RunRecord::load(&run_dir).unwrap();
    assert!(matches!(record.status, RunStatus::Failed { .. }));
}

#[test]
fn impossible_settings_are_refused_before_anything_is_written() {
    let demo = common::small_demo(24, 2);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    let cfg = TrainConfig {
        lr: f64::NAN,
        ..config(1)
    };
    let err = train(
        &cfg,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(
        err.to_string()
            .contains("learning rate must be a positive number"),
        "{err}"
    );
    assert!(!run_dir.exists());
}

#[test]
fn wrong_or_corrupt_checkpoints_are_refused_with_path_and_cause() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong.safetensors");
    let mut tensors = std::collections::HashMap::new();
    let model = models::build(ModelKind::SimpleNet, &Device::Cpu, 0).unwrap();
    for (name, var) in model.params().named_vars() {
        tensors.insert(name.to_string(), var.as_tensor().clone());
    }
    tensors.insert(
        "conv1.weight".into(),
        Tensor::zeros((32, 3, 3, 3), candle_core::DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, &wrong).unwrap();
    let err = models::load(ModelKind::SimpleNet, &wrong, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::ShapeMismatch { .. }), "{err}");
    let text = err.to_string();
    assert!(
        text.contains("wrong.safetensors")
            && text.contains("conv1.weight")
            && text.contains("[32, 3, 3, 3]"),
        "{text}"
    );

    let corrupt = dir.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, b"not a checkpoint").unwrap();
    let err = models::load(ModelKind::SimpleNet, &corrupt, &Device::Cpu)
        .err()
        .unwrap();
    assert!(err.to_string().contains("corrupt.safetensors"), "{err}");

    tensors.remove("conv1.weight");
    let missing = dir.path().join("missing.safetensors");
    candle_core::safetensors::save(&tensors, &missing).unwrap();
    let err = models::load(ModelKind::SimpleNet, &missing, &Device::Cpu)
        .err()
        .unwrap();
    assert!(matches!(err, ModelError::MissingKey { .. }), "{err}");
}

/// A run cancelled mid-epoch keeps a resumable state; resuming it finishes with the same
/// per-step losses (same batches, augmentations, weights and Adam moments) as a run that was
/// never interrupted, and a completed run keeps no state and refuses to resume.
#[test]
fn cancelled_run_resumes_to_the_same_losses_as_an_uninterrupted_run() {
    let demo = common::small_demo(100, 11);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let cfg = TrainConfig {
        batch_size: 8,
        ..config(2)
    };
    let whole_dir = demo.path().join("whole");
    let whole = train(
        &cfg,
        &data,
        &whole_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(whole.status, RunStatus::Completed);
    assert!(!whole_dir.join(fakelens::train::resume::STATE_FILE).exists());

    let split_dir = demo.path().join("split");
    let cancel = AtomicBool::new(false);
    let first = train(&cfg, &data, &split_dir, &Device::Cpu, &cancel, &mut |e| {
        if let TrainEvent::Batch(p) = e
            && p.step >= 3
        {
            cancel.store(true, Ordering::Relaxed);
        }
    })
    .unwrap();
    assert_eq!(first.status, RunStatus::Cancelled);
    let done_before = first.step_losses.len();
    assert!(done_before >= 3 && done_before < whole.step_losses.len());
    assert!(split_dir.join(fakelens::train::resume::STATE_FILE).exists());

    let resumed = fakelens::train::resume(
        &data,
        &split_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(resumed.status, RunStatus::Completed);
    assert_eq!(resumed.step_losses.len(), whole.step_losses.len());
    for (i, (a, b)) in resumed
        .step_losses
        .iter()
        .zip(&whole.step_losses)
        .enumerate()
    {
        assert!(
            (a - b).abs() <= 1e-4 * b.abs().max(1.0),
            "step {i} (resumed after {done_before}): loss {a} vs {b} uninterrupted"
        );
    }
    assert_eq!(resumed.epochs.len(), 2);
    assert_eq!(RunRecord::load(&split_dir).unwrap(), resumed);

    let again = fakelens::train::resume(
        &data,
        &split_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap_err();
    assert!(again.to_string().contains("no resumable state"), "{again}");
}
