//! The window, driven headless with egui_kittest, tab by tab: what a user clicks and what
//! the window then shows (counts, curves, stop messages, evaluations, maps, verdicts).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "common/window.rs"]
mod window;

use std::time::Duration;

use egui_kittest::Harness;
use egui_kittest::kittest::Queryable;
use fakelens::data::profile::Framing;
use fakelens::ui::{FakeLensApp, Tab};
use window::{Dropped, app_on, run_until, save_view, training_started, untrained_simplenet};

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

    // Opening the preview (of a file with a long path) leaves the grid's width alone.
    let before = h.state().dataset.grid_columns;
    assert!(before > 3, "{before} thumbnails per row");
    let deep = demo
        .path()
        .join("a folder with a rather long name, as photo archives have")
        .join("another_level_of_nesting_without_any_spaces_in_it");
    std::fs::create_dir_all(&deep).unwrap();
    let sample = h.state().dataset.summary.as_ref().unwrap().splits[0].1[0].clone();
    let copy = deep.join("the_same_image_under_a_long_file_name_0001.png");
    std::fs::copy(&sample.path, &copy).unwrap();
    h.state_mut().dataset.select(fakelens::data::Sample {
        path: copy,
        label: sample.label,
    });
    for _ in 0..20 {
        h.step();
        std::thread::sleep(Duration::from_millis(20));
    }
    h.get_by_label_contains("label: ");
    save_view(&mut h, "dataset-preview");
    assert_eq!(
        h.state().dataset.grid_columns,
        before,
        "the grid does not reflow"
    );
}

