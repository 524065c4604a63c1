//! The left operand of the 1×1 convolutions' product (`pointwise_gemm`): a weight packed
//! into panels of `MR` rows (once per op call, shared by every image of a batch), or read in
//! place where it lies (one image, where packing cost as much as the product).

use rayon::prelude::*;

/// Rows of a panel (12 × 2 accumulator vectors: 24 of the 32 vector registers).
pub const MR: usize = 12;

/// A `m × k` left operand packed into panels of `MR` rows: element (i, p) of panel `r` at
/// `(r·k + p)·MR + i - r·MR`, zero below the last row.
pub struct PackedLhs {
    data: Vec<f32>,
    m: usize,
    k: usize,
}

impl PackedLhs {
    /// Packs the `m × k` matrix whose element (i, p) is `a[i·row_stride + p·col_stride]`;
    /// `None` if that reaches outside `a`.
    pub fn pack(
        a: &[f32],
        m: usize,
        k: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Option<PackedLhs> {
        StridedLhs::new(a, m, k, row_stride, col_stride)?;
        let panels = m.div_ceil(MR);
        let mut data = reused_buffer(panels * k * MR);
        // In parallel: for a single image (saliency) packing is a tenth of the work.
        data.par_chunks_mut(k * MR)
            .enumerate()
            .for_each(|(r, panel)| {
                let (first, rows) = (r * MR, MR.min(m - r * MR));
                if row_stride == 1 {
                    // A transposed weight: each panel column lies in one piece.
                    for (p, column) in panel.chunks_exact_mut(MR).enumerate() {
                        let src = &a[p * col_stride + first..];
                        match src.first_chunk::<MR>() {
                            // A copy of fixed length: unrolled, where a slice copy calls
                            // memmove for every 12 values.
                            Some(full) if rows == MR => {
                                for (v, &s) in column.iter_mut().zip(full) {
                                    *v = s;
                                }
                            }
                            _ => column[..rows].copy_from_slice(&src[..rows]),
                        }
                    }
                } else if col_stride == 1 {
                    // A row-major weight: rows are read in one piece and scattered.
                    for i in 0..rows {
                        let row = &a[(first + i) * row_stride..][..k];
                        for (column, &v) in panel.chunks_mut(MR).zip(row) {
                            column[i] = v;
                        }
                    }
                } else {
                    for (p, column) in panel.chunks_mut(MR).enumerate() {
                        for (i, v) in column.iter_mut().take(rows).enumerate() {
                            *v = a[(first + i) * row_stride + p * col_stride];
                        }
                    }
                }
            });
        Some(PackedLhs { data, m, k })
    }

    /// Packs `blocks` side-by-side `m × block_k` row-major matrices, block `b` starting at
    /// `a[b·block_stride]` with row stride `block_k`, as one `m × (blocks·block_k)` matrix
    /// (a batch of `channels × pixels` gradients laid end to end along the reduction axis);
    /// `None` if that reaches outside `a`.
    pub fn pack_blocks(
        a: &[f32],
        m: usize,
        blocks: usize,
        block_k: usize,
        block_stride: usize,
    ) -> Option<PackedLhs> {
        let last = (blocks.checked_sub(1)?) * block_stride + m.checked_sub(1)? * block_k;
        if last + block_k.checked_sub(1)? >= a.len() {
            return None;
        }
        let k = blocks * block_k;
        let mut data = reused_buffer(m.div_ceil(MR) * k * MR);
        data.par_chunks_mut(k * MR)
            .enumerate()
            .for_each(|(r, panel)| {
                let rows = MR.min(m - r * MR);
                for (b, block) in panel.chunks_mut(block_k * MR).enumerate() {
                    for i in 0..rows {
                        let src = &a[b * block_stride + (r * MR + i) * block_k..][..block_k];
                        for (column, &v) in block.chunks_mut(MR).zip(src) {
                            column[i] = v;
                        }
                    }
                }
            });
        Some(PackedLhs { data, m, k })
    }
}

/// A `m × k` left operand read where it lies: element (i, p) at
/// `data[i·row_stride + p·col_stride]`.
#[derive(Clone, Copy)]
pub struct StridedLhs<'a> {
    data: &'a [f32],
    m: usize,
    k: usize,
    row_stride: usize,
    col_stride: usize,
}

impl<'a> StridedLhs<'a> {
    /// `None` if the matrix reaches outside `data` or is empty.
    pub fn new(
        data: &'a [f32],
        m: usize,
        k: usize,
        row_stride: usize,
        col_stride: usize,
    ) -> Option<StridedLhs<'a>> {
        let last = (m.checked_sub(1)?) * row_stride + (k.checked_sub(1)?) * col_stride;
        (last < data.len()).then_some(StridedLhs {
            data,
            m,
            k,
            row_stride,
            col_stride,
        })
    }
}

/// The left operand of [`product`].
#[derive(Clone, Copy)]
pub enum Lhs<'a> {
    Packed(&'a PackedLhs),
    InPlace(StridedLhs<'a>),
}

impl Lhs<'_> {
    /// Whether this is a transposed matrix (column stride 1 between rows) read in place.
    pub(super) fn is_transposed_in_place(&self) -> bool {
        matches!(self, Lhs::InPlace(a) if a.row_stride == 1)
    }

    pub(super) fn dims(&self) -> (usize, usize) {
        match self {
            Lhs::Packed(a) => (a.m, a.k),
            Lhs::InPlace(a) => (a.m, a.k),
        }
    }

    /// Panel `r` (rows `r·MR..`): a pointer to its element (first row, column 0), the offsets
    /// of its `MR` rows from there (past the last row of the matrix, the last row again: read,
    /// never stored), and the stride from one column to the next.
    /// `r` must be below `m.div_ceil(MR)`.
    #[inline]
    pub(super) fn panel(&self, r: usize) -> (*const f32, [usize; MR], usize) {
        match self {
            Lhs::Packed(a) => {
                let start = a.data[r * a.k * MR..].as_ptr();
                (start, std::array::from_fn(|i| i), MR)
            }
            Lhs::InPlace(a) => {
                let rows = MR.min(a.m - r * MR);
                let start = a.data[r * MR * a.row_stride..].as_ptr();
                let offsets = std::array::from_fn(|i| i.min(rows - 1) * a.row_stride);
                (start, offsets, a.col_stride)
            }
        }
    }
}

thread_local! {
    /// Buffers of dropped packed operands, for the next packing on this thread: a fresh
    /// multi-megabyte buffer per op call was measured at a third of the packing time (page
    /// faults and zeroing).
    static SPARE_BUFFERS: std::cell::RefCell<Vec<Vec<f32>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Spare buffers kept per thread (a forward pass holds one packed weight at a time; the
/// backward pass, one per gradient).
const MAX_SPARE_BUFFERS: usize = 2;

/// `len` zeros, in a spare buffer when this thread has one.
fn reused_buffer(len: usize) -> Vec<f32> {
    let spare = SPARE_BUFFERS
        .try_with(|spares| spares.borrow_mut().pop())
        .ok()
        .flatten();
    let mut data = spare.unwrap_or_default();
    data.clear();
    data.resize(len, 0.0);
    data
}

impl Drop for PackedLhs {
    fn drop(&mut self) {
        let data = std::mem::take(&mut self.data);
        let _ = SPARE_BUFFERS.try_with(|spares| {
            let mut spares = spares.borrow_mut();
            if spares.len() < MAX_SPARE_BUFFERS {
                spares.push(data);
            }
        });
    }
}
