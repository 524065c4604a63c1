//! The compute thread's loop and its jobs. Every job's errors and panics become events.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use crossbeam_channel::Receiver;

use super::{Command, DatasetSummary, Event, EventSink, Task, TrainEventData};
use crate::data::profile::Framing;
use crate::data::{DataError, DatasetIndex};
use crate::runs::{RunRecord, RunStatus};
use crate::train::TrainData;

/// State kept between jobs: the last decoded dataset, so training after loading it in the
/// Dataset tab does not decode again.
#[derive(Default)]
struct State {
    data: Option<Arc<TrainData>>,
    runs: super::loaded_runs::LoadedRuns,
    inspect: super::inspect_jobs::InspectState,
}

pub(super) fn run(commands: Receiver<Command>, sink: EventSink, cancel: Arc<AtomicBool>) {
    let mut state = State::default();
    for command in commands {
        let task = match &command {
            Command::LoadDataset { .. } => Task::Dataset,
            Command::StartTraining { .. } | Command::ResumeTraining { .. } => Task::Training,
            Command::Evaluate { .. }
            | Command::ExportEvaluation { .. }
            | Command::ImportRun { .. } => Task::Evaluation,
            Command::ExplainImage { .. } | Command::SplitMaps { .. } => Task::Explain,
            Command::Inspect { .. } => Task::Inspect,
            Command::Shutdown => return,
        };
        // A Stop applies to the job that was running when it was pressed, not to this one.
        cancel.store(false, std::sync::atomic::Ordering::Relaxed);
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| match command {
            Command::LoadDataset { root } => load_dataset(&mut state, root, &sink, &cancel),
            Command::StartTraining {
                config,
                data_root,
                runs_dir,
                device,
            } => train(
                &mut state,
                TrainJob::New {
                    config: &config,
                    data_root: &data_root,
                    runs_dir: &runs_dir,
                },
                device,
                &sink,
                &cancel,
            ),
            Command::ResumeTraining { run_dir, device } => train(
                &mut state,
                TrainJob::Resume { run_dir: &run_dir },
                device,
                &sink,
                &cancel,
            ),
            Command::Evaluate { request, device } => {
                super::eval_jobs::evaluate(&request, device, &sink, &cancel)
            }
            Command::ExportEvaluation { outcome, out_dir } => {
                super::eval_jobs::export_evaluation(&outcome, &out_dir, &sink)
            }
            Command::ImportRun {
                file,
                model,
                runs_dir,
            } => super::eval_jobs::import_run(&file, model, &runs_dir, &sink),
            Command::ExplainImage { request, device } => {
                super::explain_jobs::explain_image(&mut state.runs, request, device, &sink, &cancel)
            }
            Command::SplitMaps { request, device } => {
                split_maps(&mut state, &request, device, &sink, &cancel)
            }
            Command::Inspect { request, device } => super::inspect_jobs::inspect(
                &mut state.inspect,
                &mut state.runs,
                &request,
                device,
                &sink,
                &cancel,
            ),
            Command::Shutdown => Ok(()),
        }));
        let error = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(crate::report::chain(&e)),
            Err(panic) => Some(format!(
                "internal error (the job crashed: {}); the app keeps running",
                panic_text(&panic)
            )),
        };
        if let Some(error) = error
            && !sink.send(Event::Failed { task, error })
        {
            return;
        }
    }
}

fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "unknown cause".into())
}

