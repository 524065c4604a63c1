//! The model input equals what a Pillow pipeline feeds its model: FakeLens' resize is
//! Pillow's `Image.resize(size, Image.BILINEAR)` bit for bit on the committed images of
//! `tests/fixtures/pillow_resize/` (written by `make.py` there), and its JPEG decoding stays
//! within the measured distance of Pillow's (libjpeg-turbo). Two ignored tests measure the
//! same on the shared lfw-faceswap set and time decode + resize against Pillow; the Pillow
//! side of both is `tests/fixtures/pillow_resize/lfw_reference.py`.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::time::Instant;

use fakelens::data::decode::{decode_rgb, load_resized};
use fakelens::data::resize::resize_bilinear;
use image::RgbImage;
use image::imageops::FilterType;
use rayon::prelude::*;

/// The resize cases `make.py` writes: `NAME_in.png` and Pillow's `NAME_out.png`.
const RESIZE_CASES: [&str; 10] = [
    "up_250",
    "up_250_edges",
    "wide_300x200",
    "down_1000x750",
    "tall_120x150",
    "wide_150x120",
    "odd_257x255",
    "tiny_1x1",
    "tiny_3x7",
    "shrink_40x30_to_7x5",
];

/// The JPEG cases: `NAME.jpg` (Pillow, quality 90, 4:2:0) and `NAME_decoded.png`.
const JPEG_CASES: [&str; 2] = ["jpeg_64x48", "jpeg_101x77"];

/// The most a decoded sample of the JPEG fixture differs from libjpeg-turbo's: measured 3
/// (26.1% of samples differ, mean 0.37). Not exact, because zune-jpeg (inside `image` 0.25)
/// has its own integer IDCT (stb_image's, 12-bit constants, where libjpeg-turbo's ISLOW uses
/// 13 bits), its own rounding in the 2×2 chroma upsampling (two ÷4 steps where
/// libjpeg-turbo's fancy upsampling does one ÷16) and its own YCbCr fixed point; none of
/// these is a choice in `zune_core::options::DecoderOptions` (its JPEG options are the
/// output colour space, the scan limit, strictness and the SIMD switches), so the
/// difference cannot be switched off.
const JPEG_MAX_ABS_DIFF: u8 = 3;
/// The share of samples of the JPEG fixture that differ at all: measured 26.1%.
const JPEG_MAX_DIFFERING_SHARE: f64 = 0.27;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/pillow_resize")
        .join(name)
}

fn png(path: &Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// How two images of one size differ: the share of samples that differ, the largest and
/// the mean absolute difference.
#[derive(Clone, Copy, Debug, Default)]
struct Difference {
    differing: usize,
    samples: usize,
    max_abs: u8,
    sum_abs: u64,
}

impl Difference {
    fn of(ours: &RgbImage, theirs: &RgbImage) -> Difference {
        assert_eq!(ours.dimensions(), theirs.dimensions());
        let mut d = Difference::default();
        for (&a, &b) in ours.as_raw().iter().zip(theirs.as_raw()) {
            let diff = a.abs_diff(b);
            d.samples += 1;
            d.differing += usize::from(diff != 0);
            d.max_abs = d.max_abs.max(diff);
            d.sum_abs += u64::from(diff);
        }
        d
    }

    fn add(self, other: Difference) -> Difference {
        Difference {
            differing: self.differing + other.differing,
            samples: self.samples + other.samples,
            max_abs: self.max_abs.max(other.max_abs),
            sum_abs: self.sum_abs + other.sum_abs,
        }
    }

    fn share(&self) -> f64 {
        self.differing as f64 / self.samples.max(1) as f64
    }

    fn mean_abs(&self) -> f64 {
        self.sum_abs as f64 / self.samples.max(1) as f64
    }
}

impl std::fmt::Display for Difference {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2}% of samples differ, max abs {}, mean abs {:.4}",
            100.0 * self.share(),
            self.max_abs,
            self.mean_abs()
        )
    }
}

#[test]
fn every_resize_case_equals_pillow_bit_for_bit() {
    for name in RESIZE_CASES {
        let input_path = fixture(&format!("{name}_in.png"));
        let input = png(&input_path);
        let expected = png(&fixture(&format!("{name}_out.png")));
        let (width, height) = expected.dimensions();
        let ours = resize_bilinear(&input, width, height);
        let diff = Difference::of(&ours, &expected);
        // What `image`'s triangle filter, the resize before this one, gave.
        let triangle = image::imageops::resize(&input, width, height, FilterType::Triangle);
        eprintln!(
            "{name}: {}×{} → {width}×{height}: ours {diff}; image's triangle {}",
            input.width(),
            input.height(),
            Difference::of(&triangle, &expected)
        );
        assert_eq!(diff.max_abs, 0, "{name}: {diff}");
        if width == height {
            // The model-input path: decode the PNG, resize to the square.
            let loaded = load_resized(&input_path, width).unwrap();
            assert_eq!(loaded, expected, "{name} through load_resized");
        }
    }
}

