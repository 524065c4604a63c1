//! `fakelens eval`: on a run trained on demo data it writes metrics.json (the documented
//! keys, calibration before and after the run's temperature), scores.csv, roc.csv, det.csv
//! and the four plots, and the AUC recomputed from scores.csv equals metrics.json's; a garbled run.json or a missing checkpoint is a one-line error naming the
//! file. Only the splits eval reads must be sound; without a val split it needs a threshold;
//! CSV rows keep file names that are not UTF-8.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fakelens, run_ok};

use fakelens::eval::metrics::roc_auc;

fn confusion_count(metrics: &serde_json::Value, key: &str) -> u64 {
    metrics["confusion"][key].as_u64().unwrap()
}

#[test]
fn eval_writes_metrics_scores_and_curves_that_agree() {
    let demo = common::small_demo(40, 11);
    let data = demo.path().join("demo");
    let run = demo.path().join("run");
    run_ok(
        fakelens()
            .args(["train", "--epochs", "1", "--batch-size", "8", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&run),
    );
    let out = demo.path().join("eval");
    let stdout = run_ok(
        fakelens()
            .args(["eval", "--split", "test", "--run"])
            .arg(&run)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(&out),
    );
    assert!(stdout.contains("AUC") && stdout.contains("EER"), "{stdout}");

    let metrics: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap();
    for key in [
        "accuracy",
        "auc",
        "auc_real_score",
        "eer",
        "ap",
        "bpcer20",
        "threshold",
        "confusion",
        "run",
        "data",
        "split",
    ] {
        assert!(
            metrics.get(key).is_some(),
            "metrics.json lacks {key}: {metrics}"
        );
    }
    assert_eq!(metrics["split"], "test");
    let fakes =
        confusion_count(&metrics, "fake_as_real") + confusion_count(&metrics, "fake_as_fake");
    let apcer = confusion_count(&metrics, "fake_as_real") as f64 / fakes as f64;
    assert!((metrics["apcer"].as_f64().unwrap() - apcer).abs() < 1e-12);
    assert_eq!(metrics["threshold_split"], "val");
    // Training fitted a temperature on val; the report calibrates before and after it.
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    let temperature = record["temperature"].as_f64().unwrap();
    assert!(
        temperature.is_finite() && temperature > 0.0,
        "{temperature}"
    );
    let calibration = &metrics["calibration"];
    assert_eq!(
        calibration["calibrated"]["temperature"].as_f64(),
        Some(temperature)
    );
    for side in ["raw", "calibrated"] {
        let ece = calibration[side]["ece"].as_f64().unwrap();
        let brier = calibration[side]["brier"].as_f64().unwrap();
        assert!(
            (0.0..=1.0).contains(&ece) && (0.0..=1.0).contains(&brier),
            "{calibration}"
        );
    }
    assert!(stdout.contains("calibration: model's own ECE"), "{stdout}");

    let scores = std::fs::read_to_string(out.join("scores.csv")).unwrap();
    let mut lines = scores.lines();
    assert_eq!(
        lines.next(),
        Some("path,label,real_score,fake_score,raw_fake_score")
    );
    let (labels, fake): (Vec<bool>, Vec<f64>) = lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            (fields[1] == "1", fields[3].parse::<f64>().unwrap())
        })
        .unzip();
    let confusion = &metrics["confusion"];
    let counted: u64 = [
        "real_as_real",
        "real_as_fake",
        "fake_as_real",
        "fake_as_fake",
    ]
    .iter()
    .map(|k| confusion[k].as_u64().unwrap())
    .sum();
    assert_eq!(counted as usize, labels.len());
    let auc = roc_auc(&labels, &fake).unwrap();
    assert!(
        (auc - metrics["auc"].as_f64().unwrap()).abs() < 1e-12,
        "AUC from scores.csv {auc} vs metrics.json {}",
        metrics["auc"]
    );
    let roc = std::fs::read_to_string(out.join("roc.csv")).unwrap();
    assert!(roc.starts_with("fpr,tpr,threshold\n0,0,inf\n"), "{roc}");
    let det = std::fs::read_to_string(out.join("det.csv")).unwrap();
    assert!(det.starts_with("fpr,fnr,threshold\n"), "{det}");
    for plot in ["roc.png", "det.png", "curves.png", "reliability.png"] {
        let image = image::open(out.join(plot)).unwrap();
        assert!(image.width() >= 600 && image.height() >= 400, "{plot}");
    }
}

