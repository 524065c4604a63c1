//! `fakelens explain`: heatmaps of one or more trained runs for one image or over a dataset
//! split — PNG overlays, the course's 6×12 grid of images and maps, per-class mean maps, the
//! raw maps as `.npy` float32 (H×W, unnormalised), and faithfulness metrics as JSON.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::common::{resolve_data, watch_interrupt};
use crate::data::decode::decode_rgb;
use crate::data::profile::INPUT_SIZE;
use crate::data::{DatasetIndex, PreparedSplit, Split};
use crate::device::DeviceChoice;
use crate::explain::Method;
use crate::explain::colormap::Colormap;
use crate::explain::faithfulness::measure_faithfulness;
use crate::explain::grid::{GridChoice, grid_figure, grid_maps};
use crate::explain::mean_maps::{SplitJob, mean_maps};
use crate::explain::picture::{MapClass, PictureMap, explain_picture};
use crate::explain::render::{OverlayStyle, colored, grid, overlay, write_npy, write_png};
use crate::explain::selection::Pick;
use crate::explain::smoothgrad::SmoothGradSettings;
use crate::runs::loader::RunModel;

#[derive(clap::Args, Debug)]
pub struct ExplainArgs {
    /// A run folder (repeat to explain the same images with several models side by side).
    #[arg(long, required = true)]
    pub run: Vec<PathBuf>,
    /// One image to explain.
    #[arg(long, conflicts_with = "data")]
    pub image: Option<PathBuf>,
    /// A dataset folder, or `demo`: explain images of `--split`.
    #[arg(long)]
    pub data: Option<String>,
    #[arg(long, default_value = "test")]
    pub split: Split,
    /// saliency, smoothgrad, gradcam or gradcam++.
    #[arg(long, default_value = "saliency")]
    pub method: String,
    /// The layer of a CAM method (default conv3, the course's choice).
    #[arg(long)]
    pub layer: Option<String>,
    /// SmoothGrad: noisy copies per image, and σ as a fraction of the image's range.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    #[arg(long, default_value_t = 0.15)]
    pub sigma: f64,
    /// With --data: the per-class mean maps over the whole split.
    #[arg(long)]
    pub mean: bool,
    /// With --data: faithfulness (pointing game and mask energy where masks exist,
    /// deletion curve) over the split's fakes.
    #[arg(long)]
    pub metrics: bool,
    /// With --metrics: at most this many fakes.
    #[arg(long)]
    pub limit: Option<usize>,
    /// With --data: which images the grid shows.
    #[arg(long, default_value = "random")]
    pub pick: Pick,
    #[arg(long, default_value_t = 36)]
    pub count: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// With --image: explain this class (real or fake) instead of the predicted one.
    #[arg(long)]
    pub class: Option<String>,
    #[arg(long, default_value = "turbo")]
    pub colormap: String,
    #[arg(long, default_value_t = 0.5)]
    pub alpha: f32,
    /// Scale several runs' maps of one image by their common maximum (compare strengths).
    #[arg(long)]
    pub shared_scale: bool,
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value = "auto")]
    pub device: DeviceChoice,
}

impl ExplainArgs {
    fn method(&self) -> anyhow::Result<Method> {
        let method = Method::parse(&self.method, self.layer.as_deref()).with_context(|| {
            format!(
                "unknown method {:?}: expected one of {}",
                self.method,
                crate::explain::method::METHOD_NAMES.join(", ")
            )
        })?;
        Ok(match method {
            Method::SmoothGrad(_) => Method::SmoothGrad(SmoothGradSettings {
                samples: self.samples,
                noise_fraction: self.sigma,
                seed: self.seed,
            }),
            other => other,
        })
    }

    fn style(&self) -> anyhow::Result<OverlayStyle> {
        let colormap = Colormap::parse(&self.colormap).with_context(|| {
            format!(
                "unknown colormap {:?}: turbo, jet or inferno",
                self.colormap
            )
        })?;
        Ok(OverlayStyle {
            colormap,
            alpha: self.alpha,
            top_fraction: 1.0,
        })
    }
}

