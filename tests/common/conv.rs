//! The conv fixture check shared by the AVX-512 and portable test binaries.

use candle_core::{Device, Tensor, Var};
use fakelens::ops::conv::dense::conv2d;
use fakelens::ops::conv::direct::{self as direct_conv, DirectDims};
use fakelens::ops::geometry::ConvGeometry;

/// The inputs the fixture script recomputes: `scale · sin(a·i + b)`.
pub fn formula(count: usize, a: f64, b: f64, scale: f64) -> Vec<f32> {
    (0..count)
        .map(|i| (scale * (a * i as f64 + b).sin()) as f32)
        .collect()
}

/// One fixture case: dims, inputs and the expected values by name.
pub struct Case {
    pub dims: Vec<usize>,
    pub x: Vec<f32>,
    pub w: Vec<f32>,
    pub b: Vec<f32>,
    pub json: serde_json::Value,
}

pub fn cases() -> Vec<Case> {
    let all = super::fixture("conv/expected.json");
    all.as_array()
        .unwrap()
        .iter()
        .map(|case| {
            let d = super::usizes(&case["dims"]);
            let (n, c_in, h, w, c_out, k) = (d[0], d[1], d[2], d[3], d[4], d[5]);
            Case {
                x: formula(n * c_in * h * w, 0.31, 0.2, 1.0),
                w: formula(c_out * c_in * k * k, 0.17, 1.1, 0.5),
                b: formula(c_out, 0.9, 0.4, 0.1),
                dims: d,
                json: case.clone(),
            }
        })
        .collect()
}

/// Asserts `got` is within `1e-5` of the fixture's `key`, relative to its largest value.
pub fn assert_close(case: &Case, key: &str, got: &[f32]) {
    let err = super::relative_max_error(got, &super::floats(&case.json[key]));
    assert!(
        err < 1e-5,
        "case {:?}: {key} differs from PyTorch by {err:e}",
        case.dims
    );
}

/// The conv op (whichever path this process runs) against every fixture case.
pub fn check_op() {
    for case in cases() {
        let d = &case.dims;
        let (n, c_in, h, w, c_out, k, stride, pad) =
            (d[0], d[1], d[2], d[3], d[4], d[5], d[6], d[7]);
        let dev = Device::Cpu;
        let x = Var::from_vec(case.x.clone(), (n, c_in, h, w), &dev).unwrap();
        let wt = Var::from_vec(case.w.clone(), (c_out, c_in, k, k), &dev).unwrap();
        let b = Var::from_vec(case.b.clone(), c_out, &dev).unwrap();
        let geometry = ConvGeometry {
            stride,
            padding: pad,
        };
        let y = conv2d(&x, &wt, &b, geometry).unwrap();
        let out_shape = super::usizes(&case.json["out_shape"]);
        assert_eq!(y.dims(), out_shape.as_slice(), "case {d:?}");
        let g = Tensor::from_vec(gradient(&case), y.shape(), &dev).unwrap();
        let grads = (&y * &g).unwrap().sum_all().unwrap().backward().unwrap();
        let flat = |t: &Tensor| t.flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert_close(&case, "y", &flat(&y));
        assert_close(&case, "grad_x", &flat(grads.get(&x).unwrap()));
        assert_close(&case, "grad_w", &flat(grads.get(&wt).unwrap()));
        assert_close(&case, "grad_b", &flat(grads.get(&b).unwrap()));
    }
}

/// The upstream gradient `g` of the fixture's `sum(y · g)`.
pub fn gradient(case: &Case) -> Vec<f32> {
    let out: usize = super::usizes(&case.json["out_shape"]).iter().product();
    formula(out, 0.23, 0.7, 1.0)
}

/// The direct kernels called as functions, on every stride-1 spatial fixture case (the op
/// sends 1×1 convs to the pointwise product).
pub fn check_direct_kernels() -> usize {
    let mut checked = 0;
    for case in cases() {
        let d = &case.dims;
        if d[6] != 1 || d[5] == 1 {
            continue;
        }
        let dims = DirectDims {
            n: d[0],
            c_in: d[1],
            h: d[2],
            w: d[3],
            c_out: d[4],
            k: d[5],
            pad: d[7],
        };
        let y = direct_conv::forward(&case.x, &case.w, &case.b, &dims, false);
        assert_close(&case, "y", &y);
        let g = gradient(&case);
        assert_close(
            &case,
            "grad_x",
            &direct_conv::grad_input(&g, &case.w, &dims),
        );
        assert_close(
            &case,
            "grad_w",
            &direct_conv::grad_weight(&case.x, &g, &dims),
        );
        checked += 1;
    }
    checked
}
