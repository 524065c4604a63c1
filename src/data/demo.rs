//! The built-in demo dataset: deterministic, seeded, face-like 256×256 images. Fakes carry a
//! localised face-swap manipulation — an inner-face patch from another synthetic face, with a
//! colour and sharpness mismatch and a soft seam — and a ground-truth mask saved beside each
//! fake as `<name>_mask.png`.

use std::path::{Path, PathBuf};

use image::{GrayImage, RgbImage};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::index::Split;

/// Side of every demo image.
pub const DEMO_SIZE: usize = 256;
/// Default total image count (600 train / 200 val / 200 test, balanced).
pub const DEFAULT_COUNT: usize = 1000;
/// Bumped when the generator changes, so an old demo folder is not reused.
pub const DEMO_VERSION: u32 = 2;

/// Errors writing the demo dataset.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("cannot write demo data to {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot encode demo image {path}: {source}")]
    Encode {
        path: PathBuf,
        source: image::ImageError,
    },
    #[error("demo data needs at least 12 images (2 per class and split), got {0}")]
    TooFew(usize),
}

/// The folder of the built-in demo data: `$FAKELENS_DATA_DIR/demo-vN`, else the user's data
/// directory, else `./fakelens-data/demo-vN`.
pub fn demo_data_dir() -> PathBuf {
    app_data_dir().join(format!("demo-v{DEMO_VERSION}"))
}

/// The app's own data folder: `$FAKELENS_DATA_DIR`, else the user's data directory, else
/// `./fakelens-data`.
pub fn app_data_dir() -> PathBuf {
    std::env::var_os("FAKELENS_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| {
            directories::ProjectDirs::from("org", "FakeLens", "FakeLens")
                .map(|d| d.data_dir().to_path_buf())
        })
        .unwrap_or_else(|| PathBuf::from("fakelens-data"))
}

/// Makes sure the demo dataset exists (generating it on first use) and returns its folder.
pub fn ensure_demo_data() -> Result<PathBuf, DemoError> {
    let dir = demo_data_dir();
    if !dir.join("README.txt").is_file() {
        write_demo_dataset(&dir, 0, DEFAULT_COUNT)?;
    }
    Ok(dir)
}

/// The first words of the README.txt every generated demo dataset holds.
const README_HEAD: &str = "FakeLens demo dataset:";

/// Whether `root` is a generated demo dataset (its README.txt says so).
pub fn is_demo_dataset(root: &Path) -> bool {
    std::fs::read_to_string(root.join("README.txt")).is_ok_and(|t| t.starts_with(README_HEAD))
}

/// How many images of each class go into each split for a total of `count`.
pub fn per_class_counts(count: usize) -> [(Split, usize); 3] {
    let per_class = count / 2;
    let val = per_class / 5;
    let test = per_class / 5;
    [
        (Split::Train, per_class - val - test),
        (Split::Val, val),
        (Split::Test, test),
    ]
}

/// Writes the demo dataset under `out/{train,val,test}/{real,fake}`. The folder is built
/// beside `out` and renamed into place, so an interrupted run leaves no half dataset.
pub fn write_demo_dataset(out: &Path, seed: u64, count: usize) -> Result<(), DemoError> {
    if count < 12 {
        return Err(DemoError::TooFew(count));
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DemoError::Io { path, source }
    };
    let staging = crate::fsutil::temp_sibling(out);
    if staging.exists() {
        std::fs::remove_dir_all(&staging).map_err(io(&staging))?;
    }
    let mut jobs = Vec::new();
    for (split, n) in per_class_counts(count) {
        for (label, class) in crate::CLASS_NAMES.iter().enumerate() {
            let dir = staging.join(split.name()).join(class);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for i in 0..n {
                jobs.push((
                    split,
                    label as u32,
                    dir.join(format!("{class}_{i:04}.jpg")),
                    i,
                ));
            }
        }
    }
    jobs.par_iter().try_for_each(|(split, label, path, i)| {
        let stream = seed
            .wrapping_mul(1_000_003)
            .wrapping_add((*split as u64) << 48)
            .wrapping_add((*label as u64) << 40)
            .wrapping_add(*i as u64);
        let sample = generate_sample(stream, *label == crate::LABEL_FAKE);
        sample
            .image
            .save(path)
            .map_err(|source| DemoError::Encode {
                path: path.clone(),
                source,
            })?;
        if let Some(mask) = sample.mask {
            let mask_path = super::index::mask_path_for(path);
            mask.save(&mask_path).map_err(|source| DemoError::Encode {
                path: mask_path,
                source,
            })?;
        }
        Ok::<(), DemoError>(())
    })?;
    let readme = staging.join("README.txt");
    let text = format!(
        "{README_HEAD} {count} synthetic faces, seed {seed}.\n\
         fake/*_mask.png is the ground-truth manipulation mask of each fake.\n"
    );
    std::fs::write(&readme, text).map_err(io(&readme))?;
    if out.exists() {
        std::fs::remove_dir_all(out).map_err(io(out))?;
    }
    std::fs::rename(&staging, out).map_err(io(out))?;
    Ok(())
}

