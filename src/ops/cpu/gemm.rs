//! A safe, bounds-checked front to strided matrix multiplies (f32 or f64) for the
//! convolution ops: `matrixmultiply` for single-threaded products of three large
//! dimensions, the `gemm` crate otherwise.

use rayon::prelude::*;

use super::SharedMut;

/// A strided view of a matrix of `rows`×`cols` values: element (i, j) is at
/// `i * row_stride + j * col_stride`.
#[derive(Clone, Copy)]
pub struct MatRef<'a, T> {
    pub data: &'a [T],
    pub rows: usize,
    pub cols: usize,
    pub row_stride: usize,
    pub col_stride: usize,
}

impl<'a, T> MatRef<'a, T> {
    /// A row-major (C-contiguous) matrix.
    pub fn row_major(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows,
            cols,
            row_stride: cols,
            col_stride: 1,
        }
    }

    /// The transpose of a row-major `rows`×`cols` matrix, seen as `cols`×`rows`.
    pub fn transposed(data: &'a [T], rows: usize, cols: usize) -> Self {
        MatRef {
            data,
            rows: cols,
            cols: rows,
            row_stride: 1,
            col_stride: cols,
        }
    }

    fn fits(&self) -> bool {
        self.rows == 0
            || self.cols == 0
            || (self.rows - 1) * self.row_stride + (self.cols - 1) * self.col_stride
                < self.data.len()
    }
}

/// Smallest m, n and k for `matrixmultiply`'s blocked kernels: on the development machine
/// they run a 1024³ product at ~105 GFLOP/s on one core against ~25 for the `gemm` crate's,
/// which stays for skinny products (a 6-wide operand) and multi-threaded calls.
const BLOCKED_MIN: usize = 16;

/// Errors from a shape mismatch (a bug in the caller, reported instead of panicking).
#[derive(Debug, thiserror::Error)]
#[error("gemm shape mismatch: {0}")]
pub struct GemmShapeError(pub String);

/// `dst (m×n, row-major) = [dst +] lhs (m×k) · rhs (k×n)`.
pub fn matmul<T: candle_core::WithDType + Send + Sync>(
    dst: &mut [T],
    lhs: MatRef<'_, T>,
    rhs: MatRef<'_, T>,
    accumulate: bool,
    threads: usize,
) -> Result<(), GemmShapeError> {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    if rhs.rows != k || dst.len() < m * n || !lhs.fits() || !rhs.fits() {
        return Err(GemmShapeError(format!(
            "dst {} for {m}x{n}, lhs {m}x{k} in {}, rhs {}x{n} in {}",
            dst.len(),
            lhs.data.len(),
            rhs.rows,
            rhs.data.len()
        )));
    }
    if m == 0 || n == 0 {
        return Ok(());
    }
    if k == 0 {
        if !accumulate {
            dst[..m * n].fill(T::from_f64(0.0));
        }
        return Ok(());
    }
    let supported = matches!(T::DTYPE, candle_core::DType::F32 | candle_core::DType::F64);
    if supported && m >= BLOCKED_MIN && n >= BLOCKED_MIN && k >= BLOCKED_MIN {
        // Column blocks of dst on rayon's threads (one block when single-threaded), each a
        // single-threaded blocked product that packs only its own columns of rhs.
        let cols = n.div_ceil(threads.max(1)).max(BLOCKED_MIN);
        let dst_at = SharedMut(dst.as_mut_ptr());
        (0..n.div_ceil(cols)).into_par_iter().for_each(|block| {
            let first = block * cols;
            let width = cols.min(n - first);
            // SAFETY: `fits` checked that every (i, j) with i < rows, j < cols of lhs and rhs
            // lies inside its slice; this block reads rhs columns first..first+width and
            // writes dst[i·n + j] for those columns only, so blocks write disjoint elements
            // of dst (m×n, row-major, borrowed mutably for the whole call).
            unsafe {
                blocked_product(
                    (m, k, width),
                    lhs.data.as_ptr(),
                    (lhs.row_stride, lhs.col_stride),
                    rhs.data.as_ptr().add(first * rhs.col_stride),
                    (rhs.row_stride, rhs.col_stride),
                    accumulate,
                    dst_at.get().add(first),
                    n,
                )
            };
        });
        return Ok(());
    }
    let parallelism = if threads > 1 {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: every index the kernel touches is (i, j) with i < rows and j < cols of each
    // operand; `fits` checked that the largest such offset lies inside each slice, and dst
    // holds m×n row-major values. The slices do not alias: dst is borrowed mutably.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride as isize,
            lhs.row_stride as isize,
            rhs.data.as_ptr(),
            rhs.col_stride as isize,
            rhs.row_stride as isize,
            if accumulate {
                T::from_f64(1.0)
            } else {
                T::from_f64(0.0)
            },
            T::from_f64(1.0),
            false,
            false,
            false,
            parallelism,
        );
    }
    Ok(())
}

/// `dst (m×n, row stride dst_rs) = [dst +] lhs · rhs` with `matrixmultiply`, f32 or f64.
///
/// # Safety
/// `T` must be f32 or f64; every (i, j) index of each operand, through its strides, must lie
/// inside the memory the pointer comes from, and nothing else may access dst's elements.
#[allow(clippy::too_many_arguments)]
unsafe fn blocked_product<T: candle_core::WithDType>(
    (m, k, n): (usize, usize, usize),
    lhs: *const T,
    (lhs_rs, lhs_cs): (usize, usize),
    rhs: *const T,
    (rhs_rs, rhs_cs): (usize, usize),
    accumulate: bool,
    dst: *mut T,
    dst_rs: usize,
) {
    let (lrs, lcs, rrs, rcs) = (
        lhs_rs as isize,
        lhs_cs as isize,
        rhs_rs as isize,
        rhs_cs as isize,
    );
    // SAFETY: the caller's bounds; `T::DTYPE` names `T`, so the casts are identities.
    unsafe {
        match T::DTYPE {
            candle_core::DType::F32 => matrixmultiply::sgemm(
                m,
                k,
                n,
                1.0,
                lhs.cast::<f32>(),
                lrs,
                lcs,
                rhs.cast::<f32>(),
                rrs,
                rcs,
                if accumulate { 1.0 } else { 0.0 },
                dst.cast::<f32>(),
                dst_rs as isize,
                1,
            ),
            candle_core::DType::F64 => matrixmultiply::dgemm(
                m,
                k,
                n,
                1.0,
                lhs.cast::<f64>(),
                lrs,
                lcs,
                rhs.cast::<f64>(),
                rrs,
                rcs,
                if accumulate { 1.0 } else { 0.0 },
                dst.cast::<f64>(),
                dst_rs as isize,
                1,
            ),
            _ => {}
        }
    }
}
