//! The deterministic formula weights of tests/fixtures/xception/formula.py.

use candle_core::{Device, Tensor};
use fakelens::models::Detector;

/// The value the fixture script gives state-dict entry `key` (see make.py).
pub fn formula_value(key: &str, shape: &[usize]) -> Vec<f64> {
    let n: usize = shape.iter().product();
    let phase = (key.bytes().map(usize::from).sum::<usize>() % 1000) as f64 / 1000.0
        * 2.0
        * std::f64::consts::PI;
    let s = (0..n).map(move |i| (0.7 * i as f64 + phase).sin());
    if key.ends_with("running_var") {
        s.map(|v| 1.0 + 0.5 * v * v).collect()
    } else if key.ends_with("running_mean") || (shape.len() == 1 && key.ends_with("bias")) {
        s.map(|v| 0.1 * v).collect()
    } else if shape.len() == 1 {
        s.map(|v| 1.0 + 0.2 * v).collect()
    } else {
        let scale = (3.0 / (n / shape[0]) as f64).sqrt();
        s.map(|v| v * scale).collect()
    }
}

pub fn load_formula(model: &dyn Detector) {
    let p = model.params();
    for (key, var) in p.named_vars().chain(p.named_buffers()) {
        if key.ends_with("num_batches_tracked") {
            continue;
        }
        let values = formula_value(key, var.dims());
        let t = Tensor::from_vec(values, var.dims(), &Device::Cpu).unwrap();
        var.set(&t.to_dtype(var.dtype()).unwrap()).unwrap();
    }
}
