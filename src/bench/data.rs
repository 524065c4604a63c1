//! The data-pipeline rows of `fakelens bench --suite`: images per second from JPEG files
//! (parallel decode and resize, as the first epoch prepares a split, then normalisation into
//! batches) and from the decoded cache (the batch loader with augmentation, as every later
//! epoch runs). The PyTorch twin is `benches/reference/data_pipeline.py`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::Context;

use crate::data::index::{DatasetIndex, Sample, Split};
use crate::data::loader::{BatchLoader, EpochPlan};
use crate::data::prepared::PreparedSplit;
use crate::data::profile::Normalization;

/// Images per second through each path, over `images` images.
#[derive(Clone, Copy, Debug, serde::Serialize)]
pub struct DataThroughput {
    pub jpeg_images_per_sec: f64,
    pub cache_images_per_sec: f64,
    pub images: usize,
}

impl DataThroughput {
    /// Each path's images per second the larger of `self`'s and `other`'s (the faster of
    /// two rounds).
    pub fn faster(self, other: DataThroughput) -> DataThroughput {
        DataThroughput {
            jpeg_images_per_sec: self.jpeg_images_per_sec.max(other.jpeg_images_per_sec),
            cache_images_per_sec: self.cache_images_per_sec.max(other.cache_images_per_sec),
            images: other.images,
        }
    }
}

/// The first `count / 2` file names of each class of the train split under `root` (what the
/// reference script reads too).
fn chosen_samples(root: &Path, count: usize) -> anyhow::Result<Vec<Sample>> {
    let index = DatasetIndex::discover(root)
        .with_context(|| format!("reading the dataset at {}", root.display()))?;
    let train = index.split(Split::Train)?;
    let mut chosen = Vec::new();
    for label in [crate::LABEL_REAL, crate::LABEL_FAKE] {
        let mut of_class: Vec<Sample> =
            train.iter().filter(|s| s.label == label).cloned().collect();
        of_class.sort_by(|a, b| a.path.file_name().cmp(&b.path.file_name()));
        chosen.extend(of_class.into_iter().take(count / 2));
    }
    Ok(chosen)
}

/// Runs every batch of one pass and returns how many images it yielded.
fn drain(split: &Arc<PreparedSplit>, plan: EpochPlan) -> anyhow::Result<usize> {
    let loader = BatchLoader::start(split.clone(), plan).context("starting the batch loader")?;
    Ok(loader.map(|batch| batch.len()).sum())
}

/// Measures both paths on `count` images of the dataset at `root`, in batches of
/// `batch_size`.
pub fn data_throughput(
    root: &Path,
    count: usize,
    batch_size: usize,
) -> anyhow::Result<DataThroughput> {
    let samples = chosen_samples(root, count)?;
    let plan = |shuffle, augment| EpochPlan {
        batch_size,
        shuffle,
        augment,
        photo_augment: None,
        norm: Normalization::COURSE,
        first_batch: 0,
    };
    let started = Instant::now();
    let split = Arc::new(
        PreparedSplit::prepare(
            root,
            Split::Train,
            &samples,
            &crate::data::profile::Framing::Whole,
            &AtomicBool::new(false),
            &|_, _| {},
        )
        .context("decoding the benchmark images")?,
    );
    let images = drain(&split, plan(None, false))?;
    let jpeg_secs = started.elapsed().as_secs_f64();
    let started = Instant::now();
    let again = drain(&split, plan(Some((0, 0)), true))?;
    let cache_secs = started.elapsed().as_secs_f64();
    if images == 0 || again != images {
        anyhow::bail!("the benchmark split yielded {images} then {again} images");
    }
    Ok(DataThroughput {
        jpeg_images_per_sec: images as f64 / jpeg_secs,
        cache_images_per_sec: images as f64 / cache_secs,
        images,
    })
}
