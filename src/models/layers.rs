//! The layers the detectors are built from: batch norm as PyTorch's `BatchNorm2d` (eps
//! 1e-5, momentum 0.1, affine: in training the fused op with the batch statistics and the
//! running mean and unbiased variance updated as PyTorch updates them; in evaluation a
//! per-channel affine with the running statistics; off the CPU the same formulas as stock
//! Candle ops), Xception's separable convolution, and the fully connected head.

use candle_core::{DType, Tensor, Var};

use super::Params;
use crate::ops::conv::dense::conv2d;
use crate::ops::depthwise::{depthwise_conv2d, relu_depthwise_conv2d};
use crate::ops::geometry::ConvGeometry;
use crate::ops::norm::batch_norm::{EPS, batch_norm_train};
use crate::ops::norm::channel_affine::ChannelAffine;

/// A parameter as a forward pass uses it: tracked when training; detached in evaluation, so
/// that no graph keeps the activations alive (an Xception eval batch of 32 peaked at 9 GiB
/// with tracked weights). Gradients w.r.t. the input and activations (saliency, Grad-CAM)
/// still flow.
pub fn param(t: &Tensor, train: bool) -> Tensor {
    if train { t.clone() } else { t.detach() }
}

/// Fully connected layers with ReLU between them (none after the last), parameters as
/// [`param`] gives them; `each(i, output)` sees layer `i`'s output (before its ReLU, as a
/// hook on the PyTorch `Linear` module would) and may replace it.
pub fn mlp_forward(
    layers: &[candle_nn::Linear],
    x: &Tensor,
    train: bool,
    mut each: impl FnMut(usize, Tensor) -> candle_core::Result<Tensor>,
) -> candle_core::Result<Tensor> {
    let mut x = x.clone();
    for (i, fc) in layers.iter().enumerate() {
        let (w, b) = (
            param(fc.weight(), train),
            fc.bias().map(|b| param(b, train)),
        );
        x = each(i, crate::ops::linear::linear(&x, &w, b.as_ref())?)?;
        if i + 1 < layers.len() {
            x = x.relu()?;
        }
    }
    Ok(x)
}

/// PyTorch's `BatchNorm2d` momentum of the running statistics.
pub const MOMENTUM: f64 = 0.1;

/// A batch-norm layer's parameters (`weight`, `bias`) and buffers (`running_mean`,
/// `running_var`, `num_batches_tracked`), under PyTorch's key names.
pub struct BatchNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Var,
    running_var: Var,
    batches: Var,
}

impl BatchNorm {
    /// A freshly initialised layer (weight 1, bias 0, mean 0, variance 1), as PyTorch's.
    pub fn new(params: &mut Params, prefix: &str, channels: usize) -> candle_core::Result<Self> {
        let (device, dtype) = (params.device().clone(), params.dtype());
        let weight = params.insert(
            &format!("{prefix}.weight"),
            Tensor::ones(channels, dtype, &device)?,
        )?;
        let bias = params.insert(
            &format!("{prefix}.bias"),
            Tensor::zeros(channels, dtype, &device)?,
        )?;
        let running_mean = params.buffer(
            &format!("{prefix}.running_mean"),
            Tensor::zeros(channels, dtype, &device)?,
        )?;
        let running_var = params.buffer(
            &format!("{prefix}.running_var"),
            Tensor::ones(channels, dtype, &device)?,
        )?;
        let batches = params.buffer(
            &format!("{prefix}.num_batches_tracked"),
            Tensor::zeros((), DType::I64, &device)?,
        )?;
        Ok(BatchNorm {
            weight,
            bias,
            running_mean,
            running_var,
            batches,
        })
    }

    pub fn forward(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_impl(x, train, Self::fused(x), false)
    }

    /// The evaluation affine `y = x·scale + shift` (running statistics), in f64: what the
    /// frozen path folds into the convolution before this layer.
    pub(super) fn eval_affine(&self) -> candle_core::Result<(Vec<f64>, Vec<f64>)> {
        let f64_of = |t: &Tensor| t.detach().to_dtype(DType::F64)?.to_vec1::<f64>();
        let (weight, bias) = (f64_of(&self.weight)?, f64_of(&self.bias)?);
        let mean = f64_of(self.running_mean.as_tensor())?;
        let var = f64_of(self.running_var.as_tensor())?;
        let scale: Vec<f64> = weight
            .iter()
            .zip(&var)
            .map(|(w, v)| w / (v + EPS).sqrt())
            .collect();
        let shift = bias
            .iter()
            .zip(&mean)
            .zip(&scale)
            .map(|((b, m), s)| b - m * s)
            .collect();
        Ok((scale, shift))
    }

    /// `relu(bn(x))`, fused into the one op on the CPU (no separate ReLU node whose
    /// backward zero-fills, compares, converts and multiplies the whole activation).
    pub fn forward_relu(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_impl(x, train, Self::fused(x), true)
    }

    /// The same layer on stock Candle ops only (what GPUs run), for comparisons.
    pub fn forward_with_stock_ops(&self, x: &Tensor, train: bool) -> candle_core::Result<Tensor> {
        self.forward_impl(x, train, false, false)
    }