/// One generated image and, for a fake, its manipulation mask (255 inside).
pub struct DemoSample {
    pub image: RgbImage,
    pub mask: Option<GrayImage>,
}

/// Generates the image for one random stream; fakes get a swapped inner face.
pub fn generate_sample(stream: u64, fake: bool) -> DemoSample {
    let mut rng = ChaCha8Rng::seed_from_u64(stream);
    let face = Face::random(&mut rng);
    let mut canvas = render(&face, &mut rng);
    let mask = if fake {
        let donor = Face {
            geometry: face.geometry,
            ..Face::random(&mut rng)
        };
        let donor_canvas = render(&donor, &mut rng);
        let alpha = swap_region(&face, &mut rng);
        let patch = mismatch(&donor_canvas, &mut rng);
        let seam_darkening = rng.random_range(0.08..0.2f32);
        for (i, a) in alpha.iter().enumerate() {
            // The blend boundary (alpha near ½) is darkened a little: the soft seam that
            // imperfect blending leaves.
            let seam = 1.0 - seam_darkening * (1.0 - (2.0 * a - 1.0).abs());
            for c in 0..3 {
                let k = i * 3 + c;
                canvas[k] = (a * patch[k] + (1.0 - a) * canvas[k]) * seam;
            }
        }
        Some(GrayImage::from_fn(
            DEMO_SIZE as u32,
            DEMO_SIZE as u32,
            |x, y| {
                let a = alpha[y as usize * DEMO_SIZE + x as usize];
                image::Luma([if a >= 0.5 { 255 } else { 0 }])
            },
        ))
    } else {
        None
    };
    add_noise(&mut canvas, &mut rng);
    let image = RgbImage::from_fn(DEMO_SIZE as u32, DEMO_SIZE as u32, |x, y| {
        let k = (y as usize * DEMO_SIZE + x as usize) * 3;
        image::Rgb([to_u8(canvas[k]), to_u8(canvas[k + 1]), to_u8(canvas[k + 2])])
    });
    DemoSample { image, mask }
}

fn to_u8(v: f32) -> u8 {
    v.clamp(0.0, 255.0).round() as u8
}

type Rgb = [f32; 3];

#[derive(Clone, Copy)]
struct Geometry {
    cx: f32,
    cy: f32,
    rx: f32,
    ry: f32,
}

struct Face {
    geometry: Geometry,
    skin: Rgb,
    hair: Rgb,
    iris: Rgb,
    lips: Rgb,
    bg_top: Rgb,
    bg_bottom: Rgb,
    light_angle: f32,
    light_strength: f32,
    long_hair: bool,
    eye_size: f32,
    mouth_width: f32,
    mouth_open: f32,
    brow_tilt: f32,
}

fn lerp3(a: Rgb, b: Rgb, t: f32) -> Rgb {
    [
        a[0] + (b[0] - a[0]) * t,
        a[1] + (b[1] - a[1]) * t,
        a[2] + (b[2] - a[2]) * t,
    ]
}

fn pick(rng: &mut ChaCha8Rng, palette: &[Rgb]) -> Rgb {
    let c = palette[rng.random_range(0..palette.len())];
    let j = rng.random_range(-12.0..12.0);
    [c[0] + j, c[1] + j, c[2] + j]
}

