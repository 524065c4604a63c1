//! The tensor ops the detectors run on, each a Candle custom op with its forward, its
//! backward and its CPU kernels, grouped by op. `ops` imports nothing above it (`models`,
//! `train`, …); GPU kernels will sit beside the CPU kernels of the same op.

pub mod conv;
pub mod cpu;
pub mod depthwise;
pub mod elementwise;
pub mod geometry;
pub mod linear;
pub mod norm;
pub mod pointwise;
pub mod pool;
pub mod shifted;
