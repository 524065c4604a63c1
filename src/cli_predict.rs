//! `fakelens predict (FILE… | DIR) --run DIR [--run DIR…] [--crop auto|off] --csv OUT`: one
//! CSV row per file — its path, the face box judged, and each run's fake probability and
//! verdict at the run's threshold — or the reason the file could not be judged. A batch in
//! which some files are unreadable still succeeds (they are counted); a bad run or
//! checkpoint, or no input at all, fails before anything is written.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::device::DeviceChoice;
use crate::inspect::face::FaceFinder;
use crate::inspect::inputs::expand_inputs;
use crate::inspect::photo::{CropMode, prepare_photo};
use crate::inspect::verdict::Judge;

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Image files and folders (walked recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// A trained run folder (repeat for several detectors).
    #[arg(long, required = true)]
    pub run: Vec<PathBuf>,
    /// Crop the largest face (auto) or judge the whole image (off).
    #[arg(long, value_enum, default_value = "auto")]
    pub crop: CropMode,
    /// Where the CSV goes (written atomically when the batch is done).
    #[arg(long)]
    pub csv: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

/// A CSV field: quoted, with quotes doubled (paths may hold commas and quotes).
fn field(text: &str) -> String {
    format!("\"{}\"", text.replace('"', "\"\""))
}

pub fn predict_command(args: &PredictArgs) -> anyhow::Result<()> {
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let cancel = AtomicBool::new(false);
    let judges = args
        .run
        .iter()
        .map(|dir| {
            Judge::load(dir, &device, &cancel)
                .with_context(|| format!("loading run {}", dir.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    for judge in &judges {
        println!(
            "{}: threshold {:.4} ({})",
            judge.run.label(),
            judge.threshold,
            judge.threshold_source
        );
    }
    let inputs = expand_inputs(&args.inputs);
    if inputs.files.is_empty() {
        anyhow::bail!("no files to judge in {:?}", args.inputs);
    }
    let mut finder = FaceFinder::new()?;
    let mut header = vec![
        "path",
        "face_x",
        "face_y",
        "face_width",
        "face_height",
        "faces_found",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    for judge in &judges {
        header.push(field(&format!("{} fake_probability", judge.run.label())));
        header.push(field(&format!("{} verdict", judge.run.label())));
    }
    header.push("error".into());
    let mut rows = vec![header.join(",")];
    let (mut judged, mut unreadable) = (0usize, 0usize);
    let bar = indicatif::ProgressBar::new(inputs.files.len() as u64);
    for path in &inputs.files {
        let mut row = vec![field(&path.to_string_lossy())];
        match prepare_photo(path, args.crop, &mut finder, None) {
            Ok(photo) => {
                match photo.face.and_then(|i| photo.faces.get(i)) {
                    Some(b) => row.extend([b.x, b.y, b.width, b.height].map(|v| v.to_string())),
                    None => row.extend(std::iter::repeat_n(String::new(), 4)),
                }
                row.push(photo.faces.len().to_string());
                for judge in &judges {
                    let verdict = judge
                        .input_of(&photo)
                        .and_then(|input| judge.verdict(&input))
                        .with_context(|| format!("judging {}", path.display()))?;
                    row.push(format!("{:.6}", verdict.fake_probability));
                    row.push(if verdict.fake { "fake" } else { "real" }.to_string());
                }
                row.push(photo.note.map(|n| field(&n)).unwrap_or_default());
                judged += 1;
            }
            Err(e) => {
                row.extend(std::iter::repeat_n(String::new(), 5 + 2 * judges.len()));
                row.push(field(&e.to_string()));
                bar.suspend(|| eprintln!("{e}"));
                unreadable += 1;
            }
        }
        rows.push(row.join(","));
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (path, reason) in &inputs.errors {
        eprintln!("{}: {reason}", path.display());
    }
    let mut text = rows.join("\n");
    text.push('\n');
    crate::fsutil::write_atomic(&args.csv, text.as_bytes())
        .with_context(|| format!("writing {}", args.csv.display()))?;
    println!(
        "{} files: {judged} judged, {unreadable} unreadable{}; wrote {}",
        inputs.files.len(),
        if inputs.errors.is_empty() {
            String::new()
        } else {
            format!(", {} folders not listed", inputs.errors.len())
        },
        args.csv.display()
    );
    Ok(())
}
