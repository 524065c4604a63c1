//! Dataset discovery: `root/{train,val,test}/{real,fake}/*`, or a root that is itself
//! `{real,fake}`. Class folders are matched by common aliases; labels are 0 = real, 1 = fake.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::{LABEL_FAKE, LABEL_REAL};

/// Errors found while discovering or validating a dataset.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("dataset folder {path} cannot be read: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} holds no class folders: expected real/fake (or REAL/FAKE, 0_real/1_fake, \
         original/manipulated), either directly or under train/val/test"
    )]
    NoClasses { path: PathBuf },
    #[error("the {split} split of {root} is empty: no image files under its class folders")]
    EmptySplit { root: PathBuf, split: Split },
    #[error(
        "the {split} split of {root} has only {class} images ({count}); a detector needs both \
         real and fake examples"
    )]
    OneClass {
        root: PathBuf,
        split: Split,
        class: &'static str,
        count: usize,
    },
    #[error("{root} has no {split} split (found: {found})")]
    MissingSplit {
        root: PathBuf,
        split: Split,
        found: String,
    },
    #[error("every image of the {split} split of {root} failed to decode ({count} files)")]
    AllUnreadable {
        root: PathBuf,
        split: Split,
        count: usize,
    },
    #[error("cancelled")]
    Cancelled,
}

/// A dataset split. A root that is itself `{real,fake}` is the single split `All`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Val,
    Test,
    All,
}

impl Split {
    pub const NAMED: [Split; 3] = [Split::Train, Split::Val, Split::Test];
    pub fn name(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Val => "val",
            Split::Test => "test",
            Split::All => "all",
        }
    }
    fn from_folder(name: &str) -> Option<Split> {
        match name.to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Split::Train),
            "val" | "valid" | "validation" => Some(Split::Val),
            "test" | "testing" => Some(Split::Test),
            _ => None,
        }
    }
}

impl std::fmt::Display for Split {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Split {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.eq_ignore_ascii_case("all") {
            return Ok(Split::All);
        }
        Split::from_folder(s).ok_or_else(|| format!("unknown split '{s}' (train, val, test, all)"))
    }
}

/// Maps a class folder name to its label, accepting the common aliases.
pub fn label_for_folder(name: &str) -> Option<u32> {
    match name.to_ascii_lowercase().as_str() {
        "real" | "0_real" | "original" | "originals" | "pristine" => Some(LABEL_REAL),
        "fake" | "1_fake" | "manipulated" | "fakes" => Some(LABEL_FAKE),
        _ => None,
    }
}

/// One image and its label.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Sample {
    pub path: PathBuf,
    pub label: u32,
}

/// The files of a dataset, per split, sorted by path.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetIndex {
    pub root: PathBuf,
    pub splits: BTreeMap<Split, Vec<Sample>>,
}

impl DatasetIndex {
    /// Discovers the splits and class folders under `root` and checks that every split has
    /// images of both classes.
    pub fn discover(root: &Path) -> Result<DatasetIndex, DataError> {
        let index = DatasetIndex::scan(root)?;
        for split in index.splits.keys() {
            index.check_split(*split)?;
        }
        Ok(index)
    }

    /// Discovers the splits under `root` like [`DatasetIndex::discover`], but checks only the
    /// `used` ones that exist (a missing one is named when asked for): a problem in a split
    /// nobody reads refuses nothing. Check any other split before using it
    /// ([`DatasetIndex::checked_split`]).
    pub fn discover_for(root: &Path, used: &[Split]) -> Result<DatasetIndex, DataError> {
        let index = DatasetIndex::scan(root)?;
        for split in used.iter().filter(|s| index.splits.contains_key(s)) {
            index.check_split(*split)?;
        }
        Ok(index)
    }

    /// The samples of `split` after checking it has images of both classes.
    pub fn checked_split(&self, split: Split) -> Result<&[Sample], DataError> {
        let samples = self.split(split)?;
        self.check_split(split)?;
        Ok(samples)
    }

