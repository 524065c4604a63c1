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
use fakelens::explain::cam::{CamKind, class_activation_maps, last_conv_layer};
use fakelens::explain::saliency::saliency;
use fakelens::explain::smoothgrad::smoothgrad_with_noise;
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

/// Grad-CAM and Grad-CAM++ equal pytorch-grad-cam 1.5.7's maps (fixture
/// tests/fixtures/explain/make_cam.py) within 1e-4 after normalisation, in float64, for
/// SimpleNet at `conv3` and LilXception at `conv3` and `block2`; in float32 within 2e-3
/// (LilXception's float32 gradients carry ~2e-3 of cancellation noise, as in the saliency
/// test above).
#[test]
fn grad_cam_equals_pytorch_grad_cam() {
    let fixture = common::fixture("explain/cam.json");
    for (dtype, tolerance) in [(DType::F64, 1e-4), (DType::F32, 2e-3)] {
        for (case_name, kind) in [
            ("simplenet_conv3", ModelKind::SimpleNet),
            ("lilxception_conv3", ModelKind::LilXception),
            ("lilxception_block2", ModelKind::LilXception),
        ] {
            let case = &fixture[case_name];
            let model = models::build_with_dtype(kind, &Device::Cpu, dtype, 0).unwrap();
            common::formula::load_formula(model.as_ref());
            let input = image(&common::usizes(&case["input"]), dtype);
            let classes: Vec<u32> = common::usizes(&case["classes"])
                .iter()
                .map(|&c| c as u32)
                .collect();
            let layer = case["layer"].as_str().unwrap();
            let every = case["every"].as_u64().unwrap() as usize;
            for (method, cam_kind) in [
                ("gradcam", CamKind::GradCam),
                ("gradcam++", CamKind::GradCamPlusPlus),
            ] {
                let maps = class_activation_maps(model.as_ref(), &input, &classes, layer, cam_kind)
                    .unwrap();
                assert_eq!(maps.len(), classes.len());
                let got: Vec<f32> = maps
                    .iter()
                    .flat_map(|m| m.normalized())
                    .step_by(every)
                    .collect();
                let want = common::floats(&case[method]);
                assert_close(
                    &format!("{dtype:?} {case_name} {method}"),
                    &got,
                    &want,
                    1.0,
                    tolerance,
                );
            }
        }
    }
}

#[test]
fn grad_cam_names_an_unknown_or_flat_layer() {
    let model = models::build(ModelKind::SimpleNet, &Device::Cpu, 0).unwrap();
    let x = image(&[1, 3, 256, 256], DType::F32);
    let err =
        class_activation_maps(model.as_ref(), &x, &[1], "conv9", CamKind::GradCam).unwrap_err();
    assert!(err.to_string().contains("\"conv9\""), "{err}");
    assert!(err.to_string().contains("conv1, conv2, conv3"), "{err}");
    let err = class_activation_maps(model.as_ref(), &x, &[1], "fc1", CamKind::GradCam).unwrap_err();
    assert!(
        err.to_string().contains("not a convolutional layer"),
        "{err}"
    );
    assert_eq!(last_conv_layer(model.as_ref()), "conv3");
    let xception = models::build(ModelKind::Xception, &Device::Cpu, 0).unwrap();
    assert_eq!(last_conv_layer(xception.as_ref()), "conv4");
}

/// SmoothGrad with zero noise is vanilla saliency; with noise it averages the saliency of
/// the noisy copies (checked against saliency computed on each copy by hand).
#[test]
fn smoothgrad_averages_the_saliency_of_noisy_copies() {
    let model =
        models::build_with_dtype(ModelKind::LilXception, &Device::Cpu, DType::F64, 0).unwrap();
    common::formula::load_formula(model.as_ref());
    let x = image(&[1, 3, 64, 64], DType::F64);
    let never = || false;
    let plain = saliency(model.as_ref(), &x, &[1]).unwrap();
    let zero = smoothgrad_with_noise(
        model.as_ref(),
        &x,
        &[1],
        0.0,
        3,
        &mut |_| x.zeros_like(),
        &never,
    )
    .unwrap();
    assert_close(
        "σ = 0",
        &zero[0].values,
        &plain[0]
            .values
            .iter()
            .map(|&v| f64::from(v))
            .collect::<Vec<_>>(),
        1.0,
        1e-6,
    );

    // Two samples of noise ±u with σ = 0.1 × range: the mean of |grad| over the copies.
    let unit = Tensor::rand(-1.0f64, 1.0, (1, 3, 64, 64), &Device::Cpu).unwrap();
    let range = {
        let v: Vec<f64> = x.flatten_all().unwrap().to_vec1().unwrap();
        v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min)
    };
    let copies = [
        (&x + (&unit * (0.1 * range)).unwrap()).unwrap(),
        (&x - (&unit * (0.1 * range)).unwrap()).unwrap(),
    ];
    let by_hand: Vec<Tensor> = copies
        .iter()
        .map(|c| {
            fakelens::explain::saliency::input_gradient(model.as_ref(), c, &[1])
                .unwrap()
                .abs()
                .unwrap()
        })
        .collect();
    let want = ((&by_hand[0] + &by_hand[1]).unwrap() / 2.0)
        .unwrap()
        .max(1)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let noisy = smoothgrad_with_noise(
        model.as_ref(),
        &x,
        &[1],
        0.1,
        2,
        &mut |s| if s == 0 { Ok(unit.clone()) } else { unit.neg() },
        &never,
    )
    .unwrap();
    let scale = want.iter().cloned().fold(0.0, f64::max);
    assert_close("σ = 0.1", &noisy[0].values, &want, scale, 1e-6);
    assert!(
        noisy[0]
            .values
            .iter()
            .zip(&plain[0].values)
            .any(|(a, b)| (a - b).abs() > 1e-3 * scale as f32),
        "noise changed nothing"
    );
}
