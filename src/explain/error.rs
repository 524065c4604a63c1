//! Why an explanation could not be computed.

/// An explanation's failure, naming the input at fault.
#[derive(Debug, thiserror::Error)]
pub enum ExplainError {
    #[error("computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("{classes} classes given for {images} images")]
    ClassCount { classes: usize, images: usize },
    #[error("class {0} is not 0 (real) or 1 (fake)")]
    BadClass(u32),
    #[error("the model gave no gradient for the input")]
    NoGradient,
    #[error("{model} has no layer named {layer:?}; its layers are {available}")]
    UnknownLayer {
        model: &'static str,
        layer: String,
        available: String,
    },
    #[error("layer {0:?} is not a convolutional layer (its output has no spatial map)")]
    NotConvolutional(String),
    #[error("SmoothGrad needs at least one noisy sample")]
    NoSamples,
    #[error("cannot start the data loader thread: {0}")]
    Thread(std::io::Error),
    #[error("scoring the split: {0}")]
    Score(#[from] crate::eval::scores::ScoreError),
    #[error("cancelled")]
    Cancelled,
}

/// Checks that `classes` gives one class, real or fake, per image.
pub fn check_classes(classes: &[u32], images: usize) -> Result<(), ExplainError> {
    if classes.len() != images {
        return Err(ExplainError::ClassCount {
            classes: classes.len(),
            images,
        });
    }
    match classes.iter().find(|&&c| c > crate::LABEL_FAKE) {
        Some(&bad) => Err(ExplainError::BadClass(bad)),
        None => Ok(()),
    }
}
