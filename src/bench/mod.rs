//! `fakelens bench`: training, eval and saliency throughput (and peak memory) of FakeLens
//! against the PyTorch reference script
//! (`benches/reference/train_step.py`) run on the same machine, same shapes and same thread
//! count, in the same invocation; printed as ratios. Never a timed assertion in a test.
//! `--suite` runs every row (`suite`), `--mode drop` the drag-in latency (`drop`), and the
//! data pipeline is measured on its own (`data`).

pub mod args;
pub mod data;
pub mod drop;
pub mod measure;
pub mod onnx;
pub mod suite;

pub use args::{BenchArgs, BenchMode};
use measure::{
    Measurement, fakelens_throughput, open_device, pytorch_throughput, warn_if_debug_build,
};

fn print_row(name: &str, mode: BenchMode, m: &Measurement) {
    let rss = m
        .peak_rss_mib
        .map_or_else(String::new, |r| format!(", peak RSS {r:.0} MiB"));
    println!(
        "{name:<9} {:<8} {:>8.2} images/s  ({:.1} ms/step{rss})",
        mode.name(),
        m.images_per_sec,
        m.ms_per_step
    );
}

pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    if args.suite {
        return suite::run_suite(args);
    }
    let threads = rayon::current_num_threads();
    let batch = args.mode.batch(args.batch_size);
    println!(
        "benchmark: {} {} step, batch {batch}, 256x256, {} steps, {threads} threads",
        args.model.label(),
        args.mode.name(),
        args.steps
    );
    warn_if_debug_build();
    let device = open_device(args)?;
    println!("device: {}", crate::device::describe(&device));
    if args.mode == BenchMode::Drop {
        let d = drop::drop_latency(args.model, args.steps, &device)?;
        let (w, h) = drop::DROP_PHOTO;
        println!(
            "fakelens  drop of a {w}x{h} JPEG judged by {} ({} face(s) found): {:.0} ms to \
             the verdict, {:.0} ms to the saliency map (medians of {} drops)",
            d.detector, d.faces, d.verdict_ms, d.heatmap_ms, args.steps
        );
        return Ok(());
    }
    let ours = fakelens_throughput(
        args.model,
        args.mode,
        args.batch_size,
        args.steps,
        &device,
        args.unfolded,
    )?;
    print_row("fakelens", args.mode, &ours);
    if args.json {
        println!("{}", serde_json::to_string(&ours)?);
    }
    if args.python == "none" {
        return Ok(());
    }
    match pytorch_throughput(args, args.model, args.mode, args.steps, &device, false) {
        Ok((reference, _)) => {
            print_row("pytorch", args.mode, &reference);
            println!(
                "ratio (fakelens / pytorch throughput) = {:.3}; step time ratio = {:.3}",
                ours.images_per_sec / reference.images_per_sec,
                ours.ms_per_step / reference.ms_per_step
            );
            if let (Some(a), Some(b)) = (ours.peak_rss_mib, reference.peak_rss_mib) {
                println!("peak memory ratio (fakelens / pytorch) = {:.3}", a / b);
            }
        }
        Err(e) => println!(
            "pytorch reference not measured: {}",
            crate::report::chain(&e)
        ),
    }
    Ok(())
}
