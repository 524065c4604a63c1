//! `fakelens predict (FILE… | DIR) --run DIR [--run DIR…] [--crop own|face|whole]
//! [--unsure-band B] --csv OUT`: one CSV row per file — its path, the face box judged, and
//! each run's calibrated and raw fake probability, its framing and its verdict (real, fake
//! or unsure) at the run's threshold — or the reason the file could not be judged. Paths are
//! written losslessly (see `csv_text`: `\xNN` for bytes that are not UTF-8). A batch in
//! which some files are unreadable still succeeds (they are counted); a bad run or
//! checkpoint, or no input at all, fails before anything is written.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;

use anyhow::Context;

use crate::data::face::FaceFinder;
use crate::device::DeviceChoice;
use crate::inspect::inputs::expand_inputs;
use crate::inspect::judge::judge_photo;
use crate::inspect::photo::InputOverride;
use crate::inspect::verdict::{DEFAULT_UNSURE_BAND, Judge};

#[derive(clap::Args, Debug)]
pub struct PredictArgs {
    /// Image files and folders (walked recursively).
    #[arg(required = true)]
    pub inputs: Vec<PathBuf>,
    /// A trained run folder (repeat for several detectors).
    #[arg(long, required = true)]
    pub run: Vec<PathBuf>,
    /// How each detector sees a photo: its own input profile (own), the largest face cropped
    /// 1.3× (face), or the whole image (whole).
    #[arg(long, value_enum, default_value = "own")]
    pub crop: InputOverride,
    /// A calibrated fake probability within this distance of the threshold reads unsure.
    #[arg(long, default_value_t = DEFAULT_UNSURE_BAND)]
    pub unsure_band: f64,
    /// Where the CSV goes (written atomically when the batch is done).
    #[arg(long)]
    pub csv: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

pub fn predict_command(args: &PredictArgs) -> anyhow::Result<()> {
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    if !(0.0..0.5).contains(&args.unsure_band) {
        anyhow::bail!(
            "--unsure-band must be at least 0 and below 0.5, got {}",
            args.unsure_band
        );
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
        let temperature = match judge.run.record.temperature {
            Some(t) => format!("temperature {t:.3}"),
            None => "no temperature fitted: probabilities are the model's own".to_string(),
        };
        println!(
            "{}: sees {}; threshold {:.4} ({}); {temperature}",
            judge.run.label(),
            judge.run.profile().framing.describe(),
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
    const PER_RUN: usize = 4;
    for judge in &judges {
        let label = judge.run.label();
        for column in [
            "fake_probability",
            "raw_fake_probability",
            "input",
            "verdict",
        ] {
            header.push(format!("{label} {column}"));
        }
    }
    header.push("error".into());
    let mut rows = vec![header];
    let (mut judged, mut unreadable) = (0usize, 0usize);
    let bar = indicatif::ProgressBar::new(inputs.files.len() as u64);
    let judge_refs: Vec<&Judge> = judges.iter().collect();
    for path in &inputs.files {
        let mut row = vec![crate::csv_text::escape_path(path)];
        let judged_photo = judge_photo(
            path,
            args.crop,
            None,
            &mut finder,
            &judge_refs,
            args.unsure_band,
            None,
            &|| false,
        );
        match judged_photo {
            Ok(photo) => {
                // The face box of the first detector that saw a face.
                match photo.face().and_then(|i| photo.photo.faces.get(i)) {
                    Some(b) => row.extend([b.x, b.y, b.width, b.height].map(|v| v.to_string())),
                    None => row.extend(std::iter::repeat_n(String::new(), 4)),
                }
                row.push(photo.photo.faces.len().to_string());
                let note = photo.note();
                for answer in photo.answers {
                    let answer = answer.with_context(|| format!("judging {}", path.display()))?;
                    row.push(format!("{:.6}", answer.verdict.fake_probability));
                    row.push(format!("{:.6}", answer.verdict.raw_fake_probability));
                    row.push(answer.seen.framing.describe());
                    row.push(answer.verdict.decision.name().to_string());
                }
                row.push(note.unwrap_or_default());
                judged += 1;
            }
            Err(e) => {
                row.extend(std::iter::repeat_n(
                    String::new(),
                    5 + PER_RUN * judges.len(),
                ));
                row.push(e.to_string());
                bar.suspend(|| eprintln!("{e}"));
                unreadable += 1;
            }
        }
        rows.push(row);
        bar.inc(1);
    }
    bar.finish_and_clear();
    for (path, reason) in &inputs.errors {
        eprintln!("{}: {reason}", path.display());
    }
    let text = crate::csv_text::csv_document(rows)
        .with_context(|| format!("encoding {}", args.csv.display()))?;
    crate::fsutil::write_atomic(&args.csv, &text)
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
