//! Evaluation: detection metrics over per-image scores (`metrics`), the decision at a
//! threshold (`confusion`), the per-image scores of a model over a split (`scores`), a
//! trained run evaluated on any dataset split (`run_eval`) and its files (`export`).

pub mod cache;
pub mod calibrate_run;
pub mod calibration;
pub mod chart_png;
pub mod confusion;
pub mod export;
pub mod margins;
pub mod metrics;
pub mod nonfinite;
pub mod plots;
pub mod probit;
pub mod run_eval;
pub mod scores;
