//! A split decoded, framed by an input profile (a face crop or the whole picture) and resized
//! once: the cache that lets every epoch after the first skip JPEG decoding and face
//! detection. Files that fail to decode are listed with their reason and left out; files in
//! which a face framing finds no face are used whole and listed.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::decode::decode_rgb;
use super::face::FaceFinder;
use super::index::{DataError, Sample, Split, check_counts};
use super::profile::{Framing, InputProfile};
use crate::data::profile::Normalization;

/// A file that could not be used, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unreadable {
    pub path: PathBuf,
    pub reason: String,
}

/// The decoded, framed, resized (256×256 RGB8, HWC) images of one split.
#[derive(Debug)]
pub struct PreparedSplit {
    pub split: Split,
    /// How the pictures were framed.
    pub framing: Framing,
    pub samples: Vec<Sample>,
    pub pixels: Vec<Arc<[u8]>>,
    pub unreadable: Vec<Unreadable>,
    /// Files in which a face framing found no face (used whole).
    pub no_face: Vec<PathBuf>,
}

/// One file's outcome: its input and whether a face framing found no face.
type Decoded = Option<Result<(Arc<[u8]>, bool), String>>;

impl PreparedSplit {
    /// Decodes and frames every sample in parallel, calling `progress(done, total)` as it
    /// goes. Stops with `DataError::Cancelled` when `cancel` is set.
    pub fn prepare(
        root: &Path,
        split: Split,
        samples: &[Sample],
        framing: &Framing,
        cancel: &AtomicBool,
        progress: &(dyn Fn(usize, usize) + Sync),
    ) -> Result<PreparedSplit, DataError> {
        let done = AtomicUsize::new(0);
        let total = samples.len();
        // Normalisation is applied later, per batch; framing needs only the geometry.
        let profile = InputProfile::new(framing.clone(), Normalization::COURSE);
        let decoded: Vec<Decoded> = samples
            .par_iter()
            .map_init(
                || framing.is_face().then(|| FaceFinder::new().ok()).flatten(),
                |finder, sample| {
                    if cancel.load(Ordering::Relaxed) {
                        return None;
                    }
                    let result = decode_rgb(&sample.path)
                        .map_err(|e| e.to_string())
                        .and_then(|picture| match (framing.is_face(), finder.as_mut()) {
                            (true, None) => {
                                Err(super::face::FaceModelError::unreadable().to_string())
                            }
                            (_, Some(finder)) => Ok(profile.frame_with(&picture, finder)),
                            (false, None) => Ok((
                                super::decode::resize_square(&picture, profile.size as u32),
                                false,
                            )),
                        })
                        .map(|(img, no_face)| (Arc::<[u8]>::from(img.into_raw()), no_face));
                    let n = done.fetch_add(1, Ordering::Relaxed) + 1;
                    progress(n, total);
                    Some(result)
                },
            )
            .collect();
        if cancel.load(Ordering::Relaxed) {
            return Err(DataError::Cancelled);
        }
        let mut kept = Vec::with_capacity(total);
        let mut pixels = Vec::with_capacity(total);
        let mut unreadable = Vec::new();
        let mut no_face = Vec::new();
        for (sample, result) in samples.iter().zip(decoded) {
            match result {
                Some(Ok((px, face_missing))) => {
                    if face_missing {
                        no_face.push(sample.path.clone());
                    }
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
            framing: framing.clone(),
            samples: kept,
            pixels,
            unreadable,
            no_face,
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
