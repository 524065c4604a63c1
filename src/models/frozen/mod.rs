//! The frozen inference form of a loaded detector: what evaluation, verdicts and an
//! explanation's probability run on the CPU. Prepared once from the model's weights, never
//! writing them: every batch norm folded into the convolution before it (`w·scale`, bias
//! `shift`), the 1×1 weights packed once into the product kernel's panels, and bias, ReLU
//! and the residual add applied as the kernel stores each output value. A batch runs image by
//! image (one image per thread, its activations reused from a scratch pool, so no op
//! allocates or zeroes fresh pages); one image runs each op on every thread. No autograd:
//! saliency and Grad-CAM keep the model's own (unfolded) forward, whose graph they need.
//!
//! Values equal the unfolded forward's within float32 rounding (the folded products round
//! differently): `tests/frozen_inference.rs` states the tolerance.

pub mod simplenet;
pub mod xception;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use candle_core::{DType, Device, Tensor};
use rayon::prelude::*;

use crate::ops::cpu::gemm::{MatRef, matmul};
use crate::ops::elementwise::{add_bias, add_bias_residual};
use crate::ops::pointwise::{Epilogue, Lhs, Out, PackedLhs, Rhs};

/// A detector's frozen copy (see the module docs).
pub struct FrozenNet {
    plan: Plan,
}

pub(crate) enum Plan {
    SimpleNet(simplenet::FrozenSimpleNet),
    Xception(Box<xception::FrozenXception>),
}

impl FrozenNet {
    pub(crate) fn new(plan: Plan) -> FrozenNet {
        FrozenNet { plan }
    }

    /// Logits `[N, 2]` of an NCHW batch (f32 on the CPU), as `forward_t(images, false)`
    /// gives them within float32 rounding.
    pub fn logits(&self, images: &Tensor) -> candle_core::Result<Tensor> {
        let (n, c, h, w) = images.dims4()?;
        let images = images.to_dtype(DType::F32)?.contiguous()?;
        let (storage, layout) = images.storage_and_layout();
        let values = match (&*storage, layout.contiguous_offsets()) {
            (candle_core::Storage::Cpu(candle_core::CpuStorage::F32(v)), Some((start, end))) => {
                &v[start..end]
            }
            _ => candle_core::bail!("frozen forward: the images are not f32 on the CPU"),
        };
        let logits = match &self.plan {
            Plan::SimpleNet(net) => net.forward(values, n, (c, h, w))?,
            Plan::Xception(net) => net.forward(values, n, (c, h, w))?,
        };
        drop(storage);
        Tensor::from_vec(logits, (n, 2), &Device::Cpu)?.to_device(images.device())
    }
}

/// Whether a model's weights can be frozen: f32 values on the CPU.
pub(crate) fn freezable(params: &super::Params) -> bool {
    params.device().is_cpu() && params.dtype() == DType::F32
}

/// A tensor's values as f32 (a frozen copy, detached from the model's parameter).
pub(crate) fn values_of(t: &Tensor) -> candle_core::Result<Vec<f32>> {
    t.detach().to_dtype(DType::F32)?.flatten_all()?.to_vec1()
}

/// A convolution weight (`rows` output channels × `cols` inputs·taps) with the batch norm
/// after it folded in, and packed once for the product kernel where it runs.
pub(crate) struct FoldedWeight {
    values: Vec<f32>,
    bias: Vec<f32>,
    rows: usize,
    cols: usize,
    packed: Option<PackedLhs>,
}

impl FoldedWeight {
    /// `w · scale[o]` and bias `shift[o] + scale[o]·bias[o]` for the layer `y = w·x + bias`
    /// followed by `y·scale + shift`.
    pub(crate) fn fold(
        w: Vec<f32>,
        bias: Option<&[f32]>,
        (rows, cols): (usize, usize),
        (scale, shift): (&[f64], &[f64]),
        pack: bool,
    ) -> candle_core::Result<FoldedWeight> {
        if w.len() != rows * cols || scale.len() != rows || shift.len() != rows {
            candle_core::bail!(
                "folding {} weights into {rows}x{cols} with {} batch-norm channels",
                w.len(),
                scale.len()
            )
        }
        let mut values = w;
        for (row, &s) in values.chunks_mut(cols).zip(scale) {
            for v in row {
                *v = (f64::from(*v) * s) as f32;
            }
        }
        let bias = (0..rows)
            .map(|o| (shift[o] + scale[o] * bias.map_or(0.0, |b| f64::from(b[o]))) as f32)
            .collect();
        Ok(FoldedWeight::new(values, bias, (rows, cols), pack))
    }

