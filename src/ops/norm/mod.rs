//! Normalisation: training-mode batch norm as one fused op (`batch_norm`) and the
//! evaluation-mode per-channel affine (`channel_affine`).

pub mod batch_norm;
pub mod channel_affine;