#[test]
fn eval_of_a_broken_run_names_the_file() {
    let demo = common::small_demo(12, 2);
    let data = demo.path().join("demo");
    let eval = |run: &std::path::Path| {
        let out = fakelens()
            .args(["eval", "--run"])
            .arg(run)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(demo.path().join("eval"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_string();
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        stderr
    };
    let garbled = demo.path().join("garbled-run");
    std::fs::create_dir_all(&garbled).unwrap();
    std::fs::write(garbled.join("run.json"), r#"{"not": "a run"}"#).unwrap();
    assert!(eval(&garbled).contains("run.json"));

    let run = demo.path().join("run");
    run_ok(
        fakelens()
            .args(["train", "--epochs", "1", "--batch-size", "4", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&run),
    );
    std::fs::remove_file(run.join("model.safetensors")).unwrap();
    let message = eval(&run);
    assert!(
        message.contains("model.safetensors") && message.contains("no checkpoint"),
        "{message}"
    );
    assert!(
        !demo.path().join("eval").exists(),
        "nothing is written on failure"
    );
}

/// A checkpoint saved by PyTorch becomes a run (`import-run`) that `eval` scores on any
/// dataset; read as the wrong model it is refused, naming the key and both shapes.
#[test]
fn an_imported_checkpoint_is_evaluated_like_a_run() {
    let demo = common::small_demo(12, 4);
    let runs = demo.path().join("runs");
    let checkpoint = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import/lilxception_f16.pth");
    let stdout = run_ok(
        fakelens()
            .args(["import-run", "--model", "lilxception", "--checkpoint"])
            .arg(&checkpoint)
            .arg("--runs")
            .arg(&runs),
    );
    assert!(stdout.contains("170 tensors loaded, 0 missing"), "{stdout}");
    let run = std::fs::read_dir(&runs)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["status"]["state"], "imported");
    let out = demo.path().join("eval");
    run_ok(
        fakelens()
            .args(["eval", "--threshold", "half", "--run"])
            .arg(&run)
            .arg("--data")
            .arg(demo.path().join("demo"))
            .arg("--out")
            .arg(&out),
    );
    assert!(out.join("metrics.json").is_file() && out.join("curves.png").is_file());

    let wrong = fakelens()
        .args(["import-run", "--model", "simplenet", "--checkpoint"])
        .arg(&checkpoint)
        .arg("--runs")
        .arg(&runs)
        .output()
        .unwrap();
    assert!(!wrong.status.success());
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        stderr.contains("is not a simplenet checkpoint") && stderr.contains("simplenet expects"),
        "{stderr}"
    );
}

/// An untrained SimpleNet made a run (no dataset of its own, no recorded threshold).
fn untrained_run(dir: &std::path::Path) -> std::path::PathBuf {
    let model = fakelens::models::build(
        fakelens::config::ModelKind::SimpleNet,
        &candle_core::Device::Cpu,
        0,
    )
    .unwrap();
    let checkpoint = dir.join("simplenet.safetensors");
    model.params().save(&checkpoint).unwrap();
    let (run, _) = fakelens::train::imported::import_as_run(
        &checkpoint,
        fakelens::config::ModelKind::SimpleNet,
        &dir.join("runs"),
    )
    .unwrap();
    run
}

fn empty_folder(dir: &std::path::Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
}

fn eval_command(
    run: &std::path::Path,
    data: &std::path::Path,
    out: &std::path::Path,
) -> std::process::Command {
    let mut command = fakelens();
    command
        .args(["eval", "--split", "test", "--run"])
        .arg(run)
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out);
    command
}

fn metrics(out: &std::path::Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(out.join("metrics.json")).unwrap()).unwrap()
}

/// `eval` requires only the splits it reads: a one-class, then empty, train split does not
/// stop the evaluation of test with its threshold chosen on val; a one-class val does.
#[test]
fn eval_ignores_problems_in_splits_it_does_not_use() {
    let demo = common::small_demo(24, 3);
    let data = demo.path().join("demo");
    let run = untrained_run(demo.path());
    let out = demo.path().join("eval");
    empty_folder(&data.join("train/fake"));
    run_ok(&mut eval_command(&run, &data, &out));
    assert_eq!(metrics(&out)["threshold_split"], "val");
    empty_folder(&data.join("train/real"));
    run_ok(&mut eval_command(&run, &data, &out));

    empty_folder(&data.join("val/fake"));
    let failed = eval_command(&run, &data, &out).output().unwrap();
    assert!(!failed.status.success());
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("val split") && stderr.contains("only real"),
        "{stderr}"
    );
}

