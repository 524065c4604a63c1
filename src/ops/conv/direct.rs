//! Direct stride-1 convolution kernels for f32 on x86-64 with AVX-512: forward, input
//! gradient and weight gradient, without im2col. Few-channel convolutions (SimpleNet's 3→6,
//! 6→16, 16→24) give a gemm a 6-to-24-wide operand that no microkernel fills; these kernels
//! vectorise over pixels instead and keep every FMA useful.
//!
//! Each image plane is flattened at its padded width `wp`, so a kernel tap `(ky, kx)` is one
//! constant offset `ky·wp + kx` into the plane and a whole convolution is a 1-D correlation
//! with `k²` offsets ("wide" output rows of `wp` columns whose last `k − 1` are discarded).
//! The input gradient is the same correlation of the zero-bordered output gradient with the
//! flipped kernel; the weight gradient is a dot product per (output channel, input channel,
//! tap) over the wide output gradient, whose discarded columns are zero.

use rayon::prelude::*;

use crate::ops::conv::kernels::{
    FlatPlanes, PlaneGrid, correlate, correlate_dw, correlate_into_planes,
};
use crate::ops::cpu::float::CpuFloat;
use crate::ops::elementwise::scale_shift;

/// The sizes of one stride-1 convolution (NCHW input, OIHW weight).
#[derive(Clone, Copy, Debug)]
pub struct DirectDims {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub pad: usize,
}

impl DirectDims {
    fn hp(&self) -> usize {
        self.h + 2 * self.pad
    }
    pub fn wp(&self) -> usize {
        self.w + 2 * self.pad
    }
    pub fn oh(&self) -> usize {
        self.hp() + 1 - self.k
    }
    pub fn ow(&self) -> usize {
        self.wp() + 1 - self.k
    }
    fn taps(&self) -> usize {
        self.k * self.k
    }
    /// Offset of the last tap, `(k−1)·wp + k−1`.
    fn max_offset(&self) -> usize {
        (self.k - 1) * self.wp() + self.k - 1
    }
    /// Tap offsets into a plane flattened at the padded width, in `(ky, kx)` order.
    fn offsets(&self) -> Vec<usize> {
        (0..self.k)
            .flat_map(|ky| (0..self.k).map(move |kx| ky * self.wp() + kx))
            .collect()
    }
    /// Distance between two padded input planes: the wide plane, the last tap's offset past
    /// it and one block of slack.
    fn padded_stride(&self) -> usize {
        self.wide_len() + self.max_offset() + crate::ops::conv::kernels::BLOCK
    }
    /// Length of the wide output plane (`oh` rows of `wp`), rounded up to whole blocks.
    fn wide_len(&self) -> usize {
        (self.oh() * self.wp()).next_multiple_of(crate::ops::conv::kernels::BLOCK)
    }
}

/// Whether the direct kernels run on this machine.
pub fn available() -> bool {
    crate::ops::cpu::available()
}

/// Pixel ranges each image's correlation is split into: one when there are at least as many
/// images as threads (each image is a task of its own), else enough to keep every thread busy.
fn pieces_per_image(images: usize) -> usize {
    let threads = rayon::current_num_threads();
    if images >= threads { 1 } else { 4 * threads }
}

/// Copies image `x` (c_in × h × w) into zero-padded planes of `stride` values each, laid out
/// at the padded width.
fn pad_image(x: &[f32], d: &DirectDims, stride: usize) -> Vec<f32> {
    let mut planes = vec![0.0; d.c_in * stride];
    pad_image_into(x, d, stride, &mut planes);
    planes
}

/// [`pad_image`] into `planes` (`c_in × stride` values, any contents); plane by plane on
/// every thread when the images are fewer than the threads (one image: 2 MB copied for
/// LilXception's `conv2`).
fn pad_image_into(x: &[f32], d: &DirectDims, stride: usize, planes: &mut [f32]) {
    let pad_plane = |(plane, x): (&mut [f32], &[f32])| {
        plane.fill(0.0);
        for (y, src) in x.chunks_exact(d.w).enumerate() {
            let start = (y + d.pad) * d.wp() + d.pad;
            plane[start..start + d.w].copy_from_slice(src);
        }
    };
    let (planes, x) = (&mut planes[..d.c_in * stride], &x[..d.c_in * d.h * d.w]);
    if pieces_per_image(d.n) > 1 {
        planes
            .par_chunks_mut(stride)
            .zip(x.par_chunks(d.h * d.w))
            .for_each(pad_plane);
    } else {
        planes
            .chunks_mut(stride)
            .zip(x.chunks(d.h * d.w))
            .for_each(pad_plane);
    }
}