    /// `relu(bn(x))` on stock Candle ops only, for comparisons.
    pub fn forward_relu_with_stock_ops(
        &self,
        x: &Tensor,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        self.forward_impl(x, train, false, true)
    }

    fn fused(x: &Tensor) -> bool {
        x.device().is_cpu() && matches!(x.dtype(), DType::F32 | DType::F64)
    }

    fn forward_impl(
        &self,
        x: &Tensor,
        train: bool,
        fused: bool,
        relu: bool,
    ) -> candle_core::Result<Tensor> {
        let stock_relu = |y: Tensor| if relu { y.relu() } else { Ok(y) };
        if !train {
            let running_var = self.running_var.as_tensor().detach();
            let scale = (self.weight.detach() / (running_var + EPS)?.sqrt()?)?;
            let shift = (self.bias.detach() - (self.running_mean.as_tensor().detach() * &scale)?)?;
            if fused {
                let op = ChannelAffine {
                    scale: scale.to_dtype(DType::F64)?.to_vec1()?,
                    shift: shift.to_dtype(DType::F64)?.to_vec1()?,
                    relu,
                };
                return x.contiguous()?.apply_op1(op);
            }
            let shape = (1, scale.elem_count(), 1, 1);
            return stock_relu(
                x.broadcast_mul(&scale.reshape(shape)?)?
                    .broadcast_add(&shift.reshape(shape)?)?,
            );
        }
        let (n, c, h, w) = x.dims4()?;
        let count = n * h * w;
        if count < 2 {
            candle_core::bail!(
                "batch norm in training needs more than one value per channel, got input {:?}",
                x.dims()
            )
        }
        let (y, mean, var) = if fused {
            let (y, mean, var) = batch_norm_train(x, &self.weight, &self.bias, relu)?;
            let mean = Tensor::from_slice(&mean, c, x.device())?.to_dtype(x.dtype())?;
            let var = Tensor::from_slice(&var, c, x.device())?.to_dtype(x.dtype())?;
            (y, mean, var)
        } else {
            let mean = x.mean_keepdim((0, 2, 3))?;
            let centred = x.broadcast_sub(&mean)?;
            let var = centred.sqr()?.mean_keepdim((0, 2, 3))?;
            let y = centred
                .broadcast_div(&(&var + EPS)?.sqrt()?)?
                .broadcast_mul(&self.weight.reshape((1, c, 1, 1))?)?
                .broadcast_add(&self.bias.reshape((1, c, 1, 1))?)?;
            (
                stock_relu(y)?,
                mean.flatten_all()?.detach(),
                var.flatten_all()?.detach(),
            )
        };
        // PyTorch keeps the unbiased variance in the running estimate.
        let unbiased = (var * (count as f64 / (count - 1) as f64))?;
        let update = |running: &Var, batch: &Tensor| -> candle_core::Result<()> {
            let next = ((running.as_tensor() * (1.0 - MOMENTUM))? + (batch * MOMENTUM)?)?;
            running.set(&next.to_dtype(running.dtype())?)
        };
        update(&self.running_mean, &mean)?;
        update(&self.running_var, &unbiased)?;
        self.batches.set(&(self.batches.as_tensor() + 1.0)?)?;
        Ok(y)
    }
}

/// Depthwise 3×3 (padding 1) then pointwise 1×1, no biases.
pub struct SeparableConv {
    pub(super) depthwise: Tensor,
    pub(super) pointwise: Tensor,
    no_bias: Tensor,
}

impl SeparableConv {
    pub fn new(
        params: &mut Params,
        prefix: &str,
        c_in: usize,
        c_out: usize,
    ) -> candle_core::Result<Self> {
        let depthwise = params.uniform(
            &format!("{prefix}.conv1.weight"),
            &[c_in, 1, 3, 3],
            1.0 / 3.0,
        )?;
        let bound = 1.0 / (c_in as f64).sqrt();
        let pointwise = params.uniform(
            &format!("{prefix}.pointwise.weight"),
            &[c_out, c_in, 1, 1],
            bound,
        )?;
        let no_bias = Tensor::zeros(c_out, params.dtype(), params.device())?;
        Ok(SeparableConv {
            depthwise,
            pointwise,
            no_bias,
        })
    }

    /// `pointwise(depthwise(x))`, or `pointwise(depthwise(relu(x)))` with the ReLU fused.
    pub fn forward(
        &self,
        x: &Tensor,
        relu_first: bool,
        train: bool,
    ) -> candle_core::Result<Tensor> {
        let same = ConvGeometry {
            stride: 1,
            padding: 1,
        };
        let depthwise = param(&self.depthwise, train);
        let x = if relu_first {
            relu_depthwise_conv2d(x, &depthwise, same)?
        } else {
            depthwise_conv2d(x, &depthwise, same)?
        };
        let one = ConvGeometry {
            stride: 1,
            padding: 0,
        };
        conv2d(&x, &param(&self.pointwise, train), &self.no_bias, one)
    }
}