pub fn explain_command(args: &ExplainArgs) -> anyhow::Result<()> {
    let (device, notice) = crate::device::open(args.device)?;
    if let Some(notice) = notice {
        eprintln!("{notice}");
    }
    let method = args.method()?;
    let style = args.style()?;
    let runs = args
        .run
        .iter()
        .map(|dir| {
            RunModel::load(dir, &device).with_context(|| format!("loading run {}", dir.display()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("creating {}", args.out.display()))?;
    let cancel = Arc::new(AtomicBool::new(false));
    watch_interrupt(&cancel);
    let cancelled = || cancel.load(Ordering::Relaxed);
    match (&args.image, &args.data) {
        (Some(image), _) => explain_image(args, image, &runs, &method, style, &cancelled),
        (None, Some(data)) => {
            let data = resolve_data(data)?;
            explain_split(args, &data, &runs, &method, style, &device, &cancelled)
        }
        (None, None) => anyhow::bail!("give --image FILE or --data PATH"),
    }
}

fn file_stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".to_string())
}

/// `picture` framed as every one of `runs` sees it (they must agree), and whether a face
/// framing found no face.
pub(crate) fn frame_for(
    runs: &[RunModel],
    picture: &image::RgbImage,
) -> anyhow::Result<(image::RgbImage, bool)> {
    let framing = crate::runs::loader::common_framing(runs)?;
    let profile = crate::data::profile::InputProfile::new(
        framing,
        crate::data::profile::Normalization::COURSE,
    );
    let mut finder = crate::data::face::FaceFinder::new()?;
    Ok(profile.frame_with(picture, &mut finder))
}

fn explain_image(
    args: &ExplainArgs,
    path: &Path,
    runs: &[RunModel],
    method: &Method,
    style: OverlayStyle,
    cancelled: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let picture = decode_rgb(path).with_context(|| format!("reading {}", path.display()))?;
    let (shown, no_face) = frame_for(runs, &picture)?;
    if no_face {
        println!(
            "{}: no face found: the whole image is explained",
            path.display()
        );
    }
    let class = match args.class.as_deref() {
        None => MapClass::Predicted,
        Some("real") => MapClass::Label(crate::LABEL_REAL),
        Some("fake") => MapClass::Label(crate::LABEL_FAKE),
        Some(other) => anyhow::bail!("--class {other:?}: expected real or fake"),
    };
    let stem = file_stem(path);
    let mut maps = Vec::new();
    for run in runs {
        let PictureMap {
            fake_probability: fake,
            class,
            map,
        } = explain_picture(run, &shown, class, method, cancelled)
            .with_context(|| format!("explaining {} with {}", path.display(), run.label()))?;
        println!(
            "{}: fake probability {:.4}; {} for the {} class",
            run.label(),
            fake,
            method.label(),
            crate::CLASS_NAMES[class as usize]
        );
        let base = format!("{stem}.{}.{}", run.record.run_id, method.name());
        write_npy(&args.out.join(format!("{base}.npy")), &map)?;
        write_png(
            &args.out.join(format!("{base}.png")),
            &overlay(&shown, &map.normalized(), style),
        )?;
        println!("wrote {}.{{png,npy}}", args.out.join(base).display());
        maps.push(map);
    }
    if maps.len() > 1 {
        let shared_max = maps.iter().map(|m| m.range().1).fold(0.0f32, f32::max);
        let mut tiles = vec![shown.clone()];
        for map in &maps {
            let scaled = if args.shared_scale {
                map.scaled_by(0.0, shared_max)
            } else {
                map.normalized()
            };
            tiles.push(overlay(&shown, &scaled, style));
        }
        let path = args
            .out
            .join(format!("{stem}.{}.side-by-side.png", method.name()));
        write_png(&path, &grid(&tiles, tiles.len(), 4))?;
        println!("wrote {}", path.display());
    }
    Ok(())
}

fn explain_split(
    args: &ExplainArgs,
    data: &Path,
    runs: &[RunModel],
    method: &Method,
    style: OverlayStyle,
    device: &candle_core::Device,
    cancelled: &dyn Fn() -> bool,
) -> anyhow::Result<()> {
    let index = DatasetIndex::discover(data)
        .with_context(|| format!("reading dataset {}", data.display()))?;
    let samples = index.split(args.split)?;
    let never = AtomicBool::new(false);
    let framing = crate::runs::loader::common_framing(runs)?;
    let split = Arc::new(
        PreparedSplit::prepare(data, args.split, samples, &framing, &never, &|_, _| {})
            .with_context(|| {
                format!(
                    "decoding the {} split of {}",
                    args.split.name(),
                    data.display()
                )
            })?,
    );
    for bad in &split.unreadable {
        println!("skipped {}: {}", bad.path.display(), bad.reason);
    }
    let bar = indicatif::ProgressBar::new(split.len() as u64);
    for run in runs {
        let job = SplitJob {
            model: run.model.as_ref(),
            frozen: run.frozen.as_ref(),
            split: &split,
            norm: run.profile().normalization,
            device,
        };
        let tag = format!("{}.{}", run.record.run_id, method.name());
        let mut progress = |done: usize, total: usize| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        };
        if args.mean {
            bar.set_message(format!("mean maps, {}", run.label()));
            let means = mean_maps(&job, method, cancelled, &mut progress)?;
            let path = args.out.join(format!("mean.{tag}.png"));
            let tiles = [
                colored(&means.real.values, INPUT_SIZE, INPUT_SIZE, style.colormap),
                colored(&means.fake.values, INPUT_SIZE, INPUT_SIZE, style.colormap),
            ];
            write_png(&path, &grid(&tiles, 2, 4))?;
            write_npy(&args.out.join(format!("mean-real.{tag}.npy")), &means.real)?;
            write_npy(&args.out.join(format!("mean-fake.{tag}.npy")), &means.fake)?;
            bar.suspend(|| {
                println!(
                    "{}: mean maps over {} real and {} fake images; wrote {} (real | fake)",
                    run.label(),
                    means.real_images,
                    means.fake_images,
                    path.display()
                )
            });
        }
        if args.metrics {
            bar.set_message(format!("faithfulness, {}", run.label()));
            let report = measure_faithfulness(&job, method, args.limit, cancelled, &mut progress)?;
            let path = args.out.join(format!("faithfulness.{tag}.json"));
            crate::fsutil::write_atomic(&path, serde_json::to_string_pretty(&report)?.as_bytes())?;
            let percent = |v: Option<f64>| {
                v.map_or("n/a (no masks)".to_string(), |v| {
                    format!("{:.1} %", 100.0 * v)
                })
            };
            bar.suspend(|| {
                println!(
                    "{} {}: pointing game {} (random point {}), energy in mask {}, deletion AUC {:.4} over {} fakes ({} with masks); wrote {}",
                    run.label(),
                    method.label(),
                    percent(report.pointing_rate),
                    percent(report.random_pointing_rate),
                    percent(report.energy_inside),
                    report.deletion_area,
                    report.fakes,
                    report.masked,
                    path.display()
                );
                let curve: Vec<String> = report
                    .mean_deletion_curve
                    .iter()
                    .map(|v| format!("{v:.3}"))
                    .collect();
                println!(
                    "  mean fake score with 0, 10, …, 100 % of the pixels removed: {}",
                    curve.join(" ")
                );
            });
        }
        if !args.mean && !args.metrics {
            bar.set_message(format!("grid, {}", run.label()));
            let path = write_grid(args, &job, method, style, cancelled, &tag)?;
            bar.suspend(|| println!("{}: wrote {}", run.label(), path.display()));
        }
    }
    bar.finish_and_clear();
    Ok(())
}

/// The course's figure of the split (see `explain::grid`); the raw maps go to
/// `maps.<tag>/<image>.npy`.
fn write_grid(
    args: &ExplainArgs,
    job: &SplitJob<'_>,
    method: &Method,
    style: OverlayStyle,
    cancelled: &dyn Fn() -> bool,
    tag: &str,
) -> anyhow::Result<PathBuf> {
    let choice = GridChoice {
        pick: args.pick,
        count: args.count,
        seed: args.seed,
    };
    let tiles = grid_maps(job, method, choice, cancelled, &mut |_, _| {})?;
    let maps_dir = args.out.join(format!("maps.{tag}"));
    for tile in &tiles {
        write_npy(
            &maps_dir.join(format!("{}.npy", file_stem(&tile.path))),
            &tile.map,
        )?;
    }
    let path = args.out.join(format!("grid.{tag}.png"));
    write_png(&path, &grid_figure(&tiles, style, (INPUT_SIZE / 2) as u32))?;
    Ok(path)
}
