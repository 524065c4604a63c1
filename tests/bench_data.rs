//! The data-pipeline rows of `fakelens bench --suite` run the real loader: every chosen image
//! is decoded, then served again from the cache, half of them from each class; a missing
//! dataset is an error naming its folder.

use fakelens::bench::data::data_throughput;
use fakelens::data::demo::write_demo_dataset;

#[test]
fn the_data_rows_decode_and_serve_every_chosen_image() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("demo");
    // 100 demo images: 30 per class in the train split.
    write_demo_dataset(&root, 7, 100).unwrap();
    let measured = data_throughput(&root, 40, 8).unwrap();
    assert_eq!(measured.images, 40, "20 images of each class");
    assert!(measured.jpeg_images_per_sec.is_finite() && measured.jpeg_images_per_sec > 0.0);
    assert!(measured.cache_images_per_sec.is_finite() && measured.cache_images_per_sec > 0.0);

    let missing = dir.path().join("no-such-dataset");
    let error = format!("{:#}", data_throughput(&missing, 40, 8).unwrap_err());
    assert!(error.contains("no-such-dataset"), "{error}");
}
