//! Optimisers: Adam (fused, as PyTorch's Adam) and SGD with momentum, implemented here because
//! Candle's SGD has none.

use std::collections::HashMap;

use candle_core::backprop::GradStore;
use candle_core::{Tensor, Var};

use super::adam::{Adam, AdamParams};
use crate::config::{OptimizerKind, TrainConfig};

/// SGD with heavy-ball momentum, exactly as `torch.optim.SGD(momentum=m, dampening=0)`:
/// `buf = m·buf + g` (`buf = g` on the first step), `p -= lr·buf`.
pub struct SgdMomentum {
    vars: Vec<Var>,
    buffers: Vec<Option<Tensor>>,
    lr: f64,
    momentum: f64,
}

impl SgdMomentum {
    pub fn new(vars: Vec<Var>, lr: f64, momentum: f64) -> SgdMomentum {
        let buffers = vec![None; vars.len()];
        SgdMomentum {
            vars,
            buffers,
            lr,
            momentum,
        }
    }

    pub fn step(&mut self, grads: &GradStore) -> candle_core::Result<()> {
        for (var, buf) in self.vars.iter().zip(self.buffers.iter_mut()) {
            let Some(grad) = grads.get(var) else { continue };
            let next = match buf.take() {
                Some(prev) if self.momentum != 0.0 => ((prev * self.momentum)? + grad)?,
                _ => grad.clone(),
            };
            var.set(&var.sub(&(&next * self.lr)?)?)?;
            *buf = Some(next);
        }
        Ok(())
    }
}

/// The optimiser chosen in a [`TrainConfig`].
pub enum Optimizer {
    Adam(Adam),
    Sgd(SgdMomentum),
}

impl Optimizer {
    pub fn new(vars: Vec<Var>, config: &TrainConfig) -> candle_core::Result<Optimizer> {
        Ok(match config.optimizer {
            OptimizerKind::Adam => {
                let params = AdamParams {
                    lr: config.lr,
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                };
                Optimizer::Adam(Adam::new(vars, params)?)
            }
            OptimizerKind::Sgd => {
                Optimizer::Sgd(SgdMomentum::new(vars, config.lr, config.momentum))
            }
        })
    }

    /// The optimiser's state as named tensors (`optim.*`), for a resumable checkpoint.
    pub fn state(&self) -> candle_core::Result<Vec<(String, Tensor)>> {
        let mut out = Vec::new();
        match self {
            Optimizer::Adam(adam) => {
                let (step, moments) = adam.state();
                let step = Tensor::new(&[step as i64], &candle_core::Device::Cpu)?;
                out.push(("optim.adam.step".to_string(), step));
                for (i, m) in moments.into_iter().enumerate() {
                    out.push((format!("optim.adam.{i}"), m));
                }
            }
            Optimizer::Sgd(sgd) => {
                for (i, buf) in sgd.buffers.iter().enumerate() {
                    if let Some(buf) = buf {
                        out.push((format!("optim.sgd.{i}"), buf.clone()));
                    }
                }
            }
        }
        Ok(out)
    }

    /// Restores [`Optimizer::state`] saved by a run of the same model and optimiser.
    pub fn restore(&mut self, saved: &HashMap<String, Tensor>) -> Result<(), String> {
        match self {
            Optimizer::Adam(adam) => {
                let step = saved
                    .get("optim.adam.step")
                    .ok_or("no Adam state (the run used another optimiser?)")?
                    .to_vec1::<i64>()
                    .map_err(|e| e.to_string())?;
                let moments: Vec<Tensor> = (0..)
                    .map_while(|i| saved.get(&format!("optim.adam.{i}")).cloned())
                    .collect();
                adam.restore(step.first().copied().unwrap_or(0).max(0) as u64, &moments)
            }
            Optimizer::Sgd(sgd) => {
                if saved.contains_key("optim.adam.step") {
                    return Err("the saved state is Adam's, this run uses SGD".into());
                }
                for (i, (var, buf)) in sgd.vars.iter().zip(sgd.buffers.iter_mut()).enumerate() {
                    *buf = match saved.get(&format!("optim.sgd.{i}")) {
                        Some(t) if t.dims() == var.dims() => Some(
                            t.to_device(var.device())
                                .and_then(|t| t.to_dtype(var.dtype()))
                                .map_err(|e| e.to_string())?,
                        ),
                        Some(t) => {
                            return Err(format!(
                                "SGD momentum {i} has shape {:?}, the model needs {:?}",
                                t.dims(),
                                var.dims()
                            ));
                        }
                        None => None,
                    };
                }
                Ok(())
            }
        }
    }

    /// Back-propagates `loss` and applies one update. The backward pass frees each
    /// activation once it is done with it, so the step's graph cannot be back-propagated
    /// again (tensors the caller still holds, such as the logits, are kept).
    pub fn backward_step(&mut self, loss: &Tensor) -> candle_core::Result<()> {
        let grads = loss.backward_releasing()?;
        match self {
            Optimizer::Adam(adam) => adam.step(&grads),
            Optimizer::Sgd(sgd) => sgd.step(&grads),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Two steps on L = Σ w² from w = [1, -2] with lr 0.1, momentum 0.9, worked by hand as
    /// torch.optim.SGD does: g1 = [2, -4], buf1 = g1, w1 = [0.8, -1.6]; g2 = [1.6, -3.2],
    /// buf2 = 0.9·buf1 + g2 = [3.4, -6.8], w2 = [0.46, -0.92].
    #[test]
    fn sgd_momentum_matches_pytorch_update_rule() {
        let w = Var::new(&[1.0f32, -2.0], &Device::Cpu).unwrap();
        let mut sgd = SgdMomentum::new(vec![w.clone()], 0.1, 0.9);
        for _ in 0..2 {
            let loss = w.sqr().unwrap().sum_all().unwrap();
            sgd.step(&loss.backward().unwrap()).unwrap();
        }
        let got = w.to_vec1::<f32>().unwrap();
        assert!(
            (got[0] - 0.46).abs() < 1e-6 && (got[1] + 0.92).abs() < 1e-6,
            "{got:?}"
        );
    }
}
