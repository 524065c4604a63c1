//! Adam as PyTorch computes it (`torch.optim.Adam`, weight decay 0), fused and in place on the
//! CPU: two passes over each parameter's memory per step and no allocations, where a chain of
//! tensor ops allocates a dozen parameter-sized temporaries. Other devices use Candle's AdamW
//! with weight decay 0 (the same update).

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};
use candle_nn::Optimizer as _;

use crate::models::cpu_float::{CpuFloat, contiguous, contiguous_mut, dispatch_float};

/// Adam's hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// Fused Adam on the CPU, Candle's AdamW elsewhere.
pub enum Adam {
    Fused {
        vars: Vec<(Var, Tensor)>,
        params: AdamParams,
        step: u64,
    },
    Candle(Box<candle_nn::AdamW>),
}

impl Adam {
    pub fn new(vars: Vec<Var>, params: AdamParams) -> candle_core::Result<Adam> {
        let on_cpu = vars
            .iter()
            .all(|v| v.device().is_cpu() && matches!(v.dtype(), DType::F32 | DType::F64));
        if !on_cpu {
            let config = candle_nn::ParamsAdamW {
                lr: params.lr,
                beta1: params.beta1,
                beta2: params.beta2,
                eps: params.eps,
                weight_decay: 0.0,
            };
            return Ok(Adam::Candle(Box::new(candle_nn::AdamW::new(vars, config)?)));
        }
        let vars = vars
            .into_iter()
            .map(|v| {
                let moments = Tensor::zeros((2, v.elem_count()), v.dtype(), v.device())?;
                Ok((v, moments))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Adam::Fused {
            vars,
            params,
            step: 0,
        })
    }

    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        match self {
            Adam::Candle(adam) => adam.step(grads),
            Adam::Fused { vars, params, step } => {
                *step += 1;
                let t = *step as i32;
                for (var, moments) in vars.iter() {
                    let Some(grad) = grads.get(var) else { continue };
                    let grad = grad.contiguous()?;
                    moments.inplace_op2(&grad, &UpdateMoments(*params))?;
                    var.as_tensor()
                        .inplace_op2(moments, &ApplyAdam(*params, t))?;
                }
                Ok(())
            }
        }
    }
}

/// `m = β₁m + (1−β₁)g`, `v = β₂v + (1−β₂)g²` on the `[2, n]` moments tensor.
struct UpdateMoments(AdamParams);

impl InplaceOp2 for UpdateMoments {
    fn name(&self) -> &'static str {
        "fakelens-adam-moments"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        dispatch_float!(s2, "adam", update_moments(&self.0, s1, l1, s2, l2))
    }
}

fn update_moments<T: CpuFloat>(
    p: &AdamParams,
    s1: &mut CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> candle_core::Result<()> {
    let g = contiguous::<T>(s2, l2)?;
    let mv = contiguous_mut::<T>(s1, l1)?;
    let (m, v) = mv.split_at_mut(g.len());
    let (b1, b2) = (T::from_f64(p.beta1), T::from_f64(p.beta2));
    let (c1, c2) = (T::from_f64(1.0 - p.beta1), T::from_f64(1.0 - p.beta2));
    for ((m, v), g) in m.iter_mut().zip(v.iter_mut()).zip(g) {
        *m = b1 * *m + c1 * *g;
        *v = b2 * *v + c2 * *g * *g;
    }
    Ok(())
}

/// `p -= lr/(1−β₁ᵗ) · m / (√v/√(1−β₂ᵗ) + ε)`, as torch.optim.Adam.
struct ApplyAdam(AdamParams, i32);

impl InplaceOp2 for ApplyAdam {
    fn name(&self) -> &'static str {
        "fakelens-adam-apply"
    }
    fn cpu_fwd(
        &self,
        s1: &mut CpuStorage,
        l1: &Layout,
        s2: &CpuStorage,
        l2: &Layout,
    ) -> candle_core::Result<()> {
        dispatch_float!(s2, "adam", apply_adam(&self.0, self.1, s1, l1, s2, l2))
    }
}

fn apply_adam<T: CpuFloat>(
    p: &AdamParams,
    t: i32,
    s1: &mut CpuStorage,
    l1: &Layout,
    s2: &CpuStorage,
    l2: &Layout,
) -> candle_core::Result<()> {
    let mv = contiguous::<T>(s2, l2)?;
    let w = contiguous_mut::<T>(s1, l1)?;
    let (m, v) = mv.split_at(w.len());
    let bias1 = 1.0 - p.beta1.powi(t);
    let bias2_sqrt = (1.0 - p.beta2.powi(t)).sqrt();
    let step = T::from_f64(p.lr / bias1);
    let inv_bias2_sqrt = T::from_f64(1.0 / bias2_sqrt);
    let eps = T::from_f64(p.eps);
    for ((w, m), v) in w.iter_mut().zip(m).zip(v) {
        let denom = v.sqrt() * inv_bias2_sqrt + eps;
        *w -= step * *m / denom;
    }
    Ok(())
}
