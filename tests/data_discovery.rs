//! Dataset discovery, folder aliases, decoding of odd formats, and the handling of broken
//! files (listed with a reason, never a crash) and of empty or one-class splits.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use fakelens::data::profile::Framing;
use fakelens::data::{DataError, DatasetIndex, PreparedSplit, Split};

fn write_rgb(path: &Path, w: u32, h: u32, seed: u8) {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x as u8).wrapping_mul(seed), y as u8, seed])
    });
    img.save(path).unwrap();
}

/// train/{real,fake}, val/{REAL,FAKE}, test/{0_real,1_fake} with good and broken files.
fn fixture_tree(root: &Path) {
    for (split, real, fake) in [
        ("train", "real", "fake"),
        ("val", "REAL", "FAKE"),
        ("test", "0_real", "1_fake"),
    ] {
        for class in [real, fake] {
            std::fs::create_dir_all(root.join(split).join(class)).unwrap();
            for i in 0..3 {
                write_rgb(
                    &root.join(split).join(class).join(format!("img{i}.jpg")),
                    250,
                    250,
                    i as u8 + 1,
                );
            }
        }
    }
    let real = root.join("train/real");
    std::fs::write(real.join("zero.jpg"), b"").unwrap();
    let mut jpeg = std::fs::read(real.join("img0.jpg")).unwrap();
    jpeg.truncate(jpeg.len() / 3);
    std::fs::write(real.join("truncated.jpg"), &jpeg).unwrap();
    std::fs::write(
        real.join("notes.jpg"),
        b"this is a text file, not a photo\n",
    )
    .unwrap();
    image::GrayImage::from_fn(64, 48, |x, _| image::Luma([x as u8 * 3]))
        .save(real.join("gray.png"))
        .unwrap();
    image::RgbaImage::from_fn(40, 40, |x, y| image::Rgba([x as u8, y as u8, 9, 128]))
        .save(real.join("rgba.png"))
        .unwrap();
    image::ImageBuffer::<image::Rgb<u16>, Vec<u16>>::from_fn(30, 20, |x, _| {
        image::Rgb([x as u16 * 2000, 0, 65535])
    })
    .save(real.join("deep16.png"))
    .unwrap();
    // A ground-truth mask beside a fake is not a sample.
    image::GrayImage::new(8, 8)
        .save(root.join("train/fake/img0_mask.png"))
        .unwrap();
}

#[test]
fn discovers_splits_and_class_aliases() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    let index = DatasetIndex::discover(dir.path()).unwrap();
    assert_eq!(
        index.splits.keys().copied().collect::<Vec<_>>(),
        vec![Split::Train, Split::Val, Split::Test]
    );
    assert_eq!(
        index.class_counts(Split::Train),
        [3 + 6, 3],
        "6 odd files in train/real; mask skipped"
    );
    assert_eq!(index.class_counts(Split::Val), [3, 3]);
    assert_eq!(index.class_counts(Split::Test), [3, 3]);
    assert!(
        index
            .split(Split::Val)
            .unwrap()
            .iter()
            .all(|s| (s.label == 1) == s.path.to_string_lossy().contains("FAKE"))
    );
}

#[test]
fn broken_files_are_listed_with_reasons_and_odd_formats_decode() {
    let dir = tempfile::tempdir().unwrap();
    fixture_tree(dir.path());
    let index = DatasetIndex::discover(dir.path()).unwrap();
    let cancel = AtomicBool::new(false);
    let prepared = PreparedSplit::prepare(
        dir.path(),
        Split::Train,
        index.split(Split::Train).unwrap(),
        &Framing::Whole,
        &cancel,
        &|_, _| {},
    )
    .unwrap();
    let mut bad: Vec<(String, String)> = prepared
        .unreadable
        .iter()
        .map(|u| {
            (
                u.path.file_name().unwrap().to_string_lossy().into_owned(),
                u.reason.clone(),
            )
        })
        .collect();
    bad.sort();
    let names: Vec<&str> = bad.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["notes.jpg", "truncated.jpg", "zero.jpg"]);
    assert!(bad[0].1.contains("not a supported image"), "{}", bad[0].1);
    assert!(bad[1].1.contains("corrupt or truncated"), "{}", bad[1].1);
    assert!(bad[2].1.contains("empty file"), "{}", bad[2].1);
    for (_, reason) in &bad {
        assert!(
            reason.contains(&dir.path().display().to_string()),
            "reason names the file: {reason}"
        );
    }
    // 3 good JPEGs + gray + rgba + 16-bit decode to 256×256 RGB.
    assert_eq!(prepared.class_counts(), [6, 3]);
    assert!(prepared.pixels.iter().all(|p| p.len() == 256 * 256 * 3));
    let gray = prepared
        .samples
        .iter()
        .position(|s| s.path.ends_with("gray.png"))
        .unwrap();
    let px = &prepared.pixels[gray];
    assert!(
        px.chunks(3).all(|c| c[0] == c[1] && c[1] == c[2]),
        "grayscale becomes equal RGB"
    );
}

