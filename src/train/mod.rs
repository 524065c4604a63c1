//! Training: the epoch loop, optimisers, the resumable state, the lock on the run folder it
//! writes, and imported checkpoints. The run it writes (`run.json`, checkpoint) is `crate::runs`.

pub mod adam;
pub mod events;
pub mod imported;
pub mod optim;
pub mod resume;
pub mod run_folder;
pub mod trainer;

pub use events::{BatchProgress, EvalProgress, TrainEvent, collapse_message};
pub use optim::Optimizer;
pub use trainer::{TrainData, TrainError, resume, train, train_replacing};
