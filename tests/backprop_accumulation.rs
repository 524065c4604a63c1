//! The vendored candle-core stores a node's first gradient instead of adding it into fresh
//! zeros (vendor/README.md). These graphs exercise every way a gradient reaches a node in
//! the models: fan-in (a tensor used twice), a broadcast, a transposed matrix product, a
//! reshape and a narrow; the gradients must equal the ones worked out by hand. The training
//! step's `backward_releasing` frees intermediates as it goes, and only those.

use candle_core::{DType, Device, Tensor, Var};

fn values(count: usize, a: f64) -> Vec<f64> {
    (0..count).map(|i| (a * (i as f64 + 1.0)).sin()).collect()
}

#[test]
fn gradients_with_fan_in_broadcast_and_transpose_match_the_hand_derivation() {
    let dev = Device::Cpu;
    let (n, k, m) = (3, 5, 4);
    let (xv, wv, bv) = (values(n * k, 0.7), values(m * k, 0.3), values(m, 1.1));
    let x = Var::from_vec(xv.clone(), (n, k), &dev).unwrap();
    let w = Var::from_vec(wv.clone(), (m, k), &dev).unwrap();
    let b = Var::from_vec(bv.clone(), m, &dev).unwrap();
    // y = x·wᵀ + b; L = Σ (y + y²) + Σ narrow(reshape(y), first half).
    let y = x
        .as_tensor()
        .matmul(&w.as_tensor().t().unwrap())
        .unwrap()
        .broadcast_add(b.as_tensor())
        .unwrap();
    let fan_in = (&y + y.sqr().unwrap()).unwrap().sum_all().unwrap();
    let half = (n * m) / 2;
    let narrowed = y.reshape(n * m).unwrap().narrow(0, 0, half).unwrap();
    let loss = (fan_in + narrowed.sum_all().unwrap()).unwrap();
    let grads = loss.backward().unwrap();

    // dL/dy = 1 + 2y (+1 on the first `half` values in row-major order).
    let mut dy = vec![0.0f64; n * m];
    for i in 0..n {
        for o in 0..m {
            let yv: f64 = (0..k).map(|p| xv[i * k + p] * wv[o * k + p]).sum::<f64>() + bv[o];
            dy[i * m + o] = 1.0 + 2.0 * yv + if i * m + o < half { 1.0 } else { 0.0 };
        }
    }
    let mut want_dx = vec![0.0; n * k];
    let mut want_dw = vec![0.0; m * k];
    let mut want_db = vec![0.0; m];
    for i in 0..n {
        for o in 0..m {
            want_db[o] += dy[i * m + o];
            for p in 0..k {
                want_dx[i * k + p] += dy[i * m + o] * wv[o * k + p];
                want_dw[o * k + p] += dy[i * m + o] * xv[i * k + p];
            }
        }
    }
    for (var, want, name) in [(&x, want_dx, "x"), (&w, want_dw, "w"), (&b, want_db, "b")] {
        let got = grads.get(var.as_tensor()).unwrap();
        assert_eq!(
            got.dims(),
            var.as_tensor().dims(),
            "{name}'s gradient shape"
        );
        let got = got.to_dtype(DType::F64).unwrap().flatten_all().unwrap();
        let got = got.to_vec1::<f64>().unwrap();
        for (g, e) in got.iter().zip(&want) {
            assert!(
                (g - e).abs() < 1e-12 * (1.0 + e.abs()),
                "{name}: {g} vs {e}"
            );
        }
    }
    // A tensor that does not lead to a variable gets no gradient.
    let constant = Tensor::new(&[1.0f64, 2.0], &dev).unwrap();
    let only_constant = (constant.sqr().unwrap() * 3.0).unwrap().sum_all().unwrap();
    assert!(only_constant.backward().unwrap().get(&constant).is_none());
}

/// The number of f64 values a tensor's storage still holds.
fn stored_len(t: &Tensor) -> usize {
    let (storage, _) = t.storage_and_layout();
    match &*storage {
        candle_core::Storage::Cpu(cpu) => cpu.as_slice::<f64>().map_or(0, |v| v.len()),
        _ => usize::MAX,
    }
}

/// `backward_releasing` (the training step's backward) gives `backward`'s gradients, frees an
/// intermediate that only the graph holds once the pass is done with it, and keeps what the
/// caller still holds, a view's shared storage, and the variables.
#[test]
fn releasing_backward_frees_only_unreachable_intermediates() {
    let dev = Device::Cpu;
    let (n, k) = (4, 6);
    let x = Var::from_vec(values(n * k, 0.9), (n, k), &dev).unwrap();
    let build = || {
        // hidden: only the graph holds it; kept: the caller holds a clone; viewed: a view
        // of it (a reshape) shares its storage.
        let hidden = x.as_tensor().sin().unwrap();
        let kept = hidden.exp().unwrap();
        let viewed = (&kept * 2.0).unwrap();
        let loss = viewed
            .reshape(n * k)
            .unwrap()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap();
        (loss, kept, hidden.id(), viewed.id())
    };
    let (loss, kept, _, _) = build();
    let reference = loss.backward().unwrap();
    let want = reference.get(x.as_tensor()).unwrap().flatten_all().unwrap();

    let (loss, kept_too, hidden, viewed) = build();
    let nodes = loss.sorted_nodes();
    let node = |id| {
        nodes
            .iter()
            .find(|t| t.id() == id)
            .expect("the node is in the graph")
    };
    let grads = loss.backward_releasing().unwrap();
    let got = grads.get(x.as_tensor()).unwrap().flatten_all().unwrap();
    assert_eq!(
        got.to_vec1::<f64>().unwrap(),
        want.to_vec1::<f64>().unwrap()
    );
    assert_eq!(
        stored_len(node(hidden)),
        0,
        "the graph-only intermediate is freed"
    );
    assert_eq!(stored_len(node(viewed)), n * k, "a viewed tensor is kept");
    assert_eq!(stored_len(&kept_too), n * k);
    assert_eq!(
        kept_too.to_vec2::<f64>().unwrap(),
        kept.to_vec2::<f64>().unwrap()
    );
    assert_eq!(stored_len(x.as_tensor()), n * k);
    // The loss itself (the root) keeps its value.
    assert!(loss.to_scalar::<f64>().unwrap() > 0.0);
}
