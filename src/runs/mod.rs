//! The run as a concept: a folder holding `run.json` and a checkpoint, and the catalog that
//! lists the runs of a runs folder.

pub mod catalog;

pub use catalog::RunEntry;
