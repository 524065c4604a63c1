//! Vanilla saliency equals PyTorch autograd's (fixture: tests/fixtures/explain/make.py):
//! LilXception on two 64×64 images (one per class) and SimpleNet on one 256×256 image, with
//! deterministic formula weights. In float64 every value is within 1e-6 of the map's
//! maximum. In float32 (what the app runs) LilXception's map is within 2e-3 of the maximum:
//! its small gradients cancel through 20 layers of float32 sums, and PyTorch's own float32
//! map is 1.8e-3 away from its float64 one. SimpleNet's float32 map is compared by its total
//! (1e-3): near-tied 2×2 max-pool windows send single pixels' gradient to a neighbour in any
//! float32 implementation (PyTorch's float32 map is 5.5e-2 of the maximum off pixel-wise).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor};
use fakelens::config::ModelKind;
use fakelens::explain::saliency::saliency;
use fakelens::models;

fn image(dims: &[usize], dtype: DType) -> Tensor {
    let n: usize = dims.iter().product();
    let v: Vec<f64> = (0..n).map(|i| (0.013 * i as f64 + 0.3).sin()).collect();
    Tensor::from_vec(v, dims, &Device::Cpu)
        .unwrap()
        .to_dtype(dtype)
        .unwrap()
}

fn assert_close(name: &str, got: &[f32], want: &[f64], scale: f64, tolerance: f64) {
    assert_eq!(got.len(), want.len(), "{name}");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        let err = (f64::from(*g) - w).abs() / scale;
        assert!(
            err <= tolerance,
            "{name}[{i}]: {g} vs {w} ({err:e} of the maximum)"
        );
    }
}

#[test]
fn saliency_equals_pytorch() {
    let fixture = common::fixture("explain/expected.json");
    for (dtype, lil_tolerance, simple_tolerance) in
        [(DType::F64, 1e-6, Some(1e-6)), (DType::F32, 2e-3, None)]
    {
        let case = &fixture["lilxception"];
        let model =
            models::build_with_dtype(ModelKind::LilXception, &Device::Cpu, dtype, 0).unwrap();
        common::formula::load_formula(model.as_ref());
        let classes: Vec<u32> = common::usizes(&case["classes"])
            .iter()
            .map(|&c| c as u32)
            .collect();
        let input = image(&common::usizes(&case["input"]), dtype);
        let maps = saliency(model.as_ref(), &input, &classes).unwrap();
        let want = common::floats(&case["maps"]);
        let got: Vec<f32> = maps.iter().flat_map(|m| m.values.clone()).collect();
        let scale = want.iter().cloned().fold(0.0, f64::max);
        assert_eq!((maps[0].width, maps[0].height), (64, 64));
        assert_close(
            &format!("{dtype:?} lilxception"),
            &got,
            &want,
            scale,
            lil_tolerance,
        );

        let case = &fixture["simplenet"];
        let model = models::build_with_dtype(ModelKind::SimpleNet, &Device::Cpu, dtype, 0).unwrap();
        common::formula::load_formula(model.as_ref());
        let input = image(&common::usizes(&case["input"]), dtype);
        let maps = saliency(model.as_ref(), &input, &[1]).unwrap();
        let every = case["every"].as_u64().unwrap() as usize;
        let sampled: Vec<f32> = maps[0].values.iter().step_by(every).copied().collect();
        let max = case["max"].as_f64().unwrap();
        let want = common::floats(&case["sampled"]);
        if let Some(tolerance) = simple_tolerance {
            assert_close(
                &format!("{dtype:?} simplenet"),
                &sampled,
                &want,
                max,
                tolerance,
            );
        }
        let sum: f64 = maps[0].values.iter().map(|&v| f64::from(v)).sum();
        let want_sum = case["sum"].as_f64().unwrap();
        assert!(
            (sum - want_sum).abs() <= 1e-3 * want_sum,
            "sum {sum} vs {want_sum}"
        );
        let normalized = maps[0].normalized();
        assert!(normalized.iter().all(|v| (0.0..=1.0).contains(v)));
    }
}

#[test]
fn a_class_outside_real_and_fake_is_refused() {
    let model = models::build(ModelKind::LilXception, &Device::Cpu, 0).unwrap();
    let x = image(&[1, 3, 32, 32], DType::F32);
    let err = saliency(model.as_ref(), &x, &[2]).unwrap_err();
    assert!(err.to_string().contains("class 2"), "{err}");
    let err = saliency(model.as_ref(), &x, &[0, 1]).unwrap_err();
    assert!(
        err.to_string().contains("2 classes given for 1 images"),
        "{err}"
    );
}
