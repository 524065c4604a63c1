//! The product against plain loops and the separate ops it fuses.

use super::*;

fn values(count: usize, a: f64) -> Vec<f32> {
    (0..count).map(|i| ((a * i as f64).sin()) as f32).collect()
}

/// Against a plain f64 triple loop, with the left operand packed and read in place, for
/// shapes with partial panels, partial column strips (narrower than one vector too),
/// depths beyond one pass, row strides wider than the matrix, a transposed left operand,
/// accumulation, and both ways of splitting the work (by columns, by row panels).
#[test]
fn product_equals_a_plain_triple_loop() {
    if !available() {
        eprintln!("skipped: no AVX-512F on this processor");
        return;
    }
    for &(m, k, n, transposed, accumulate, threads) in &[
        (12, 16, 32, false, false, 1),
        (13, 300, 45, false, true, 2),
        (728, 728, 256, true, false, 2),
        (5, 600, 7, true, true, 1),
        (100, 50, 20, true, false, 2),
        (29, 300, 10, false, true, 2),
        (64, 33, 1000, false, false, 2),
        // More rows than columns over several passes: one row unit a thread.
        (400, 600, 380, false, true, 2),
    ] {
        let (ldb, ldc) = (n + 3, n + 5);
        let a = values(m * k, 0.37);
        let b = values(k * ldb, 0.11);
        let before = values(m * ldc, 0.53);
        let (rs, cs) = if transposed { (1, m) } else { (k, 1) };
        let packed = PackedLhs::pack(&a, m, k, rs, cs).unwrap();
        let in_place = StridedLhs::new(&a, m, k, rs, cs).unwrap();
        for lhs in [Lhs::Packed(&packed), Lhs::InPlace(in_place)] {
            let mut c = before.clone();
            assert!(product(lhs, &b, ldb, n, &mut c, ldc, accumulate, threads));
            check(
                &c,
                (m, k, n),
                (&a, rs, cs),
                (&b, ldb),
                (&before, ldc),
                accumulate,
            );
        }
    }
}

/// The depthwise operand and the epilogue equal the separate ops: the unpadded
/// depthwise plane, then the product of its output, then bias, residual and ReLU; with
/// more channels than one pass, planes narrower and wider than a strip, one and two
/// threads.
#[test]
fn depthwise_operand_and_epilogue_equal_the_separate_ops() {
    if !available() {
        eprintln!("skipped: no AVX-512F on this processor");
        return;
    }
    for &(m, k, (h, w), relu, threads) in &[
        (13, 20, (7, 9), true, 1),
        (30, 300, (5, 5), false, 2),
        (12, 16, (33, 40), true, 2),
        // Several units of up to a chunk (29 strips of 70 rows) on 2 threads, the last
        // strip short.
        (20, 70, (61, 67), false, 2),
        // Two passes of several chunks, one thread.
        (14, 270, (37, 29), true, 1),
    ] {
        let n = h * w;
        let x = values(k * n, 0.29);
        let taps = values(9 * k, 0.83);
        let a = values(m * k, 0.37);
        let bias = values(m, 0.61);
        let residual = values(m * n, 0.47);
        let mut dw = vec![0.0f32; k * n];
        // The depthwise op's plane loop, on a zero-padded copy through the ReLU.
        let mut padded = vec![0.0f32; (h + 2) * (w + 2)];
        for ((plane, out), t) in x.chunks(n).zip(dw.chunks_mut(n)).zip(taps.chunks(9)) {
            for (row, src) in padded[w + 2..].chunks_mut(w + 2).zip(plane.chunks(w)) {
                for (p, &v) in row[1..].iter_mut().zip(src) {
                    *p = if relu { v.max(0.0) } else { v };
                }
            }
            let t: &[f32; 9] = t.try_into().unwrap();
            crate::ops::depthwise::plane_3x3::correlate(&padded, w + 2, t, out, (h, w));
        }
        let mut want = packed_product(&a, (m, k), &dw, n);
        for (o, row) in want.chunks_mut(n).enumerate() {
            for (v, r) in row.iter_mut().zip(&residual[o * n..]) {
                *v = (*v + bias[o] + r).max(0.0);
            }
        }
        let packed = PackedLhs::pack(&a, m, k, k, 1).unwrap();
        let mut got = vec![f32::NAN; m * n];
        let rhs = Rhs::Depthwise3x3 {
            x: &x,
            hw: (h, w),
            taps: &taps,
            relu,
        };
        let out = Out {
            c: &mut got,
            ldc: n,
            accumulate: false,
            epilogue: Some(Epilogue {
                bias: &bias,
                residual: Some(&residual),
                relu: true,
            }),
        };
        assert!(product_of(Lhs::Packed(&packed), rhs, n, out, threads));
        for (i, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() <= 1e-5 * (1.0 + e.abs()),
                "{m}x{k}x{h}x{w} at {i}: {g} vs {e}"
            );
        }
    }
}

