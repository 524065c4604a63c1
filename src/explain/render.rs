//! Pictures of heatmaps: a map in colour, a map blended over its image (alpha, and
//! optionally only its top k % of pixels), grids of tiles, and the raw map as a NumPy
//! `.npy` float32 array (H×W) for other tools.

use std::path::Path;

use image::RgbImage;

use super::colormap::Colormap;
use super::heatmap::Heatmap;

/// How to draw a map over an image.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct OverlayStyle {
    pub colormap: Colormap,
    /// Opacity of the heatmap, 0 (image only) to 1 (map only).
    pub alpha: f32,
    /// Draw only the pixels among the top fraction of the map (1 = all).
    pub top_fraction: f32,
}

impl Default for OverlayStyle {
    fn default() -> Self {
        OverlayStyle {
            colormap: Colormap::Turbo,
            alpha: 0.5,
            top_fraction: 1.0,
        }
    }
}

/// The value at or above which a value is among the top `fraction` of `values`.
pub fn top_cutoff(values: &[f32], fraction: f32) -> f32 {
    if fraction >= 1.0 || values.is_empty() {
        return f32::NEG_INFINITY;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let keep = ((fraction.max(0.0) * values.len() as f32).ceil() as usize).clamp(1, values.len());
    sorted[keep - 1]
}

/// `scaled` (values in [0, 1], one per pixel of `image`) blended over `image`.
pub fn overlay(image: &RgbImage, scaled: &[f32], style: OverlayStyle) -> RgbImage {
    let cutoff = top_cutoff(scaled, style.top_fraction);
    let alpha = style.alpha.clamp(0.0, 1.0);
    let mut out = image.clone();
    for (pixel, &value) in out.pixels_mut().zip(scaled) {
        if value < cutoff {
            continue;
        }
        let color = style.colormap.color(value);
        for (channel, &tint) in pixel.0.iter_mut().zip(&color) {
            let blended = f32::from(*channel) * (1.0 - alpha) + f32::from(tint) * alpha;
            *channel = blended.round() as u8;
        }
    }
    out
}

/// Draws the boundary of `mask` (same size as `image`) over `image` in `color`: the pixels
/// inside with a 4-neighbour outside (or on the image's edge).
pub fn outline(image: &mut RgbImage, mask: &super::faithfulness::Mask, color: [u8; 3]) {
    let (width, height) = (mask.width, mask.height);
    if (image.width() as usize, image.height() as usize) != (width, height) {
        return;
    }
    let inside = |x: isize, y: isize| {
        x >= 0
            && y >= 0
            && (x as usize) < width
            && (y as usize) < height
            && mask.inside[y as usize * width + x as usize]
    };
    for y in 0..height as isize {
        for x in 0..width as isize {
            let edge = inside(x, y)
                && [(1, 0), (-1, 0), (0, 1), (0, -1)]
                    .iter()
                    .any(|&(dx, dy)| !inside(x + dx, y + dy));
            if edge {
                image.put_pixel(x as u32, y as u32, image::Rgb(color));
            }
        }
    }
}

/// `scaled` (values in [0, 1]) drawn in `colormap`, `width × height`.
pub fn colored(scaled: &[f32], width: usize, height: usize, colormap: Colormap) -> RgbImage {
    RgbImage::from_fn(width as u32, height as u32, |x, y| {
        let value = scaled
            .get(y as usize * width + x as usize)
            .copied()
            .unwrap_or(0.0);
        image::Rgb(colormap.color(value))
    })
}

/// Tiles of equal size in rows of `columns`, separated by `gap` white pixels.
pub fn grid(tiles: &[RgbImage], columns: usize, gap: u32) -> RgbImage {
    let columns = columns.max(1);
    let (w, h) = tiles.first().map_or((1, 1), |t| t.dimensions());
    let rows = tiles.len().div_ceil(columns).max(1);
    let width = columns as u32 * w + (columns as u32 - 1) * gap;
    let height = rows as u32 * h + (rows as u32 - 1) * gap;
    let mut out = RgbImage::from_pixel(width, height, image::Rgb([255, 255, 255]));
    for (i, tile) in tiles.iter().enumerate() {
        let x = (i % columns) as u32 * (w + gap);
        let y = (i / columns) as u32 * (h + gap);
        image::imageops::overlay(&mut out, tile, i64::from(x), i64::from(y));
    }
    out
}

/// Hand-written rather than on `npyz` or `ndarray-npy`: both pull in a Python-literal parser
/// (`py_literal`, on `pest`), which measured 64 s more per build profile on the 2-core CI
/// machine, to write one fixed header; the test below checks it against numpy's format 1.0.
/// The bytes of a `.npy` file (format 1.0) holding `map` as little-endian float32, H×W.
pub fn npy_bytes(map: &Heatmap) -> Vec<u8> {
    let mut header = format!(
        "{{'descr': '<f4', 'fortran_order': False, 'shape': ({}, {}), }}",
        map.height, map.width
    );
    // Magic (6) + version (2) + length (2) + header + newline, padded to 64 bytes.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat(unpadded.div_ceil(64) * 64 - unpadded));
    header.push('\n');
    let mut bytes = Vec::with_capacity(10 + header.len() + 4 * map.values.len());
    bytes.extend_from_slice(b"\x93NUMPY\x01\x00");
    bytes.extend_from_slice(&(header.len() as u16).to_le_bytes());
    bytes.extend_from_slice(header.as_bytes());
    for v in &map.values {
        bytes.extend_from_slice(&v.to_le_bytes());
    }
    bytes
}

/// Writes `map` as `.npy` atomically.
pub fn write_npy(path: &Path, map: &Heatmap) -> std::io::Result<()> {
    crate::fsutil::write_atomic(path, &npy_bytes(map))
}

/// Writes `image` as PNG atomically.
pub fn write_png(path: &Path, image: &RgbImage) -> Result<(), image::ImageError> {
    crate::fsutil::write_atomic_with(path, |tmp| {
        image.save_with_format(tmp, image::ImageFormat::Png)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mask_outline_marks_its_boundary_and_nothing_else() {
        // A 4×4 block inside a 8×8 picture: 12 boundary pixels, 4 interior ones untouched.
        let mask = crate::explain::faithfulness::Mask {
            width: 8,
            height: 8,
            inside: (0..64)
                .map(|i| (2..6).contains(&(i % 8)) && (2..6).contains(&(i / 8)))
                .collect(),
        };
        let mut image = RgbImage::new(8, 8);
        outline(&mut image, &mask, [0, 255, 0]);
        let marked: Vec<(u32, u32)> = image
            .enumerate_pixels()
            .filter(|(_, _, p)| p.0 == [0, 255, 0])
            .map(|(x, y, _)| (x, y))
            .collect();
        assert_eq!(marked.len(), 12, "{marked:?}");
        assert!(
            marked
                .iter()
                .all(|&(x, y)| x == 2 || x == 5 || y == 2 || y == 5)
        );
        assert!(!marked.contains(&(3, 3)) && !marked.contains(&(0, 0)));
    }

    #[test]
    fn npy_header_is_aligned_and_describes_the_map() {
        let map = Heatmap {
            width: 3,
            height: 2,
            values: vec![0.0, 1.0, 2.0, 3.0, 4.0, 5.5],
        };
        let bytes = npy_bytes(&map);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + header_len]).unwrap();
        assert!(header.contains("'shape': (2, 3)"), "{header}");
        assert!(header.ends_with('\n'));
        let last = &bytes[bytes.len() - 4..];
        assert_eq!(
            f32::from_le_bytes([last[0], last[1], last[2], last[3]]),
            5.5
        );
    }

    #[test]
    fn overlay_keeps_pixels_outside_the_top_fraction() {
        let image = RgbImage::from_pixel(2, 2, image::Rgb([100, 100, 100]));
        let scaled = [0.0, 0.2, 0.6, 1.0];
        let style = OverlayStyle {
            colormap: Colormap::Jet,
            alpha: 1.0,
            top_fraction: 0.5,
        };
        let out = overlay(&image, &scaled, style);
        assert_eq!(out.get_pixel(0, 0).0, [100, 100, 100]);
        assert_eq!(out.get_pixel(1, 0).0, [100, 100, 100]);
        assert_eq!(out.get_pixel(1, 1).0, Colormap::Jet.color(1.0));
        let half = overlay(
            &image,
            &scaled,
            OverlayStyle {
                alpha: 0.0,
                ..style
            },
        );
        assert_eq!(half, image);
    }
}
