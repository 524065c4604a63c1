//! The window tests' helpers (tests/ui.rs): an app on a dataset and runs folder, stepping it
//! until the worker has answered, saving what it shows, starting a run, dropping files.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use fakelens::ui::{FakeLensApp, Settings, Tab};

pub fn app_on(root: &std::path::Path, runs: &std::path::Path, tab: Tab) -> FakeLensApp {
    let settings = Settings {
        tab,
        data_root: Some(root.to_path_buf()),
        runs_dir: runs.to_path_buf(),
        ..Settings::default()
    };
    FakeLensApp::new(&egui::Context::default(), settings).unwrap()
}

/// Steps the UI until `done` holds (the worker runs on its own thread meanwhile).
pub fn run_until(
    h: &mut Harness<'_, FakeLensApp>,
    timeout: Duration,
    done: impl Fn(&FakeLensApp) -> bool,
) {
    let start = Instant::now();
    while !done(h.state()) {
        assert!(
            start.elapsed() < timeout,
            "timed out waiting for the worker"
        );
        std::thread::sleep(Duration::from_millis(50));
        h.step();
    }
    h.step();
}

/// Saves what the window shows as `name`.png under `$FAKELENS_UI_VIEWS`, when it is set: the
/// tests' states, for a person to look at (needs a wgpu adapter; llvmpipe will do).
pub fn save_view(h: &mut Harness<'_, FakeLensApp>, name: &str) {
    let Ok(dir) = std::env::var("FAKELENS_UI_VIEWS") else {
        return;
    };
    std::fs::create_dir_all(&dir).unwrap();
    let view = h.render().unwrap();
    view.save(std::path::Path::new(&dir).join(format!("{name}.png")))
        .unwrap();
}

/// The Training tab on `demo`'s data (runs in `demo/runs`), after clicking Start with
/// `epochs` and `batch_size`.
pub fn training_started(
    demo: &tempfile::TempDir,
    epochs: usize,
    batch_size: usize,
) -> Harness<'static, FakeLensApp> {
    let root = demo.path().join("demo");
    let mut app = app_on(&root, &demo.path().join("runs"), Tab::Training);
    app.training.config.epochs = epochs;
    app.training.config.batch_size = batch_size;
    let mut h = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut FakeLensApp| app.show(ui), app);
    run_until(&mut h, Duration::from_secs(60), |app| {
        app.dataset.root.is_some()
    });
    h.get_by_label("Start training").click();
    h.step();
    h
}

/// A file dropped on the window, as eframe hands it to egui.
#[derive(Debug)]
pub struct Dropped(pub std::path::PathBuf);

impl egui::DroppedFile for Dropped {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
    fn bytes(&self) -> Result<Vec<u8>, String> {
        std::fs::read(&self.0).map_err(|e| e.to_string())
    }
}

/// An untrained SimpleNet's checkpoint in `dir` (seed 0), to import as a run.
pub fn untrained_simplenet(dir: &std::path::Path) -> std::path::PathBuf {
    let kind = fakelens::config::ModelKind::SimpleNet;
    let model = fakelens::models::build(kind, &candle_core::Device::Cpu, 0).unwrap();
    let checkpoint = dir.join("simplenet.safetensors");
    model.params().save(&checkpoint).unwrap();
    checkpoint
}