    /// The splits and class folders under `root`, unchecked.
    fn scan(root: &Path) -> Result<DatasetIndex, DataError> {
        let mut splits = BTreeMap::new();
        for (name, path) in subfolders(root)? {
            if let Some(split) = Split::from_folder(&name) {
                let samples = class_samples(&path)?;
                if let Some(samples) = samples {
                    splits.insert(split, samples);
                }
            }
        }
        if splits.is_empty() {
            match class_samples(root)? {
                Some(samples) => {
                    splits.insert(Split::All, samples);
                }
                None => {
                    return Err(DataError::NoClasses {
                        path: root.to_path_buf(),
                    });
                }
            }
        }
        Ok(DatasetIndex {
            root: root.to_path_buf(),
            splits,
        })
    }

    /// The samples of `split`, or a clear error naming the splits that do exist.
    pub fn split(&self, split: Split) -> Result<&[Sample], DataError> {
        self.splits
            .get(&split)
            .map(Vec::as_slice)
            .ok_or_else(|| DataError::MissingSplit {
                root: self.root.clone(),
                split,
                found: self
                    .splits
                    .keys()
                    .map(|s| s.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// `[real, fake]` image counts of a split.
    pub fn class_counts(&self, split: Split) -> [usize; 2] {
        let mut counts = [0; 2];
        for sample in self.splits.get(&split).into_iter().flatten() {
            counts[sample.label as usize] += 1;
        }
        counts
    }

    fn check_split(&self, split: Split) -> Result<(), DataError> {
        let counts = self.class_counts(split);
        check_counts(&self.root, split, counts)
    }
}

/// Fails on an empty or one-class split.
pub fn check_counts(root: &Path, split: Split, counts: [usize; 2]) -> Result<(), DataError> {
    match counts {
        [0, 0] => Err(DataError::EmptySplit {
            root: root.to_path_buf(),
            split,
        }),
        [n, 0] => Err(DataError::OneClass {
            root: root.to_path_buf(),
            split,
            class: "real",
            count: n,
        }),
        [0, n] => Err(DataError::OneClass {
            root: root.to_path_buf(),
            split,
            class: "fake",
            count: n,
        }),
        _ => Ok(()),
    }
}

fn read_dir(path: &Path) -> Result<std::fs::ReadDir, DataError> {
    std::fs::read_dir(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn subfolders(path: &Path) -> Result<Vec<(String, PathBuf)>, DataError> {
    let mut out = Vec::new();
    for entry in read_dir(path)?.flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.push((entry.file_name().to_string_lossy().into_owned(), p));
        }
    }
    out.sort();
    Ok(out)
}

/// The samples of a folder holding class subfolders, or `None` when it holds no class folder.
fn class_samples(folder: &Path) -> Result<Option<Vec<Sample>>, DataError> {
    let mut found_class = false;
    let mut samples = Vec::new();
    for (name, path) in subfolders(folder)? {
        if let Some(label) = label_for_folder(&name) {
            found_class = true;
            for entry in read_dir(&path)?.flatten() {
                let file = entry.path();
                if is_candidate_image(&file) {
                    samples.push(Sample { path: file, label });
                }
            }
        }
    }
    samples.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(found_class.then_some(samples))
}

/// Every regular, non-hidden file in a class folder is a candidate image, except the demo
/// set's ground-truth masks (`*_mask.png`). Files that are not images are reported as
/// unreadable when decoded, never dropped silently.
fn is_candidate_image(path: &Path) -> bool {
    let Some(name) = path.file_name().map(|n| n.to_string_lossy()) else {
        return false;
    };
    !name.starts_with('.') && !is_mask_file(path) && path.is_file()
}

/// Whether `path` is a ground-truth mask (`<name>_mask.png`) stored beside a fake.
pub fn is_mask_file(path: &Path) -> bool {
    path.file_name()
        .map(|n| {
            n.to_string_lossy()
                .to_ascii_lowercase()
                .ends_with("_mask.png")
        })
        .unwrap_or(false)
}

/// The ground-truth mask stored beside an image, if there is one.
pub fn mask_path_for(image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    image.with_file_name(format!("{stem}_mask.png"))
}
