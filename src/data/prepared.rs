//! A split decoded and resized once: the cache that lets every epoch after the first skip
//! JPEG decoding. Files that fail to decode are listed with their reason and left out.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::decode::load_resized;
use super::index::{DataError, Sample, Split, check_counts};
use crate::config::INPUT_SIZE;

/// A file that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

/// The decoded, resized (256×256 RGB8, HWC) images of one split.
#[derive(Debug)]
pub struct PreparedSplit {
    pub split: Split,
    pub samples: Vec<Sample>,
    pub pixels: Vec<Arc<[u8]>>,
    pub unreadable: Vec<Unreadable>,
}

impl PreparedSplit {
    /// Decodes every sample in parallel, calling `progress(done, total)` as it goes. Stops
    /// with `DataError::Cancelled` when `cancel` is set.
    pub fn prepare(
        root: &Path,
        split: Split,
        samples: &[Sample],
        cancel: &AtomicBool,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<PreparedSplit, DataError> {
        let done = AtomicUsize::new(0);
        let total = samples.len();
        let decoded: Vec<Option<Result<Arc<[u8]>, String>>> = samples
            .par_iter()
            .map(|sample| {
                if cancel.load(Ordering::Relaxed) {
                    return None;
                }
                let result = load_resized(&sample.path, INPUT_SIZE as u32)
                    .map(|img| Arc::<[u8]>::from(img.into_raw()))
                    .map_err(|e| e.to_string());
                let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                progress(n, total);
                Some(result)
            })
            .collect();
        if cancel.load(Ordering::Relaxed) {
            return Err(DataError::Cancelled);
        }
        let mut kept = Vec::with_capacity(total);
        let mut pixels = Vec::with_capacity(total);
        let mut unreadable = Vec::new();
        for (sample, result) in samples.iter().zip(decoded) {
            match result {
                Some(Ok(px)) => {
                    kept.push(sample.clone());
                    pixels.push(px);
                }
                Some(Err(reason)) => unreadable.push(Unreadable {
                    path: sample.path.clone(),
                    reason,
                }),
                None => return Err(DataError::Cancelled),
            }
        }
        if kept.is_empty() && !unreadable.is_empty() {
            return Err(DataError::AllUnreadable {
                root: root.to_path_buf(),
                split,
                count: unreadable.len(),
            });
        }
        let prepared = PreparedSplit {
            split,
            samples: kept,
            pixels,
            unreadable,
        };
        check_counts(root, split, prepared.class_counts())?;
        Ok(prepared)
    }

    pub fn len(&self) -> usize {
        self.samples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.samples.is_empty()
    }

    /// `[real, fake]` counts of the usable images.
    pub fn class_counts(&self) -> [usize; 2] {
        let mut counts = [0; 2];
        for s in &self.samples {
            counts[s.label as usize] += 1;
        }
        counts
    }
}
