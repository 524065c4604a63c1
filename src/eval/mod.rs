//! Evaluation: detection metrics over per-image scores (`metrics`) and the decision at a
//! threshold (`confusion`), and the per-image scores of a model over a split (`scores`).

pub mod confusion;
pub mod metrics;
pub mod scores;
