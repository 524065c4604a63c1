//! Finished evaluations kept in the run's folder (`evaluations/<split>-<key>.json`), keyed by
//! the dataset and the threshold rule, and valid only while neither the checkpoint, the
//! run's record (its temperature) nor the split's files have changed (sizes and
//! modification times).

use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use super::run_eval::{EvalOutcome, EvalRequest};
use crate::data::DatasetIndex;
use crate::fsutil::write_atomic;
use crate::runs::layout::{CHECKPOINT_FILE, RUN_FILE};

/// What an evaluation depended on.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Fingerprint {
    /// The cache's format ([`CACHE_VERSION`]): older entries are scored again.
    #[serde(default)]
    pub version: u32,
    /// run.json's size and time: a temperature fitted later changes every probability.
    #[serde(default)]
    pub record_bytes: u64,
    #[serde(default)]
    pub record_modified_nanos: u128,
    pub checkpoint_bytes: u64,
    pub checkpoint_modified_nanos: u128,
    pub files: usize,
    pub files_bytes: u64,
    pub newest_modified_nanos: u128,
}

/// The cache's format: 2 keeps the logit margins and follows run.json.
pub const CACHE_VERSION: u32 = 2;

fn stat(path: &Path) -> Option<(u64, u128)> {
    let meta = std::fs::metadata(path).ok()?;
    let modified = meta.modified().ok()?.duration_since(UNIX_EPOCH).ok()?;
    Some((meta.len(), modified.as_nanos()))
}

/// The current fingerprint, or `None` when the checkpoint or the split cannot be read.
pub fn fingerprint(request: &EvalRequest) -> Option<Fingerprint> {
    let (checkpoint_bytes, checkpoint_modified_nanos) =
        stat(&request.run_dir.join(CHECKPOINT_FILE))?;
    let (record_bytes, record_modified_nanos) = stat(&request.run_dir.join(RUN_FILE))?;
    let index = DatasetIndex::discover(&request.data).ok()?;
    let samples = index.split(request.split).ok()?;
    let (mut files_bytes, mut newest) = (0u64, 0u128);
    for sample in samples {
        let (bytes, modified) = stat(&sample.path)?;
        files_bytes += bytes;
        newest = newest.max(modified);
    }
    Some(Fingerprint {
        version: CACHE_VERSION,
        record_bytes,
        record_modified_nanos,
        checkpoint_bytes,
        checkpoint_modified_nanos,
        files: samples.len(),
        files_bytes,
        newest_modified_nanos: newest,
    })
}

/// FNV-1a of the text: a stable file-name key.
fn key(text: &str) -> String {
    let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{hash:016x}")
}

/// Where `request`'s evaluation is kept: in the run's folder, or for a bundled (read-only)
/// detector in the app's data folder.
pub fn cache_path(request: &EvalRequest) -> PathBuf {
    let data = std::fs::canonicalize(&request.data).unwrap_or_else(|_| request.data.clone());
    let id = format!("{}|{}", data.display(), request.threshold);
    let file = format!("{}-{}.json", request.split.name(), key(&id));
    if crate::runs::layout::is_read_only(&request.run_dir) {
        let run =
            std::fs::canonicalize(&request.run_dir).unwrap_or_else(|_| request.run_dir.clone());
        return crate::data::demo::app_data_dir()
            .join("evaluations")
            .join(key(&run.display().to_string()))
            .join(file);
    }
    request.run_dir.join("evaluations").join(file)
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Entry {
    fingerprint: Fingerprint,
    outcome: EvalOutcome,
}

/// The kept evaluation, if it is still valid.
pub fn load(request: &EvalRequest) -> Option<EvalOutcome> {
    let current = fingerprint(request)?;
    let text = std::fs::read_to_string(cache_path(request)).ok()?;
    let entry: Entry = serde_json::from_str(&text).ok()?;
    (entry.fingerprint == current).then_some(entry.outcome)
}

/// Keeps `outcome` (best effort: a run folder that cannot be written just is not cached).
pub fn store(request: &EvalRequest, outcome: &EvalOutcome) -> std::io::Result<()> {
    let Some(fingerprint) = fingerprint(request) else {
        return Ok(());
    };
    let entry = Entry {
        fingerprint,
        outcome: outcome.clone(),
    };
    let bytes = serde_json::to_vec(&entry).map_err(std::io::Error::other)?;
    write_atomic(&cache_path(request), &bytes)
}
