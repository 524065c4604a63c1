//! The window, driven headless with egui_kittest: the Dataset tab shows the demo set's
//! counts, and starting a tiny run from the Training tab puts points on the curves.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use fakelens::ui::{FakeLensApp, Settings, Tab};

fn app_on(root: &std::path::Path, runs: &std::path::Path, tab: Tab) -> FakeLensApp {
    let settings = Settings {
        tab,
        data_root: Some(root.to_path_buf()),
        runs_dir: runs.to_path_buf(),
        ..Settings::default()
    };
    FakeLensApp::new(&egui::Context::default(), settings).unwrap()
}

/// Steps the UI until `done` holds (the worker runs on its own thread meanwhile).
fn run_until(
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

#[test]
fn dataset_tab_shows_the_demo_counts() {
    let demo = common::small_demo(40, 1);
    let root = demo.path().join("demo");
    let app = app_on(&root, &demo.path().join("runs"), Tab::Dataset);
    let mut h = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut FakeLensApp| app.show(ui), app);
    run_until(&mut h, Duration::from_secs(60), |app| {
        app.dataset.unreadable.is_some()
    });
    // 40 images: 12 train, 4 val, 4 test per class.
    let counts: Vec<_> = h
        .state()
        .dataset
        .counts()
        .into_iter()
        .map(|(s, c)| (s.name(), c))
        .collect();
    assert_eq!(
        counts,
        vec![("train", [12, 12]), ("val", [4, 4]), ("test", [4, 4])]
    );
    h.get_by_label("train");
    assert_eq!(
        h.query_all_by_label("12").count(),
        2,
        "train real and fake counts shown"
    );
    assert_eq!(h.query_all_by_label("24").count(), 1, "train total shown");
    h.get_by_label("Unreadable files: 0");
}

#[test]
fn starting_a_tiny_run_puts_points_on_the_curves() {
    let demo = common::small_demo(24, 4);
    let root = demo.path().join("demo");
    let runs = demo.path().join("runs");
    let mut app = app_on(&root, &runs, Tab::Training);
    app.training.config.epochs = 1;
    app.training.config.batch_size = 8;
    let mut h = Harness::builder()
        .with_size([1280.0, 800.0])
        .build_ui_state(|ui, app: &mut FakeLensApp| app.show(ui), app);
    run_until(&mut h, Duration::from_secs(60), |app| {
        app.dataset.root.is_some()
    });
    h.get_by_label("Start training").click();
    h.step();
    assert!(h.state().training.running);
    run_until(&mut h, Duration::from_secs(240), |app| {
        !app.training.running
    });
    let training = &h.state().training;
    assert!(training.error.is_none(), "{:?}", training.error);
    assert!(
        !training.batch_losses.is_empty(),
        "per-batch loss curve has points"
    );
    assert_eq!(training.epochs.len(), 1, "per-epoch curves have a point");
    let run_dir = training.run_dir.clone().unwrap();
    assert!(run_dir.starts_with(&runs));
    assert!(run_dir.join("model.safetensors").is_file());
    h.get_by_label_contains("Best val epoch 1");
}
