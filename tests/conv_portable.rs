//! The convolution on the portable code paths (im2col + gemm, and the direct kernels' plain
//! loops), forced with `FAKELENS_PORTABLE_KERNELS=1`, against the same PyTorch fixture as
//! `conv_op.rs` (tolerance 1e-5 of the largest expected magnitude).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

#[test]
fn portable_paths_match_pytorch() {
    // SAFETY: this binary's only test sets the variable before any thread reads it.
    unsafe { std::env::set_var(fakelens::ops::cpu::PORTABLE_ENV, "1") };
    assert!(!fakelens::ops::cpu::available());
    common::conv::check_op();
    assert_eq!(common::conv::check_direct_kernels(), 5);
}
