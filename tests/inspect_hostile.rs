//! Whatever a user drops, FakeLens answers per file: a corpus of hostile files (generated
//! here, or by tests/fixtures/hostile/make.py for the formats the `image` crate cannot
//! write) goes through the same path as a drop — decode, find the face, crop, preprocess —
//! with no panic, one clear message naming each bad file, and an input for each good one.
//! `fakelens predict` over the same folder succeeds, with one CSV row per file. A property
//! test throws random bytes and mutated JPEGs at the path and reports how many it ran.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{fakelens, run_ok};

use std::io::Cursor;
use std::path::{Path, PathBuf};

use fakelens::data::face::FaceFinder;
use fakelens::inspect::inputs::expand_inputs;
use fakelens::inspect::photo::{InputOverride, PreparedPhoto, prepare_decoded, prepare_photo};
use image::{ImageFormat, RgbImage};
use rand::{Rng, SeedableRng};

fn fixture_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/hostile")
}

fn encoded(image: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut bytes = Vec::new();
    image
        .write_to(&mut Cursor::new(&mut bytes), format)
        .unwrap();
    bytes
}

/// A demo face resized to `size`×`size`.
fn face_like(size: u32) -> RgbImage {
    let face = fakelens::data::demo::generate_sample(3, false).image;
    image::imageops::resize(&face, size, size, image::imageops::Triangle)
}

/// Writes the hostile corpus into `dir`; returns (file, expected error fragment or None).
fn write_corpus(dir: &Path) -> Vec<(PathBuf, Option<&'static str>)> {
    let mut files = Vec::new();
    let mut put = |name: &str, bytes: &[u8], error: Option<&'static str>| {
        let path = dir.join(name);
        std::fs::write(&path, bytes).unwrap();
        files.push((path, error));
    };
    let jpeg = encoded(&face_like(128), ImageFormat::Jpeg);
    let png = encoded(&face_like(64), ImageFormat::Png);
    put("zero-bytes.jpg", b"", Some("empty file"));
    put("truncated.jpg", &jpeg[..jpeg.len() / 2], Some("truncated"));
    put(
        "truncated.png",
        &png[..png.len() / 2],
        Some("corrupt or truncated"),
    );
    put(
        "notes.jpg",
        b"Dear reader, this is plain text.\n",
        Some("not a supported image"),
    );
    let mut elf = b"\x7fELF\x02\x01\x01\0".to_vec();
    elf.extend(std::iter::repeat_n(0u8, 4000));
    put("program.jpg", &elf, Some("not a supported image"));
    put("good.jpg", &jpeg, None);
    for name in [
        "cmyk.jpg",
        "exif_rotated.jpg",
        "gray16.png",
        "palette.png",
        "gray.png",
        "rgba.png",
        "animated.gif",
    ] {
        put(
            name,
            &std::fs::read(fixture_dir().join(name)).unwrap(),
            None,
        );
    }
    put(
        "bomb.png",
        &std::fs::read(fixture_dir().join("bomb.png")).unwrap(),
        Some("too large"),
    );
    // A name that is not UTF-8, and a path of ~3,000 characters.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let name = std::ffi::OsStr::from_bytes(b"caf\xe9-\xff.png");
        let path = dir.join(name);
        std::fs::write(&path, &png).unwrap();
        files.push((path, None));
    }
    let mut deep = dir.to_path_buf();
    while deep.as_os_str().len() < 3000 {
        deep.push("a-rather-long-folder-name-for-testing-paths");
    }
    std::fs::create_dir_all(&deep).unwrap();
    let long = deep.join("face.png");
    std::fs::write(&long, &png).unwrap();
    files.push((long, None));
    files
}

/// What a face-crop detector (the default profile) is shown of a photo.
fn face_input(photo: &PreparedPhoto) -> RgbImage {
    let profile = fakelens::data::profile::InputProfile::new(
        fakelens::data::profile::Framing::default_for_new_runs(),
        fakelens::data::profile::Normalization::COURSE,
    );
    photo.input_for(&profile).input
}

