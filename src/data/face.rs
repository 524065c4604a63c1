//! Finding faces in a photo and cropping the one to judge, as DeepfakeBench and
//! FaceForensics++ prepare their inputs: the face box grown 1.3× into a square around its
//! centre (clipped to the photo), resized to the model input. Detection runs SeetaFace's
//! frontal cascade (the `rustface` crate; its model is bundled in `assets/face/`) on a
//! grayscale copy of the photo scaled to at most `DETECT_MAX_SIDE` pixels.

use image::{GrayImage, RgbImage, imageops};

/// The bundled detector model.
const MODEL: &[u8] = include_bytes!("../../assets/face/seeta_fd_frontal_v1.0.bin");

/// Longest side of the copy the detector scans (a 12000×9000 photo is scanned at 1024×768).
pub const DETECT_MAX_SIDE: u32 = 1024;

/// How much larger than the face box the crop is by default (DeepfakeBench /
/// FaceForensics++).
pub const CROP_MARGIN: f32 = 1.3;

/// Smallest face the detector reports, in pixels of the scanned copy.
pub const MIN_FACE_PX: u32 = 40;

/// A face found in a photo, in the photo's pixels.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FaceBox {
    pub x: u32,
    pub y: u32,
    pub width: u32,
    pub height: u32,
    /// The detector's confidence (higher is surer; 2 is its default threshold).
    pub score: f64,
}

impl FaceBox {
    pub fn area(&self) -> u64 {
        u64::from(self.width) * u64::from(self.height)
    }
}

/// Why the detector could not be made.
#[derive(Debug, thiserror::Error)]
#[error("the bundled face detector model cannot be read: {0}")]
pub struct FaceModelError(std::io::Error);

impl FaceModelError {
    /// The error of a detector that could not be made earlier (its cause was reported then).
    pub fn unreadable() -> FaceModelError {
        FaceModelError(std::io::Error::other("the model failed to load"))
    }
}

/// The face detector.
pub struct FaceFinder {
    detector: Box<dyn rustface::Detector>,
}

impl FaceFinder {
    /// The detector with the bundled model and SeetaFace's usual settings (minimum face 40
    /// px, step 4, pyramid factor 0.8, score threshold 2.0).
    pub fn new() -> Result<FaceFinder, FaceModelError> {
        let model = rustface::read_model(std::io::Cursor::new(MODEL)).map_err(FaceModelError)?;
        let mut detector = rustface::create_detector_with_model(model);
        detector.set_min_face_size(MIN_FACE_PX);
        detector.set_score_thresh(2.0);
        detector.set_pyramid_scale_factor(0.8);
        detector.set_slide_window_step(4, 4);
        Ok(FaceFinder { detector })
    }

    /// The faces in `photo`, largest first.
    pub fn detect(&mut self, photo: &RgbImage) -> Vec<FaceBox> {
        let (width, height) = photo.dimensions();
        // The cascade needs room for its smallest (40 px) window.
        if width < 48 || height < 48 {
            return Vec::new();
        }
        let scale = (DETECT_MAX_SIDE as f32 / width.max(height) as f32).min(1.0);
        let gray: GrayImage = if scale < 1.0 {
            let w = ((width as f32 * scale).round() as u32).max(48);
            let h = ((height as f32 * scale).round() as u32).max(48);
            imageops::grayscale(&imageops::resize(photo, w, h, imageops::Triangle))
        } else {
            imageops::grayscale(photo)
        };
        let data = rustface::ImageData::new(gray.as_raw(), gray.width(), gray.height());
        let mut faces: Vec<FaceBox> = self
            .detector
            .detect(&data)
            .iter()
            .filter_map(|face| {
                let b = face.bbox();
                let x0 = (b.x().max(0) as f32 / scale).round() as u32;
                let y0 = (b.y().max(0) as f32 / scale).round() as u32;
                let x1 = (((b.x() + b.width() as i32).max(0)) as f32 / scale).round() as u32;
                let y1 = (((b.y() + b.height() as i32).max(0)) as f32 / scale).round() as u32;
                let (x1, y1) = (x1.min(width), y1.min(height));
                (x1 > x0 && y1 > y0).then(|| FaceBox {
                    x: x0,
                    y: y0,
                    width: x1 - x0,
                    height: y1 - y0,
                    score: face.score(),
                })
            })
            .collect();
        faces.sort_by(|a, b| b.area().cmp(&a.area()).then(b.score.total_cmp(&a.score)));
        faces
    }
}

/// The square around `face`'s centre, `scale` × its longer side, clipped to the photo,
/// resized to `size`×`size`.
pub fn crop_face(photo: &RgbImage, face: &FaceBox, scale: f32, size: u32) -> RgbImage {
    let (width, height) = photo.dimensions();
    let side = (face.width.max(face.height) as f32 * scale).round() as u32;
    let side = side.clamp(1, width.min(height).max(1));
    let cx = face.x as f32 + face.width as f32 / 2.0;
    let cy = face.y as f32 + face.height as f32 / 2.0;
    let x = (cx - side as f32 / 2.0)
        .round()
        .clamp(0.0, (width - side) as f32) as u32;
    let y = (cy - side as f32 / 2.0)
        .round()
        .clamp(0.0, (height - side) as f32) as u32;
    let square = imageops::crop_imm(photo, x, y, side, side).to_image();
    crate::data::decode::resize_square(&square, size)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_crop_is_a_clipped_square_around_the_face() {
        let photo = RgbImage::from_fn(400, 300, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let face = FaceBox {
            x: 350,
            y: 10,
            width: 40,
            height: 60,
            score: 5.0,
        };
        let crop = crop_face(&photo, &face, CROP_MARGIN, 256);
        assert_eq!(crop.dimensions(), (256, 256));
        // 1.3 × 60 = 78 px square, pushed left to fit: its right edge is the photo's.
        assert!(crop.get_pixel(255, 128).0[0] >= (399u32 % 256) as u8 - 2);
    }

    #[test]
    fn tiny_or_blank_photos_have_no_faces() {
        let mut finder = FaceFinder::new().unwrap();
        assert!(finder.detect(&RgbImage::new(10, 10)).is_empty());
        assert!(finder.detect(&RgbImage::new(200, 200)).is_empty());
    }
}