    /// A weight with its own bias (nothing folded); packed for the 1×1 product kernel if
    /// `pack` (the spatial convs' im2col products, few rows and many pixels, run faster on
    /// the general blocked product, as in the unfolded op).
    pub(crate) fn new(
        values: Vec<f32>,
        bias: Vec<f32>,
        (rows, cols): (usize, usize),
        pack: bool,
    ) -> Self {
        let packed = (pack && crate::ops::cpu::available())
            .then(|| PackedLhs::pack(&values, rows, cols, cols, 1))
            .flatten();
        // Packed, the plain copy would only double the memory the frozen copy holds.
        let values = if packed.is_some() { Vec::new() } else { values };
        FoldedWeight {
            values,
            bias,
            rows,
            cols,
            packed,
        }
    }

    pub(crate) fn rows(&self) -> usize {
        self.rows
    }

    pub(crate) fn bias(&self) -> &[f32] {
        &self.bias
    }

    /// The folded values (`rows × cols`); empty when packed.
    pub(crate) fn values(&self) -> &[f32] {
        &self.values
    }

    /// Whether the weight runs on the packed 1×1 kernel, which takes any `Rhs`.
    pub(crate) fn is_packed(&self) -> bool {
        self.packed.is_some()
    }

    /// The weight packed for the 1×1 kernel, if it runs there.
    pub(crate) fn packed(&self) -> Option<&PackedLhs> {
        self.packed.as_ref()
    }

    /// `out (rows × n) = act(w · rhs + bias [+ residual])`, `rhs` being `cols × n` (dense
    /// unless `is_packed`).
    pub(crate) fn apply(
        &self,
        rhs: Rhs<'_>,
        n: usize,
        out: &mut Vec<f32>,
        relu: bool,
        residual: Option<&[f32]>,
        threads: usize,
    ) -> candle_core::Result<()> {
        let out = sized(out, self.rows * n);
        if residual.is_some_and(|r| r.len() < self.rows * n) {
            candle_core::bail!("frozen product: residual too small for {}x{n}", self.rows)
        }
        let done = self.packed.as_ref().is_some_and(|packed| {
            let out = Out {
                c: &mut *out,
                ldc: n,
                accumulate: false,
                epilogue: Some(Epilogue {
                    bias: &self.bias,
                    residual,
                    relu,
                }),
            };
            crate::ops::pointwise::product_of(Lhs::Packed(packed), rhs, n, out, threads)
        });
        if done {
            // The bias, residual and ReLU were applied as the kernel stored each value.
            return Ok(());
        }
        let rhs = match rhs {
            Rhs::Dense { b, ldb } if ldb == n && b.len() >= self.cols * n => b,
            _ => candle_core::bail!(
                "frozen product: no kernel takes this {}x{n} operand",
                self.cols
            ),
        };
        if self.values.is_empty() {
            candle_core::bail!(
                "frozen product: the packed kernel refused {}x{n}",
                self.cols
            )
        }
        let lhs = MatRef::row_major(&self.values, self.rows, self.cols);
        matmul(
            out,
            lhs,
            MatRef::row_major(rhs, self.cols, n),
            false,
            threads,
        )
        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        let each = |(o, (plane, &bias)): (usize, (&mut [f32], &f32))| match residual {
            Some(r) => add_bias_residual(plane, bias, &r[o * n..][..n], relu),
            None => add_bias(plane, bias, relu),
        };
        let out = &mut out[..self.rows * n];
        if threads > 1 {
            out.par_chunks_mut(n.max(1))
                .zip(self.bias.par_iter())
                .enumerate()
                .for_each(each);
        } else {
            out.chunks_mut(n.max(1))
                .zip(self.bias.iter())
                .enumerate()
                .for_each(each);
        }
        Ok(())
    }
}

/// The fully connected head: `relu` between layers, none after the last.
pub(crate) struct Head {
    layers: Vec<(Vec<f32>, Vec<f32>, usize, usize)>,
}

impl Head {
    /// From `(weight m×k, bias m)` tensor pairs, input to output.
    pub(crate) fn new(layers: &[candle_nn::Linear]) -> candle_core::Result<Head> {
        let mut out = Vec::new();
        for fc in layers {
            let (m, k) = fc.weight().dims2()?;
            let bias = match fc.bias() {
                Some(b) => values_of(b)?,
                None => vec![0.0; m],
            };
            out.push((values_of(fc.weight())?, bias, m, k));
        }
        Ok(Head { layers: out })
    }

    /// The logits of `rows` feature rows.
    pub(crate) fn forward(&self, features: Vec<f32>, rows: usize) -> candle_core::Result<Vec<f32>> {
        let mut x = features;
        let threads = rayon::current_num_threads();
        for (i, (w, b, m, k)) in self.layers.iter().enumerate() {
            let small = rows <= crate::ops::linear::MAX_ROWS;
            let matvec = small
                .then(|| crate::ops::linear::matvec_rows(&x, rows, w, b, (*m, *k)))
                .flatten();
            let mut y = match matvec {
                Some(y) => y,
                None => {
                    if x.len() != rows * k {
                        candle_core::bail!("frozen head: {} features for {rows}x{k}", x.len())
                    }
                    let mut y = vec![0.0f32; rows * m];
                    let wt = MatRef::transposed(w, *m, *k);
                    matmul(&mut y, MatRef::row_major(&x, rows, *k), wt, false, threads)
                        .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
                    for row in y.chunks_mut(*m) {
                        for (v, &bias) in row.iter_mut().zip(b) {
                            *v += bias;
                        }
                    }
                    y
                }
            };
            if i + 1 < self.layers.len() {
                for v in &mut y {
                    *v = v.max(0.0);
                }
            }
            x = y;
        }
        Ok(x)
    }
}

