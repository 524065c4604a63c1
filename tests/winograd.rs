//! The frozen path's Winograd F(2×2, 3×3) convolution equals the convolution it replaces: a
//! plain f64 correlation (the definition PyTorch's conv2d computes; the frozen models'
//! logits, which run it for `conv2`, are checked against PyTorch in `frozen_inference.rs`),
//! within float32 rounding, on odd sizes, with and without padding, at 1 and 2 threads.

use fakelens::ops::conv::winograd::WinogradConv;

/// `Σ_c Σ_{ky,kx} w[o][c][ky][kx] · x[c][y + ky − pad][x + kx − pad] + b[o]`, in f64, and
/// the sum of the terms' magnitudes (the scale of the rounding error).
fn reference(
    x: &[f32],
    w: &[f32],
    b: &[f32],
    (c_in, h, wd): (usize, usize, usize),
    pad: usize,
) -> (Vec<f64>, Vec<f64>) {
    let c_out = b.len();
    let (oh, ow) = (h + 2 * pad - 2, wd + 2 * pad - 2);
    let (mut y, mut scale) = (vec![0.0; c_out * oh * ow], vec![0.0; c_out * oh * ow]);
    for o in 0..c_out {
        for oy in 0..oh {
            for ox in 0..ow {
                let (mut s, mut m) = (f64::from(b[o]), f64::from(b[o]).abs());
                for c in 0..c_in {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let (iy, ix) = (
                                (oy + ky) as isize - pad as isize,
                                (ox + kx) as isize - pad as isize,
                            );
                            if iy < 0 || ix < 0 || iy as usize >= h || ix as usize >= wd {
                                continue;
                            }
                            let xv = f64::from(x[(c * h + iy as usize) * wd + ix as usize]);
                            let t = f64::from(w[((o * c_in + c) * 3 + ky) * 3 + kx]) * xv;
                            s += t;
                            m += t.abs();
                        }
                    }
                }
                y[(o * oh + oy) * ow + ox] = s;
                scale[(o * oh + oy) * ow + ox] = m;
            }
        }
    }
    (y, scale)
}

#[test]
fn winograd_equals_the_correlation_it_replaces() {
    let value = |i: usize, m: usize| ((i * m) % 997) as f32 / 997.0 - 0.5;
    // (c_in, c_out, h, w, pad): conv2's channels on odd sizes (the last tile row and column
    // half outside), panels of 12 with a short last one, one-pixel outputs, padding.
    let cases = [
        (32, 64, 37, 35, 0),
        (5, 7, 23, 41, 1),
        (3, 13, 3, 3, 0),
        (4, 16, 2, 70, 1),
    ];
    for (c_in, c_out, h, wd, pad) in cases {
        let x: Vec<f32> = (0..c_in * h * wd).map(|i| value(i, 7919)).collect();
        let w: Vec<f32> = (0..c_out * c_in * 9).map(|i| value(i, 31)).collect();
        let b: Vec<f32> = (0..c_out).map(|i| value(i, 13)).collect();
        let Some(conv) = WinogradConv::new(&w, b.clone(), (c_out, c_in)) else {
            let strict = std::env::var_os("FAKELENS_REQUIRE_AVX512").is_some();
            assert!(
                !strict,
                "FAKELENS_REQUIRE_AVX512 is set, and the kernel does not run"
            );
            assert!(
                !fakelens::ops::cpu::available(),
                "None on a processor with AVX-512F"
            );
            eprintln!(
                "notice: no AVX-512F here, so the Winograd kernel (which then never runs) is not tested; FAKELENS_REQUIRE_AVX512=1 makes this a failure"
            );
            return;
        };
        let (want, scale) = reference(&x, &w, &b, (c_in, h, wd), pad);
        for (relu, threads) in [(false, 1), (true, 2), (false, 2)] {
            // Filled with NaN: every value must be written.
            let mut out = vec![f32::NAN; want.len()];
            let hw = conv.forward_image(&x, (h, wd), pad, relu, &mut out, threads);
            assert_eq!(hw, Some((h + 2 * pad - 2, wd + 2 * pad - 2)));
            for (i, (&got, (&want, &scale))) in out.iter().zip(want.iter().zip(&scale)).enumerate()
            {
                let want = if relu { want.max(0.0) } else { want };
                // float32 rounding of a sum of 9·c_in terms, grown by the transforms' ±½, ±1.
                let tolerance = 4e-6 * scale;
                assert!(
                    (f64::from(got) - want).abs() <= tolerance,
                    "{c_in}→{c_out} at {h}x{wd} pad {pad}, relu {relu}, {threads} threads: value {i} is {got}, want {want} (±{tolerance:e})"
                );
            }
        }
        // Too short an input or output: refused, nothing written.
        let mut short = vec![f32::NAN; want.len() - 1];
        assert_eq!(
            conv.forward_image(&x, (h, wd), pad, false, &mut short, 1),
            None
        );
        assert!(short.iter().all(|v| v.is_nan()));
        assert_eq!(
            conv.forward_image(&x[1..], (h, wd), pad, false, &mut vec![0.0; want.len()], 1),
            None
        );
    }
}
