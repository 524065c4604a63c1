//! The float types the CPU ops run on (f32, and f64 for exact reference checks): per-thread
//! scratch buffers reused across calls instead of allocating tens of megabytes per image per
//! step, contiguous storage access (shared and mutable), the f32/f64 dispatch, and the few
//! maths functions needed.

use std::cell::RefCell;

use candle_core::backend::BackendStorage;

use candle_core::{CpuStorage, Layout, WithDType};

thread_local! {
    static F32: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    static F64: RefCell<Vec<f64>> = const { RefCell::new(Vec::new()) };
}

/// f32 or f64.
pub trait CpuFloat: WithDType {
    /// Calls `f` with a zero-initialised-once, reused buffer of at least `len` values (its
    /// contents are whatever the last user left). Re-entrant use gets a fresh buffer.
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [Self]) -> R) -> R;
    /// The values of a CPU storage of this type, mutably.
    fn storage_mut(s: &mut CpuStorage) -> candle_core::Result<&mut [Self]>;
    fn sqrt(self) -> Self;
    /// The values as f32 when this is f32 (for the f32-only AVX-512 kernels).
    fn as_f32(values: &[Self]) -> Option<&[f32]>;
    fn as_f32_mut(values: &mut [Self]) -> Option<&mut [f32]>;
}

/// The contiguous values of a CPU tensor of element type `T`.
pub(crate) fn contiguous<'a, T: WithDType>(
    s: &'a CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a [T]> {
    let v = T::cpu_storage_as_slice(s)?;
    match l.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("fakelens CPU ops need contiguous tensors"),
    }
}

/// Runs `$f::<f32>` or `$f::<f64>` by the storage's dtype.
macro_rules! dispatch_float {
    ($storage:expr, $name:expr, $f:ident ( $($arg:expr),* )) => {
        match candle_core::backend::BackendStorage::dtype($storage) {
            candle_core::DType::F32 => $f::<f32>($($arg),*),
            candle_core::DType::F64 => $f::<f64>($($arg),*),
            other => candle_core::bail!("{} supports f32 and f64, got {other:?}", $name),
        }
    };
}
pub(crate) use dispatch_float;

/// The contiguous values of a CPU tensor, mutably (for in-place updates).
pub fn contiguous_mut<'a, T: CpuFloat>(
    s: &'a mut CpuStorage,
    l: &Layout,
) -> candle_core::Result<&'a mut [T]> {
    let Some((start, end)) = l.contiguous_offsets() else {
        candle_core::bail!("in-place update needs a contiguous tensor")
    };
    Ok(&mut T::storage_mut(s)?[start..end])
}

fn with<T: WithDType, R>(cell: &RefCell<Vec<T>>, len: usize, f: impl FnOnce(&mut [T]) -> R) -> R {
    match cell.try_borrow_mut() {
        Ok(mut buf) => {
            if buf.len() < len {
                buf.resize(len, T::from_f64(0.0));
            }
            f(&mut buf[..len])
        }
        Err(_) => f(&mut vec![T::from_f64(0.0); len]),
    }
}

impl CpuFloat for f32 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
        F32.with(|cell| with(cell, len, f))
    }
    fn storage_mut(s: &mut CpuStorage) -> candle_core::Result<&mut [f32]> {
        match s {
            CpuStorage::F32(v) => Ok(v),
            other => candle_core::bail!("expected f32 storage, got {:?}", other.dtype()),
        }
    }
    fn sqrt(self) -> f32 {
        f32::sqrt(self)
    }
    fn as_f32(values: &[f32]) -> Option<&[f32]> {
        Some(values)
    }
    fn as_f32_mut(values: &mut [f32]) -> Option<&mut [f32]> {
        Some(values)
    }
}

impl CpuFloat for f64 {
    fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f64]) -> R) -> R {
        F64.with(|cell| with(cell, len, f))
    }
    fn storage_mut(s: &mut CpuStorage) -> candle_core::Result<&mut [f64]> {
        match s {
            CpuStorage::F64(v) => Ok(v),
            other => candle_core::bail!("expected f64 storage, got {:?}", other.dtype()),
        }
    }
    fn sqrt(self) -> f64 {
        f64::sqrt(self)
    }
    fn as_f32(_: &[f64]) -> Option<&[f32]> {
        None
    }
    fn as_f32_mut(_: &mut [f64]) -> Option<&mut [f32]> {
        None
    }
}

/// `len` zeros, written by all threads when `len` is large: the zeroing (and the first touch
/// of fresh pages) of an op's output then runs in parallel, where `vec!` runs it on the
/// calling thread while the other threads wait (memset was ~5 % of an Xception training step
/// at batch 8). Each thread clears its share with `write_bytes` (memset: string stores that
/// skip reading the lines they overwrite), where filling with a value ran a store loop that
/// read every line first (7 % of an Xception saliency map).
pub fn zeros<T: CpuFloat>(len: usize) -> Vec<T> {
    use rayon::prelude::*;
    const CHUNK: usize = 1 << 16;
    if len < CHUNK {
        return vec![T::from_f64(0.0); len];
    }
    let mut v: Vec<T> = Vec::with_capacity(len);
    v.spare_capacity_mut()[..len]
        .par_chunks_mut(CHUNK)
        .for_each(|chunk| {
            // SAFETY: the chunk is `chunk.len()` values of capacity this Vec owns.
            unsafe { std::ptr::write_bytes(chunk.as_mut_ptr(), 0, chunk.len()) }
        });
    // SAFETY: all `len` values were written above, and all-zero bytes are 0.0 in f32 and
    // f64, the only `CpuFloat` types.
    unsafe { v.set_len(len) };
    v
}
