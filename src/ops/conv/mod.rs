//! Dense 2-D convolution: the im2col + gemm op (`dense`), the direct stride-1 kernels for
//! few-channel layers (`direct`, `kernels`), and SimpleNet's fused conv-ReLU-pool
//! (`fused_pool`).

pub mod dense;
pub mod direct;
pub mod fused_pool;
pub mod kernels;
