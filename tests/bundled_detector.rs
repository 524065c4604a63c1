//! The detector that ships in `weights/bundled/`: it loads as users load it, its tensor
//! names equal the PyTorch model's `state_dict()` keys, its logits equal PyTorch's with the
//! same weights (tests/fixtures/bundled/make.py), its run.json carries the input profile,
//! temperature and val threshold the app judges with, and on lfw-faceswap's test faces
//! (where the dataset is on the machine) it scores as its model card says.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use candle_core::{Device, Tensor};
use fakelens::data::{DatasetIndex, PreparedSplit, Split};
use fakelens::runs::layout::{MODEL_CARD_FILE, is_read_only};
use fakelens::runs::loader::RunModel;

fn bundle() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights/bundled/lilxception-lfw-faceswap")
}

#[test]
fn the_bundled_detector_loads_with_its_profile_temperature_and_threshold() {
    let dir = bundle();
    assert!(
        dir.join(MODEL_CARD_FILE).is_file(),
        "{dir:?} has its model card"
    );
    assert!(is_read_only(&dir));
    let run = RunModel::load(&dir, &Device::Cpu).unwrap();
    assert_eq!(run.record.model, fakelens::config::ModelKind::LilXception);
    assert!(run.profile().framing.is_face(), "{:?}", run.profile());
    let t = run.record.temperature.unwrap();
    assert!(t.is_finite() && t > 0.0);
    let threshold = run.record.val_threshold.unwrap();
    assert!((0.0..1.0).contains(&threshold));
    assert_eq!(
        fakelens::runs::catalog::default_run(&fakelens::runs::catalog::scan(&PathBuf::from(
            "no-runs-here"
        )))
        .map(|r| r.dir.canonicalize().unwrap()),
        Some(dir.canonicalize().unwrap()),
        "on first start the bundled detector is the one ticked"
    );
}

#[test]
fn its_keys_and_logits_equal_pytorchs() {
    let dir = bundle();
    let tensors =
        candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap();
    let mut keys: Vec<String> = tensors.keys().cloned().collect();
    keys.sort();
    let fixture = common::fixture("xception/expected.json");
    let want: Vec<String> = fixture["keys"]["lilxception"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k.as_str().unwrap().to_string())
        .collect();
    assert_eq!(keys, want, "the PyTorch state_dict keys");
    let expected = common::fixture("bundled/expected.json");
    let run = RunModel::load(&dir, &Device::Cpu).unwrap();
    let temperature = run.record.temperature.unwrap();
    assert_eq!(expected["temperature"].as_f64(), Some(temperature));
    for case in expected["cases"].as_array().unwrap() {
        let phase = case["phase"].as_f64().unwrap();
        let n = 3 * 256 * 256;
        let input: Vec<f32> = (0..n)
            .map(|i| (0.013 * i as f64 + phase).sin() as f32)
            .collect();
        let x = Tensor::from_vec(input, (1, 3, 256, 256), &Device::Cpu).unwrap();
        let got = run.logits(&x).unwrap()[0];
        let want = common::floats(&case["logits"]);
        // f32 against PyTorch's float64 through 30 layers: 1e-3 of the logits' scale.
        let scale = want.iter().fold(1.0f64, |m, v| m.max(v.abs()));
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (f64::from(*g) - w).abs() <= 1e-3 * scale,
                "{got:?} vs {want:?}"
            );
        }
        let p = run.fake_probabilities(&x).unwrap()[0];
        let want_p = case["calibrated_fake_probability"].as_f64().unwrap();
        assert!((p - want_p).abs() < 1e-3, "{p} vs {want_p}");
    }
}

/// On a slice of lfw-faceswap's test split, framed as `predict` frames it, the detector's
/// accuracy at its recorded threshold is within 5 points of its card's test accuracy.
#[test]
fn on_test_faces_it_scores_as_its_card_says() {
    let Some(root) = common::lfw_faceswap() else {
        return;
    };
    let dir = bundle();
    let run = RunModel::load(&dir, &Device::Cpu).unwrap();
    let index = DatasetIndex::discover(&root).unwrap();
    let slice: Vec<_> = index
        .split(Split::Test)
        .unwrap()
        .iter()
        .step_by(6)
        .cloned()
        .collect();
    let profile = run.profile();
    let split = Arc::new(
        PreparedSplit::prepare(
            &root,
            Split::Test,
            &slice,
            &profile.framing,
            &AtomicBool::new(false),
            &|_, _| {},
        )
        .unwrap(),
    );
    let scores = fakelens::eval::scores::score_split(
        run.evaluator(),
        &split,
        16,
        profile.normalization,
        run.record.temperature.unwrap(),
        &Device::Cpu,
        &AtomicBool::new(false),
        &mut |_, _| {},
    )
    .unwrap();
    let threshold = run.record.val_threshold.unwrap();
    let correct = scores
        .iter()
        .filter(|s| (s.fake_score >= threshold) == (s.label == fakelens::LABEL_FAKE))
        .count();
    let accuracy = correct as f64 / scores.len() as f64;
    let card: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("card.json")).unwrap()).unwrap();
    let claimed = card["test"]["accuracy"].as_f64().unwrap();
    println!(
        "bundled detector on {} test faces: accuracy {accuracy:.4} (card: {claimed:.4})",
        scores.len()
    );
    assert!(
        accuracy >= claimed - 0.05,
        "{accuracy} vs the card's {claimed}"
    );
}