/// The patches operand equals the product of the im2col matrix: 1×1 at stride 2 (the
/// strided skip), 3×3 at stride 2 (`conv1`), 3×3 at stride 1 and at stride 3 (the gather
/// path); output rows narrower and wider than a strip, partial strips, one and two
/// threads. The matrix comes from the convolution op's `im2col_image`.
#[test]
fn patches_operand_equals_the_im2col_product() {
    if !available() {
        eprintln!("skipped: no AVX-512F on this processor");
        return;
    }
    use crate::ops::geometry::ConvGeometry;
    for &(m, planes, (h, w), kernel, stride, threads) in &[
        (13, 5, (17, 17), 1, 2, 1),
        (30, 3, (41, 39), 3, 2, 2),
        (12, 2, (9, 70), 3, 1, 1),
        (7, 4, (20, 23), 3, 3, 2),
        (25, 64, (125, 125), 1, 2, 2),
    ] {
        let x = values(planes * h * w, 0.29);
        let k = planes * kernel * kernel;
        let a = values(m * k, 0.37);
        let geometry = ConvGeometry { stride, padding: 0 };
        let mut col = Vec::new();
        let (oh, ow) =
            crate::ops::conv::dense::im2col_image(&x, (planes, h, w), kernel, geometry, &mut col)
                .unwrap();
        assert_eq!((oh, ow), rhs::patch_grid((h, w), kernel, stride));
        let n = oh * ow;
        let want = packed_product(&a, (m, k), &col, n);
        let packed = PackedLhs::pack(&a, m, k, k, 1).unwrap();
        let mut got = vec![f32::NAN; m * n];
        let rhs = Rhs::Patches {
            x: &x,
            hw: (h, w),
            kernel,
            stride,
        };
        let out = Out {
            c: &mut got,
            ldc: n,
            accumulate: false,
            epilogue: None,
        };
        assert!(product_of(Lhs::Packed(&packed), rhs, n, out, threads));
        assert_eq!(
            got, want,
            "{m}x{k} from {planes}x{h}x{w}, {kernel}x{kernel}/{stride}"
        );
    }
}

/// `a (m × k) · b (k × n)` by the packed product on one thread, from dense operands: what
/// the fused operands are compared against.
fn packed_product(a: &[f32], (m, k): (usize, usize), b: &[f32], n: usize) -> Vec<f32> {
    let packed = PackedLhs::pack(a, m, k, k, 1).unwrap();
    let mut c = vec![0.0f32; m * n];
    assert!(product(Lhs::Packed(&packed), b, n, n, &mut c, n, false, 1));
    c
}

/// `c` equals `[before +] a · b` within f32 rounding and is untouched past column n.
fn check(
    c: &[f32],
    (m, k, n): (usize, usize, usize),
    (a, rs, cs): (&[f32], usize, usize),
    (b, ldb): (&[f32], usize),
    (before, ldc): (&[f32], usize),
    accumulate: bool,
) {
    for i in 0..m {
        for j in 0..n {
            let mut want: f64 = (0..k)
                .map(|p| a[i * rs + p * cs] as f64 * b[p * ldb + j] as f64)
                .sum();
            if accumulate {
                want += before[i * ldc + j] as f64;
            }
            let got = c[i * ldc + j] as f64;
            assert!(
                (got - want).abs() <= 1e-4 * (1.0 + want.abs()),
                "{m}x{k}x{n} at ({i}, {j}): {got} vs {want}"
            );
        }
        for j in n..ldc.min(before.len() - i * ldc) {
            assert_eq!(c[i * ldc + j], before[i * ldc + j], "wrote past column {n}");
        }
    }
}
