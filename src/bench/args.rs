//! What `fakelens bench` is asked to measure: its command-line arguments and the kinds of
//! step it times.

use std::path::PathBuf;

use crate::config::ModelKind;
use crate::device::DeviceChoice;

#[derive(clap::Args, Debug)]
pub struct BenchArgs {
    #[arg(long, default_value = "simplenet")]
    pub model: ModelKind,
    #[arg(long, default_value_t = 32)]
    pub batch_size: usize,
    /// Timed steps (after 2 warm-up steps).
    #[arg(long, default_value_t = 10)]
    pub steps: usize,
    /// Python interpreter with torch for the reference; `none` skips it.
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// The reference script.
    #[arg(long, default_value = "benches/reference/train_step.py")]
    pub reference: PathBuf,
    /// Where both sides run (`cuda` runs the reference on the GPU too).
    #[arg(long, default_value = "cpu")]
    pub device: DeviceChoice,
    /// What to time: training steps, eval forward passes, or one image's saliency.
    #[arg(long, value_enum, default_value = "train")]
    pub mode: BenchMode,
    /// Everything in one run: the matrix-multiply peak, training and eval at the batch size,
    /// one-image saliency and Grad-CAM, for all three models, and the data pipeline; printed
    /// as ratios against the reference (`--model`, `--mode` and `--steps` are ignored).
    #[arg(long)]
    pub suite: bool,
    /// With `--suite`: the dataset for the data-pipeline rows (the built-in demo data when
    /// it is absent).
    #[arg(long, default_value = "../shared/datasets/lfw-faceswap")]
    pub data: PathBuf,
    /// With `--suite`: only the inference rows against ONNX Runtime (skip the training,
    /// explanation, matrix-peak and data rows).
    #[arg(long)]
    pub onnx_only: bool,
    /// With `--suite`: also write every figure to this JSON file.
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// With `--mode eval`: time the model's own (unfolded) forward instead of the frozen
    /// inference path that evaluation and verdicts run.
    #[arg(long)]
    pub unfolded: bool,
    /// Print the measurement as one JSON line too (the suite runs each row in a child
    /// process, so each peak memory is that row's alone).
    #[arg(long, hide = true)]
    pub json: bool,
}

/// What one benchmark step does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum BenchMode {
    /// An Adam training step on a batch.
    Train,
    /// A forward pass without gradients on a batch.
    Eval,
    /// The drag-in latency: one image, forward, then the input gradient of the fake logit.
    Saliency,
    /// One image's Grad-CAM of the fake class at the course's `conv3`, resized to the input.
    Gradcam,
    /// Drop-to-verdict and drop-to-heatmap of a 12-megapixel photo (FakeLens only).
    Drop,
}

impl BenchMode {
    pub fn name(self) -> &'static str {
        match self {
            BenchMode::Train => "train",
            BenchMode::Eval => "eval",
            BenchMode::Saliency => "saliency",
            BenchMode::Gradcam => "gradcam",
            BenchMode::Drop => "drop",
        }
    }

    /// Whether a step explains one image (batch 1) rather than a batch.
    pub fn single_image(self) -> bool {
        matches!(
            self,
            BenchMode::Saliency | BenchMode::Gradcam | BenchMode::Drop
        )
    }

    /// Images per step when `batch_size` is asked for: 1 for the single-image modes.
    pub fn batch(self, batch_size: usize) -> usize {
        if self.single_image() { 1 } else { batch_size }
    }
}
