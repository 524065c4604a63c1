//! Explanations of a detector's decision: vanilla saliency (`saliency`).

pub mod saliency;