#[test]
fn every_hostile_file_gets_its_own_message_and_good_files_an_input() {
    let dir = tempfile::tempdir().unwrap();
    let corpus = write_corpus(dir.path());
    let mut finder = FaceFinder::new().unwrap();
    let expected: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixture_dir().join("expected.json")).unwrap())
            .unwrap();
    for (path, error) in &corpus {
        let result = prepare_photo(path, InputOverride::Own, &mut finder, None);
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        match (result, error) {
            (Ok(photo), None) => {
                assert_eq!(face_input(&photo).dimensions(), (256, 256), "{name}");
                if let Some(size) = expected[&name]["size"].as_array() {
                    let size: Vec<u64> = size.iter().map(|v| v.as_u64().unwrap()).collect();
                    assert_eq!(
                        vec![u64::from(photo.width), u64::from(photo.height)],
                        size,
                        "{name}: orientation and size"
                    );
                }
                if let Some(pixel) = expected[&name]["first_pixel"].as_array() {
                    let want: Vec<u8> = pixel.iter().map(|v| v.as_u64().unwrap() as u8).collect();
                    assert_eq!(
                        face_input(&photo).get_pixel(0, 0).0.to_vec(),
                        want,
                        "{name}"
                    );
                }
            }
            (Err(e), Some(fragment)) => {
                let message = e.to_string();
                assert!(message.contains(fragment), "{name}: {message}");
                assert!(
                    message.contains(&path.display().to_string()),
                    "{name}: the message names the file: {message}"
                );
            }
            (Ok(_), Some(fragment)) => panic!("{name} was accepted; expected {fragment:?}"),
            (Err(e), None) => panic!("{name} was refused: {e}"),
        }
    }
    // A file deleted between the drop and the decode.
    let gone = dir.path().join("deleted.jpg");
    let e = prepare_photo(&gone, InputOverride::Own, &mut finder, None).unwrap_err();
    assert!(e.to_string().contains("deleted.jpg"), "{e}");
}

#[test]
fn a_huge_photo_is_judged_downscaled_and_a_big_folder_is_listed() {
    // 12000 × 9000 (108 megapixels): decoded within the limits, scanned for faces at 1024 px.
    let dir = tempfile::tempdir().unwrap();
    let big = image::imageops::resize(&face_like(256), 12000, 9000, image::imageops::Nearest);
    let path = dir.path().join("huge.jpg");
    std::fs::write(&path, encoded(&big, ImageFormat::Jpeg)).unwrap();
    drop(big);
    let mut finder = FaceFinder::new().unwrap();
    let photo = prepare_photo(&path, InputOverride::Own, &mut finder, None).unwrap();
    assert_eq!((photo.width, photo.height), (12000, 9000));
    assert_eq!(face_input(&photo).dimensions(), (256, 256));

    // A folder of 10,000 files is listed in full, masks and hidden files left out.
    let many = dir.path().join("many");
    std::fs::create_dir(&many).unwrap();
    for i in 0..10_000 {
        std::fs::write(many.join(format!("{i:05}.jpg")), b"").unwrap();
    }
    std::fs::write(many.join("00001_mask.png"), b"").unwrap();
    std::fs::write(many.join(".hidden.jpg"), b"").unwrap();
    let inputs = expand_inputs(&[many]);
    assert_eq!(inputs.files.len(), 10_000);
    assert!(inputs.errors.is_empty());
}

