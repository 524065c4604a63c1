//! Training-mode 2-D batch normalisation as one fused CPU op with an analytic backward:
//! `y = γ·(x − μ)/√(σ² + ε) + β` with the batch's μ and σ² (optionally `relu(y)`), which it
//! returns for the running statistics (kept by the layer, `models::layers::BatchNorm`).

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp2, CustomOp3, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::ops::cpu::float::{CpuFloat, contiguous, dispatch_float, zeros};
use crate::ops::cpu::stash::ForwardStash;
use crate::ops::elementwise::{ReluGradMask, scale_shift};

/// PyTorch's `BatchNorm2d` epsilon.
pub const EPS: f64 = 1e-5;

/// `bn(x)` (or `relu(bn(x))`) with the batch statistics, on contiguous CPU f32/f64 input;
/// also returns the batch's per-channel mean and biased variance.
pub fn batch_norm_train(
    x: &Tensor,
    weight: &Tensor,
    bias: &Tensor,
    relu: bool,
) -> candle_core::Result<(Tensor, Vec<f64>, Vec<f64>)> {
    let stats: BatchStats = Arc::default();
    let op = BatchNormTrain {
        stats: stats.clone(),
        relu,
    };
    let y = x.contiguous()?.apply_op3(weight, bias, op)?;
    let kept = stats.get("batch norm")?;
    let (mean, var) = &*kept;
    Ok((y, mean.clone(), var.clone()))
}

/// Per-channel mean and biased variance of the batch, as f64.
type BatchStats = Arc<ForwardStash<(Vec<f64>, Vec<f64>)>>;

/// Training-mode forward: `y = γ·(x − μ)/√(σ² + ε) + β` with the batch's μ and σ², which
/// it keeps for the running statistics and for its backward pass; optionally `relu(y)`.
struct BatchNormTrain {
    stats: BatchStats,
    relu: bool,
}

impl BatchNormTrain {
    /// Per channel (μ, 1/√(σ²+ε)) of the batch the forward pass normalised.
    fn mean_inv_std(&self) -> candle_core::Result<Arc<Vec<(f64, f64)>>> {
        let kept = self.stats.get("batch norm")?;
        let (mean, var) = &*kept;
        Ok(Arc::new(
            mean.iter()
                .zip(var)
                .map(|(m, v)| (*m, 1.0 / (v + EPS).sqrt()))
                .collect(),
        ))
    }
}

/// Σ and Σ² of each channel of an NCHW tensor, in f64.
fn channel_moments<T: CpuFloat>(x: &[T], n: usize, c: usize, plane: usize) -> Vec<(f64, f64)> {
    (0..c)
        .into_par_iter()
        .map(|ch| {
            (0..n).fold((0.0, 0.0), |(s, s2), i| {
                let p = &x[(i * c + ch) * plane..(i * c + ch + 1) * plane];
                p.iter().fold((s, s2), |(s, s2), v| {
                    let v = v.to_f64();
                    (s + v, s2 + v * v)
                })
            })
        })
        .collect()
}

impl CustomOp3 for BatchNormTrain {
    fn name(&self) -> &'static str {
        "fakelens-batch-norm-train"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xl: &Layout,
        ws: &CpuStorage,
        wl: &Layout,
        bs: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(
            xs,
            "batch norm",
            bn_forward(&self.stats, self.relu, xs, xl, ws, wl, bs, bl)
        )
    }

    fn bwd(
        &self,
        x: &Tensor,
        w: &Tensor,
        _b: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let grad = grad.contiguous()?;
        // The fused ReLU's output is positive exactly where it passed its input through.
        let grad = if self.relu {
            grad.apply_op2_no_bwd(res, &ReluGradMask)?
        } else {
            grad
        };
        let stats = self.mean_inv_std()?;
        // [dγ; dβ] first: the input gradient needs both.
        let dwb = grad.apply_op2_no_bwd(
            x,
            &BatchNormGradParams {
                stats: stats.clone(),
            },
        )?;
        let dx = grad.apply_op3_no_bwd(
            x,
            &Tensor::cat(&[&dwb, &w.unsqueeze(0)?], 0)?,
            &BatchNormGradInput { stats },
        )?;
        Ok((Some(dx), Some(dwb.get(0)?), Some(dwb.get(1)?)))
    }
}

#[allow(clippy::too_many_arguments)]
fn bn_forward<T: CpuFloat>(
    stats: &BatchStats,
    relu: bool,
    xs: &CpuStorage,
    xl: &Layout,
    ws: &CpuStorage,
    wl: &Layout,
    bs: &CpuStorage,
    bl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (n, c, h, w) = xl.shape().dims4()?;
    let (x, gamma, beta) = (
        contiguous::<T>(xs, xl)?,
        contiguous::<T>(ws, wl)?,
        contiguous::<T>(bs, bl)?,
    );
    if gamma.len() != c || beta.len() != c {
        candle_core::bail!("batch norm: {} channels but {} weights", c, gamma.len())
    }
    let plane = h * w;
    let count = (n * plane) as f64;
    let moments = channel_moments(x, n, c, plane);
    let mean: Vec<f64> = moments.iter().map(|(s, _)| s / count).collect();
    let var: Vec<f64> = moments
        .iter()
        .zip(&mean)
        .map(|((_, s2), m)| (s2 / count - m * m).max(0.0))
        .collect();
    let mut y = zeros(x.len());
    y.par_chunks_mut(plane)
        .zip(x.par_chunks(plane))
        .enumerate()
        .for_each(|(i, (y, x))| {
            let ch = i % c;
            let inv = 1.0 / (var[ch] + EPS).sqrt();
            let scale = T::from_f64(gamma[ch].to_f64() * inv);
            let shift = T::from_f64(beta[ch].to_f64() - mean[ch] * gamma[ch].to_f64() * inv);
            scale_shift(y, x, scale, shift, relu);
        });
    stats.put((mean, var));
    Ok((T::to_cpu_storage_owned(y), xl.shape().clone()))
}