#[test]
fn starting_a_tiny_run_puts_points_on_the_curves() {
    let demo = common::small_demo(24, 4);
    let runs = demo.path().join("runs");
    let mut h = training_started(&demo, 1, 8);
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

#[test]
fn stopping_a_run_after_its_first_epoch_says_one_true_thing_and_keeps_no_stale_progress() {
    let demo = common::small_demo(24, 5);
    let mut h = training_started(&demo, 50, 4);
    // Stop once the first epoch has been evaluated (a checkpoint exists) and the second runs.
    run_until(&mut h, Duration::from_secs(240), |app| {
        app.training.epochs.len() == 1
            && app.training.progress.as_ref().is_some_and(|p| p.epoch == 2)
    });
    h.get_by_label("Stop").click();
    h.step();
    run_until(&mut h, Duration::from_secs(120), |app| {
        !app.training.running
    });
    assert_eq!(
        h.query_all_by_label_contains("ETA").count()
            + h.query_all_by_label_contains("img/s").count(),
        0,
        "no progress bar is left from the run: {:?}",
        h.state().training.progress
    );
    h.get_by_label_contains("Run stopped by you. Best val epoch 1");
    assert_eq!(
        h.query_all_by_label_contains("no checkpoint").count(),
        0,
        "nothing says no checkpoint was saved"
    );
    let notices = &h.state().notices;
    assert!(
        notices
            .iter()
            .any(|n| n.contains("the best checkpoint (epoch 1)")),
        "the status bar agrees: {notices:?}"
    );
    // Opened again as an earlier run (its run.json read off the UI thread), it shows the
    // same epoch.
    let dir = h.state().training.run_dir.clone().unwrap();
    h.state_mut().training.epochs.clear();
    h.state_mut().training.result = None;
    let ctx = h.ctx.clone();
    h.state_mut().training.open_run(&ctx, dir);
    run_until(&mut h, Duration::from_secs(30), |app| {
        app.training.result.is_some() && app.training.epochs.len() == 1
    });
}

/// The Compare tab: ticking two trained runs (SimpleNet and LilXception) and pressing
/// Evaluate shows both in the table and in the ROC plot's legend; moving the threshold
/// changes the confusion matrix.
#[test]
fn compare_tab_evaluates_two_runs_and_the_threshold_moves_the_confusion_matrix() {
    use fakelens::config::{ModelKind, TrainConfig};
    use fakelens::train::{TrainData, train};
    use std::sync::atomic::AtomicBool;
    let demo = common::small_demo(24, 6);
    let root = demo.path().join("demo");
    let runs = demo.path().join("runs");
    let data = TrainData::prepare(
        &root,
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    for (model, name) in [
        (ModelKind::SimpleNet, "simple"),
        (ModelKind::LilXception, "lil"),
    ] {
        let config = TrainConfig {
            model,
            epochs: 1,
            batch_size: 8,
            input: Framing::Whole,
            ..TrainConfig::default()
        };
        let dir = runs.join(name);
        let device = candle_core::Device::Cpu;
        train(
            &config,
            &data,
            &dir,
            &device,
            &AtomicBool::new(false),
            &mut |_| {},
        )
        .unwrap();
    }
    let app = app_on(&root, &runs, Tab::Compare);
    let mut h = Harness::builder()
        .with_size([1280.0, 1400.0])
        .build_ui_state(|ui, app: &mut FakeLensApp| app.show(ui), app);
    // The run list is read off the UI thread; wait for both runs.
    run_until(&mut h, Duration::from_secs(30), |app| {
        app.compare.runs.len() >= 2
    });
    h.step();
    h.get_by_label_contains("SimpleNet · simple").click();
    h.get_by_label_contains("LilXception · lil  (").click();
    h.step();
    h.get_by_label("Evaluate").click();
    h.step();
    run_until(&mut h, Duration::from_secs(240), |app| {
        app.compare.results.len() == 2 || app.compare.error.is_some()
    });
    assert!(
        h.state().compare.error.is_none(),
        "{:?}",
        h.state().compare.error
    );
    h.get_by_label("AUC");
    for name in ["SimpleNet · simple", "LilXception · lil"] {
        // The run list, the table, and the legends of the ROC, DET and training plots.
        let shown = h.query_all_by_label_contains(name).count();
        assert!(shown >= 4, "{name} shown {shown} times");
    }
    let confusion = |h: &Harness<'_, FakeLensApp>| -> String {
        h.query_all_by_label_contains("real as fake:")
            .map(|n| format!("{n:?}"))
            .collect()
    };
    h.state_mut().compare.threshold = 0.0;
    h.step();
    h.step();
    let everything_fake = confusion(&h);
    h.state_mut().compare.threshold = 1.0;
    h.step();
    h.step();
    assert_ne!(
        confusion(&h),
        everything_fake,
        "the confusion matrix follows the threshold"
    );
    h.get_by_label_contains("real as fake: 0");
}

#[test]
fn explain_tab_shows_two_runs_maps_of_one_image_and_alpha_changes_the_overlay() {
    use fakelens::config::{ModelKind, TrainConfig};
    use fakelens::train::{TrainData, train};
    use std::sync::atomic::AtomicBool;
    let demo = common::small_demo(24, 7);
    let root = demo.path().join("demo");
    let runs = demo.path().join("runs");
    let data = TrainData::prepare(
        &root,
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    for (model, name) in [
        (ModelKind::SimpleNet, "simple"),
        (ModelKind::LilXception, "lil"),
    ] {
        let config = TrainConfig {
            model,
            epochs: 1,
            batch_size: 8,
            input: Framing::Whole,
            ..TrainConfig::default()
        };
        let device = candle_core::Device::Cpu;
        let cancel = AtomicBool::new(false);
        train(
            &config,
            &data,
            &runs.join(name),
            &device,
            &cancel,
            &mut |_| {},
        )
        .unwrap();
    }
    let app = app_on(&root, &runs, Tab::Explain);
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, app: &mut FakeLensApp| app.show(ui), app);
    // Arriving ticks one run (the bundled detector, else the newest usable run), once the
    // run list (read off the UI thread) arrives; this test compares its own two.
    run_until(&mut h, Duration::from_secs(60), |app| {
        app.dataset.summary.is_some() && app.explain.selected.len() == 1
    });
    h.state_mut().explain.selected.clear();
    h.get_by_label_contains("SimpleNet · simple").click();
    h.get_by_label("LilXception · lil").click();
    h.step();
    run_until(&mut h, Duration::from_secs(120), |app| {
        app.explain
            .result
            .as_ref()
            .is_some_and(|r| r.maps.len() == 2)
            || app.explain.error.is_some()
    });
    assert!(
        h.state().explain.error.is_none(),
        "{:?}",
        h.state().explain.error
    );
    let result = h.state().explain.result.clone().unwrap();
    assert_eq!(result.request.method.label(), "Grad-CAM (conv3)");
    assert_eq!(result.maps[0].map.width, 256);
    // Both maps are of the same picture; each column names its run and verdict.
    assert_eq!(h.query_all_by_label_contains("fake probability").count(), 2);
    let before = h.state().explain.overlays.images.clone();
    assert_eq!(before.len(), 2);
    h.state_mut().explain.style.alpha = 0.9;
    h.step();
    h.step();
    let after = &h.state().explain.overlays.images;
    assert_eq!(after.len(), 2);
    assert_ne!(&before, after, "the opacity changes the rendered overlay");
    assert!(h.query_all_by_label("overlay opacity").count() >= 1);

    // The grid of the split's images and their maps, as a background job.
    h.get_by_label("Grid").click();
    h.step();
    run_until(&mut h, Duration::from_secs(120), |app| {
        app.explain.grid.is_some() || app.explain.error.is_some()
    });
    assert!(
        h.state().explain.error.is_none(),
        "{:?}",
        h.state().explain.error
    );
    let (title, tiles) = h.state().explain.grid.clone().unwrap();
    let test_images = h.state().dataset.summary.as_ref().unwrap().counts()[2].1;
    assert_eq!(tiles.len(), test_images[0] + test_images[1], "{title}");
    assert!(tiles.iter().all(|t| t.map.values.len() == 256 * 256));

    // Mean maps for both runs, each captioned with its class.
    h.get_by_label("Mean maps").click();
    h.step();
    run_until(&mut h, Duration::from_secs(120), |app| {
        app.explain.means.len() == 2 || app.explain.error.is_some()
    });
    assert!(
        h.state().explain.error.is_none(),
        "{:?}",
        h.state().explain.error
    );
    for class in ["real", "fake"] {
        let caption = format!("{class} · mean of");
        assert_eq!(
            h.query_all_by_label_contains(&caption).count(),
            2,
            "{caption}"
        );
    }
    save_view(&mut h, "explain-mean-maps");
    // The next image's maps come back into view from down at the mean maps.
    let shown = h
        .state()
        .explain
        .result
        .as_ref()
        .unwrap()
        .request
        .image
        .clone();
    h.get_by_label("next").click();
    h.step();
    run_until(&mut h, Duration::from_secs(120), |app| {
        app.explain
            .result
            .as_ref()
            .is_some_and(|r| r.request.image != shown)
            || app.explain.error.is_some()
    });
    h.step();
    save_view(&mut h, "explain-next-image");

    // A demo fake: its ground-truth mask is offered as an outline over each map.
    let fake_index = {
        let summary = h.state().dataset.summary.clone().unwrap();
        let (_, samples) = summary
            .splits
            .iter()
            .find(|(split, _)| *split == fakelens::data::Split::Test)
            .unwrap();
        samples.iter().position(|s| s.label == 1).unwrap()
    };
    h.state_mut().explain.source = fakelens::ui::explain_tab::ImageSource::Dataset {
        split: fakelens::data::Split::Test,
        index: fake_index,
    };
    h.step();
    run_until(&mut h, Duration::from_secs(120), |app| {
        app.explain
            .result
            .as_ref()
            .is_some_and(|r| r.mask.is_some())
            || app.explain.error.is_some()
    });
    assert!(
        h.state().explain.error.is_none(),
        "{:?}",
        h.state().explain.error
    );
    h.step();
    save_view(&mut h, "explain-mask-outline");
    let outlined = h.state().explain.overlays.images.clone();
    h.get_by_label("outline the manipulated region").click();
    h.step();
    h.step();
    let plain = &h.state().explain.overlays.images;
    assert_ne!(
        &outlined, plain,
        "the outline is drawn over the maps and can be hidden"
    );
    let white = |images: &[image::RgbImage]| {
        images[0]
            .pixels()
            .filter(|p| p.0 == [255, 255, 255])
            .count()
    };
    assert!(white(&outlined) > white(plain), "the outline is white");
}

#[test]
fn dropping_photos_makes_cards_with_verdicts_and_a_bad_file_its_own_error() {
    use fakelens::config::ModelKind;
    let demo = common::small_demo(24, 9);
    let root = demo.path().join("demo");
    let runs = demo.path().join("runs");
    // An untrained SimpleNet made a run (no dataset of its own: threshold 0.5).
    let checkpoint = untrained_simplenet(demo.path());
    fakelens::train::imported::import_as_run(&checkpoint, ModelKind::SimpleNet, &runs).unwrap();
    let faces: Vec<std::path::PathBuf> = std::fs::read_dir(root.join("test/fake"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| !fakelens::data::index::is_mask_file(p))
        .take(2)
        .collect();
    let bad = demo.path().join("not-a-photo.jpg");
    std::fs::write(&bad, b"plain text").unwrap();
    let app = app_on(&root, &runs, Tab::Dataset);
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, app: &mut FakeLensApp| app.show(ui), app);
    h.step();
    for path in faces.iter().chain([&bad]) {
        h.input_mut()
            .dropped_files
            .push(std::sync::Arc::new(Dropped(path.clone())));
    }
    h.step();
    assert_eq!(
        h.state().settings.tab,
        Tab::Inspect,
        "a drop opens the Inspect tab"
    );
    assert_eq!(h.state().inspect.cards.len(), 3);
    run_until(&mut h, Duration::from_secs(120), |app| {
        app.inspect.cards.iter().all(|c| c.result.is_some()) || app.inspect.error.is_some()
    });
    assert!(
        h.state().inspect.error.is_none(),
        "{:?}",
        h.state().inspect.error
    );
    let results: Vec<_> = h
        .state()
        .inspect
        .cards
        .iter()
        .map(|c| c.result.clone().unwrap())
        .collect();
    assert!(results[0].as_ref().unwrap().verdicts.len() == 1);
    assert!(results[1].as_ref().unwrap().verdicts.len() == 1);
    let error = results[2].as_ref().unwrap_err();
    assert!(
        error.contains("not-a-photo.jpg") && error.contains("not a supported image"),
        "{error}"
    );
    // Both verdicts and the error are on screen.
    assert_eq!(h.query_all_by_label_contains("fake probability").count(), 2);
    h.get_by_label_contains("not a supported image");
    // A dropped folder is listed off the UI thread; its photos arrive as cards.
    h.input_mut()
        .dropped_files
        .push(std::sync::Arc::new(Dropped(root.join("test/real"))));
    run_until(&mut h, Duration::from_secs(30), |app| {
        app.inspect.cards.len() > 3
    });
}

/// A run without a checkpoint is listed greyed and never ticked; a detector whose checkpoint
/// is broken says so on the card while the other answers; an untrained model's probability
/// near its 0.5 threshold reads UNSURE.
#[test]
fn a_failing_detector_never_blocks_the_others_and_a_checkpointless_run_is_not_tickable() {
    use fakelens::config::ModelKind;
    let demo = common::small_demo(24, 12);
    let root = demo.path().join("demo");
    let runs = demo.path().join("runs");
    let checkpoint = untrained_simplenet(demo.path());
    let (good, _) =
        fakelens::train::imported::import_as_run(&checkpoint, ModelKind::SimpleNet, &runs).unwrap();
    let (broken, _) =
        fakelens::train::imported::import_as_run(&checkpoint, ModelKind::SimpleNet, &runs).unwrap();
    std::fs::write(broken.join("model.safetensors"), b"not a checkpoint").unwrap();
    let (empty, _) =
        fakelens::train::imported::import_as_run(&checkpoint, ModelKind::SimpleNet, &runs).unwrap();
    std::fs::remove_file(empty.join("model.safetensors")).unwrap();
    let face = std::fs::read_dir(root.join("test/real"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| !fakelens::data::index::is_mask_file(p))
        .unwrap();
    let app = app_on(&root, &runs, Tab::Inspect);
    let mut h = Harness::builder()
        .with_size([1280.0, 900.0])
        .build_ui_state(|ui, app: &mut FakeLensApp| app.show(ui), app);
    // The run list is read off the UI thread; wait for it.
    run_until(&mut h, Duration::from_secs(30), |app| {
        app.inspect.runs.iter().any(|r| r.dir == empty)
    });
    assert!(
        !h.state().inspect.selected.contains(&empty),
        "a run without a checkpoint is never ticked by default"
    );
    let entry = h
        .state()
        .inspect
        .runs
        .iter()
        .find(|r| r.dir == empty)
        .unwrap()
        .clone();
    assert!(entry.unusable.is_some(), "{entry:?}");
    // Tick exactly the good and the broken run.
    h.state_mut().inspect.selected.clear();
    h.state_mut().inspect.selected.insert(good.clone());
    h.state_mut().inspect.selected.insert(broken.clone());
    h.state_mut().inspect.selected.insert(empty.clone());
    let ctx = h.ctx.clone();
    h.state_mut().inspect.add_paths(&ctx, &[face]);
    h.step();
    assert!(
        !h.state().inspect.selected.contains(&empty),
        "drawing the list unticks a run without a checkpoint"
    );
    run_until(&mut h, Duration::from_secs(120), |app| {
        app.inspect.cards.iter().all(|c| c.result.is_some()) || app.inspect.error.is_some()
    });
    assert!(
        h.state().inspect.error.is_none(),
        "{:?}",
        h.state().inspect.error
    );
    let photo = h.state().inspect.cards[0].result.clone().unwrap().unwrap();
    assert_eq!(photo.verdicts.len(), 1, "the good detector answered");
    assert_eq!(photo.failures.len(), 1, "the broken one said why");
    assert_eq!(photo.failures[0].0, broken);
    let verdict = &photo.verdicts[0].verdict;
    assert_eq!(
        verdict.decision,
        fakelens::inspect::verdict::Decision::Unsure,
        "{verdict:?}"
    );
    h.get_by_label("UNSURE");
    h.get_by_label_contains("no verdict");
    h.get_by_label_contains("trained on imported");
}
