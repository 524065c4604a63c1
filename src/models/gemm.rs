//! A safe, bounds-checked front to strided matrix multiplies (f32 or f64) for the
//! convolution ops: `matrixmultiply` for single-threaded products of three large
//! dimensions, the `gemm` crate otherwise.

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
pub struct GemmShapeError(String);

/// `dst (m×n, row-major) = [dst +] lhs (m×k) · rhs (k×n)`.
pub fn matmul<T: candle_core::WithDType>(
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
    if threads == 1 && m >= BLOCKED_MIN && n >= BLOCKED_MIN && k >= BLOCKED_MIN {
        let beta = if accumulate { 1.0 } else { 0.0 };
        let (lhs_rs, lhs_cs) = (lhs.row_stride as isize, lhs.col_stride as isize);
        let (rhs_rs, rhs_cs) = (rhs.row_stride as isize, rhs.col_stride as isize);
        match T::DTYPE {
            // SAFETY: `T::DTYPE == F32` means `T` is `f32` (and F64 `f64`), so the pointer
            // casts are identities. Every index the kernel reads, (i, j) with i < rows and
            // j < cols of each operand, lies inside its slice (`fits` above), and dst holds
            // m×n row-major values; dst is borrowed mutably, so nothing aliases it.
            candle_core::DType::F32 => unsafe {
                matrixmultiply::sgemm(
                    m,
                    k,
                    n,
                    1.0,
                    lhs.data.as_ptr().cast::<f32>(),
                    lhs_rs,
                    lhs_cs,
                    rhs.data.as_ptr().cast::<f32>(),
                    rhs_rs,
                    rhs_cs,
                    beta as f32,
                    dst.as_mut_ptr().cast::<f32>(),
                    n as isize,
                    1,
                );
                return Ok(());
            },
            candle_core::DType::F64 => unsafe {
                matrixmultiply::dgemm(
                    m,
                    k,
                    n,
                    1.0,
                    lhs.data.as_ptr().cast::<f64>(),
                    lhs_rs,
                    lhs_cs,
                    rhs.data.as_ptr().cast::<f64>(),
                    rhs_rs,
                    rhs_cs,
                    beta,
                    dst.as_mut_ptr().cast::<f64>(),
                    n as isize,
                    1,
                );
                return Ok(());
            },
            _ => {}
        }
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
