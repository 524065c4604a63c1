//! What a drop or a `predict` command line names, as the list of files to judge: files as
//! given (a file that is not an image is reported when it is decoded, never dropped), and
//! folders walked recursively in name order, skipping hidden files and the demo set's
//! `_mask.png` masks.

use std::path::{Path, PathBuf};

/// The files to judge, and the paths that could not be listed with the cause.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Inputs {
    pub files: Vec<PathBuf>,
    pub errors: Vec<(PathBuf, String)>,
}

/// Expands `paths` (files and folders) into files.
pub fn expand_inputs(paths: &[PathBuf]) -> Inputs {
    let mut inputs = Inputs::default();
    for path in paths {
        if path.is_dir() {
            walk(path, &mut inputs);
        } else {
            // Missing files too: their row says so.
            inputs.files.push(path.clone());
        }
    }
    inputs
}

fn walk(dir: &Path, inputs: &mut Inputs) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) => {
            inputs
                .errors
                .push((dir.to_path_buf(), format!("cannot list the folder: {e}")));
            return;
        }
    };
    let mut paths: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    paths.sort();
    for path in paths {
        let hidden = path
            .file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with('.'));
        if hidden || crate::data::index::is_mask_file(&path) {
            continue;
        }
        if path.is_dir() {
            walk(&path, inputs);
        } else if path.is_file() {
            inputs.files.push(path);
        }
    }
}
