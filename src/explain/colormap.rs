//! Colormaps for heatmaps: turbo, jet and inferno, as 17 stops sampled from matplotlib's
//! definitions (`matplotlib.colormaps[name](i / 16)`, rounded to 8 bits) and interpolated
//! linearly between them. Hand-written: `colorous` and `colorgrad` have turbo and inferno but
//! no jet, the course's colormap, and 17 stops checked against matplotlib are all it takes.

/// A colormap for [0, 1] values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub enum Colormap {
    #[default]
    Turbo,
    Jet,
    Inferno,
}

type Stops = [[u8; 3]; 17];

#[rustfmt::skip]
const TURBO: Stops = [
    [48, 18, 59], [64, 64, 162], [70, 107, 227], [66, 148, 255], [40, 188, 235],
    [24, 221, 194], [50, 242, 152], [109, 254, 98], [164, 252, 60], [205, 236, 52],
    [238, 207, 58], [253, 172, 52], [251, 126, 33], [235, 80, 14], [208, 47, 5],
    [169, 22, 1], [122, 4, 3],
];
#[rustfmt::skip]
const JET: Stops = [
    [0, 0, 128], [0, 0, 200], [0, 0, 255], [0, 64, 255], [0, 128, 255], [0, 192, 255],
    [22, 255, 225], [73, 255, 173], [125, 255, 122], [177, 255, 70], [228, 255, 19],
    [255, 208, 0], [255, 148, 0], [255, 89, 0], [255, 30, 0], [196, 0, 0], [128, 0, 0],
];
#[rustfmt::skip]
const INFERNO: Stops = [
    [0, 0, 4], [11, 7, 36], [33, 12, 74], [61, 9, 101], [87, 16, 110], [113, 25, 110],
    [138, 34, 106], [163, 44, 97], [188, 55, 84], [210, 70, 68], [228, 90, 49],
    [241, 115, 29], [249, 142, 9], [252, 172, 17], [249, 203, 53], [242, 234, 105],
    [252, 255, 164],
];

impl Colormap {
    pub const ALL: [Colormap; 3] = [Colormap::Turbo, Colormap::Jet, Colormap::Inferno];

    pub fn name(self) -> &'static str {
        match self {
            Colormap::Turbo => "turbo",
            Colormap::Jet => "jet",
            Colormap::Inferno => "inferno",
        }
    }

    pub fn parse(name: &str) -> Option<Colormap> {
        Colormap::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(name))
    }

    /// The colour of `value` (clamped to [0, 1]; NaN as 0).
    pub fn color(self, value: f32) -> [u8; 3] {
        let stops = match self {
            Colormap::Turbo => &TURBO,
            Colormap::Jet => &JET,
            Colormap::Inferno => &INFERNO,
        };
        let value = if value.is_nan() {
            0.0
        } else {
            value.clamp(0.0, 1.0)
        };
        let position = value * 16.0;
        let low = (position.floor() as usize).min(15);
        let t = position - low as f32;
        let (a, b) = (stops[low], stops[low + 1]);
        std::array::from_fn(|c| {
            (f32::from(a[c]) + (f32::from(b[c]) - f32::from(a[c])) * t).round() as u8
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ends_and_midpoints_are_matplotlibs() {
        assert_eq!(Colormap::Turbo.color(0.0), [48, 18, 59]);
        assert_eq!(Colormap::Jet.color(1.0), [128, 0, 0]);
        assert_eq!(Colormap::Inferno.color(0.5), [188, 55, 84]);
        assert_eq!(Colormap::Inferno.color(f32::NAN), [0, 0, 4]);
        assert_eq!(Colormap::parse("JET"), Some(Colormap::Jet));
    }
}
