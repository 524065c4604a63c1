//! A run folder is safe to share: a second trainer is refused while one trains there and let
//! in once it has finished; a fresh run does not overwrite an existing one; a run stopped by
//! an I/O error records why; a run that never saved a state says so on resume; the temporary
//! files of writes killed before their rename are removed at the next start or resume.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::Device;
use fakelens::config::{ModelKind, TrainConfig};
use fakelens::data::profile::Framing;
use fakelens::runs::{RunRecord, RunStatus};
use fakelens::train::run_folder::LOCK_FILE;
use fakelens::train::{TrainEvent, resume, train, train_replacing};

fn config(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 4,
        seed: 3,
        input: Framing::Whole,
        ..TrainConfig::default()
    }
}

/// Every file of `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect();
    files.sort();
    files
}

/// The temp sibling another process (pid `pid`) would have left for `name` in `dir`.
fn stale_temp(dir: &Path, name: &str, pid: u32) -> PathBuf {
    let path = dir.join(format!("{name}.{pid}.tmp"));
    std::fs::write(&path, vec![0u8; 4096]).unwrap();
    path
}

#[test]
fn a_second_trainer_is_refused_while_the_folder_is_locked() {
    let demo = common::small_demo(24, 2);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    let cfg = config(1);
    let mut tried = false;
    let first = train(
        &cfg,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |event| {
            let TrainEvent::Batch(p) = event else { return };
            if tried || p.batch != 1 {
                return;
            }
            tried = true;
            let before = snapshot(&run_dir);
            let other = TrainConfig {
                model: ModelKind::LilXception,
                ..cfg.clone()
            };
            let never = AtomicBool::new(false);
            let refusals = [
                train(&other, &data, &run_dir, &Device::Cpu, &never, &mut |_| {}).unwrap_err(),
                train_replacing(&other, &data, &run_dir, &Device::Cpu, &never, &mut |_| {})
                    .unwrap_err(),
                resume(&data, &run_dir, &Device::Cpu, &never, &mut |_| {}).unwrap_err(),
            ];
            for err in refusals {
                let text = err.to_string();
                assert!(
                    text.contains(&run_dir.display().to_string())
                        && text.contains("is in use")
                        && text.contains(&format!("pid {}", std::process::id())),
                    "{text}"
                );
            }
            assert_eq!(
                snapshot(&run_dir),
                before,
                "the first run's files are untouched"
            );
        },
    )
    .unwrap();
    assert!(tried, "the second trainer was tried");
    assert_eq!(first.status, RunStatus::Completed);
    assert_eq!(
        RunRecord::load(&run_dir).unwrap().model,
        ModelKind::SimpleNet
    );
    fakelens::models::load(
        ModelKind::SimpleNet,
        &run_dir.join("model.safetensors"),
        &Device::Cpu,
    )
    .unwrap();
    // Released when the first run returned: the lock file is gone and a trainer gets in.
    assert!(!run_dir.join(LOCK_FILE).exists());
    let replaced = train_replacing(
        &cfg,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(replaced.status, RunStatus::Completed);
}

/// A fresh run over a resumable one is refused with the resume command; a resume and a
/// replacing start remove the temp files other processes left (and only those).
#[test]
fn an_existing_run_is_kept_and_stale_temps_are_removed_at_resume_and_start() {
    let demo = common::small_demo(24, 4);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    let cfg = config(2);
    let cancel = AtomicBool::new(false);
    let stopped = train(&cfg, &data, &run_dir, &Device::Cpu, &cancel, &mut |e| {
        if let TrainEvent::Batch(p) = e
            && p.step >= 2
        {
            cancel.store(true, Ordering::Relaxed);
        }
    })
    .unwrap();
    assert_eq!(stopped.status, RunStatus::Cancelled);

    let before = snapshot(&run_dir);
    let never = AtomicBool::new(false);
    let err = train(&cfg, &data, &run_dir, &Device::Cpu, &never, &mut |_| {}).unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("already holds a run")
            && text.contains(&format!("fakelens train --resume {}", run_dir.display()))
            && text.contains("--force"),
        "{text}"
    );
    assert_eq!(
        snapshot(&run_dir),
        before,
        "the refused start wrote nothing"
    );

    let other = std::process::id().wrapping_add(1);
    let stale = [
        stale_temp(&run_dir, "model.safetensors", other),
        stale_temp(&run_dir, "resume.safetensors", other),
        stale_temp(&run_dir, "run.json", other),
    ];
    // The checkpoint writer's own temporary (named by the `tempfile` crate), as a kill leaves it.
    let orphan = run_dir.join(".tmpAb12Cd");
    std::fs::write(&orphan, vec![0u8; 4096]).unwrap();
    let unrelated = stale_temp(&run_dir, "notes.txt", other);
    let resumed = resume(&data, &run_dir, &Device::Cpu, &never, &mut |_| {}).unwrap();
    assert_eq!(resumed.status, RunStatus::Completed);
    for path in stale.iter().chain([&orphan]) {
        assert!(!path.exists(), "{} is removed at resume", path.display());
    }
    assert!(unrelated.exists(), "a file that is not the run's own stays");

    let stale = stale_temp(&run_dir, "model.safetensors", other);
    let replaced = train_replacing(
        &config(1),
        &data,
        &run_dir,
        &Device::Cpu,
        &never,
        &mut |_| {},
    )
    .unwrap();
    assert_eq!(replaced.epochs.len(), 1);
    assert!(!stale.exists(), "removed at a new start");
}

/// A write that fails (the disk is full) stops the run with `run.json` saying it failed and
/// why, not "running".
#[cfg(target_os = "linux")]
#[test]
fn an_io_error_is_recorded_as_the_runs_failure() {
    let demo = common::small_demo(24, 6);
    let data = common::prepare_whole(&demo.path().join("demo"));
    let run_dir = demo.path().join("run");
    // run.json, saved again after epoch 1, is written through its temp sibling: make that a
    // full disk.
    let full = fakelens::fsutil::temp_sibling(&run_dir.join("run.json"));
    let err = train(
        &config(2),
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |e| {
            if let TrainEvent::Started { .. } = e {
                std::os::unix::fs::symlink("/dev/full", &full).unwrap();
            }
        },
    )
    .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("run.json"), "{text}");
    let record = RunRecord::load(&run_dir).unwrap();
    let RunStatus::Failed { reason } = &record.status else {
        panic!("status {:?}", record.status);
    };
    assert!(
        reason.contains("cannot write") && reason.contains("No space left on device"),
        "{reason}"
    );
    assert_eq!(
        record.epochs.len(),
        1,
        "the epoch before the failure is kept"
    );
    assert!(!full.exists(), "the failed write's temp is removed");
}

/// A run killed before its first save (run.json says running, no state) is told it never
/// saved one; a completed run that it keeps none once done.
#[test]
fn resuming_a_run_that_never_saved_a_state_says_so() {
    let demo = common::small_demo(24, 8);
    let data = common::prepare_whole(&demo.path().join("demo"));
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
