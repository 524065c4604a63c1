//! Importing pretrained checkpoints (fixtures: tests/fixtures/import/make.py): a `.pth`
//! written by PyTorch with another port's key spellings loads into LilXception's backbone
//! with the exact values, and reports loaded / missing / unexpected keys; a legacy-format
//! file and a wrong-shape tensor are refused with the file, the key and both shapes named,
//! leaving the model untouched; a safetensors checkpoint imports too; and a whole model
//! saved by PyTorch in half precision imports completely and gives PyTorch's logits.

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
    // Safe advice only (the pickle's code must not run), for a file named after the model.
    assert!(
        !err.contains("weights_only=False") && err.contains("weights_only=True"),
        "{err}"
    );
    assert!(err.contains("'lilxception.pth'"), "{err}");

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

/// A whole model saved by PyTorch in half precision imports every tensor (nothing missing
/// or unexpected), with the exact stored values, and gives PyTorch's logits for those
/// weights (fixture: lilxception_f16.pth/.json; relative 1e-3 as for the formula-weight
/// logits, here f32 against PyTorch's float64).
#[test]
fn whole_half_precision_pth_gives_pytorch_logits() {
    use candle_core::{DType, Tensor};
    let model = models::build(ModelKind::LilXception, &Device::Cpu, 1).unwrap();
    let report = import_checkpoint(model.as_ref(), &fixture_path("lilxception_f16.pth")).unwrap();
    assert!(report.missing.is_empty(), "{:?}", report.missing);
    assert!(report.unexpected.is_empty(), "{:?}", report.unexpected);
    let keys = model.params().named_vars().count() + model.params().named_buffers().count();
    assert_eq!(report.loaded.len(), keys);
    for key in [
        "conv1.weight",
        "block4.rep.4.pointwise.weight",
        "bn4.running_var",
        "fc.6.bias",
    ] {
        let dims = model.params().get(key).unwrap().dims().to_vec();
        let stored = Tensor::new(common::formula::formula_value(key, &dims), &Device::Cpu)
            .unwrap()
            .to_dtype(DType::F16)
            .unwrap()
            .to_dtype(DType::F64)
            .unwrap()
            .to_vec1::<f64>()
            .unwrap();
        assert_eq!(common::param_values(model.as_ref(), key), stored, "{key}");
    }
    assert_eq!(
        common::param_values(model.as_ref(), "bn1.num_batches_tracked"),
        vec![1234.0]
    );
    let fixture: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixture_path("lilxception_f16.json")).unwrap(),
    )
    .unwrap();
    let dims = common::usizes(&fixture["input"]);
    let count: usize = dims.iter().product();
    let pixels: Vec<f32> = (0..count)
        .map(|i| (0.013 * i as f64 + 0.3).sin() as f32)
        .collect();
    let x = Tensor::from_vec(pixels, dims.as_slice(), &Device::Cpu).unwrap();
    let logits: Vec<f64> = model
        .forward_t(&x, false)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1()
        .unwrap();
    let err = common::relative_error_f64(&logits, &common::floats(&fixture["logits"]));
    assert!(err < 1e-3, "logits differ from PyTorch by {err:e}");
}
