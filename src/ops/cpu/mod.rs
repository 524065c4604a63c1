//! The low-level CPU helpers every op shares: the float types and scratch buffers
//! (`float`), a safe front to strided matrix products (`gemm`), the value a forward pass
//! keeps for its backward (`stash`), and the one switch between the AVX-512 kernels and the
//! portable loops.

pub mod float;
pub mod gemm;
pub mod stash;

use std::sync::OnceLock;

/// Set (to anything but `0`) to run the portable code paths on any processor: the im2col
/// convolution and these kernels' plain loops (for tests and comparisons).
pub const PORTABLE_ENV: &str = "FAKELENS_PORTABLE_KERNELS";

/// Whether the AVX-512 kernels run here (read once per process).
pub fn available() -> bool {
    static AVX512: OnceLock<bool> = OnceLock::new();
    *AVX512.get_or_init(|| {
        if std::env::var_os(PORTABLE_ENV).is_some_and(|v| v != "0") {
            return false;
        }
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx512f")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// A pointer to one output that the parallel tasks of one op share, each writing only its
/// own elements of it (the op that makes it says which).
#[derive(Clone, Copy)]
pub(crate) struct SharedMut<T>(pub(crate) *mut T);

// SAFETY: the tasks that share it write disjoint elements (each user's SAFETY comment).
unsafe impl<T> Send for SharedMut<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for SharedMut<T> {}

impl<T> SharedMut<T> {
    pub(crate) fn get(self) -> *mut T {
        self.0
    }
}

/// A mask of the first `lanes` of 16 vector lanes (all 16 from 16 up).
pub fn lane_mask(lanes: usize) -> u16 {
    if lanes >= 16 {
        0xffff
    } else {
        ((1u32 << lanes) - 1) as u16
    }
}
