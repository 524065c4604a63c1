//! Helpers shared by the integration tests.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
#![allow(dead_code)]

pub mod conv;
pub mod formula;
pub mod frozen;

use std::path::{Path, PathBuf};
use std::process::Command;

/// The `fakelens` binary built for these tests.
pub fn fakelens() -> Command {
    Command::new(env!("CARGO_BIN_EXE_fakelens"))
}

/// Runs `command`, asserts that it exited 0 (showing its output if not), and returns its
/// standard output.
pub fn run_ok(command: &mut Command) -> String {
    let out = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The shared real dataset, if present (CI has it; a missing folder skips with a notice).
pub fn lfw_faceswap() -> Option<PathBuf> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/datasets/lfw-faceswap");
    if path.is_dir() {
        Some(path)
    } else if std::env::var_os("FAKELENS_REQUIRE_DATA").is_some_and(|v| v == "1") {
        panic!("{} is absent and FAKELENS_REQUIRE_DATA=1", path.display());
    } else {
        eprintln!(
            "notice: {} is absent; skipping the real-data part of this test",
            path.display()
        );
        None
    }
}

/// Reads a fixture JSON file under tests/fixtures.
pub fn fixture(relative: &str) -> serde_json::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

pub fn usizes(value: &serde_json::Value) -> Vec<usize> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as usize)
        .collect()
}

pub fn floats(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

/// Largest absolute difference divided by the largest absolute expected value.
/// A parameter or buffer of `model` by key, as f64 values.
pub fn param_values(model: &dyn fakelens::models::Detector, key: &str) -> Vec<f64> {
    let var = model.params().get(key).unwrap();
    var.as_tensor()
        .flatten_all()
        .unwrap()
        .to_dtype(candle_core::DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap()
}

/// Largest absolute difference relative to the largest magnitude of `want`, in f64.
pub fn relative_error_f64(got: &[f64], want: &[f64]) -> f64 {
    assert_eq!(got.len(), want.len(), "length mismatch");
    let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs())).max(1e-300);
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f64::max)
        / scale
}

pub fn relative_max_error(got: &[f32], expected: &[f64]) -> f64 {
    assert_eq!(got.len(), expected.len(), "length mismatch");
    let scale = expected
        .iter()
        .fold(0.0f64, |m, v| m.max(v.abs()))
        .max(1e-30);
    got.iter()
        .zip(expected)
        .map(|(g, e)| (*g as f64 - e).abs())
        .fold(0.0, f64::max)
        / scale
}

/// A small demo dataset written once per test binary into a temp dir.
pub fn small_demo(count: usize, seed: u64) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fakelens::data::demo::write_demo_dataset(&dir.path().join("demo"), seed, count).unwrap();
    dir
}

/// The dataset at `root` decoded for training, as whole images.
pub fn prepare_whole(root: &Path) -> fakelens::train::TrainData {
    fakelens::train::TrainData::prepare(
        root,
        &fakelens::data::profile::Framing::Whole,
        &std::sync::atomic::AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap()
}
