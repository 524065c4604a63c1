//! Adam as PyTorch computes it (`torch.optim.Adam`, weight decay 0), fused and in place on the
//! CPU: two passes over each parameter's memory per step and no allocations, where a chain of
//! tensor ops allocates a dozen parameter-sized temporaries. Other devices run the same update
//! as stock tensor ops. The moments live here, so a run's state can be saved and resumed.

use candle_core::backprop::GradStore;
use candle_core::{CpuStorage, DType, InplaceOp2, Layout, Tensor, Var};

use crate::ops::cpu::float::{CpuFloat, contiguous, contiguous_mut, dispatch_float};

/// Adam's hyperparameters.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamParams {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
}

/// Adam with its moments kept here (so a run's optimiser state can be saved and resumed on
/// any device): fused in-place ops on the CPU, the same update as stock tensor ops elsewhere.
pub struct Adam {
    /// Each parameter with its `[2, n]` moments (first row m, second row v).
    vars: Vec<(Var, Var)>,
    params: AdamParams,
    step: u64,
    fused: bool,
}

impl Adam {
    pub fn new(vars: Vec<Var>, params: AdamParams) -> candle_core::Result<Adam> {
        let fused = vars
            .iter()
            .all(|v| v.device().is_cpu() && matches!(v.dtype(), DType::F32 | DType::F64));
        Self::build(vars, params, fused)
    }

    /// The update every device without the fused ops runs, for comparisons on the CPU.
    pub fn with_stock_ops(vars: Vec<Var>, params: AdamParams) -> candle_core::Result<Adam> {
        Self::build(vars, params, false)
    }

    fn build(vars: Vec<Var>, params: AdamParams, fused: bool) -> candle_core::Result<Adam> {
        let vars = vars
            .into_iter()
            .map(|v| {
                let moments = Var::zeros((2, v.elem_count()), v.dtype(), v.device())?;
                Ok((v, moments))
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(Adam {
            vars,
            params,
            step: 0,
            fused,
        })
    }

    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        self.step += 1;
        let (p, t) = (self.params, self.step as i32);
        for (var, moments) in self.vars.iter() {
            let Some(grad) = grads.get(var) else { continue };
            let grad = grad.contiguous()?;
            if self.fused {
                moments.as_tensor().inplace_op2(&grad, &UpdateMoments(p))?;
                var.as_tensor().inplace_op2(moments, &ApplyAdam(p, t))?;
                continue;
            }
            let g = grad.flatten_all()?;
            let m = ((moments.get(0)? * p.beta1)? + (&g * (1.0 - p.beta1))?)?;
            let v = ((moments.get(1)? * p.beta2)? + (g.sqr()? * (1.0 - p.beta2))?)?;
            let bias1 = 1.0 - p.beta1.powi(t);
            let bias2_sqrt = (1.0 - p.beta2.powi(t)).sqrt();
            let denom = ((v.sqrt()? / bias2_sqrt)? + p.eps)?;
            let update = ((&m / &denom)? * (p.lr / bias1))?.reshape(var.shape())?;
            var.set(&var.as_tensor().sub(&update)?)?;
            moments.set(&Tensor::stack(&[&m, &v], 0)?)?;
        }
        Ok(())
    }

    /// Steps taken and each parameter's moments, in parameter order.
    pub fn state(&self) -> (u64, Vec<Tensor>) {
        let moments = self
            .vars
            .iter()
            .map(|(_, m)| m.as_tensor().clone())
            .collect();
        (self.step, moments)
    }

    /// Restores what [`Adam::state`] returned for the same parameters.
    pub fn restore(&mut self, step: u64, moments: &[Tensor]) -> Result<(), String> {
        if moments.len() != self.vars.len() {
            return Err(format!(
                "Adam state has {} moment tensors for {} parameters",
                moments.len(),
                self.vars.len()
            ));
        }
        for (i, ((_, mine), saved)) in self.vars.iter().zip(moments).enumerate() {
            if mine.dims() != saved.dims() {
                return Err(format!(
                    "Adam moments {i} have shape {:?}, the model needs {:?}",
                    saved.dims(),
                    mine.dims()
                ));
            }
            let value = saved
                .to_device(mine.device())
                .and_then(|t| t.to_dtype(mine.dtype()))
                .map_err(|e| e.to_string())?;
            mine.set(&value).map_err(|e| e.to_string())?;
        }
        self.step = step;
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn run(stock: bool) -> Vec<f64> {
        let w = Var::new(&[[1.0f64, -2.0], [0.5, 3.0]], &Device::Cpu).unwrap();
        let params = AdamParams {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        };
        let mut adam = if stock {
            Adam::with_stock_ops(vec![w.clone()], params).unwrap()
        } else {
            Adam::new(vec![w.clone()], params).unwrap()
        };
        for _ in 0..3 {
            let loss = (w.sqr().unwrap().sum_all().unwrap() + w.sum_all().unwrap()).unwrap();
            adam.step(&loss.backward().unwrap()).unwrap();
        }
        w.flatten_all().unwrap().to_vec1().unwrap()
    }

    /// The stock-op update (every device but the CPU) equals the fused one, and both moved
    /// the parameters.
    #[test]
    fn stock_op_adam_equals_fused_adam() {
        let (fused, stock) = (run(false), run(true));
        for (a, b) in fused.iter().zip(&stock) {
            assert!((a - b).abs() < 1e-12, "{fused:?} vs {stock:?}");
        }
        assert!((fused[0] - 1.0).abs() > 0.1, "{fused:?}");
    }
}
