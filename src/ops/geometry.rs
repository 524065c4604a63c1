//! The geometry of the window ops (convolution, depthwise convolution, max-pool): stride
//! and padding as a layer states them, and the one shape check that turns an input and a
//! weight shape into a convolution's sizes, shared by the dense, depthwise and fused ops.

/// Stride and zero padding of a square-kernel convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvGeometry {
    pub stride: usize,
    pub padding: usize,
}

/// Kernel, stride and zero-padding (padded cells never win) of a square max-pool.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolGeometry {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
}

/// How a convolution's weight relates to its input channels.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Grouping {
    /// `c_out × c_in × k × k`: every output channel reads every input channel.
    Dense,
    /// `c × 1 × k × k`: one filter per channel (groups = channels).
    Depthwise,
}

/// The sizes of one convolution, derived from its NCHW input and its weight shapes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub n: usize,
    pub c_in: usize,
    pub h: usize,
    pub w: usize,
    pub c_out: usize,
    pub k: usize,
    pub oh: usize,
    pub ow: usize,
    pub stride: usize,
    pub pad: usize,
}

impl ConvShape {
    /// Checks that weight `w` fits input `x` for `grouping` at `g`, and that the padded input
    /// holds at least one window; `op` names the op in the error.
    pub fn new(
        op: &str,
        x: &[usize],
        w: &[usize],
        g: ConvGeometry,
        grouping: Grouping,
    ) -> candle_core::Result<ConvShape> {
        let (&[n, c_in, h, wd], &[c_out, wc, k, k2]) = (x, w) else {
            candle_core::bail!("{op} expects NCHW input and a 4-D weight, got {x:?} and {w:?}")
        };
        let fits = match grouping {
            Grouping::Dense => wc == c_in,
            Grouping::Depthwise => c_out == c_in && wc == 1,
        };
        if !fits || k != k2 || k == 0 || g.stride == 0 {
            candle_core::bail!(
                "{op}: weight {w:?} does not fit input {x:?} (stride {})",
                g.stride
            )
        }
        if h + 2 * g.padding < k || wd + 2 * g.padding < k {
            candle_core::bail!("{op}: input {x:?} is smaller than the {k}x{k} kernel")
        }
        Ok(ConvShape {
            n,
            c_in,
            h,
            w: wd,
            c_out,
            k,
            oh: (h + 2 * g.padding - k) / g.stride + 1,
            ow: (wd + 2 * g.padding - k) / g.stride + 1,
            stride: g.stride,
            pad: g.padding,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shapes_are_checked_once_for_every_grouping() {
        let g = ConvGeometry {
            stride: 2,
            padding: 1,
        };
        let dense = ConvShape::new("conv2d", &[2, 3, 9, 8], &[4, 3, 3, 3], g, Grouping::Dense);
        let dense = dense.unwrap();
        assert_eq!((dense.oh, dense.ow, dense.c_out), (5, 4, 4));
        let dw = ConvShape::new("dw", &[1, 5, 4, 4], &[5, 1, 3, 3], g, Grouping::Depthwise);
        assert_eq!(dw.unwrap().c_in, 5);
        for (x, w, grouping) in [
            (&[1, 3, 4, 4][..], &[4, 2, 3, 3][..], Grouping::Dense),
            (&[1, 5, 4, 4], &[5, 2, 3, 3], Grouping::Depthwise),
            (&[1, 3, 1, 1], &[4, 3, 5, 5], Grouping::Dense),
            (&[1, 3, 4], &[4, 3, 3, 3], Grouping::Dense),
        ] {
            let err = ConvShape::new("op", x, w, g, grouping).unwrap_err();
            assert!(err.to_string().starts_with("op"), "{err}");
        }
    }
}
