//! SimpleNet frozen: each stage's 7×7 convolution on the direct kernels with bias, ReLU and
//! the 2×2 pool in one epilogue that keeps no argmax (the training op records where each
//! maximum came from, for its backward), then the head on the whole batch. Runs where the
//! direct kernels do (AVX-512); elsewhere the model's own forward serves.

use super::{Head, Plan, freezable, values_of};
use crate::models::simplenet::SimpleNet;
use crate::ops::conv::direct::{self, DirectDims};

struct Stage {
    weight: Vec<f32>,
    bias: Vec<f32>,
    c_out: usize,
    c_in: usize,
    k: usize,
}

impl Stage {
    /// `maxpool2(relu(conv(x) + b))` of a batch of `n` images of `c_in × h × w`.
    fn apply(
        &self,
        x: &[f32],
        n: usize,
        (h, w): (usize, usize),
    ) -> candle_core::Result<(Vec<f32>, (usize, usize))> {
        let d = DirectDims {
            n,
            c_in: self.c_in,
            h,
            w,
            c_out: self.c_out,
            k: self.k,
            pad: 0,
        };
        if h < self.k + 1 || w < self.k + 1 || x.len() != n * self.c_in * h * w {
            candle_core::bail!(
                "frozen SimpleNet: input {n}x{}x{h}x{w} too small",
                self.c_in
            )
        }
        let (ph, pw, wp) = (d.oh() / 2, d.ow() / 2, d.wp());
        let per_image = self.c_out * ph * pw;
        let mut out = vec![0.0f32; n * per_image];
        let bias = &self.bias;
        direct::forward_with(
            x,
            &self.weight,
            &d,
            &mut out,
            per_image,
            &|out, wide, plen| {
                for (c, (pooled, &b)) in out.chunks_mut(ph * pw).zip(bias).enumerate() {
                    let plane = &wide[c * plen..(c + 1) * plen];
                    for (py, row_out) in pooled.chunks_mut(pw).enumerate() {
                        let top = &plane[2 * py * wp..][..2 * pw];
                        let bottom = &plane[(2 * py + 1) * wp..][..2 * pw];
                        for ((o, t), u) in row_out
                            .iter_mut()
                            .zip(top.chunks_exact(2))
                            .zip(bottom.chunks_exact(2))
                        {
                            // max(v) + b = max(v + b): rounding is monotonic.
                            let m = t[0].max(t[1]).max(u[0].max(u[1]));
                            *o = (m + b).max(0.0);
                        }
                    }
                }
            },
        );
        Ok((out, (ph, pw)))
    }
}

pub(crate) struct FrozenSimpleNet {
    stages: Vec<Stage>,
    head: Head,
}

impl FrozenSimpleNet {
    pub(crate) fn forward(
        &self,
        values: &[f32],
        n: usize,
        (c, h, w): (usize, usize, usize),
    ) -> candle_core::Result<Vec<f32>> {
        if self.stages.first().is_some_and(|s| s.c_in != c) {
            candle_core::bail!("frozen SimpleNet: {c} input channels")
        }
        let (mut x, mut hw) = (values.to_vec(), (h, w));
        for stage in &self.stages {
            (x, hw) = stage.apply(&x, n, hw)?;
        }
        self.head.forward(x, n)
    }
}

/// The frozen copy of `model`, or `None` where the frozen path does not run it.
pub(crate) fn freeze(model: &SimpleNet) -> candle_core::Result<Option<super::FrozenNet>> {
    if !freezable(&model.params) || !direct::available() {
        return Ok(None);
    }
    let mut stages = Vec::new();
    for (w, b) in &model.convs {
        let (c_out, c_in, k, _) = w.dims4()?;
        stages.push(Stage {
            weight: values_of(w)?,
            bias: values_of(b)?,
            c_out,
            c_in,
            k,
        });
    }
    let head = Head::new(&model.fcs)?;
    Ok(Some(super::FrozenNet::new(Plan::SimpleNet(
        FrozenSimpleNet { stages, head },
    ))))
}
