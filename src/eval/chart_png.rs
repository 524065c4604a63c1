//! Line charts drawn straight into an RGB image, for the PNG exports (no window, no GPU):
//! linear axes with round ticks, or the normal-deviate axes of a DET plot with
//! scikit-learn's DetCurveDisplay ticks (0.1 % … 99.9 %, limits ±3 deviates); anti-aliased
//! lines, a grid, a legend, and text in egui's default font.
//!
//! Hand-written rather than on `plotters`: measured on the 2-core CI machine, `plotters` with
//! its bitmap encoder added 36 s to each build profile and a second `image` (0.24) and `png`
//! (0.17) beside the crate's own, and the DET plot's normal-deviate axes would still need a
//! coordinate type of our own.

use ab_glyph::{Font, FontRef, PxScale, ScaleFont, point};
use image::{Rgb, RgbImage};

use super::probit::probit;

/// Why a chart could not be drawn.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    #[error("the chart font cannot be read: {0}")]
    Font(#[from] ab_glyph::InvalidFont),
}

/// How values map onto an axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Scale {
    Linear {
        min: f64,
        max: f64,
    },
    /// Like `Linear`, with whole-number ticks only (epochs).
    Whole {
        min: f64,
        max: f64,
    },
    /// Probabilities on the normal-deviate scale, shown from −3 to +3 deviates.
    Probit,
}

const PROBIT_LIMIT: f64 = 3.0;
const PROBIT_TICKS: [f64; 9] = [0.001, 0.01, 0.05, 0.2, 0.5, 0.8, 0.95, 0.99, 0.999];

impl Scale {
    /// Where `v` falls, as a fraction of the axis (outside [0, 1] when off the chart).
    fn fraction(&self, v: f64) -> f64 {
        match *self {
            Scale::Linear { min, max } | Scale::Whole { min, max } => {
                (v - min) / (max - min).max(f64::MIN_POSITIVE)
            }
            Scale::Probit => {
                let z = probit(v).clamp(-PROBIT_LIMIT - 1.0, PROBIT_LIMIT + 1.0);
                (z + PROBIT_LIMIT) / (2.0 * PROBIT_LIMIT)
            }
        }
    }

    /// Tick positions and their labels.
    fn ticks(&self) -> Vec<(f64, String)> {
        match *self {
            Scale::Probit => PROBIT_TICKS
                .iter()
                .map(|&p| {
                    let percent = p * 100.0;
                    let label = if (percent - percent.round()).abs() < 1e-9 {
                        format!("{percent:.0}%")
                    } else {
                        format!("{percent:.1}%")
                    };
                    (p, label)
                })
                .collect(),
            Scale::Whole { min, max } => {
                let step = Scale::Linear { min, max }.ticks();
                let step = match step.as_slice() {
                    [a, b, ..] => (b.0 - a.0).max(1.0).round(),
                    _ => 1.0,
                };
                let first = (min / step).ceil() as i64;
                let last = (max / step).floor() as i64;
                (first..=last)
                    .map(|i| (i as f64 * step, format!("{}", i as f64 * step)))
                    .collect()
            }
            Scale::Linear { min, max } => {
                let range = (max - min).abs().max(1e-12);
                let rough = range / 5.0;
                let magnitude = 10f64.powf(rough.log10().floor());
                let step = [1.0, 2.0, 5.0, 10.0]
                    .iter()
                    .map(|m| m * magnitude)
                    .find(|s| range / s <= 6.0)
                    .unwrap_or(10.0 * magnitude);
                let decimals = (-step.log10().floor()).max(0.0) as usize;
                let first = (min / step).ceil() as i64;
                let last = (max / step).floor() as i64;
                (first..=last)
                    .map(|i| {
                        let v = i as f64 * step;
                        (v, format!("{v:.decimals$}"))
                    })
                    .collect()
            }
        }
    }
}

/// One line of a chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
    pub color: [u8; 3],
    pub dashed: bool,
}

/// A chart to draw.
#[derive(Clone, Debug)]
pub struct Chart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub x: Scale,
    pub y: Scale,
    pub series: Vec<Series>,
}

/// Colours for successive series (matplotlib's first five).
pub const PALETTE: [[u8; 3]; 5] = [
    [31, 119, 180],
    [255, 127, 14],
    [44, 160, 44],
    [214, 39, 40],
    [148, 103, 189],
];

const MARGIN_LEFT: f64 = 72.0;
const MARGIN_RIGHT: f64 = 24.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 56.0;

struct Canvas<'a> {
    image: RgbImage,
    font: FontRef<'a>,
}

