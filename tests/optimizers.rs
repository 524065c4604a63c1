//! The fused Adam and SGD with momentum equal torch.optim.Adam and torch.optim.SGD over five
//! steps (fixture: tests/fixtures/adam/make.py), in f64 and in f32.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use candle_core::{DType, Device, Tensor, Var};
use fakelens::config::{OptimizerKind, TrainConfig};
use fakelens::data::profile::Framing;
use fakelens::train::Optimizer;

fn run(kind: OptimizerKind, dtype: DType) -> Vec<f32> {
    let n = 1000;
    let w0: Vec<f64> = (0..n).map(|i| (0.37 * i as f64 + 0.1).sin()).collect();
    let c: Vec<f64> = (0..n).map(|i| (0.11 * i as f64).cos()).collect();
    let dev = Device::Cpu;
    let w = Var::from_tensor(&Tensor::new(w0, &dev).unwrap().to_dtype(dtype).unwrap()).unwrap();
    let c = Tensor::new(c, &dev).unwrap().to_dtype(dtype).unwrap();
    let config = TrainConfig {
        optimizer: kind,
        lr: 0.01,
        momentum: 0.9,
        input: Framing::Whole,
        ..TrainConfig::default()
    };
    let mut opt = Optimizer::new(vec![w.clone()], &config).unwrap();
    for _ in 0..5 {
        let loss = (w.powf(3.0).unwrap() * &c).unwrap().sum_all().unwrap();
        opt.backward_step(&loss).unwrap();
    }
    w.to_dtype(DType::F32).unwrap().to_vec1::<f32>().unwrap()
}

#[test]
fn optimizers_match_pytorch() {
    let expected = common::fixture("adam/expected.json");
    for (kind, key) in [(OptimizerKind::Adam, "adam"), (OptimizerKind::Sgd, "sgd")] {
        let want = common::floats(&expected[key]);
        let err64 = common::relative_max_error(&run(kind, DType::F64), &want);
        assert!(err64 < 1e-6, "{key} f64 differs by {err64:e}");
        let err32 = common::relative_max_error(&run(kind, DType::F32), &want);
        assert!(err32 < 1e-5, "{key} f32 differs by {err32:e}");
    }
}
