//! Training: the epoch loop, optimisers, run history (`run.json`) and checkpoints.

pub mod adam;
pub mod evaluate;
pub mod events;
pub mod history;
pub mod imported;
pub mod optim;
pub mod resume;
pub mod run_folder;
pub mod trainer;

pub use evaluate::{SplitMetrics, evaluate_split};
pub use events::{BatchProgress, EvalProgress, TrainEvent, collapse_message};
pub use history::{EpochRecord, RunRecord, RunStatus, new_run_dir};
pub use optim::Optimizer;
pub use trainer::{TrainData, TrainError, calibrate, resume, train, train_replacing};
