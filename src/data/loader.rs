//! The batcher: shuffles a prepared split, builds normalised (and, for training, augmented)
//! CHW f32 batches in parallel, and prefetches them on a background thread so the compute
//! thread rarely waits for data.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, bounded};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::augment::{CropFlip, augment_normalize_into};
use super::degrade::{PhotoAugment, degrade};
use super::prepared::PreparedSplit;
use crate::data::profile::{INPUT_SIZE, Normalization};

/// Batches prefetched ahead of the consumer.
const PREFETCH_BATCHES: usize = 2;

/// One batch: `len` images as NCHW f32 and their labels.
#[derive(Debug)]
pub struct Batch {
    pub images: Vec<f32>,
    pub labels: Vec<u32>,
    /// Positions of the images in the prepared split.
    pub indices: Vec<usize>,
}

impl Batch {
    pub fn len(&self) -> usize {
        self.labels.len()
    }
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}

/// How one pass over a split orders and augments its images.
#[derive(Clone, Copy, Debug)]
pub struct EpochPlan {
    pub batch_size: usize,
    /// `Some((seed, epoch))` shuffles (and augments, if `augment`); `None` keeps file order.
    pub shuffle: Option<(u64, usize)>,
    pub augment: bool,
    /// Photo degradations, applied (with `shuffle`) before the crop and flip.
    pub photo_augment: Option<PhotoAugment>,
    pub norm: Normalization,
    /// Batches of the pass to skip (a resumed run starts mid-epoch); they are not built.
    pub first_batch: usize,
}

/// An iterator of batches built on a prefetch thread.
pub struct BatchLoader {
    rx: Option<Receiver<Batch>>,
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
    batch_count: usize,
}

impl BatchLoader {
    /// Starts building the batches of one pass over `split`.
    pub fn start(split: Arc<PreparedSplit>, plan: EpochPlan) -> std::io::Result<BatchLoader> {
        let batch_size = plan.batch_size.max(1);
        let mut order: Vec<usize> = (0..split.len()).collect();
        if let Some((seed, epoch)) = plan.shuffle {
            let mut rng = ChaCha8Rng::seed_from_u64(seed ^ ((epoch as u64 + 1) << 40));
            order.shuffle(&mut rng);
        }
        let batch_count = order.len().div_ceil(batch_size);
        let (tx, rx) = bounded(PREFETCH_BATCHES);
        let stop = Arc::new(AtomicBool::new(false));
        let stop_thread = stop.clone();
        let handle = std::thread::Builder::new()
            .name("fakelens-loader".into())
            .spawn(move || {
                let batches = order.chunks(batch_size).enumerate();
                for (b, chunk) in batches.skip(plan.first_batch) {
                    if stop_thread.load(Ordering::Relaxed) {
                        return;
                    }
                    let batch = build_batch(&split, chunk, b * batch_size, &plan);
                    if tx.send(batch).is_err() {
                        return;
                    }
                }
            })?;
        Ok(BatchLoader {
            rx: Some(rx),
            stop,
            handle: Some(handle),
            batch_count,
        })
    }

    /// How many batches this pass yields.
    pub fn batch_count(&self) -> usize {
        self.batch_count
    }
}

fn build_batch(
    split: &PreparedSplit,
    chunk: &[usize],
    first_position: usize,
    plan: &EpochPlan,
) -> Batch {
    let per_image = 3 * INPUT_SIZE * INPUT_SIZE;
    let mut images = vec![0.0f32; chunk.len() * per_image];
    images
        .par_chunks_mut(per_image)
        .zip(chunk.par_iter().enumerate())
        .for_each(|(out, (i, &idx))| {
            let position = first_position + i;
            let aug = match plan.shuffle {
                Some((seed, epoch)) if plan.augment => CropFlip::random(seed, epoch, position),
                _ => CropFlip::IDENTITY,
            };
            let degraded = match (plan.shuffle, &plan.photo_augment) {
                (Some((seed, epoch)), Some(photo)) => {
                    degrade(&split.pixels[idx], INPUT_SIZE, photo, seed, epoch, position)
                }
                _ => None,
            };
            let pixels = degraded.as_deref().unwrap_or(&split.pixels[idx]);
            augment_normalize_into(pixels, INPUT_SIZE, aug, &plan.norm, out);
        });
    Batch {
        images,
        labels: chunk.iter().map(|&i| split.samples[i].label).collect(),
        indices: chunk.to_vec(),
    }
}

impl Iterator for BatchLoader {
    type Item = Batch;
    fn next(&mut self) -> Option<Batch> {
        self.rx.as_ref()?.recv().ok()
    }
}

impl Drop for BatchLoader {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        // Dropping the receiver unblocks a producer waiting on a full channel.
        self.rx = None;
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}
