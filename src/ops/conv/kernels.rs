//! The inner loops of the direct convolution (`direct.rs`): a multi-channel 1-D
//! correlation with constant offsets, and its weight-gradient dot products. AVX-512 versions
//! run when the processor has AVX-512F (checked once, at run time); portable loops otherwise.
//! The safe entry points check every length the loops rely on before any unchecked access.

use rayon::prelude::*;

use crate::ops::cpu::available;

/// Pixels per register block: four 16-lane vectors.
pub const BLOCK: usize = 64;
/// Output channels computed together (6 × 4 accumulators fill 24 of 32 vector registers).
pub const OUT_BLOCK: usize = 6;
/// Taps whose weight gradients are accumulated together (6 × 3 accumulators, 6 gradient
/// vectors and one input vector: 25 of 32 registers, so nothing spills).
const TAP_BLOCK: usize = 3;
/// Pixels of the weight-gradient sweep kept hot in cache at a time.
const CHUNK: usize = 4096;

/// `count` planes of `stride` values each, stored back to back.
#[derive(Clone, Copy)]
pub struct FlatPlanes<'a> {
    data: &'a [f32],
    count: usize,
    stride: usize,
}

impl<'a> FlatPlanes<'a> {
    pub fn new(data: &'a [f32], count: usize, stride: usize) -> FlatPlanes<'a> {
        FlatPlanes {
            data,
            count,
            stride,
        }
    }
    fn holds(&self, count: usize) -> bool {
        self.count >= count && self.data.len() >= count * self.stride
    }
}

/// `out[o][p] = Σᵢ Σₜ w[o][i][t] · input[i][p + offsets[t]]` for `p < plen`, where `w` is in
/// `OUT_BLOCK` blocks (`[block][i][t][lane]`, zero in unused lanes) and `out` holds `outs`
/// planes of `plen`. `pieces` splits each plane into that many pixel ranges run as parallel
/// tasks (1 when the caller already keeps every thread busy, e.g. one image per task).
/// Does nothing if a length does not fit (the callers size everything).
pub fn correlate(
    input: FlatPlanes<'_>,
    offsets: &[usize],
    w: &[f32],
    out: &mut [f32],
    outs: usize,
    plen: usize,
    pieces: usize,
) {
    let ins = input.count;
    let taps = offsets.len();
    let max_offset = offsets.iter().copied().max().unwrap_or(0);
    let blocks = outs.div_ceil(OUT_BLOCK);
    let fits = plen.is_multiple_of(BLOCK)
        && input.stride >= plen + max_offset
        && input.holds(ins)
        && w.len() >= blocks * ins * taps * OUT_BLOCK
        && out.len() >= outs * plen;
    if !fits || plen == 0 {
        debug_assert!(fits, "correlate: lengths do not fit");
        return;
    }
    // Pixel ranges of whole register blocks; every task gets a range of one channel block.
    let range = (plen / BLOCK).div_ceil(pieces.max(1)) * BLOCK;
    let mut tasks = Vec::new();
    for (block, planes) in out[..outs * plen].chunks_mut(OUT_BLOCK * plen).enumerate() {
        let w = &w[block * ins * taps * OUT_BLOCK..(block + 1) * ins * taps * OUT_BLOCK];
        let mut rows: Vec<_> = planes
            .chunks_mut(plen)
            .map(|p| p.chunks_mut(range))
            .collect();
        for start in (0..plen).step_by(range) {
            let out_rows: Vec<&mut [f32]> = rows.iter_mut().filter_map(|r| r.next()).collect();
            tasks.push((w, start, out_rows));
        }
    }
    // Pixel range by pixel range, each range's channel blocks in turn: a thread's run of
    // tasks rereads one range of every input plane (256 KiB for LilXception's `conv2`) from
    // L2, where block by block it swept all the planes (2 MB) once per block.
    tasks.sort_by_key(|&(_, start, _)| start);
    let run = |(w, start, mut out_rows): (&[f32], usize, Vec<&mut [f32]>)| {
        let len = out_rows.first().map_or(0, |r| r.len());
        #[cfg(target_arch = "x86_64")]
        if available() {
            // SAFETY: AVX-512F is present (checked above). `fits` bounds every access: reads
            // of `input` end before (ins−1)·stride + start + len + max_offset ≤ ins·stride
            // (start + len ≤ plen); `w` holds ins·taps·OUT_BLOCK values; at most OUT_BLOCK
            // rows, each of `len` values, a multiple of BLOCK.
            unsafe {
                let channels = out_rows.len();
                let sink = avx512::Sink::Wide(&mut out_rows);
                avx512::correlate_block(input, offsets, w, sink, channels, start, len)
            };
            return;
        }
        for (o, row) in out_rows.iter_mut().enumerate() {
            for (p, value) in row.iter_mut().enumerate() {
                let mut sum = 0.0;
                for i in 0..ins {
                    let plane = &input.data[i * input.stride + start + p..];
                    for (t, &off) in offsets.iter().enumerate() {
                        sum += w[(i * taps + t) * OUT_BLOCK + o] * plane[off];
                    }
                }
                *value = sum;
            }
        }
    };
    if tasks.len() > 1 && pieces > 1 {
        tasks.into_par_iter().for_each(run);
    } else {
        tasks.into_iter().for_each(run);
    }
}

/// The compact planes a wide correlation's rows are stored to: `oh` rows of `ow` values,
/// wide pixel `oy·wp + ox` (`ox < ow`) at `oy·ow + ox`.
#[derive(Clone, Copy, Debug)]
pub struct PlaneGrid {
    pub oh: usize,
    pub ow: usize,
    pub wp: usize,
}

impl PlaneGrid {
    /// Whether `correlate_into_planes` takes this grid: a 16-lane vector of wide pixels
    /// then spans at most two rows, and the second row's part fits inside its row.
    pub fn stores_directly(&self) -> bool {
        self.ow >= 16 && self.wp >= self.ow && self.oh > 0
    }
}

/// `correlate` stored straight into compact planes: `out[o]` (`oh × ow`) is
/// `act(Σᵢ Σₜ w[o][i][t] · input[i][oy·wp + ox + offsets[t]] + bias[o])`, the maximum with 0
/// if `relu`, with no wide planes written and no pass over them after (its wide pixels
/// split into `pieces` ranges as `correlate`'s). Returns false, touching nothing, when
/// AVX-512 is absent or a length does not fit; the caller then takes `correlate`.
#[allow(clippy::too_many_arguments)]
pub fn correlate_into_planes(
    input: FlatPlanes<'_>,
    offsets: &[usize],
    w: &[f32],
    out: &mut [f32],
    (outs, grid): (usize, PlaneGrid),
    bias: &[f32],
    relu: bool,
    pieces: usize,
) -> bool {
    let (ins, taps) = (input.count, offsets.len());
    let max_offset = offsets.iter().copied().max().unwrap_or(0);
    let blocks = outs.div_ceil(OUT_BLOCK);
    let plen = (grid.oh * grid.wp).next_multiple_of(BLOCK);
    let fits = grid.stores_directly()
        && input.stride >= plen + max_offset
        && input.holds(ins)
        && w.len() >= blocks * ins * taps * OUT_BLOCK
        && out.len() >= outs * grid.oh * grid.ow
        && bias.len() >= outs;
    if !(available() && fits) {
        return false;
    }
    #[cfg(target_arch = "x86_64")]
    {
        let range = (plen / BLOCK).div_ceil(pieces.max(1)) * BLOCK;
        let at = avx512::SharedPlanes(out.as_mut_ptr());
        // Range by range, each range's channel blocks in turn (see `correlate`).
        let tasks: Vec<(usize, usize)> = (0..plen)
            .step_by(range)
            .flat_map(|start| (0..blocks).map(move |block| (block, start)))
            .collect();
        let run = |&(block, start): &(usize, usize)| {
            let first = block * OUT_BLOCK;
            let w = &w[block * ins * taps * OUT_BLOCK..(block + 1) * ins * taps * OUT_BLOCK];
            let channels = OUT_BLOCK.min(outs - first);
            let planes = avx512::Planes {
                out: at,
                first,
                grid,
                bias: &bias[first..first + channels],
                relu,
            };
            // SAFETY: AVX-512F is present; `fits` bounds the reads as in `correlate`, and
            // the stores to channels first..first + channels of `out`; no two tasks store
            // the same (channel, pixel).
            unsafe {
                let sink = avx512::Sink::Planes(planes);
                let len = range.min(plen - start);
                avx512::correlate_block(input, offsets, w, sink, channels, start, len)
            }
        };
        if tasks.len() > 1 && pieces > 1 {
            tasks.par_iter().for_each(run);
        } else {
            tasks.iter().for_each(run);
        }
    }
    true
}

/// `dw[o][i][t] += Σₚ grad[o][p] · input[i][p + offsets[t]]` for `p < plen`. `grad` must hold
/// its channel count rounded up to `OUT_BLOCK` planes (the extra ones zero).
pub fn correlate_dw(
    input: FlatPlanes<'_>,
    grad: FlatPlanes<'_>,
    offsets: &[usize],
    plen: usize,
    dw: &mut [f32],
) {
    let (ins, outs, taps) = (input.count, grad.count, offsets.len());
    let max_offset = offsets.iter().copied().max().unwrap_or(0);
    let blocks = outs.div_ceil(OUT_BLOCK);
    let fits = plen.is_multiple_of(BLOCK)
        && input.stride >= plen + max_offset
        && input.holds(ins)
        && grad.stride >= plen
        && grad.data.len() >= blocks * OUT_BLOCK * grad.stride
        && dw.len() >= outs * ins * taps;
    if !fits {
        debug_assert!(fits, "correlate_dw: lengths do not fit");
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if available() {
        let tap_blocks = taps.div_ceil(TAP_BLOCK);
        // Per (out block, input, tap block): OUT_BLOCK × TAP_BLOCK × 16 lanes.
        let lanes = OUT_BLOCK * TAP_BLOCK * 16;
        let mut acc = vec![0.0f32; blocks * ins * tap_blocks * lanes];
        for start in (0..plen).step_by(CHUNK) {
            let end = (start + CHUNK).min(plen);
            for block in 0..blocks {
                for i in 0..ins {
                    for tb in 0..tap_blocks {
                        let mut offs = [0usize; TAP_BLOCK];
                        for (j, off) in offs.iter_mut().enumerate() {
                            *off = offsets[(tb * TAP_BLOCK + j).min(taps - 1)];
                        }
                        let at = ((block * ins + i) * tap_blocks + tb) * lanes;
                        // SAFETY: AVX-512F is present. `fits` bounds the reads: input plane
                        // `i` is read below i·stride + plen + max_offset, grad planes
                        // block·OUT_BLOCK.. +OUT_BLOCK below their stride ≥ plen; `acc` has
                        // `lanes` values at `at`; start < end ≤ plen, both multiples of 16.
                        unsafe {
                            avx512::dw_block(
                                &input.data[i * input.stride..(i + 1) * input.stride],
                                &grad.data[block * OUT_BLOCK * grad.stride..],
                                grad.stride,
                                &offs,
                                start..end,
                                &mut acc[at..at + lanes],
                            )
                        };
                    }
                }
            }
        }
        for o in 0..outs {
            let (block, lane_o) = (o / OUT_BLOCK, o % OUT_BLOCK);
            for i in 0..ins {
                for t in 0..taps {
                    let (tb, lane_t) = (t / TAP_BLOCK, t % TAP_BLOCK);
                    let at = ((block * ins + i) * tap_blocks + tb) * lanes
                        + (lane_o * TAP_BLOCK + lane_t) * 16;
                    dw[(o * ins + i) * taps + t] += acc[at..at + 16].iter().sum::<f32>();
                }
            }
        }
        return;
    }
    for o in 0..outs {
        let g = &grad.data[o * grad.stride..o * grad.stride + plen];
        for i in 0..ins {
            let plane = &input.data[i * input.stride..];
            for (t, &off) in offsets.iter().enumerate() {
                let sum: f32 = g
                    .iter()
                    .zip(&plane[off..off + plen])
                    .map(|(a, b)| a * b)
                    .sum();
                dw[(o * ins + i) * taps + t] += sum;
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use std::arch::x86_64::*;

    use super::{BLOCK, FlatPlanes, OUT_BLOCK, PlaneGrid, TAP_BLOCK};

    /// Where `correlate_block` stores its block of channels.
    pub enum Sink<'s, 'r> {
        /// One wide row per channel, from the block's first pixel.
        Wide(&'s mut [&'r mut [f32]]),
        /// The compact planes, through the bias and ReLU.
        Planes(Planes<'s>),
    }

    /// The compact output planes (`oh × ow` each, back to back) that the tasks of one
    /// correlation share; each stores its own channels' pixels.
    #[derive(Clone, Copy)]
    pub struct SharedPlanes(pub *mut f32);
    // SAFETY: the tasks that share it write disjoint elements (`correlate_into_planes`).
    unsafe impl Send for SharedPlanes {}
    // SAFETY: as above.
    unsafe impl Sync for SharedPlanes {}

    /// One task's channels (from `first`, one bias each) of the compact planes.
    pub struct Planes<'b> {
        pub out: SharedPlanes,
        pub first: usize,
        pub grid: PlaneGrid,
        pub bias: &'b [f32],
        pub relu: bool,
    }

    /// Where in its compact plane a vector of 16 wide pixels from `q` goes: the offset and
    /// mask of its lanes in row `q / wp`, and of those in the row after (zero masks past
    /// the last row and on the discarded columns).
    fn plane_lanes(grid: PlaneGrid, q: usize) -> [(usize, __mmask16); 2] {
        let lanes = |n: usize| {
            if n == 0 {
                0
            } else {
                u16::MAX >> (16 - n.min(16))
            }
        };
        let (oy, ox) = (q / grid.wp, q % grid.wp);
        if oy >= grid.oh {
            return [(0, 0), (0, 0)];
        }
        let this_row = (oy * grid.ow + ox, lanes(grid.ow.saturating_sub(ox)));
        // Lanes from `to_next` on are the next row's first pixels.
        let to_next = grid.wp - ox;
        let next_row = if to_next < 16 && oy + 1 < grid.oh {
            ((oy + 1) * grid.ow - to_next, !lanes(to_next))
        } else {
            (0, 0)
        };
        [this_row, next_row]
    }

    /// `correlate_block_of` for `channels ≤ OUT_BLOCK` channels: the kernel that computes
    /// only those (a last block of 4, where 64 = 10 × 6 + 4).
    ///
    /// # Safety
    /// As `correlate_block_of`.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn correlate_block(
        input: FlatPlanes<'_>,
        offsets: &[usize],
        w: &[f32],
        sink: Sink<'_, '_>,
        channels: usize,
        start: usize,
        len: usize,
    ) {
        // SAFETY: the caller's.
        unsafe {
            match channels {
                0..=2 => correlate_block_of::<2>(input, offsets, w, sink, start, len),
                3..=4 => correlate_block_of::<4>(input, offsets, w, sink, start, len),
                _ => correlate_block_of::<OUT_BLOCK>(input, offsets, w, sink, start, len),
            }
        }
    }

    // The kernels below index their accumulator arrays with constants only (the macros
    // unroll every loop over channels, vectors and taps), so that the compiler keeps them in
    // registers instead of spilling them to the stack on every iteration.
    const _: () = assert!(BLOCK == 64 && OUT_BLOCK == 6 && TAP_BLOCK == 3);

    /// One block of up to `CHANNELS ≤ OUT_BLOCK` output channels (the weights' lanes past
    /// `CHANNELS` neither read nor computed), over the `len` wide pixels from `start`, into
    /// `sink`.
    ///
    /// # Safety
    /// AVX-512F must be present, and the lengths must satisfy `correlate`'s `fits` (for
    /// `Sink::Planes`, `correlate_into_planes`'s).
    #[target_feature(enable = "avx512f")]
    unsafe fn correlate_block_of<const CHANNELS: usize>(
        input: FlatPlanes<'_>,
        offsets: &[usize],
        w: &[f32],
        sink: Sink<'_, '_>,
        start: usize,
        len: usize,
    ) {
        let src = input.data.as_ptr().wrapping_add(start);
        let w = w.as_ptr();
        let mut dst = [std::ptr::null_mut::<f32>(); OUT_BLOCK];
        let (valid, planes) = match sink {
            Sink::Wide(out_rows) => {
                for (d, row) in dst.iter_mut().zip(out_rows.iter_mut()) {
                    *d = row.as_mut_ptr();
                }
                (out_rows.len().min(CHANNELS), None)
            }
            Sink::Planes(planes) => {
                let plane_len = planes.grid.oh * planes.grid.ow;
                let valid = planes.bias.len().min(CHANNELS);
                for (o, d) in dst.iter_mut().enumerate().take(valid) {
                    *d = planes.out.0.wrapping_add((planes.first + o) * plane_len);
                }
                (valid, Some(planes))
            }
        };
        // SAFETY: the caller guarantees the bounds stated on `correlate`.
        unsafe {
            for p in (0..len).step_by(BLOCK) {
                let mut acc = [_mm512_setzero_ps(); 24];
                let mut wp = w;
                for i in 0..input.count {
                    let plane = src.add(i * input.stride + p);
                    for &off in offsets {
                        let at = plane.add(off);
                        let x0 = _mm512_loadu_ps(at);
                        let x1 = _mm512_loadu_ps(at.add(16));
                        let x2 = _mm512_loadu_ps(at.add(32));
                        let x3 = _mm512_loadu_ps(at.add(48));
                        macro_rules! channel {
                            ($o:literal) => {
                                if $o < CHANNELS {
                                    let wv = _mm512_set1_ps(*wp.add($o));
                                    acc[4 * $o] = _mm512_fmadd_ps(wv, x0, acc[4 * $o]);
                                    acc[4 * $o + 1] = _mm512_fmadd_ps(wv, x1, acc[4 * $o + 1]);
                                    acc[4 * $o + 2] = _mm512_fmadd_ps(wv, x2, acc[4 * $o + 2]);
                                    acc[4 * $o + 3] = _mm512_fmadd_ps(wv, x3, acc[4 * $o + 3]);
                                }
                            };
                        }
                        channel!(0);
                        channel!(1);
                        channel!(2);
                        channel!(3);
                        channel!(4);
                        channel!(5);
                        wp = wp.add(OUT_BLOCK);
                    }
                }
                let Some(planes) = &planes else {
                    for (o, &d) in dst.iter().enumerate().take(valid) {
                        let row = d.add(p);
                        _mm512_storeu_ps(row, acc[4 * o]);
                        _mm512_storeu_ps(row.add(16), acc[4 * o + 1]);
                        _mm512_storeu_ps(row.add(32), acc[4 * o + 2]);
                        _mm512_storeu_ps(row.add(48), acc[4 * o + 3]);
                    }
                    continue;
                };
                let lanes = [0, 1, 2, 3].map(|v| plane_lanes(planes.grid, start + p + 16 * v));
                let zero = _mm512_setzero_ps();
                for (o, &d) in dst.iter().enumerate().take(valid) {
                    let bias = _mm512_set1_ps(planes.bias[o]);
                    for (v, parts) in lanes.iter().enumerate() {
                        let mut value = _mm512_add_ps(acc[4 * o + v], bias);
                        if planes.relu {
                            // The second operand is returned where either is NaN.
                            value = _mm512_max_ps(zero, value);
                        }
                        for &(at, mask) in parts {
                            _mm512_mask_storeu_ps(d.wrapping_add(at), mask, value);
                        }
                    }
                }
            }
        }
    }

    /// Adds `Σₚ grad[o][p] · plane[p + offs[t]]` over `range`, lane-wise, to `acc`
    /// (`[o][t][16]`).
    ///
    /// # Safety
    /// AVX-512F must be present; `plane` must hold `range.end + max(offs)` values, `grad`
    /// `(OUT_BLOCK − 1)·stride + range.end`, and `acc` `OUT_BLOCK·TAP_BLOCK·16`; the range
    /// bounds must be multiples of 16.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn dw_block(
        plane: &[f32],
        grad: &[f32],
        stride: usize,
        offs: &[usize; TAP_BLOCK],
        range: std::ops::Range<usize>,
        acc: &mut [f32],
    ) {
        let (x, g, a) = (plane.as_ptr(), grad.as_ptr(), acc.as_mut_ptr());
        let (o0, o1, o2) = (offs[0], offs[1], offs[2]);
        // SAFETY: the caller guarantees the bounds above.
        unsafe {
            let mut s = [_mm512_setzero_ps(); 18];
            for (j, v) in s.iter_mut().enumerate() {
                *v = _mm512_loadu_ps(a.add(16 * j));
            }
            for p in range.step_by(16) {
                let g0 = _mm512_loadu_ps(g.add(p));
                let g1 = _mm512_loadu_ps(g.add(stride + p));
                let g2 = _mm512_loadu_ps(g.add(2 * stride + p));
                let g3 = _mm512_loadu_ps(g.add(3 * stride + p));
                let g4 = _mm512_loadu_ps(g.add(4 * stride + p));
                let g5 = _mm512_loadu_ps(g.add(5 * stride + p));
                macro_rules! tap {
                    ($t:literal, $off:expr) => {
                        let xv = _mm512_loadu_ps(x.add(p + $off));
                        s[$t] = _mm512_fmadd_ps(g0, xv, s[$t]);
                        s[3 + $t] = _mm512_fmadd_ps(g1, xv, s[3 + $t]);
                        s[6 + $t] = _mm512_fmadd_ps(g2, xv, s[6 + $t]);
                        s[9 + $t] = _mm512_fmadd_ps(g3, xv, s[9 + $t]);
                        s[12 + $t] = _mm512_fmadd_ps(g4, xv, s[12 + $t]);
                        s[15 + $t] = _mm512_fmadd_ps(g5, xv, s[15 + $t]);
                    };
                }
                tap!(0, o0);
                tap!(1, o1);
                tap!(2, o2);
            }
            for (j, v) in s.iter().enumerate() {
                _mm512_storeu_ps(a.add(16 * j), *v);
            }
        }
    }
}
