//! One explanation map: `height × width` values, row-major, unnormalised, and the two
//! operations every viewer and metric needs — min-max normalisation and bilinear resizing
//! as OpenCV's `cv2.resize` does it (pixel centres aligned, the scheme pytorch-grad-cam uses
//! to bring a CAM to the input's size).

/// A heatmap over an image.
#[derive(Clone, Debug, PartialEq)]
pub struct Heatmap {
    pub width: usize,
    pub height: usize,
    pub values: Vec<f32>,
}

impl Heatmap {
    /// The smallest and largest value (`(0, 0)` for an empty map).
    pub fn range(&self) -> (f32, f32) {
        let (min, max) = self
            .values
            .iter()
            .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        if min > max { (0.0, 0.0) } else { (min, max) }
    }

    /// The values scaled to [0, 1] by their own minimum and maximum (all zero if flat).
    pub fn normalized(&self) -> Vec<f32> {
        let (min, max) = self.range();
        self.scaled_by(min, max)
    }

    /// The values scaled to [0, 1] by a given range (a range shared by several maps makes
    /// their strengths comparable); values outside it are clamped.
    pub fn scaled_by(&self, min: f32, max: f32) -> Vec<f32> {
        let range = max - min;
        self.values
            .iter()
            .map(|&v| {
                if range > 0.0 {
                    ((v - min) / range).clamp(0.0, 1.0)
                } else {
                    0.0
                }
            })
            .collect()
    }

    /// The map resized to `width × height` by bilinear interpolation with aligned pixel
    /// centres (source coordinate `(x + 0.5) · scale − 0.5`, clamped at the borders), as
    /// `cv2.resize(…, INTER_LINEAR)` and PyTorch's `interpolate(align_corners=False)` do.
    pub fn resized(&self, width: usize, height: usize) -> Heatmap {
        if (width, height) == (self.width, self.height) || self.values.is_empty() {
            return Heatmap {
                width,
                height,
                values: if self.values.is_empty() {
                    vec![0.0; width * height]
                } else {
                    self.values.clone()
                },
            };
        }
        let columns = axis_taps(self.width, width);
        let rows = axis_taps(self.height, height);
        let mut values = Vec::with_capacity(width * height);
        for &(y0, y1, fy) in &rows {
            let (top, bottom) = (
                &self.values[y0 * self.width..(y0 + 1) * self.width],
                &self.values[y1 * self.width..(y1 + 1) * self.width],
            );
            for &(x0, x1, fx) in &columns {
                let upper = top[x0] + (top[x1] - top[x0]) * fx;
                let lower = bottom[x0] + (bottom[x1] - bottom[x0]) * fx;
                values.push(upper + (lower - upper) * fy);
            }
        }
        Heatmap {
            width,
            height,
            values,
        }
    }
}

/// For each destination index along one axis: the two source indices and the weight of
/// the second.
fn axis_taps(source: usize, destination: usize) -> Vec<(usize, usize, f32)> {
    let scale = source as f64 / destination as f64;
    (0..destination)
        .map(|d| {
            let position = (d as f64 + 0.5) * scale - 0.5;
            let floor = position.floor();
            let (index, fraction) = if floor < 0.0 {
                (0, 0.0)
            } else if floor as usize >= source - 1 {
                (source - 1, 0.0)
            } else {
                (floor as usize, position - floor)
            };
            (index, (index + 1).min(source - 1), fraction as f32)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resizing_keeps_a_constant_map_and_interpolates_between_centres() {
        let flat = Heatmap {
            width: 3,
            height: 2,
            values: vec![2.0; 6],
        };
        assert!(flat.resized(7, 5).values.iter().all(|&v| v == 2.0));
        let ramp = Heatmap {
            width: 2,
            height: 1,
            values: vec![0.0, 1.0],
        };
        // 2 → 4: centres at -0.25 (clamped), 0.25, 0.75, 1.25 (clamped).
        assert_eq!(ramp.resized(4, 1).values, vec![0.0, 0.25, 0.75, 1.0]);
    }

    #[test]
    fn normalising_maps_to_the_unit_range() {
        let map = Heatmap {
            width: 2,
            height: 2,
            values: vec![1.0, 3.0, 2.0, 5.0],
        };
        assert_eq!(map.normalized(), vec![0.0, 0.5, 0.25, 1.0]);
        assert_eq!(map.scaled_by(0.0, 2.5), vec![0.4, 1.0, 0.8, 1.0]);
    }
}