/// `[dγ; dβ]` (2 × C): `dγ = Σ g·x̂`, `dβ = Σ g`, with the forward pass's (μ, 1/σ).
struct BatchNormGradParams {
    stats: Arc<Vec<(f64, f64)>>,
}

impl CustomOp2 for BatchNormGradParams {
    fn name(&self) -> &'static str {
        "fakelens-batch-norm-grad-params"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(
            gs,
            "batch norm",
            bn_grad_params(&self.stats, gs, gl, xs, xl)
        )
    }
}

fn bn_grad_params<T: CpuFloat>(
    stats: &[(f64, f64)],
    gs: &CpuStorage,
    gl: &Layout,
    xs: &CpuStorage,
    xl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (n, c, h, w) = xl.shape().dims4()?;
    let (g, x) = (contiguous::<T>(gs, gl)?, contiguous::<T>(xs, xl)?);
    let plane = h * w;
    if stats.len() != c {
        candle_core::bail!(
            "batch norm backward: {} statistics for {c} channels",
            stats.len()
        )
    }
    let sums: Vec<(f64, f64)> = (0..c)
        .into_par_iter()
        .map(|ch| {
            let (m, inv) = stats[ch];
            (0..n).fold((0.0, 0.0), |(dg, db), i| {
                let at = (i * c + ch) * plane;
                g[at..at + plane].iter().zip(&x[at..at + plane]).fold(
                    (dg, db),
                    |(dg, db), (g, x)| {
                        let g = g.to_f64();
                        (dg + g * (x.to_f64() - m) * inv, db + g)
                    },
                )
            })
        })
        .collect();
    let mut out: Vec<T> = sums.iter().map(|(dg, _)| T::from_f64(*dg)).collect();
    out.extend(sums.iter().map(|(_, db)| T::from_f64(*db)));
    Ok((T::to_cpu_storage_owned(out), Shape::from((2, c))))
}

/// `dx = γ/(M·σ) · (M·g − dβ − x̂·dγ)` from `[dγ; dβ; γ]` (3 × C).
struct BatchNormGradInput {
    stats: Arc<Vec<(f64, f64)>>,
}

impl CustomOp3 for BatchNormGradInput {
    fn name(&self) -> &'static str {
        "fakelens-batch-norm-grad-input"
    }

    fn cpu_fwd(
        &self,
        gs: &CpuStorage,
        gl: &Layout,
        xs: &CpuStorage,
        xl: &Layout,
        ps: &CpuStorage,
        pl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        dispatch_float!(
            gs,
            "batch norm",
            bn_grad_input(&self.stats, gs, gl, xs, xl, ps, pl)
        )
    }
}

#[allow(clippy::too_many_arguments)]
fn bn_grad_input<T: CpuFloat>(
    stats: &[(f64, f64)],
    gs: &CpuStorage,
    gl: &Layout,
    xs: &CpuStorage,
    xl: &Layout,
    ps: &CpuStorage,
    pl: &Layout,
) -> candle_core::Result<(CpuStorage, Shape)> {
    let (n, c, h, w) = xl.shape().dims4()?;
    let (g, x, p) = (
        contiguous::<T>(gs, gl)?,
        contiguous::<T>(xs, xl)?,
        contiguous::<T>(ps, pl)?,
    );
    if p.len() != 3 * c {
        candle_core::bail!("batch norm backward: expected 3×{c} parameter gradients")
    }
    let plane = h * w;
    let m = (n * plane) as f64;
    if stats.len() != c {
        candle_core::bail!(
            "batch norm backward: {} statistics for {c} channels",
            stats.len()
        )
    }
    let mut dx = zeros(x.len());
    dx.par_chunks_mut(plane)
        .zip(g.par_chunks(plane).zip(x.par_chunks(plane)))
        .enumerate()
        .for_each(|(i, (dx, (g, x)))| {
            let ch = i % c;
            let (mean, inv) = stats[ch];
            let (dgamma, dbeta, gamma) =
                (p[ch].to_f64(), p[c + ch].to_f64(), p[2 * c + ch].to_f64());
            let k = gamma * inv / m;
            for ((dx, g), x) in dx.iter_mut().zip(g).zip(x) {
                let xhat = (x.to_f64() - mean) * inv;
                *dx = T::from_f64(k * (m * g.to_f64() - dbeta - xhat * dgamma));
            }
        });
    Ok((T::to_cpu_storage_owned(dx), xl.shape().clone()))
}
