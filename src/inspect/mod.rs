//! Judging photos from the wild: decode any file safely, find and crop the face, and ask
//! each loaded detector for its verdict at its own threshold (`fakelens predict`, the
//! Inspect tab).

pub mod inputs;
pub mod judge;
pub mod photo;
pub mod verdict;
