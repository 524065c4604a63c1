//! The run as a concept: a folder holding `run.json` (its record) and a checkpoint. Its
//! record's schema (`record`), the folder's file names and where runs live (`layout`), the
//! catalog that lists a runs folder (`catalog`), and the one loader of a run's model, record
//! and input profile (`loader`).

pub mod catalog;
pub mod layout;
pub mod loader;
pub mod record;

pub use catalog::RunEntry;
pub use loader::RunModel;
pub use record::{EpochRecord, RunRecord, RunStatus};