/// On a dataset without a val split, an EER or APCER threshold is not chosen on the split
/// being evaluated: eval asks for --threshold, unless the run recorded its val threshold.
#[test]
fn eval_without_a_val_split_needs_a_threshold_or_the_runs_own() {
    let demo = common::small_demo(24, 5);
    let data = demo.path().join("demo");
    std::fs::remove_dir_all(data.join("val")).unwrap();
    let run = untrained_run(demo.path());
    let out = demo.path().join("eval");
    for rule in ["eer", "apcer=0.05"] {
        let failed = eval_command(&run, &data, &out)
            .args(["--threshold", rule])
            .output()
            .unwrap();
        assert!(!failed.status.success());
        let stderr = String::from_utf8_lossy(&failed.stderr);
        assert!(
            stderr.contains("no val split") && stderr.contains("--threshold"),
            "{stderr}"
        );
        assert!(!out.exists(), "nothing is written");
    }
    run_ok(eval_command(&run, &data, &out).args(["--threshold", "half"]));
    assert_eq!(metrics(&out)["threshold"], 0.5);

    // The run's own val threshold (recorded with its temperature) is used instead.
    let path = run.join("run.json");
    let mut record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    record["temperature"] = serde_json::json!(1.0);
    record["val_threshold"] = serde_json::json!(0.4321);
    std::fs::write(&path, serde_json::to_vec(&record).unwrap()).unwrap();
    let stdout = run_ok(&mut eval_command(&run, &data, &out));
    let m = metrics(&out);
    assert_eq!(m["threshold"], 0.4321, "{m}");
    assert_eq!(m["threshold_split"], "the run's val split", "{m}");
    assert!(stdout.contains("eer on the run's val split"), "{stdout}");
    let failed = eval_command(&run, &data, &out)
        .args(["--threshold", "apcer=0.05"])
        .output()
        .unwrap();
    assert!(
        !failed.status.success(),
        "an APCER threshold is not the recorded EER one"
    );
}

/// A file name that is not UTF-8 is written to scores.csv and predict's CSV so that the row
/// leads back to the file (`\xNN` per invalid byte; fields quoted by the csv crate).
#[cfg(target_os = "linux")]
#[test]
fn csv_rows_keep_file_names_that_are_not_utf8() {
    use std::os::unix::ffi::OsStrExt;
    let demo = common::small_demo(24, 7);
    let data = demo.path().join("demo");
    let fakes = data.join("test/fake");
    let image = std::fs::read_dir(&fakes)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "jpg"))
        .unwrap();
    let odd = fakes.join(std::ffi::OsStr::from_bytes(b"caf\xe9, \xff\\x.jpg"));
    std::fs::rename(&image, &odd).unwrap();
    let run = untrained_run(demo.path());
    let out = demo.path().join("eval");
    run_ok(eval_command(&run, &data, &out).args(["--threshold", "half"]));
    let paths_in = |csv_file: &std::path::Path| -> Vec<String> {
        let mut reader = csv::Reader::from_path(csv_file).unwrap();
        reader
            .records()
            .map(|r| r.unwrap().get(0).unwrap().to_string())
            .collect()
    };
    let escaped = format!("{}/caf\\xe9, \\xff\\\\x.jpg", fakes.display());
    let scores = paths_in(&out.join("scores.csv"));
    assert!(scores.contains(&escaped), "{scores:?}");
    let back = fakelens::csv_text::unescape_path(&escaped).unwrap();
    assert_eq!(back, odd);
    assert!(back.is_file(), "the row leads back to the file");

    let predictions = demo.path().join("predict.csv");
    run_ok(
        fakelens()
            .arg("predict")
            .arg(&odd)
            .arg("--run")
            .arg(&run)
            .arg("--csv")
            .arg(&predictions),
    );
    assert_eq!(paths_in(&predictions), [escaped]);
}