#[test]
fn jpeg_decoding_stays_within_the_measured_distance_of_libjpeg_turbo() {
    let mut total = Difference::default();
    for name in JPEG_CASES {
        let ours = decode_rgb(&fixture(&format!("{name}.jpg"))).unwrap();
        let pillow = png(&fixture(&format!("{name}_decoded.png")));
        let diff = Difference::of(&ours, &pillow);
        eprintln!("{name}: {diff}");
        assert!(diff.max_abs <= JPEG_MAX_ABS_DIFF, "{name}: {diff}");
        total = total.add(diff);
    }
    eprintln!("all JPEG cases: {total}");
    assert!(total.share() <= JPEG_MAX_DIFFERING_SHARE, "{total}");
}

/// The first `count / 2` JPEG file names (sorted) of each class of `split`, as the bench and
/// `lfw_reference.py` pick them.
fn lfw_files(root: &Path, split: &str, count: usize) -> Vec<(String, PathBuf)> {
    let mut files = Vec::new();
    for label in ["real", "fake"] {
        let folder = root.join(split).join(label);
        let mut names: Vec<String> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.to_lowercase().ends_with(".jpg"))
            .collect();
        names.sort();
        for name in names.into_iter().take(count / 2) {
            files.push((label.to_string(), folder.join(name)));
        }
    }
    files
}

/// Run `python3 tests/fixtures/pillow_resize/lfw_reference.py decode /tmp/lfw_pillow` first
/// (or point `FAKELENS_PILLOW_LFW` at its output), then
/// `cargo test --release --test pillow_resize -- --ignored --nocapture lfw_jpeg`.
#[test]
#[ignore = "a measurement on the shared dataset; prints figures for the README"]
fn lfw_jpeg_decoding_against_pillow() {
    let Some(root) = common::lfw_faceswap() else {
        return;
    };
    let reference = std::env::var_os("FAKELENS_PILLOW_LFW")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/lfw_pillow"));
    let (mut decoded, mut resized, mut triangle) = Default::default();
    // The resize alone: both resizes of Pillow's own decode.
    let (mut resize_only, mut triangle_only) = Default::default();
    let files = lfw_files(&root, "val", 50);
    for (label, path) in &files {
        let stem = format!("{label}_{}", path.file_stem().unwrap().to_string_lossy());
        let ours = decode_rgb(path).unwrap();
        let pillow = png(&reference.join(format!("{stem}_decoded.png")));
        let pillow_resized = png(&reference.join(format!("{stem}_resized.png")));
        decoded = Difference::add(decoded, Difference::of(&ours, &pillow));
        resized = Difference::add(
            resized,
            Difference::of(&load_resized(path, 256).unwrap(), &pillow_resized),
        );
        let old = image::imageops::resize(&ours, 256, 256, FilterType::Triangle);
        triangle = Difference::add(triangle, Difference::of(&old, &pillow_resized));
        let ours_of_pillow = resize_bilinear(&pillow, 256, 256);
        resize_only = Difference::add(
            resize_only,
            Difference::of(&ours_of_pillow, &pillow_resized),
        );
        let old_of_pillow = image::imageops::resize(&pillow, 256, 256, FilterType::Triangle);
        triangle_only = Difference::add(
            triangle_only,
            Difference::of(&old_of_pillow, &pillow_resized),
        );
    }
    eprintln!(
        "{} lfw-faceswap val files against Pillow (libjpeg-turbo):",
        files.len()
    );
    eprintln!("  decoded pixels:                    {decoded}");
    eprintln!("  decoded + resized 256 (Pillow-bilinear): {resized}");
    eprintln!("  decoded + resized 256 (image's triangle): {triangle}");
    eprintln!("  Pillow's decode resized 256 (Pillow-bilinear): {resize_only}");
    eprintln!("  Pillow's decode resized 256 (image's triangle): {triangle_only}");
    assert_eq!(resize_only.max_abs, 0, "{resize_only}");
}

/// Decode + resize of 1000 train files on a pool of 2 threads, images per second (best of
/// three), with this resize and with `image`'s triangle filter; compare with
/// `python3 tests/fixtures/pillow_resize/lfw_reference.py time`.
#[test]
#[ignore = "a timing on the shared dataset; run alone on an idle machine"]
fn lfw_decode_and_resize_timing() {
    let Some(root) = common::lfw_faceswap() else {
        return;
    };
    let files = lfw_files(&root, "train", 1000);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(2)
        .build()
        .unwrap();
    let time = |resize: &(dyn Fn(&RgbImage) -> RgbImage + Sync)| {
        let mut best_secs = f64::INFINITY;
        for _ in 0..3 {
            let started = Instant::now();
            pool.install(|| {
                files.par_iter().for_each(|(_, path)| {
                    let out = resize(&decode_rgb(path).unwrap());
                    assert_eq!(out.dimensions(), (256, 256));
                });
            });
            best_secs = best_secs.min(started.elapsed().as_secs_f64());
        }
        files.len() as f64 / best_secs
    };
    // Warm the page cache.
    time(&|p| resize_bilinear(p, 256, 256));
    let pillow = time(&|p| resize_bilinear(p, 256, 256));
    let triangle = time(&|p| image::imageops::resize(p, 256, 256, FilterType::Triangle));
    eprintln!(
        "{} files, 2 threads: decode + Pillow-bilinear resize {pillow:.0} images/s; \
         decode + image's triangle {triangle:.0} images/s",
        files.len()
    );
}