impl Face {
    fn random(rng: &mut ChaCha8Rng) -> Face {
        let light_skin = [246.0, 214.0, 186.0];
        let dark_skin = [88.0, 56.0, 40.0];
        let mut skin = lerp3(light_skin, dark_skin, rng.random_range(0.0..1.0));
        skin[0] += rng.random_range(-10.0..10.0);
        skin[2] += rng.random_range(-10.0..10.0);
        let hair_palette = [
            [25.0, 20.0, 18.0],
            [70.0, 45.0, 25.0],
            [140.0, 100.0, 55.0],
            [200.0, 170.0, 110.0],
            [150.0, 70.0, 35.0],
            [160.0, 160.0, 165.0],
        ];
        let iris_palette = [
            [90.0, 60.0, 35.0],
            [60.0, 110.0, 160.0],
            [80.0, 120.0, 70.0],
        ];
        let bg = |rng: &mut ChaCha8Rng| -> Rgb {
            [
                rng.random_range(30.0..230.0),
                rng.random_range(30.0..230.0),
                rng.random_range(30.0..230.0),
            ]
        };
        Face {
            geometry: Geometry {
                cx: 128.0 + rng.random_range(-14.0..14.0),
                cy: 136.0 + rng.random_range(-12.0..12.0),
                rx: rng.random_range(58.0..78.0),
                ry: rng.random_range(78.0..98.0),
            },
            skin,
            hair: pick(rng, &hair_palette),
            iris: pick(rng, &iris_palette),
            lips: lerp3(skin, [170.0, 60.0, 70.0], rng.random_range(0.35..0.7)),
            bg_top: bg(rng),
            bg_bottom: bg(rng),
            light_angle: rng.random_range(0.0..std::f32::consts::TAU),
            light_strength: rng.random_range(0.05..0.3),
            long_hair: rng.random_bool(0.4),
            eye_size: rng.random_range(0.8..1.25),
            mouth_width: rng.random_range(0.35..0.55),
            mouth_open: rng.random_range(0.0..1.0),
            brow_tilt: rng.random_range(-0.15..0.15),
        }
    }
}

/// Normalised elliptical distance: < 1 inside.
fn ell(x: f32, y: f32, cx: f32, cy: f32, rx: f32, ry: f32) -> f32 {
    let dx = (x - cx) / rx;
    let dy = (y - cy) / ry;
    dx * dx + dy * dy
}

/// Renders a face (no noise) into an HWC f32 canvas in 0..255.
fn render(face: &Face, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let g = face.geometry;
    let n = DEMO_SIZE;
    let mut out = vec![0.0f32; n * n * 3];
    let (lx, ly) = (face.light_angle.cos(), face.light_angle.sin());
    let eye_y = g.cy - g.ry * 0.12;
    let eye_dx = g.rx * 0.38;
    let eye_rx = 11.0 * face.eye_size;
    let eye_ry = 5.5 * face.eye_size;
    let mouth_y = g.cy + g.ry * 0.48;
    let mouth_rx = g.rx * face.mouth_width;
    let mouth_ry = 3.0 + 5.0 * face.mouth_open;
    let hairline = g.cy - g.ry * (0.45 + rng.random_range(-0.1..0.1));
    for y in 0..n {
        for x in 0..n {
            let (xf, yf) = (x as f32 + 0.5, y as f32 + 0.5);
            let t = yf / n as f32;
            let mut px = lerp3(face.bg_top, face.bg_bottom, t);
            // Neck and shoulders.
            if (xf - g.cx).abs() < g.rx * 0.45 && yf > g.cy + g.ry * 0.6 {
                px = lerp3(face.skin, [0.0; 3], 0.25);
            }
            if yf > g.cy + g.ry * 1.15 && ell(xf, yf, g.cx, n as f32 + 40.0, g.rx * 2.0, 90.0) < 1.0
            {
                px = lerp3(face.bg_bottom, [20.0, 30.0, 60.0], 0.6);
            }
            // Long hair behind the head.
            let hair_d = ell(xf, yf, g.cx, g.cy - g.ry * 0.05, g.rx * 1.18, g.ry * 1.08);
            if face.long_hair && hair_d < 1.0 && yf < g.cy + g.ry * 0.9 {
                px = face.hair;
            }
            let d = ell(xf, yf, g.cx, g.cy, g.rx, g.ry);
            if d < 1.0 {
                let nx = (xf - g.cx) / g.rx;
                let ny = (yf - g.cy) / g.ry;
                let shade = 1.0 + face.light_strength * (nx * lx + ny * ly) - 0.15 * d * d;
                px = face.skin.map(|c| c * shade);
                // Eyes.
                for side in [-1.0f32, 1.0] {
                    let ex = g.cx + side * eye_dx;
                    let de = ell(xf, yf, ex, eye_y, eye_rx, eye_ry);
                    if de < 1.0 {
                        px = [235.0, 232.0, 228.0];
                        let di = ell(xf, yf, ex, eye_y, eye_ry * 0.95, eye_ry * 0.95);
                        if di < 1.0 {
                            px = face.iris;
                        }
                        if di < 0.2 {
                            px = [15.0, 12.0, 12.0];
                        }
                    } else if de < 1.35 {
                        px = px.map(|c| c * 0.7);
                    }
                    // Brows.
                    let by = eye_y - 14.0 * face.eye_size + side * face.brow_tilt * (xf - ex);
                    if (xf - ex).abs() < eye_rx * 1.2 && (yf - by).abs() < 2.5 {
                        px = lerp3(face.hair, px, 0.2);
                    }
                }
                // Nose.
                let nose_top = eye_y + 6.0;
                let nose_bottom = g.cy + g.ry * 0.25;
                if yf > nose_top && yf < nose_bottom && (xf - g.cx - 4.0 * lx).abs() < 2.0 {
                    px = px.map(|c| c * 0.85);
                }
                for side in [-1.0f32, 1.0] {
                    if ell(xf, yf, g.cx + side * 7.0, nose_bottom, 4.0, 2.5) < 1.0 {
                        px = px.map(|c| c * 0.55);
                    }
                }
                // Mouth.
                let dm = ell(xf, yf, g.cx, mouth_y, mouth_rx, mouth_ry);
                if dm < 1.0 {
                    px = face.lips;
                    if face.mouth_open > 0.5
                        && ell(xf, yf, g.cx, mouth_y, mouth_rx * 0.8, mouth_ry * 0.4) < 1.0
                    {
                        px = [60.0, 20.0, 25.0];
                    }
                }
            }
            // Hair on top of the head.
            let wave = 4.0 * ((xf - g.cx) * 0.12).sin();
            if hair_d < 1.0 && yf < hairline + wave && d < 1.25 {
                px = face.hair.map(|c| c * (0.9 + 0.1 * ((xf * 0.7).sin())));
            }
            let k = (y * n + x) * 3;
            out[k..k + 3].copy_from_slice(&px);
        }
    }
    out
}

