//! The data layer: dataset discovery, image decoding, the prepared (decoded + resized) image
//! cache, the batcher with augmentation and prefetch, and the built-in demo-data generator.

pub mod augment;
pub mod decode;
pub mod degrade;
pub mod demo;
pub mod face;
pub mod index;
pub mod loader;
pub mod prepared;
pub mod profile;
pub mod resize;

pub use decode::{DecodeError, decode_rgb, load_resized};
pub use index::{DataError, DatasetIndex, Sample, Split};
pub use loader::{Batch, BatchLoader};
pub use prepared::{PreparedSplit, Unreadable};
