//! Explanations of a trained detector point at the manipulation: a SimpleNet trained on
//! demo data (400 images, 6 epochs) has a Grad-CAM (course layer `conv3`) whose maximum
//! falls inside the fakes' ground-truth masks (15-pixel tolerance) far more often than a
//! uniformly random point does. Then `fakelens explain` writes what it promises for that
//! run: overlays and raw `.npy` maps of one image, per-class mean maps, faithfulness JSON.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fakelens, run_ok};

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use fakelens::config::{ModelKind, TrainConfig};
use fakelens::data::profile::Framing;
use fakelens::explain::Method;
use fakelens::explain::faithfulness::measure_faithfulness;
use fakelens::explain::mean_maps::SplitJob;
use fakelens::runs::loader::RunModel;
use fakelens::train::{TrainData, train};

fn npy_shape(bytes: &[u8]) -> String {
    assert_eq!(&bytes[..6], b"\x93NUMPY");
    let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(&bytes[10..10 + len]).unwrap();
    assert!(header.contains("'descr': '<f4'"), "{header}");
    let start = header.find("'shape': (").unwrap() + 10;
    let end = start + header[start..].find(')').unwrap();
    header[start..end].to_string()
}

#[test]
fn trained_grad_cam_points_at_the_manipulation_and_the_cli_writes_its_files() {
    let demo = common::small_demo(400, 5);
    let root = demo.path().join("demo");
    let data = TrainData::prepare(
        &root,
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _, _| {},
    )
    .unwrap();
    let run_dir = demo.path().join("simplenet-demo");
    let config = TrainConfig {
        model: ModelKind::SimpleNet,
        epochs: 6,
        lr: 3e-4,
        batch_size: 8,
        augment: false,
        seed: 3,
        input: Framing::Whole,
        ..TrainConfig::default()
    };
    let record = train(
        &config,
        &data,
        &run_dir,
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_| {},
    )
    .unwrap();
    let run = RunModel::load(&run_dir, &Device::Cpu).unwrap();
    let test: Arc<_> = data.test.clone().unwrap();
    let job = SplitJob {
        model: run.model.as_ref(),
        frozen: run.frozen.as_ref(),
        split: &test,
        norm: run.record.normalization,
        device: &Device::Cpu,
    };
    let method = Method::GradCam {
        layer: "conv3".into(),
    };
    let mut last_progress = (0, 0);
    let report = measure_faithfulness(&job, &method, None, &|| false, &mut |d, t| {
        last_progress = (d, t)
    })
    .unwrap();
    let pointing = report.pointing_rate.unwrap();
    let random = report.random_pointing_rate.unwrap();
    println!(
        "SimpleNet on demo data (test accuracy at best val {:?}): Grad-CAM conv3 pointing game \
         {:.1} % vs a random point {:.1} %, energy in mask {:.1} %, deletion AUC {:.3}, {} fakes",
        record.test_acc_at_best,
        100.0 * pointing,
        100.0 * random,
        100.0 * report.energy_inside.unwrap(),
        report.deletion_area,
        report.fakes
    );
    assert_eq!(report.masked, report.fakes, "every demo fake has a mask");
    assert_eq!(last_progress, (report.fakes, report.fakes));
    assert!(
        pointing >= 2.0 * random && pointing >= random + 0.15,
        "pointing game {pointing} vs random {random}"
    );

    // The CLI on the same run: one image, then the split's mean maps and faithfulness.
    let out = demo.path().join("explained");
    let image = test
        .samples
        .iter()
        .find(|s| s.label == fakelens::LABEL_FAKE)
        .unwrap()
        .path
        .clone();
    // `fakelens explain ARGS --run RUN --out OUT`, to which each call adds its input.
    let explain = |args: &[&str]| {
        let mut command = fakelens();
        command
            .arg("explain")
            .args(args)
            .arg("--run")
            .arg(&run_dir)
            .arg("--out")
            .arg(&out);
        command
    };
    run_ok(
        explain(&["--method", "gradcam++"])
            .arg("--image")
            .arg(&image),
    );
    let stem = image.file_stem().unwrap().to_string_lossy().to_string();
    let npy = std::fs::read(out.join(format!("{stem}.simplenet-demo.gradcam++.npy"))).unwrap();
    assert_eq!(npy_shape(&npy), "256, 256");
    let png = image::open(out.join(format!("{stem}.simplenet-demo.gradcam++.png"))).unwrap();
    assert_eq!((png.width(), png.height()), (256, 256));

    let stdout = run_ok(
        explain(&[
            "--method",
            "saliency",
            "--mean",
            "--metrics",
            "--limit",
            "5",
        ])
        .arg("--data")
        .arg(&root),
    );
    assert!(stdout.contains("pointing game"), "{stdout}");
    for file in [
        "mean.simplenet-demo.saliency.png",
        "mean-real.simplenet-demo.saliency.npy",
        "mean-fake.simplenet-demo.saliency.npy",
        "faithfulness.simplenet-demo.saliency.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let json: serde_json::Value = serde_json::from_slice(
        &std::fs::read(out.join("faithfulness.simplenet-demo.saliency.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(json["fakes"], 5);

    // The course's figure: six confident fakes, each followed by its map, in one row.
    run_ok(
        explain(&[
            "--method",
            "saliency",
            "--pick",
            "confident-fake",
            "--count",
            "6",
        ])
        .arg("--data")
        .arg(&root),
    );
    let figure = image::open(out.join("grid.simplenet-demo.saliency.png")).unwrap();
    assert_eq!((figure.width(), figure.height()), (12 * 128 + 11 * 2, 128));
    let maps = std::fs::read_dir(out.join("maps.simplenet-demo.saliency")).unwrap();
    assert_eq!(maps.count(), 6);

    let output = explain(&["--method", "gradcam", "--layer", "fc2"])
        .arg("--image")
        .arg(&image)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("\"fc2\" is not a convolutional layer"),
        "{stderr}"
    );
}