thread_local! {
    /// The wide output planes of the last image this thread convolved, reused by the next:
    /// a fresh multi-megabyte buffer per image was a quarter of SimpleNet's evaluation
    /// time in page faults.
    static WIDE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Weights regrouped for the kernels: output channels in blocks of `OUT_BLOCK`, each block
/// `[c_in][tap][lane]` with the block's channels in the lanes. `flip` reverses the taps and
/// swaps the roles of input and output channels (the input gradient's kernel).
fn block_weights(w: &[f32], d: &DirectDims, flip: bool) -> (Vec<f32>, usize, usize) {
    let (outs, ins) = if flip {
        (d.c_in, d.c_out)
    } else {
        (d.c_out, d.c_in)
    };
    let taps = d.taps();
    let block = crate::ops::conv::kernels::OUT_BLOCK;
    let blocks = outs.div_ceil(block);
    let mut out = vec![0.0; blocks * ins * taps * block];
    for o in 0..outs {
        for i in 0..ins {
            for t in 0..taps {
                let (co, ci, tap) = if flip {
                    (i, o, taps - 1 - t)
                } else {
                    (o, i, t)
                };
                let value = w[(co * d.c_in + ci) * taps + tap];
                out[(((o / block) * ins + i) * taps + t) * block + o % block] = value;
            }
        }
    }
    (out, outs, ins)
}

/// `y = act(conv(x, w) + b)` for a batch; `relu` clamps at zero.
pub fn forward(x: &[f32], w: &[f32], b: &[f32], d: &DirectDims, relu: bool) -> Vec<f32> {
    let mut y = vec![0.0; d.n * d.c_out * d.oh() * d.ow()];
    forward_into(x, w, b, d, relu, &mut y);
    y
}

/// [`forward`] into `y` (`n × c_out × oh × ow` values, any contents; every one is written).
/// With AVX-512 and rows at least 16 wide, the kernel stores each value, through the bias
/// and ReLU, straight into `y`: no wide planes, and no pass over them on one thread after
/// (4 MB read and written per image for LilXception's `conv2`, a tenth of its time at one
/// image on 2 threads).
pub fn forward_into(x: &[f32], w: &[f32], b: &[f32], d: &DirectDims, relu: bool, y: &mut [f32]) {
    let (oh, ow, wp) = (d.oh(), d.ow(), d.wp());
    let grid = PlaneGrid { oh, ow, wp };
    let per_image = d.c_out * oh * ow;
    let fits =
        b.len() >= d.c_out && y.len() >= d.n * per_image && x.len() >= d.n * d.c_in * d.h * d.w;
    if available() && grid.stores_directly() && fits {
        let stride = d.padded_stride();
        let offsets = d.offsets();
        let (wt, outs, ins) = block_weights(w, d, false);
        let stored = y
            .par_chunks_mut(per_image)
            .zip(x.par_chunks(d.c_in * d.h * d.w))
            .map(|(y, x)| {
                f32::with_scratch(d.c_in * stride, |input| {
                    pad_image_into(x, d, stride, input);
                    let input = FlatPlanes::new(input, ins, stride);
                    let pieces = pieces_per_image(d.n);
                    correlate_into_planes(input, &offsets, &wt, y, (outs, grid), b, relu, pieces)
                })
            })
            .collect::<Vec<bool>>();
        if stored.iter().all(|&stored| stored) {
            return;
        }
    }
    forward_with(x, w, d, y, d.c_out * oh * ow, &|y, wide, plen| {
        for (c, (plane, &bias)) in y.chunks_mut(oh * ow).zip(b).enumerate() {
            for oy in 0..oh {
                let src = &wide[c * plen + oy * wp..c * plen + oy * wp + ow];
                // (× 1 is exact: this is `s + bias`.)
                scale_shift(&mut plane[oy * ow..(oy + 1) * ow], src, 1.0, bias, relu);
            }
        }
    });
}

/// Turns one image's wide conv output (`planes`, plane length) into its part of the result.
pub type Epilogue<'a, T> = dyn Fn(&mut [T], &[f32], usize) + Sync + 'a;

/// Runs the convolution (no bias) image by image and hands each image's wide output planes
/// (`c_out` planes of `plen`, row `oy` starting at `oy·wp`) to `epilogue` together with that
/// image's `per_image` values of `out`.
pub fn forward_with<T: Send>(
    x: &[f32],
    w: &[f32],
    d: &DirectDims,
    out: &mut [T],
    per_image: usize,
    epilogue: &Epilogue<'_, T>,
) {
    let plen = d.wide_len();
    let stride = d.padded_stride();
    let offsets = d.offsets();
    let (wt, outs, ins) = block_weights(w, d, false);
    out.par_chunks_mut(per_image.max(1))
        .zip(x.par_chunks(d.c_in * d.h * d.w))
        .for_each(|(out, x)| {
            f32::with_scratch(d.c_in * stride, |input| {
                pad_image_into(x, d, stride, input);
                let mut image = |wide: &mut Vec<f32>| {
                    // `correlate` writes every value of the planes.
                    wide.resize(outs * plen, 0.0);
                    correlate(
                        FlatPlanes::new(input, ins, stride),
                        &offsets,
                        &wt,
                        wide,
                        outs,
                        plen,
                        pieces_per_image(d.n),
                    );
                    epilogue(out, wide, plen);
                };
                let reused = WIDE.try_with(|wide| match wide.try_borrow_mut() {
                    Ok(mut wide) => {
                        image(&mut wide);
                        true
                    }
                    Err(_) => false,
                });
                if !matches!(reused, Ok(true)) {
                    image(&mut Vec::new());
                }
            })
        });
}

/// Writes image `n`'s output gradient into zeroed wide planes: `(n, planes, stride, lead)`,
/// plane `c` starting at `c·stride`, row `oy` at `lead + oy·wp`.
pub type WideGradient<'a> = dyn Fn(usize, &mut [f32], usize, usize) + Sync + 'a;

/// The compact output gradient `gy` (n × c_out × oh × ow) as a [`WideGradient`].
fn compact_gradient<'a>(
    gy: &'a [f32],
    d: &'a DirectDims,
) -> impl Fn(usize, &mut [f32], usize, usize) + Sync + 'a {
    move |n, planes, stride, lead| {
        let (oh, ow, wp) = (d.oh(), d.ow(), d.wp());
        let gy = &gy[n * d.c_out * oh * ow..(n + 1) * d.c_out * oh * ow];
        for c in 0..d.c_out {
            for oy in 0..oh {
                let start = c * stride + lead + oy * wp;
                planes[start..start + ow].copy_from_slice(&gy[(c * oh + oy) * ow..][..ow]);
            }
        }
    }
}

