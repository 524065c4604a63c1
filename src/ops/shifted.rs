//! Window operations composed from strided shifts of the input, for devices where FakeLens
//! has no kernels of its own yet (CUDA, Metal): each kernel tap is one strided view of the
//! padded input, so a k×k window costs k² element-wise Candle ops whatever the channel count,
//! and Candle's autograd differentiates them. Same values as the CPU ops (checked on the CPU
//! in tests/layer_ops.rs and tests/pool_op.rs).

use candle_core::Tensor;

use crate::ops::geometry::ConvGeometry;
use crate::ops::geometry::PoolGeometry;

/// `x` (NCHW) with `pad` rows/columns of `value` before and enough after that every window
/// of a `k`×`k` kernel at `stride` with `oh`×`ow` outputs reads whole strided rows.
fn pad_for_windows(
    x: &Tensor,
    pad: usize,
    k: usize,
    stride: usize,
    (oh, ow): (usize, usize),
    value: f64,
) -> candle_core::Result<Tensor> {
    let (n, c, h, w) = x.dims4()?;
    let rows = (h + 2 * pad).max(k - 1 + stride * oh);
    let cols = (w + 2 * pad).max(k - 1 + stride * ow);
    let filled = |shape: (usize, usize, usize, usize)| -> candle_core::Result<Tensor> {
        Tensor::full(value, shape, x.device())?.to_dtype(x.dtype())
    };
    let mut x = x.clone();
    if cols > w {
        let right = cols - w - pad;
        let mut parts = Vec::new();
        if pad > 0 {
            parts.push(filled((n, c, h, pad))?);
        }
        parts.push(x);
        if right > 0 {
            parts.push(filled((n, c, h, right))?);
        }
        x = Tensor::cat(&parts, 3)?;
    }
    if rows > h {
        let bottom = rows - h - pad;
        let mut parts = Vec::new();
        if pad > 0 {
            parts.push(filled((n, c, pad, cols))?);
        }
        parts.push(x);
        if bottom > 0 {
            parts.push(filled((n, c, bottom, cols))?);
        }
        x = Tensor::cat(&parts, 2)?;
    }
    Ok(x)
}

/// The `oh`×`ow` view of the padded input that kernel tap (dy, dx) reads at `stride`.
fn tap(
    padded: &Tensor,
    (dy, dx): (usize, usize),
    stride: usize,
    (oh, ow): (usize, usize),
) -> candle_core::Result<Tensor> {
    let (n, c, _, cols) = padded.dims4()?;
    let rows = padded
        .narrow(2, dy, stride * oh)?
        .reshape((n, c, oh, stride, cols))?
        .narrow(3, 0, 1)?
        .squeeze(3)?;
    rows.narrow(3, dx, stride * ow)?
        .reshape((n, c, oh, ow, stride))?
        .narrow(4, 0, 1)?
        .squeeze(4)
}

fn out_size(size: usize, pad: usize, k: usize, stride: usize) -> candle_core::Result<usize> {
    if stride == 0 || size + 2 * pad < k {
        candle_core::bail!("window {k} at stride {stride} does not fit size {size} (padding {pad})")
    }
    Ok((size + 2 * pad - k) / stride + 1)
}

/// Max-pooling of any geometry: the element-wise maximum of the k² strided taps of the
/// input padded with −∞.
pub fn max_pool2d_by_shifts(x: &Tensor, g: PoolGeometry) -> candle_core::Result<Tensor> {
    let (_, _, h, w) = x.dims4()?;
    let out = (
        out_size(h, g.padding, g.kernel, g.stride)?,
        out_size(w, g.padding, g.kernel, g.stride)?,
    );
    let padded = pad_for_windows(x, g.padding, g.kernel, g.stride, out, f64::NEG_INFINITY)?;
    let mut y: Option<Tensor> = None;
    for dy in 0..g.kernel {
        for dx in 0..g.kernel {
            let t = tap(&padded, (dy, dx), g.stride, out)?;
            y = Some(match y {
                Some(y) => y.maximum(&t)?,
                None => t,
            });
        }
    }
    y.ok_or_else(|| candle_core::Error::Msg("max-pool with an empty kernel".into()))
}

/// Depthwise convolution (weight C×1×k×k, no bias): the sum over taps of each strided view
/// of the zero-padded input times that tap's per-channel weight.
pub fn depthwise_conv2d_by_shifts(
    x: &Tensor,
    w: &Tensor,
    g: ConvGeometry,
) -> candle_core::Result<Tensor> {
    let (_, c, h, wd) = x.dims4()?;
    let (wc, _, k, _) = w.dims4()?;
    if wc != c {
        candle_core::bail!("depthwise conv: {wc} filters for {c} channels")
    }
    let out = (
        out_size(h, g.padding, k, g.stride)?,
        out_size(wd, g.padding, k, g.stride)?,
    );
    let padded = pad_for_windows(x, g.padding, k, g.stride, out, 0.0)?;
    let weights = w.reshape((c, k * k))?;
    let mut y: Option<Tensor> = None;
    for dy in 0..k {
        for dx in 0..k {
            let wt = weights.narrow(1, dy * k + dx, 1)?.reshape((1, c, 1, 1))?;
            let term = tap(&padded, (dy, dx), g.stride, out)?.broadcast_mul(&wt)?;
            y = Some(match y {
                Some(y) => (y + term)?,
                None => term,
            });
        }
    }
    y.ok_or_else(|| candle_core::Error::Msg("depthwise conv with an empty kernel".into()))
}
