//! Dense 2-D convolution: the im2col + gemm op (`dense`), the direct stride-1 kernels for
//! few-channel layers (`direct`, `kernels`), SimpleNet's fused conv-ReLU-pool
//! (`fused_pool`), and the frozen path's Winograd F(2×2, 3×3) (`winograd`).

pub mod dense;
pub mod direct;
pub mod fused_pool;
pub mod kernels;
pub mod winograd;