fn cached_or_prepare(
    state: &mut State,
    root: &Path,
    framing: &Framing,
    task: Task,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> Result<Arc<TrainData>, DataError> {
    if let Some(data) = &state.data
        && data.root == root
        && data.framing() == framing
    {
        return Ok(data.clone());
    }
    state.data = None;
    let progress = |stage: &str, done: usize, total: usize| {
        if done == total || done.is_multiple_of(64) {
            sink.send_lossy(Event::Progress {
                task,
                stage: stage.to_string(),
                done,
                total,
            });
        }
    };
    let data = Arc::new(TrainData::prepare(root, framing, cancel, &progress)?);
    state.data = Some(data.clone());
    Ok(data)
}

fn split_maps(
    state: &mut State,
    request: &super::explain_jobs::SplitMapsRequest,
    device: crate::device::DeviceChoice,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    let framing = RunRecord::load(&request.run)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .input_profile()
        .framing;
    let data = cached_or_prepare(state, &request.data, &framing, Task::Explain, sink, cancel)?;
    let split = match request.split {
        crate::data::Split::Train => data.train.clone(),
        crate::data::Split::Val => data.val.clone(),
        crate::data::Split::Test => data
            .test
            .clone()
            .ok_or_else(|| anyhow::anyhow!("{} has no test split", request.data.display()))?,
        crate::data::Split::All => anyhow::bail!("choose the train, val or test split"),
    };
    super::explain_jobs::split_maps(&mut state.runs, &split, request, device, sink, cancel)
}

fn load_dataset(
    state: &mut State,
    root: Option<std::path::PathBuf>,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    let root = match root {
        Some(root) => root,
        None => {
            let first_start = !crate::data::demo::demo_data_dir()
                .join("README.txt")
                .is_file();
            if first_start {
                sink.send(Event::Notice(
                    "creating the built-in demo dataset (first start)…".into(),
                ));
            }
            let dir = crate::data::demo::ensure_demo_data()?;
            if first_start {
                sink.send(Event::Notice(format!(
                    "created the built-in demo dataset in {}",
                    dir.display()
                )));
            }
            dir
        }
    };
    let root = root.as_path();
    let index = DatasetIndex::discover(root)?;
    sink.send(Event::DatasetLoaded(DatasetSummary {
        root: root.to_path_buf(),
        splits: index.splits.into_iter().collect(),
    }));
    // Decoding needs train and val; a test-only or flat dataset is shown but not decoded.
    // Faces are found as new runs frame them, so a training run that follows reuses them.
    let framing = Framing::default_for_new_runs();
    let data = match cached_or_prepare(state, root, &framing, Task::Dataset, sink, cancel) {
        Ok(data) => data,
        Err(DataError::MissingSplit { .. }) => return Ok(()),
        Err(e) => return Err(e.into()),
    };
    sink.send(Event::DatasetScanned {
        root: root.to_path_buf(),
        unreadable: data.unreadable(),
        no_face: data.no_face(),
        images: data.image_count(),
    });
    Ok(())
}

/// A new run, or the continuation of a saved one.
enum TrainJob<'a> {
    New {
        config: &'a crate::config::TrainConfig,
        data_root: &'a Path,
        runs_dir: &'a Path,
    },
    Resume {
        run_dir: &'a Path,
    },
}

fn train(
    state: &mut State,
    job: TrainJob<'_>,
    device: crate::device::DeviceChoice,
    sink: &EventSink,
    cancel: &AtomicBool,
) -> anyhow::Result<()> {
    let (device, notice) = crate::device::open(device)?;
    if let Some(notice) = notice {
        sink.send(Event::Notice(notice));
    }
    let (data_root, run_dir, framing) = match &job {
        TrainJob::New {
            config,
            data_root,
            runs_dir,
        } => (
            data_root.to_path_buf(),
            crate::runs::layout::new_run_dir(runs_dir, config.model),
            config.input.clone(),
        ),
        TrainJob::Resume { run_dir } => {
            let record = crate::runs::RunRecord::load(run_dir)?;
            let framing = record.config.input.clone();
            (record.dataset, run_dir.to_path_buf(), framing)
        }
    };
    let data = cached_or_prepare(state, &data_root, &framing, Task::Training, sink, cancel)?;
    let mut on_event = |event: crate::train::TrainEvent| {
        let event = TrainEventData::from(event);
        match event {
            TrainEventData::Batch(_) => sink.send_lossy(Event::Training(event)),
            TrainEventData::Evaluating(p) if p.images_done > 0 => {
                sink.send_lossy(Event::Training(event));
            }
            _ => {
                sink.send(Event::Training(event));
            }
        }
    };
    let record = match job {
        TrainJob::New { config, .. } => {
            crate::train::train(config, &data, &run_dir, &device, cancel, &mut on_event)?
        }
        TrainJob::Resume { .. } => {
            crate::train::resume(&data, &run_dir, &device, cancel, &mut on_event)?
        }
    };
    if record.status == RunStatus::Cancelled {
        let saved = match record.best_epoch {
            Some(epoch) => {
                format!("the best checkpoint (epoch {epoch}) and a state to resume from")
            }
            None => "no checkpoint yet (no epoch finished); a state to resume from".to_string(),
        };
        sink.send(Event::Notice(format!(
            "training stopped; {saved} in {}",
            run_dir.display()
        )));
    }
    sink.send(Event::TrainingFinished {
        run_dir,
        record: Box::new(record),
    });
    Ok(())
}
