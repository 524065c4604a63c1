//! Xception and LilXception equal the PyTorch models they port (benches/reference/
//! torch_models.py; fixture: tests/fixtures/xception/make.py): parameter counts, state-dict
//! keys, eval-mode logits with deterministic formula weights (f32 here, 1e-3 relative, as
//! the issue states), the same after a save → load round trip, and in training mode (f64,
//! 1e-6 relative) the logits, every batch-norm running statistic and parameter gradients.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor};
use fakelens::config::ModelKind;
use fakelens::models::{self, Detector, Xception, XceptionSpec};

fn image(dims: &[usize], dtype: DType) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|i| (0.013 * i as f64 + 0.3).sin()).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn flat64(t: &Tensor) -> Vec<f64> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_vec1::<f64>()
        .unwrap()
}

#[test]
fn parameter_counts_and_keys_match_pytorch() {
    let fixture = common::fixture("xception/expected.json");
    let dev = Device::Cpu;
    for (kind, name, count) in [
        (ModelKind::Xception, "xception", 23_128_786),
        (ModelKind::LilXception, "lilxception", 1_811_372),
    ] {
        let model = models::build(kind, &dev, 0).unwrap();
        assert_eq!(model.param_count(), count, "{name}");
        let p = model.params();
        let mut keys: Vec<String> = p
            .named_vars()
            .chain(p.named_buffers())
            .map(|(k, _)| k.to_string())
            .collect();
        keys.sort();
        let want: Vec<String> = fixture["keys"][name]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k.as_str().unwrap().to_string())
            .collect();
        assert_eq!(keys, want, "{name}: state-dict keys");
    }
    let imagenet = Xception::new(&XceptionSpec::imagenet(), &dev, DType::F32, 0).unwrap();
    assert_eq!(imagenet.param_count(), 22_855_952);
    assert_eq!(23_128_786 - 22_855_952, 272_834);
}

#[test]
fn eval_logits_match_pytorch_and_survive_a_checkpoint_round_trip() {
    let fixture = common::fixture("xception/expected.json");
    let dir = tempfile::tempdir().unwrap();
    for (kind, name) in [
        (ModelKind::Xception, "xception"),
        (ModelKind::LilXception, "lilxception"),
    ] {
        let case = &fixture["eval"][name];
        let dims = common::usizes(&case["input"]);
        let model = models::build(kind, &Device::Cpu, 0).unwrap();
        common::formula::load_formula(model.as_ref());
        let x = image(&dims, DType::F32);
        let want = common::floats(&case["logits"]);
        let got = flat64(&model.forward_t(&x, false).unwrap());
        let err = common::relative_error_f64(&got, &want);
        assert!(err < 1e-3, "{name}: logits differ from PyTorch by {err:e}");
        // The frozen inference path (batch norm folded) within the same bound.
        let frozen = model.freeze().unwrap().expect("an f32 CPU model freezes");
        let folded = flat64(&frozen.logits(&x).unwrap());
        let err = common::relative_error_f64(&folded, &want);
        assert!(
            err < 1e-3,
            "{name}: frozen logits differ from PyTorch by {err:e}"
        );

        let path = dir.path().join(format!("{name}.safetensors"));
        model.params().save(&path).unwrap();
        let reloaded = models::load(kind, &path, &Device::Cpu).unwrap();
        let again = flat64(&reloaded.forward_t(&x, false).unwrap());
        assert_eq!(again, got, "{name}: reloaded checkpoint gives other logits");
    }
}

#[test]
fn training_forward_updates_running_statistics_and_gradients_as_pytorch() {
    let fixture = common::fixture("xception/expected.json");
    let case = &fixture["train"];
    let model =
        models::build_with_dtype(ModelKind::LilXception, &Device::Cpu, DType::F64, 0).unwrap();
    common::formula::load_formula(model.as_ref());
    let x = image(&common::usizes(&case["input"]), DType::F64);
    let logits = model.forward_t(&x, true).unwrap();
    let err = common::relative_error_f64(&flat64(&logits), &common::floats(&case["logits"]));
    assert!(err < 1e-6, "training logits differ by {err:e}");

    let running = case["running"].as_object().unwrap();
    assert_eq!(running.len(), 48);
    for (key, want) in running {
        let var = model.params().get(key).unwrap();
        let err = common::relative_error_f64(&flat64(var.as_tensor()), &common::floats(want));
        assert!(err < 1e-6, "{key} differs by {err:e}");
    }
    let batches = model.params().get("bn1.num_batches_tracked").unwrap();
    assert_eq!(batches.as_tensor().to_scalar::<i64>().unwrap(), 1);

    let n = logits.elem_count();
    let g: Vec<f64> = (0..n).map(|i| (0.9 * i as f64).cos()).collect();
    let g = Tensor::from_vec(g, logits.shape(), &Device::Cpu).unwrap();
    let grads = (&logits * &g)
        .unwrap()
        .sum_all()
        .unwrap()
        .backward()
        .unwrap();
    for (key, want) in case["grads"].as_object().unwrap() {
        let var = model.params().get(key).unwrap();
        let got = flat64(grads.get(var).unwrap());
        let err = common::relative_error_f64(&got, &common::floats(want));
        assert!(err < 1e-6, "gradient of {key} differs by {err:e}");
    }
}
