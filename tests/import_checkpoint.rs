//! Importing pretrained checkpoints (fixtures: tests/fixtures/import/make.py): a `.pth`
//! written by PyTorch with another port's key spellings loads into LilXception's backbone
//! with the exact values, and reports loaded / missing / unexpected keys; a legacy-format
//! file and a wrong-shape tensor are refused with the file, the key and both shapes named,
//! leaving the model untouched; a safetensors checkpoint imports too.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::PathBuf;

use candle_core::Device;
use fakelens::config::ModelKind;
use fakelens::models::{self, import::import_checkpoint};

fn fixture_path(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/import")
        .join(name)
}

#[test]
fn pth_with_other_key_spellings_imports_into_the_backbone() {
    let model = models::build(ModelKind::LilXception, &Device::Cpu, 0).unwrap();
    let report = import_checkpoint(model.as_ref(), &fixture_path("partial.pth")).unwrap();
    assert_eq!(report.loaded.len(), 27, "{report:?}");
    assert_eq!(
        report.unexpected,
        vec!["module.last_linear.weight".to_string()]
    );
    assert!(report.missing.contains(&"fc.0.weight".to_string()));
    assert!(report.missing.contains(&"block12.skip.weight".to_string()));
    assert!(
        !report
            .missing
            .contains(&"block1.rep.0.pointwise.weight".to_string())
    );
    assert!(report.summary().contains("27 tensors loaded"));
    for key in [
        "conv1.weight",
        "bn2.running_var",
        "block1.rep.0.pointwise.weight",
        "block1.skipbn.bias",
    ] {
        let dims = model.params().get(key).unwrap().dims().to_vec();
        let want = common::formula::formula_value(key, &dims);
        let got = common::param_values(model.as_ref(), key);
        let err = got
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(err < 1e-6, "{key} differs by {err:e}");
    }
}

#[test]
fn legacy_and_wrong_shape_checkpoints_are_refused_clearly() {
    let model = models::build(ModelKind::LilXception, &Device::Cpu, 0).unwrap();
    let before = common::param_values(model.as_ref(), "conv1.weight");

    let legacy = fixture_path("legacy.pth");
    let err = import_checkpoint(model.as_ref(), &legacy)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("legacy.pth") && err.contains("pre-1.6") && err.contains("torch.save"),
        "{err}"
    );

    let wrong = fixture_path("wrong_shape.pth");
    let err = import_checkpoint(model.as_ref(), &wrong)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("wrong_shape.pth") && err.contains("conv1.weight"),
        "{err}"
    );
    assert!(
        err.contains("[16, 3, 3, 3]") && err.contains("[32, 3, 3, 3]"),
        "{err}"
    );

    let dir = tempfile::tempdir().unwrap();
    let text = dir.path().join("notes.pth");
    std::fs::write(&text, "not a checkpoint").unwrap();
    let err = import_checkpoint(model.as_ref(), &text)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("notes.pth") && err.contains("neither"),
        "{err}"
    );

    assert_eq!(
        common::param_values(model.as_ref(), "conv1.weight"),
        before,
        "nothing was loaded"
    );
}

#[test]
fn safetensors_checkpoint_imports_every_key() {
    let dir = tempfile::tempdir().unwrap();
    let source = models::build(ModelKind::LilXception, &Device::Cpu, 7).unwrap();
    let path = dir.path().join("lil.safetensors");
    source.params().save(&path).unwrap();
    let model = models::build(ModelKind::LilXception, &Device::Cpu, 0).unwrap();
    let report = import_checkpoint(model.as_ref(), &path).unwrap();
    assert!(
        report.missing.is_empty() && report.unexpected.is_empty(),
        "{report:?}"
    );
    assert_eq!(
        common::param_values(model.as_ref(), "fc.6.weight"),
        common::param_values(source.as_ref(), "fc.6.weight")
    );
}