/// The soft-edged blend weight (0..1) of the swapped inner-face region.
fn swap_region(face: &Face, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let g = face.geometry;
    let cx = g.cx + rng.random_range(-0.12..0.12) * g.rx;
    let cy = g.cy + rng.random_range(-0.1..0.2) * g.ry;
    let rx = g.rx * rng.random_range(0.4..0.75);
    let ry = g.ry * rng.random_range(0.4..0.7);
    let feather_px = rng.random_range(3.0..12.0f32);
    let n = DEMO_SIZE;
    let mut alpha = vec![0.0f32; n * n];
    for y in 0..n {
        for x in 0..n {
            let d = ell(x as f32 + 0.5, y as f32 + 0.5, cx, cy, rx, ry).sqrt();
            // Signed distance to the ellipse edge, approximately in pixels.
            let inside_px = (1.0 - d) * rx.min(ry);
            alpha[y * n + x] = (0.5 + inside_px / feather_px).clamp(0.0, 1.0);
        }
    }
    alpha
}

/// The donor patch with a colour shift and a sharpness change (blur or sharpen).
fn mismatch(canvas: &[f32], rng: &mut ChaCha8Rng) -> Vec<f32> {
    // A brightness change of 8–20 % and a tint of up to 8 % per channel: the donor's skin
    // never quite matches the target's.
    let magnitude = rng.random_range(0.08..0.2);
    let brightness = if rng.random_bool(0.5) {
        1.0 + magnitude
    } else {
        1.0 - magnitude
    };
    let mut tint = || brightness * rng.random_range(0.92..1.08);
    let gain: Rgb = [tint(), tint(), tint()];
    let blurred = box_blur(canvas, rng.random_range(2..=3));
    let sharpen = rng.random_bool(0.3);
    canvas
        .iter()
        .zip(&blurred)
        .enumerate()
        .map(|(k, (&orig, &blur))| {
            let v = if sharpen {
                orig + 0.8 * (orig - blur)
            } else {
                blur
            };
            v * gain[k % 3]
        })
        .collect()
}

fn box_blur(canvas: &[f32], radius: usize) -> Vec<f32> {
    let n = DEMO_SIZE;
    let mut out = vec![0.0f32; canvas.len()];
    for y in 0..n {
        for x in 0..n {
            let mut acc = [0.0f32; 3];
            let mut count = 0.0;
            for yy in y.saturating_sub(radius)..(y + radius + 1).min(n) {
                for xx in x.saturating_sub(radius)..(x + radius + 1).min(n) {
                    let k = (yy * n + xx) * 3;
                    for c in 0..3 {
                        acc[c] += canvas[k + c];
                    }
                    count += 1.0;
                }
            }
            let k = (y * n + x) * 3;
            for c in 0..3 {
                out[k + c] = acc[c] / count;
            }
        }
    }
    out
}

fn add_noise(canvas: &mut [f32], rng: &mut ChaCha8Rng) {
    let sigma = rng.random_range(2.0..7.0f32);
    for v in canvas.iter_mut() {
        // Sum of uniforms: a cheap, bounded approximation of Gaussian noise.
        let u: f32 = (0..3).map(|_| rng.random_range(-1.0..1.0f32)).sum();
        *v += u * sigma * 0.58;
    }
}