#[test]
fn one_class_and_empty_splits_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::fs::create_dir_all(root.join("train/real")).unwrap();
    std::fs::create_dir_all(root.join("train/fake")).unwrap();
    write_rgb(&root.join("train/real/a.jpg"), 20, 20, 1);
    let err = DatasetIndex::discover(root).unwrap_err();
    assert!(
        matches!(
            err,
            DataError::OneClass {
                class: "real",
                count: 1,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("only real images"));

    std::fs::remove_file(root.join("train/real/a.jpg")).unwrap();
    let err = DatasetIndex::discover(root).unwrap_err();
    assert!(matches!(err, DataError::EmptySplit { .. }), "{err}");

    let nothing = tempfile::tempdir().unwrap();
    let err = DatasetIndex::discover(nothing.path()).unwrap_err();
    assert!(err.to_string().contains("no class folders"), "{err}");
}

#[test]
fn flat_root_with_original_and_manipulated_is_one_split() {
    let dir = tempfile::tempdir().unwrap();
    for (class, n) in [("original", 2), ("manipulated", 3)] {
        std::fs::create_dir_all(dir.path().join(class)).unwrap();
        for i in 0..n {
            write_rgb(
                &dir.path().join(class).join(format!("{i}.png")),
                16,
                16,
                i as u8,
            );
        }
    }
    let index = DatasetIndex::discover(dir.path()).unwrap();
    assert_eq!(index.class_counts(Split::All), [2, 3]);
    let err = index.split(Split::Train).unwrap_err();
    assert!(
        err.to_string().contains("has no train split (found: all)"),
        "{err}"
    );
}

#[test]
fn demo_data_is_balanced_deterministic_and_masks_mark_the_manipulation() {
    let a = common::small_demo(24, 7);
    let b = common::small_demo(24, 7);
    let root_a = a.path().join("demo");
    let index = DatasetIndex::discover(&root_a).unwrap();
    assert_eq!(index.class_counts(Split::Train), [8, 8]);
    assert_eq!(index.class_counts(Split::Val), [2, 2]);
    assert_eq!(index.class_counts(Split::Test), [2, 2]);
    for sample in index.split(Split::Train).unwrap() {
        let rel = sample.path.strip_prefix(&root_a).unwrap();
        let bytes_a = std::fs::read(&sample.path).unwrap();
        let bytes_b = std::fs::read(b.path().join("demo").join(rel)).unwrap();
        assert_eq!(bytes_a, bytes_b, "same seed, same image: {}", rel.display());
        let mask = fakelens::data::index::mask_path_for(&sample.path);
        if sample.label == fakelens::LABEL_FAKE {
            let mask = image::open(&mask).unwrap().to_luma8();
            let inside = mask.pixels().filter(|p| p.0[0] == 255).count();
            let share = inside as f64 / (256.0 * 256.0);
            assert!(
                share > 0.03 && share < 0.6,
                "mask covers a localised region: {share}"
            );
        } else {
            assert!(!mask.exists(), "reals have no mask");
        }
    }
    let other_seed = common::small_demo(24, 8);
    let first = &index.split(Split::Train).unwrap()[0].path;
    let rel = first.strip_prefix(&root_a).unwrap();
    assert_ne!(
        std::fs::read(first).unwrap(),
        std::fs::read(other_seed.path().join("demo").join(rel)).unwrap()
    );
}

#[test]
fn real_face_swap_dataset_is_discovered_and_decodes() {
    let Some(root) = common::lfw_faceswap() else {
        return;
    };
    let index = DatasetIndex::discover(&root).unwrap();
    assert_eq!(index.class_counts(Split::Train), [5320, 4219]);
    assert_eq!(index.class_counts(Split::Val), [359, 290]);
    assert_eq!(index.class_counts(Split::Test), [306, 237]);
    // A slice of each class decodes from 250×250 JPEG to 256×256 RGB with nothing unreadable.
    let val = index.split(Split::Val).unwrap();
    let slice: Vec<_> = val
        .iter()
        .take(40)
        .chain(val.iter().rev().take(40))
        .cloned()
        .collect();
    let prepared = PreparedSplit::prepare(
        &root,
        Split::Val,
        &slice,
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _| {},
    )
    .unwrap();
    assert!(prepared.unreadable.is_empty(), "{:?}", prepared.unreadable);
    assert_eq!(prepared.class_counts(), [40, 40]);
    assert!(prepared.pixels.iter().all(|p| p.len() == 256 * 256 * 3));
}

/// The face framing finds the face in (almost) every lfw-faceswap picture, and its input is
/// the 1.3× crop the same picture gives through the photo path `predict` and Inspect use.
#[test]
fn real_faces_are_framed_as_predict_frames_them() {
    let Some(root) = common::lfw_faceswap() else {
        return;
    };
    let index = DatasetIndex::discover(&root).unwrap();
    let slice: Vec<_> = index
        .split(Split::Val)
        .unwrap()
        .iter()
        .step_by(20)
        .cloned()
        .collect();
    let face = Framing::face(1.3);
    let prepared = PreparedSplit::prepare(
        &root,
        Split::Val,
        &slice,
        &face,
        &AtomicBool::new(false),
        &|_, _| {},
    )
    .unwrap();
    let whole = PreparedSplit::prepare(
        &root,
        Split::Val,
        &slice,
        &Framing::Whole,
        &AtomicBool::new(false),
        &|_, _| {},
    )
    .unwrap();
    assert_eq!(prepared.len(), slice.len());
    assert!(
        prepared.no_face.len() * 20 <= slice.len(),
        "{:?}",
        prepared.no_face
    );
    let mut finder = fakelens::data::face::FaceFinder::new().unwrap();
    let profile = fakelens::data::profile::InputProfile::new(
        face.clone(),
        fakelens::data::profile::Normalization::COURSE,
    );
    for (i, sample) in prepared.samples.iter().enumerate().take(5) {
        let photo = fakelens::inspect::photo::prepare_photo(
            &sample.path,
            fakelens::inspect::photo::InputOverride::Own,
            &mut finder,
            None,
        )
        .unwrap();
        let seen = photo.input_for(&profile);
        assert_eq!(
            seen.input.as_raw().as_slice(),
            &*prepared.pixels[i],
            "{:?}",
            sample.path
        );
        if seen.face.is_some() {
            assert_ne!(prepared.pixels[i], whole.pixels[i], "{:?}", sample.path);
        }
    }
}