/// Zeroed gradient planes for `builder` (whole blocks: the weight-gradient kernel reads
/// OUT_BLOCK planes at a time), filled for image `n`.
fn wide_gradient(
    builder: &WideGradient<'_>,
    n: usize,
    d: &DirectDims,
    stride: usize,
    lead: usize,
) -> Vec<f32> {
    let planes_count = d
        .c_out
        .next_multiple_of(crate::ops::conv::kernels::OUT_BLOCK);
    let mut planes = vec![0.0; planes_count * stride];
    builder(n, &mut planes, stride, lead);
    planes
}

/// `dL/dx` for a batch, from the output gradient `gy` (n × c_out × oh × ow).
pub fn grad_input(gy: &[f32], w: &[f32], d: &DirectDims) -> Vec<f32> {
    grad_input_with(&compact_gradient(gy, d), w, d)
}

/// `dL/dx` for a batch, from an output gradient written by `builder`.
pub fn grad_input_with(builder: &WideGradient<'_>, w: &[f32], d: &DirectDims) -> Vec<f32> {
    let (hp, wp) = (d.hp(), d.wp());
    let lead = d.max_offset();
    let plen = (hp * wp).next_multiple_of(crate::ops::conv::kernels::BLOCK);
    let stride = plen + lead + crate::ops::conv::kernels::BLOCK;
    // dx_padded[q] = Σ w[t] · gy_wide[q − off(t)] = Σ w[flip(t)] · gy_lead[q + off(t)].
    let offsets = d.offsets();
    let (wt, outs, ins) = block_weights(w, d, true);
    let mut dx = vec![0.0; d.n * d.c_in * d.h * d.w];
    dx.par_chunks_mut(d.c_in * d.h * d.w)
        .enumerate()
        .for_each(|(n, dx)| {
            let grad = wide_gradient(builder, n, d, stride, lead);
            let mut padded = vec![0.0; outs * plen];
            correlate(
                FlatPlanes::new(&grad, ins, stride),
                &offsets,
                &wt,
                &mut padded,
                outs,
                plen,
                pieces_per_image(d.n),
            );
            for c in 0..d.c_in {
                for y in 0..d.h {
                    let src = c * plen + (y + d.pad) * wp + d.pad;
                    dx[(c * d.h + y) * d.w..][..d.w].copy_from_slice(&padded[src..src + d.w]);
                }
            }
        });
    dx
}

/// `dL/dw` (c_out × c_in × k × k) for a batch: per-image partial sums, then their total.
pub fn grad_weight(x: &[f32], gy: &[f32], d: &DirectDims) -> Vec<f32> {
    grad_weight_with(x, &compact_gradient(gy, d), d)
}

/// `dL/dw` for a batch, from an output gradient written by `builder`.
pub fn grad_weight_with(x: &[f32], builder: &WideGradient<'_>, d: &DirectDims) -> Vec<f32> {
    let plen = d.wide_len();
    let stride = d.padded_stride();
    let offsets = d.offsets();
    let len = d.c_out * d.c_in * d.taps();
    x.par_chunks(d.c_in * d.h * d.w)
        .enumerate()
        .fold(
            || vec![0.0f32; len],
            |mut dw, (n, x)| {
                let input = pad_image(x, d, stride);
                let grad = wide_gradient(builder, n, d, plen, 0);
                correlate_dw(
                    FlatPlanes::new(&input, d.c_in, stride),
                    FlatPlanes::new(&grad, d.c_out, plen),
                    &offsets,
                    plen,
                    &mut dw,
                );
                dw
            },
        )
        .reduce(
            || vec![0.0f32; len],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += *b);
                a
            },
        )
}
