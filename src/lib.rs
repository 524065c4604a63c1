//! FakeLens: a desktop workbench for detecting face manipulations and for seeing why a
//! detector decides. This crate exposes the engine (data, models, training) to the GUI, the
//! CLI and the tests; the GUI (`ui`) and the compute thread (`worker`) are thin drivers of it.

pub mod bench;
pub mod cli;
pub mod config;
pub mod csv_text;
pub mod data;
pub mod device;
pub mod eval;
pub mod explain;
pub mod format;
pub mod fsutil;
pub mod inspect;
pub mod models;
pub mod ops;
pub mod report;
pub mod runs;
pub mod train;
pub mod ui;
pub mod worker;

/// Labels used everywhere: 0 = real, 1 = fake; `fake` is the positive class.
pub const LABEL_REAL: u32 = 0;
/// The positive class of every ROC/DET/EER.
pub const LABEL_FAKE: u32 = 1;
/// Class names indexed by label.
pub const CLASS_NAMES: [&str; 2] = ["real", "fake"];
