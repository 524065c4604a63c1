//! The command line: `info` prints the parameter counts, `train` prints the per-epoch table
//! and writes the run, and errors exit non-zero with a one-line cause. A run folder is not
//! overwritten without --force, nor trained into by two processes at once.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fakelens, run_ok};

#[test]
fn info_prints_parameter_counts() {
    let out = fakelens().arg("info").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains("SimpleNet") && text.contains("16,901,762"),
        "{text}"
    );
}

#[test]
fn train_prints_the_epoch_table_and_writes_the_run() {
    let demo = common::small_demo(24, 9);
    let run = demo.path().join("run");
    let stdout = run_ok(
        fakelens()
            .args(["train", "--epochs", "1", "--batch-size", "8", "--data"])
            .arg(demo.path().join("demo"))
            .args(["--photo-augment", "jpeg", "--out"])
            .arg(&run),
    );
    assert!(
        stdout.contains("epoch  train_loss  train_acc  val_loss  val_acc"),
        "{stdout}"
    );
    assert!(
        stdout.lines().any(|l| l.trim_start().starts_with("1 ")),
        "a row for epoch 1: {stdout}"
    );
    assert!(stdout.contains("best val epoch 1"), "{stdout}");
    assert!(run.join("model.safetensors").is_file() && run.join("run.json").is_file());
    // `--photo-augment jpeg` records JPEG re-compression alone.
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let photo = &record["config"]["photo_augment"];
    assert_eq!(photo["jpeg_prob"], 0.5, "{photo}");
    assert_eq!(
        (&photo["rescale_prob"], &photo["blur_prob"]),
        (&0.0.into(), &0.0.into())
    );
}

#[test]
fn errors_exit_non_zero_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("no-such-dataset");
    let out = fakelens()
        .args(["train", "--data"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("error: ") && stderr.contains("no-such-dataset"),
        "{stderr}"
    );

    let out = fakelens()
        .args(["train", "--lr", "-1", "--data"])
        .arg(&missing)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

/// Ctrl-C stops `train` like the app's Stop button: after the current batch, with the
/// resumable state kept, the run marked cancelled and the resume command printed.
#[cfg(unix)]
#[test]
fn interrupt_saves_the_run_for_resume() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let demo = common::small_demo(48, 5);
    let run = demo.path().join("run");
    let mut child = fakelens()
        .args(["train", "--epochs", "50", "--batch-size", "4", "--data"])
        .arg(demo.path().join("demo"))
        .arg("--out")
        .arg(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("training "));
    assert!(started, "train never started");
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(130), "{rest:?}");
    assert!(
        rest.iter().any(|l| l.contains("--resume")),
        "the resume command is printed: {rest:?}"
    );
    assert!(run.join("resume.safetensors").is_file());
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["status"]["state"], "cancelled", "{record}");
}

/// A fresh `train --out DIR` over a finished run is refused, naming --force and another
/// folder, and leaves the run as it was; with --force the run is replaced.
#[test]
fn train_refuses_to_overwrite_a_run_unless_forced() {
    let demo = common::small_demo(24, 3);
    let run = demo.path().join("run");
    let train = |extra: &[&str]| {
        let mut command = fakelens();
        command
            .args(["train", "--epochs", "1", "--batch-size", "8", "--data"])
            .arg(demo.path().join("demo"))
            .arg("--out")
            .arg(&run)
            .args(extra);
        command
    };
    run_ok(&mut train(&[]));
    let before = std::fs::read(run.join("run.json")).unwrap();
    let out = train(&["--seed", "7"]).output().unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "{} already holds a run (completed)",
            run.display()
        )) && stderr.contains("choose another folder")
            && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(run.join("run.json")).unwrap(), before);
    run_ok(&mut train(&["--seed", "7", "--force"]));
    let record: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap();
    assert_eq!(record["config"]["seed"], 7, "{record}");
}

/// `--batch-size 0` is refused as `--epochs 0` is, before anything is written.
#[test]
fn a_zero_batch_size_is_refused() {
    let demo = common::small_demo(24, 3);
    let run = demo.path().join("run");
    let out = fakelens()
        .args(["train", "--epochs", "1", "--batch-size", "0", "--data"])
        .arg(demo.path().join("demo"))
        .arg("--out")
        .arg(&run)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("batch size must be at least 1, got 0"),
        "{stderr}"
    );
    assert!(!run.exists());
    // `eval` refuses it too, before it reads anything.
    let out = fakelens()
        .args(["eval", "--batch-size", "0", "--split", "test", "--data"])
        .arg(demo.path().join("demo"))
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(demo.path().join("eval"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("batch size must be at least 1"), "{stderr}");
}

/// While `fakelens train` trains into a folder, a second one (a replacing start or a resume)
/// is refused, naming the folder and the first's pid, and changes nothing there; the lock
/// goes with the first process when it is killed.
#[cfg(unix)]
#[test]
fn a_busy_run_folder_is_refused_until_its_trainer_dies() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let demo = common::small_demo(48, 5);
    let data = demo.path().join("demo");
    let run = demo.path().join("run");
    let mut first = fakelens()
        .args(["train", "--epochs", "50", "--batch-size", "4", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(first.stdout.take().unwrap()).lines();
    let started = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.starts_with("training "));
    assert!(started, "train never started");
    let created = |run: &std::path::Path| {
        let text = std::fs::read_to_string(run.join("run.json")).unwrap();
        let record: serde_json::Value = serde_json::from_str(&text).unwrap();
        (record["created"].clone(), record["model"].clone())
    };
    let before = created(&run);
    let mut replace = fakelens();
    replace
        .args(["train", "--force", "--model", "lilxception", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&run);
    let mut resume = fakelens();
    resume.arg("train").arg("--resume").arg(&run);
    for second in [&mut replace, &mut resume] {
        let out = second.output().unwrap();
        assert!(!out.status.success());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains(&format!("{} is in use", run.display()))
                && stderr.contains(&format!("pid {}", first.id())),
            "{stderr}"
        );
    }
    assert_eq!(created(&run), before, "the first run's record is untouched");
    first.kill().unwrap();
    first.wait().unwrap();
    // Killed during its first epoch: the folder is free, and the run never saved a state.
    if !run.join("resume.safetensors").exists() {
        let out = resume.output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && stderr.contains("never saved") && !stderr.contains("in use"),
            "{stderr}"
        );
    }
    run_ok(
        fakelens()
            .args([
                "train",
                "--force",
                "--epochs",
                "1",
                "--batch-size",
                "8",
                "--data",
            ])
            .arg(&data)
            .arg("--out")
            .arg(&run),
    );
    assert!(!run.join("train.lock").exists());
}