#[test]
fn predict_writes_one_row_per_file_and_succeeds_despite_bad_ones() {
    let dir = tempfile::tempdir().unwrap();
    let drop_dir = dir.path().join("dropped");
    std::fs::create_dir(&drop_dir).unwrap();
    let corpus = write_corpus(&drop_dir);
    // An untrained SimpleNet, made a run through import (it has no dataset: threshold 0.5).
    let model = fakelens::models::build(
        fakelens::config::ModelKind::SimpleNet,
        &candle_core::Device::Cpu,
        0,
    )
    .unwrap();
    let checkpoint = dir.path().join("simplenet.safetensors");
    model.params().save(&checkpoint).unwrap();
    let (run, _) = fakelens::train::imported::import_as_run(
        &checkpoint,
        fakelens::config::ModelKind::SimpleNet,
        &dir.path().join("runs"),
    )
    .unwrap();
    let csv = dir.path().join("verdicts.csv");
    let stdout = run_ok(
        fakelens()
            .arg("predict")
            .arg(&drop_dir)
            .arg("--run")
            .arg(&run)
            .arg("--csv")
            .arg(&csv),
    );
    let bad = corpus.iter().filter(|(_, e)| e.is_some()).count();
    let good = corpus.len() - bad;
    assert!(
        stdout.contains(&format!(
            "{} files: {good} judged, {bad} unreadable",
            corpus.len()
        )),
        "{stdout}"
    );
    let text = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(text.lines().count(), corpus.len() + 1, "{text}");
    assert!(
        text.lines()
            .any(|l| l.contains("bomb.png") && l.contains("too large"))
    );
    let header = text.lines().next().unwrap();
    for column in [
        "fake_probability",
        "raw_fake_probability",
        "input",
        "verdict",
    ] {
        assert!(header.contains(&format!(" {column},")), "{header}");
    }
    // An untrained model sits near 0.5, inside the unsure band around its 0.5 threshold.
    let good_row = text.lines().find(|l| l.contains("good.jpg")).unwrap();
    assert!(good_row.contains(",unsure,"), "{good_row}");
    assert!(
        good_row.contains(",whole image,"),
        "an imported run sees whole images: {good_row}"
    );
    // With no band, every verdict is real or fake.
    let sharp = dir.path().join("sharp.csv");
    run_ok(
        fakelens()
            .arg("predict")
            .arg(&drop_dir)
            .arg("--run")
            .arg(&run)
            .arg("--unsure-band")
            .arg("0")
            .arg("--csv")
            .arg(&sharp),
    );
    let sharp = std::fs::read_to_string(&sharp).unwrap();
    let good_row = sharp.lines().find(|l| l.contains("good.jpg")).unwrap();
    assert!(
        good_row.contains(",fake,") || good_row.contains(",real,"),
        "{good_row}"
    );

    // A checkpoint for another model is refused before anything is written.
    let other = dir.path().join("other.csv");
    let wrong = dir.path().join("runs-wrong");
    let (wrong_run, _) = fakelens::train::imported::import_as_run(
        &checkpoint,
        fakelens::config::ModelKind::SimpleNet,
        &wrong,
    )
    .unwrap();
    std::fs::write(wrong_run.join("model.safetensors"), b"not a checkpoint").unwrap();
    let output = fakelens()
        .arg("predict")
        .arg(&drop_dir)
        .arg("--run")
        .arg(&wrong_run)
        .arg("--csv")
        .arg(&other)
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("model.safetensors"), "{stderr}");
    assert!(!other.exists());
}

/// Random bytes, and real JPEGs with random bytes changed, through decode → face → crop:
/// never a panic; every outcome an input or a message naming the file.
#[test]
fn random_and_mutated_files_never_panic() {
    let dir = tempfile::tempdir().unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut finder = FaceFinder::new().unwrap();
    let seed_jpeg = encoded(&face_like(96), ImageFormat::Jpeg);
    let seed_png = encoded(&face_like(48), ImageFormat::Png);
    let (mut cases, mut accepted) = (0usize, 0usize);
    let path = dir.path().join("case.jpg");
    for round in 0..1500 {
        let bytes: Vec<u8> = match round % 3 {
            0 => (0..rng.random_range(0..2048))
                .map(|_| rng.random())
                .collect(),
            1 => {
                let mut b = seed_jpeg.clone();
                for _ in 0..rng.random_range(1..12) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                b.truncate(rng.random_range(b.len() / 2..=b.len()));
                b
            }
            _ => {
                let mut b = seed_png.clone();
                for _ in 0..rng.random_range(1..8) {
                    let i = rng.random_range(0..b.len());
                    b[i] = rng.random();
                }
                b
            }
        };
        std::fs::write(&path, &bytes).unwrap();
        match prepare_photo(&path, InputOverride::Own, &mut finder, None) {
            Ok(photo) => {
                assert_eq!(face_input(&photo).dimensions(), (256, 256));
                accepted += 1;
            }
            Err(e) => assert!(e.to_string().contains("case.jpg"), "{e}"),
        }
        cases += 1;
    }
    // Odd shapes straight into the face finder and the crop.
    for (w, h) in [(1, 1), (1, 5000), (5000, 1), (47, 47), (48, 48), (3000, 20)] {
        let photo = RgbImage::from_pixel(w, h, image::Rgb([120, 100, 90]));
        let prepared = prepare_decoded(
            Path::new("shape"),
            photo,
            InputOverride::Own,
            &mut finder,
            None,
        );
        assert_eq!(face_input(&prepared).dimensions(), (256, 256));
        cases += 1;
    }
    println!("{cases} cases run through decode → crop → preprocess; {accepted} files decoded");
    assert!(cases >= 1500);
}
