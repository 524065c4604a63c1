//! Explanations of a detector's decision: vanilla saliency, SmoothGrad, Grad-CAM and
//! Grad-CAM++ (`method` runs any of them), per-class mean maps over a split, and how
//! faithful a map is to a known manipulation mask.

pub mod cam;
pub mod colormap;
pub mod error;
pub mod faithfulness;
pub mod grid;
pub mod heatmap;
pub mod mean_maps;
pub mod method;
pub mod picture;
pub mod render;
pub mod saliency;
pub mod selection;
pub mod smoothgrad;

pub use error::ExplainError;
pub use heatmap::Heatmap;
pub use method::{Method, explain};