/// The first `len` values of `buffer`, grown (never shrunk) to hold them: a buffer reused
/// for smaller and larger activations is then zeroed once, not on every growth (the memset
/// was 2 % of a LilXception evaluation). Its values are whatever the last user left.
pub(crate) fn sized(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        // Exactly: `resize` alone may double the capacity (see `ScratchPool::with`).
        buffer.reserve_exact(len - buffer.len());
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

/// Reused per-image buffers: taken by an image's pass, returned after it, so that a batch
/// allocates (and the OS zeroes) each buffer once per thread, not once per op.
#[derive(Default)]
pub(crate) struct Scratch {
    pub(crate) buffers: [Vec<f32>; 5],
}

#[derive(Default)]
pub(crate) struct ScratchPool(Mutex<Vec<Scratch>>);

impl ScratchPool {
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut Scratch) -> R) -> R {
        let taken = self.0.lock().ok().and_then(|mut pool| pool.pop());
        let mut scratch = taken.unwrap_or_default();
        let result = f(&mut scratch);
        // A pass swaps the buffers between roles, so each must hold the largest activation:
        // grown once here, never reallocated (and its pages never faulted in) again. Exactly:
        // `reserve` doubled a buffer a little short of the largest past it, and the others
        // then grew to that on the next pass (Xception's batch of 8: 3.8 GB).
        let largest = scratch.buffers.iter().map(Vec::capacity).max().unwrap_or(0);
        for buffer in &mut scratch.buffers {
            buffer.reserve_exact(largest.saturating_sub(buffer.len()));
        }
        if let Ok(mut pool) = self.0.lock() {
            pool.push(scratch);
        }
        result
    }
}

/// Keeps a pool thread taking the pass's op tasks until `done`: between two ops, an idle
/// pool thread slept after a few dozen rounds of looking for work (an op's halves rarely
/// end together), and waking it again cost the next op a wake-up of a halted processor.
/// Returns at once on the thread running the pass (`passing`), which may run this task
/// while it waits inside an op.
fn keep_taking_tasks(done: &AtomicBool, passing: Option<usize>) {
    if rayon::current_thread_index() == passing {
        return;
    }
    while !done.load(Ordering::Acquire) {
        if rayon::yield_now() != Some(rayon::Yield::Executed) {
            std::hint::spin_loop();
        }
    }
}

/// Sets its flag when dropped.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Release);
    }
}

/// One image's pass: its values, its scratch and the threads it may use, to its features.
pub(crate) type ImagePass<'a> =
    dyn Fn(&[f32], &mut Scratch, usize) -> candle_core::Result<Vec<f32>> + Sync + 'a;

/// Runs `image(x, scratch, threads)` on each image of a batch and concatenates the
/// feature rows it returns: one image per thread when the batch fills the threads, else
/// each image on all of them, its pass run on a pool thread.
pub(crate) fn per_image(
    values: &[f32],
    n: usize,
    pool: &ScratchPool,
    image: &ImagePass<'_>,
) -> candle_core::Result<Vec<f32>> {
    if n == 0 || !values.len().is_multiple_of(n) {
        candle_core::bail!("frozen forward: {} values for {n} images", values.len())
    }
    let per = values.len() / n;
    let threads = rayon::current_num_threads();
    let rows: Vec<Vec<f32>> = if n >= threads && threads > 1 {
        values
            .par_chunks(per)
            .map(|x| pool.with(|s| image(x, s, 1)))
            .collect::<candle_core::Result<_>>()?
    } else {
        // On a pool thread: each op's tasks then start on this thread and the one spinning
        // beside it, where from outside the pool every op injected its tasks and slept until
        // woken (LilXception at one image: 1.03–1.09×, measured interleaved).
        let done = AtomicBool::new(false);
        rayon::scope(|scope| {
            let (done, passing) = (&done, rayon::current_thread_index());
            for _ in 1..threads {
                scope.spawn(move |_| keep_taking_tasks(done, passing));
            }
            // Set when the pass ends, by an error or a panic too.
            let _done = SetOnDrop(done);
            values
                .chunks(per)
                .map(|x| pool.with(|s| image(x, s, threads)))
                .collect::<candle_core::Result<_>>()
        })?
    };
    Ok(rows.concat())
}