impl Canvas<'_> {
    fn blend(&mut self, x: i64, y: i64, color: [u8; 3], alpha: f64) {
        if x < 0 || y < 0 || x >= self.image.width() as i64 || y >= self.image.height() as i64 {
            return;
        }
        let pixel = self.image.get_pixel_mut(x as u32, y as u32);
        for (c, &target) in pixel.0.iter_mut().zip(&color) {
            *c = (f64::from(*c) * (1.0 - alpha) + f64::from(target) * alpha).round() as u8;
        }
    }

    /// An anti-aliased segment of `width` pixels, clipped to `clip` (x0, y0, x1, y1).
    fn segment(&mut self, a: (f64, f64), b: (f64, f64), width: f64, color: [u8; 3], dash: bool) {
        let (dx, dy) = (b.0 - a.0, b.1 - a.1);
        let length_sq = dx * dx + dy * dy;
        let reach = width / 2.0 + 1.0;
        let (x0, x1) = (a.0.min(b.0) - reach, a.0.max(b.0) + reach);
        let (y0, y1) = (a.1.min(b.1) - reach, a.1.max(b.1) + reach);
        for y in y0.floor() as i64..=y1.ceil() as i64 {
            for x in x0.floor() as i64..=x1.ceil() as i64 {
                let (px, py) = (x as f64 + 0.5, y as f64 + 0.5);
                let t = if length_sq > 0.0 {
                    (((px - a.0) * dx + (py - a.1) * dy) / length_sq).clamp(0.0, 1.0)
                } else {
                    0.0
                };
                if dash && (t * length_sq.sqrt()) % 12.0 > 7.0 {
                    continue;
                }
                let (cx, cy) = (a.0 + t * dx, a.1 + t * dy);
                let distance = ((px - cx).powi(2) + (py - cy).powi(2)).sqrt();
                let coverage = (width / 2.0 + 0.5 - distance).clamp(0.0, 1.0);
                if coverage > 0.0 {
                    self.blend(x, y, color, coverage);
                }
            }
        }
    }

    fn text_width(&self, text: &str, size: f32) -> f64 {
        let font = self.font.as_scaled(PxScale::from(size));
        text.chars()
            .map(|c| f64::from(font.h_advance(font.glyph_id(c))))
            .sum()
    }

    /// `text` with its top-left corner at (x, y).
    fn text(&mut self, text: &str, (x, y): (f64, f64), size: f32, color: [u8; 3]) {
        let scale = PxScale::from(size);
        let scaled = self.font.as_scaled(scale);
        let mut caret = x as f32;
        let baseline = y as f32 + scaled.ascent();
        let mut glyphs = Vec::new();
        for c in text.chars() {
            let id = scaled.glyph_id(c);
            glyphs.push(id.with_scale_and_position(scale, point(caret, baseline)));
            caret += scaled.h_advance(id);
        }
        for glyph in glyphs {
            if let Some(outline) = self.font.outline_glyph(glyph) {
                let bounds = outline.px_bounds();
                outline.draw(|gx, gy, coverage| {
                    let px = bounds.min.x as i64 + i64::from(gx);
                    let py = bounds.min.y as i64 + i64::from(gy);
                    self.blend(px, py, color, f64::from(coverage));
                });
            }
        }
    }
}

