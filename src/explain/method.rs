//! The explanation methods by name, and one entry point that runs any of them.

use candle_core::Tensor;

use super::cam::{COURSE_LAYER, CamKind, class_activation_maps};
use super::error::ExplainError;
use super::heatmap::Heatmap;
use super::saliency::saliency;
use super::smoothgrad::{SmoothGradSettings, smoothgrad};
use crate::models::Detector;

/// An explanation method with its settings.
#[derive(Clone, Debug, PartialEq)]
pub enum Method {
    Saliency,
    SmoothGrad(SmoothGradSettings),
    GradCam { layer: String },
    GradCamPlusPlus { layer: String },
}

/// The names `Method::parse` accepts, as the CLI spells them.
pub const METHOD_NAMES: [&str; 4] = ["saliency", "smoothgrad", "gradcam", "gradcam++"];

impl Method {
    /// The method called `name` (one of [`METHOD_NAMES`]); a CAM uses `layer`, by default
    /// the course's `conv3`.
    pub fn parse(name: &str, layer: Option<&str>) -> Option<Method> {
        let layer = layer.unwrap_or(COURSE_LAYER).to_string();
        match name.to_ascii_lowercase().as_str() {
            "saliency" => Some(Method::Saliency),
            "smoothgrad" => Some(Method::SmoothGrad(SmoothGradSettings::default())),
            "gradcam" | "grad-cam" => Some(Method::GradCam { layer }),
            "gradcam++" | "grad-cam++" | "gradcampp" => Some(Method::GradCamPlusPlus { layer }),
            _ => None,
        }
    }

    /// The CLI name.
    pub fn name(&self) -> &'static str {
        match self {
            Method::Saliency => METHOD_NAMES[0],
            Method::SmoothGrad(_) => METHOD_NAMES[1],
            Method::GradCam { .. } => METHOD_NAMES[2],
            Method::GradCamPlusPlus { .. } => METHOD_NAMES[3],
        }
    }

    /// A label for figures and tables: `Grad-CAM (conv3)`, `SmoothGrad (n = 16, σ = 0.15)`.
    pub fn label(&self) -> String {
        match self {
            Method::Saliency => "Saliency".to_string(),
            Method::SmoothGrad(s) => {
                format!("SmoothGrad (n = {}, σ = {})", s.samples, s.noise_fraction)
            }
            Method::GradCam { layer } => format!("Grad-CAM ({layer})"),
            Method::GradCamPlusPlus { layer } => format!("Grad-CAM++ ({layer})"),
        }
    }

    /// Whether the method is a class-activation map (coarse, from a layer) rather than a
    /// pixel gradient.
    pub fn is_cam(&self) -> bool {
        matches!(
            self,
            Method::GradCam { .. } | Method::GradCamPlusPlus { .. }
        )
    }
}

/// The maps of `method` for each image of `images` (N×3×H×W, normalised as the model
/// expects) and its class (0 real, 1 fake). `cancelled` is polled between SmoothGrad's
/// samples.
pub fn explain(
    model: &dyn Detector,
    images: &Tensor,
    classes: &[u32],
    method: &Method,
    cancelled: &dyn Fn() -> bool,
) -> Result<Vec<Heatmap>, ExplainError> {
    match method {
        Method::Saliency => saliency(model, images, classes),
        Method::SmoothGrad(settings) => smoothgrad(model, images, classes, *settings, cancelled),
        Method::GradCam { layer } => {
            class_activation_maps(model, images, classes, layer, CamKind::GradCam)
        }
        Method::GradCamPlusPlus { layer } => {
            class_activation_maps(model, images, classes, layer, CamKind::GradCamPlusPlus)
        }
    }
}