/// Draws `chart` into a `width × height` image.
pub fn render(chart: &Chart, width: u32, height: u32) -> Result<RgbImage, ChartError> {
    let font = FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)?;
    let mut canvas = Canvas {
        image: RgbImage::from_pixel(width, height, Rgb([255, 255, 255])),
        font,
    };
    let (left, top) = (MARGIN_LEFT, MARGIN_TOP);
    let right = f64::from(width) - MARGIN_RIGHT;
    let bottom = f64::from(height) - MARGIN_BOTTOM;
    let to_x = |v: f64| left + chart.x.fraction(v) * (right - left);
    let to_y = |v: f64| bottom - chart.y.fraction(v) * (bottom - top);
    let (grid, ink, muted) = ([225, 225, 225], [40, 40, 40], [90, 90, 90]);

    for (v, label) in chart.x.ticks() {
        let x = to_x(v);
        canvas.segment((x, top), (x, bottom), 1.0, grid, false);
        let w = canvas.text_width(&label, 13.0);
        canvas.text(&label, (x - w / 2.0, bottom + 6.0), 13.0, muted);
    }
    for (v, label) in chart.y.ticks() {
        let y = to_y(v);
        canvas.segment((left, y), (right, y), 1.0, grid, false);
        let w = canvas.text_width(&label, 13.0);
        canvas.text(&label, (left - w - 6.0, y - 8.0), 13.0, muted);
    }
    for (a, b) in [
        ((left, top), (right, top)),
        ((right, top), (right, bottom)),
        ((right, bottom), (left, bottom)),
        ((left, bottom), (left, top)),
    ] {
        canvas.segment(a, b, 1.0, muted, false);
    }
    let clip = |(x, y): (f64, f64)| (x.clamp(left, right), y.clamp(top, bottom));
    for series in &chart.series {
        for pair in series.points.windows(2) {
            let a = clip((to_x(pair[0].0), to_y(pair[0].1)));
            let b = clip((to_x(pair[1].0), to_y(pair[1].1)));
            canvas.segment(a, b, 2.0, series.color, series.dashed);
        }
    }

    let title_width = canvas.text_width(&chart.title, 16.0);
    let centre = (left + right) / 2.0;
    canvas.text(&chart.title, (centre - title_width / 2.0, 10.0), 16.0, ink);
    let x_width = canvas.text_width(&chart.x_label, 14.0);
    canvas.text(
        &chart.x_label,
        (centre - x_width / 2.0, bottom + 28.0),
        14.0,
        ink,
    );
    draw_y_label(&mut canvas, &chart.y_label, (top + bottom) / 2.0)?;

    // Legend, bottom-right inside the plot.
    let rows = chart.series.len() as f64;
    let widest = chart
        .series
        .iter()
        .map(|s| canvas.text_width(&s.label, 13.0))
        .fold(0.0, f64::max);
    let (box_w, box_h) = (widest + 44.0, rows * 20.0 + 8.0);
    let (bx, by) = (right - box_w - 8.0, bottom - box_h - 8.0);
    for y in by as i64..(by + box_h) as i64 {
        for x in bx as i64..(bx + box_w) as i64 {
            canvas.blend(x, y, [255, 255, 255], 0.85);
        }
    }
    for (i, series) in chart.series.iter().enumerate() {
        let y = by + 14.0 + i as f64 * 20.0;
        canvas.segment(
            (bx + 8.0, y),
            (bx + 32.0, y),
            2.0,
            series.color,
            series.dashed,
        );
        canvas.text(&series.label, (bx + 38.0, y - 8.0), 13.0, ink);
    }
    Ok(canvas.image)
}

/// The y-axis label, written sideways in the left margin.
fn draw_y_label(canvas: &mut Canvas<'_>, label: &str, centre_y: f64) -> Result<(), ChartError> {
    let width = canvas.text_width(label, 14.0).ceil() as u32 + 4;
    let mut strip = Canvas {
        image: RgbImage::from_pixel(width.max(1), 20, Rgb([255, 255, 255])),
        font: FontRef::try_from_slice(epaint_default_fonts::UBUNTU_LIGHT)?,
    };
    strip.text(label, (2.0, 1.0), 14.0, [40, 40, 40]);
    let turned = image::imageops::rotate270(&strip.image);
    let x0 = 8i64;
    let y0 = (centre_y - f64::from(turned.height()) / 2.0).round() as i64;
    for (x, y, pixel) in turned.enumerate_pixels() {
        let (px, py) = (x0 + i64::from(x), y0 + i64::from(y));
        if px >= 0
            && py >= 0
            && px < canvas.image.width() as i64
            && py < canvas.image.height() as i64
        {
            canvas.image.put_pixel(px as u32, py as u32, *pixel);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_round_and_probit_ticks_match_scikit_learn() {
        let ticks: Vec<String> = Scale::Linear { min: 0.0, max: 1.0 }
            .ticks()
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(ticks, ["0.0", "0.2", "0.4", "0.6", "0.8", "1.0"]);
        let probit: Vec<String> = Scale::Probit.ticks().into_iter().map(|t| t.1).collect();
        assert_eq!(
            probit,
            [
                "0.1%", "1%", "5%", "20%", "50%", "80%", "95%", "99%", "99.9%"
            ]
        );
        assert!((Scale::Probit.fraction(0.5) - 0.5).abs() < 1e-12);
        let epochs: Vec<String> = Scale::Whole { min: 1.0, max: 3.0 }
            .ticks()
            .into_iter()
            .map(|t| t.1)
            .collect();
        assert_eq!(epochs, ["1", "2", "3"]);
    }

    #[test]
    fn a_chart_draws_its_series_in_their_colours() {
        let chart = Chart {
            title: "ROC".into(),
            x_label: "false positive rate".into(),
            y_label: "true positive rate".into(),
            x: Scale::Linear { min: 0.0, max: 1.0 },
            y: Scale::Linear { min: 0.0, max: 1.0 },
            series: vec![Series {
                label: "model".into(),
                points: vec![(0.0, 0.0), (0.0, 1.0), (1.0, 1.0)],
                color: [214, 39, 40],
                dashed: false,
            }],
        };
        let image = render(&chart, 400, 300).unwrap();
        let red = image
            .pixels()
            .filter(|p| p.0[0] > 200 && p.0[1] < 80 && p.0[2] < 80)
            .count();
        assert!(red > 300, "{red} red pixels");
        let dark = image.pixels().filter(|p| p.0[0] < 100).count();
        assert!(dark > 200, "text and frame drawn: {dark} dark pixels");
    }
}
