//! The compute worker: one named thread that owns the Candle device and every tensor. The UI
//! sends [`Command`]s and receives plain-data [`Event`]s over bounded crossbeam channels; the
//! worker wakes the UI after each send. Any error — or a panic — becomes an event.

mod eval_jobs;
pub mod explain_jobs;
pub mod inspect_jobs;
mod jobs;
mod loaded_runs;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded};

use crate::config::TrainConfig;
use crate::data::{Sample, Split, Unreadable};
use crate::device::DeviceChoice;
use crate::runs::{EpochRecord, RunRecord};
use crate::train::TrainEvent;

/// Commands the UI sends to the compute thread.
#[derive(Clone, Debug)]
pub enum Command {
    /// Discover a dataset, report it, then decode it (listing unreadable files). `None` opens
    /// the built-in demo data, generating it on first use.
    LoadDataset { root: Option<PathBuf> },
    /// Train a model; decodes the dataset first unless it is already cached.
    StartTraining {
        config: TrainConfig,
        data_root: PathBuf,
        runs_dir: PathBuf,
        device: DeviceChoice,
    },
    /// Continue an interrupted or stopped run from its saved state, on its own dataset.
    ResumeTraining {
        run_dir: PathBuf,
        device: DeviceChoice,
    },
    /// Evaluate a run on a dataset split (from the run's cache when still valid).
    Evaluate {
        request: crate::eval::run_eval::EvalRequest,
        device: DeviceChoice,
    },
    /// Write an evaluation's metrics, scores, curves and plots into a folder.
    ExportEvaluation {
        outcome: Box<crate::eval::run_eval::EvalOutcome>,
        out_dir: PathBuf,
    },
    /// Turn a checkpoint trained elsewhere into a run folder under `runs_dir`.
    ImportRun {
        file: PathBuf,
        model: crate::config::ModelKind,
        runs_dir: PathBuf,
    },
    /// The maps of one image for each of several runs (the Explain tab's side by side).
    ExplainImage {
        request: explain_jobs::ExplainImageRequest,
        device: DeviceChoice,
    },
    /// Per-class mean maps or faithfulness of one run over a split (a background job).
    SplitMaps {
        request: explain_jobs::SplitMapsRequest,
        device: DeviceChoice,
    },
    /// Judge photos with each run (the Inspect tab); answers come one file at a time.
    Inspect {
        request: inspect_jobs::InspectRequest,
        device: DeviceChoice,
    },
    /// Stop the thread.
    Shutdown,
}

/// The files and class counts of a dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct DatasetSummary {
    pub root: PathBuf,
    pub splits: Vec<(Split, Vec<Sample>)>,
}

impl DatasetSummary {
    pub fn counts(&self) -> Vec<(Split, [usize; 2])> {
        self.splits
            .iter()
            .map(|(split, samples)| {
                let mut counts = [0; 2];
                for s in samples {
                    counts[s.label as usize] += 1;
                }
                (*split, counts)
            })
            .collect()
    }
}

/// Events the compute thread sends back.
#[derive(Clone, Debug)]
pub enum Event {
    /// Something the user should know that is not an error.
    Notice(String),
    /// Decoding images: `stage` is the split name.
    Progress {
        task: Task,
        stage: String,
        done: usize,
        total: usize,
    },
    DatasetLoaded(DatasetSummary),
    /// The dataset has been decoded and its faces found; these files could not be read,
    /// and in these no face was found (of `images` decoded).
    DatasetScanned {
        root: PathBuf,
        unreadable: Vec<Unreadable>,
        no_face: Vec<PathBuf>,
        images: usize,
    },
    Failed {
        task: Task,
        error: String,
    },
    Training(TrainEventData),
    TrainingFinished {
        run_dir: PathBuf,
        record: Box<RunRecord>,
    },
    /// A finished evaluation (scores, metrics and curves as plain data).
    Evaluated(Box<crate::eval::run_eval::EvalOutcome>),
    /// A checkpoint became this run folder.
    RunImported {
        run_dir: PathBuf,
    },
    /// One image explained by each requested run.
    Explained(Box<explain_jobs::ExplainedImage>),
    /// A job that answers in parts (Inspect) has finished; the worker is free.
    JobDone {
        task: Task,
    },
    /// One file of an Inspect request: its card, or why it could not be judged.
    Inspected {
        id: u64,
        path: PathBuf,
        result: Box<Result<inspect_jobs::InspectedPhoto, String>>,
    },
    /// A finished mean-map or faithfulness job.
    SplitMaps {
        request: explain_jobs::SplitMapsRequest,
        label: String,
        result: Box<explain_jobs::SplitMapsResult>,
    },
}

/// Which job an event belongs to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Task {
    Dataset,
    Training,
    Evaluation,
    /// Explanation jobs (an image's maps, mean maps, faithfulness).
    Explain,
    /// Judging dropped photos.
    Inspect,
}

/// A training event as plain data for the UI.
#[derive(Clone, Debug)]
pub enum TrainEventData {
    Started {
        run_dir: PathBuf,
        param_count: usize,
        /// What a resumed run had already done (empty for a new run).
        epochs: Vec<EpochRecord>,
        step_losses: Vec<f32>,
    },
    Batch(crate::train::BatchProgress),
    Evaluating(crate::train::EvalProgress),
    Epoch(EpochRecord),
    Collapsed {
        message: String,
    },
    CheckpointSaved {
        epoch: usize,
    },
}

impl From<TrainEvent> for TrainEventData {
    fn from(e: TrainEvent) -> Self {
        match e {
            TrainEvent::Started { run_dir, record } => TrainEventData::Started {
                run_dir,
                param_count: record.param_count,
                epochs: record.epochs,
                step_losses: record.step_losses,
            },
            TrainEvent::Batch(b) => TrainEventData::Batch(b),
            TrainEvent::Evaluating(p) => TrainEventData::Evaluating(p),
            TrainEvent::Epoch(r) => TrainEventData::Epoch(r),
            TrainEvent::Collapsed { message, .. } => TrainEventData::Collapsed { message },
            TrainEvent::CheckpointSaved { epoch, .. } => TrainEventData::CheckpointSaved { epoch },
        }
    }
}

/// Wakes the UI after an event is sent (the GUI passes `ctx.request_repaint`).
pub type Waker = Arc<dyn Fn() + Send + Sync>;

/// The sending half the jobs use: important events block, progress may be dropped.
#[derive(Clone)]
pub(crate) struct EventSink {
    tx: Sender<Event>,
    waker: Waker,
}

impl EventSink {
    /// Sends an event the UI must see. Returns false when the UI is gone.
    pub(crate) fn send(&self, event: Event) -> bool {
        let ok = self.tx.send(event).is_ok();
        (self.waker)();
        ok
    }
    /// Sends a progress event unless the channel is full (the UI is behind).
    pub(crate) fn send_lossy(&self, event: Event) {
        match self.tx.try_send(event) {
            Ok(()) | Err(TrySendError::Full(_)) => (self.waker)(),
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The UI's handle on the compute thread.
pub struct WorkerHandle {
    tx: Sender<Command>,
    rx: Receiver<Event>,
    cancel: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

/// Capacity of the event channel.
const EVENT_CAPACITY: usize = 256;

impl WorkerHandle {
    /// Starts the compute thread.
    pub fn spawn(waker: Waker) -> std::io::Result<WorkerHandle> {
        let (tx, cmd_rx) = bounded::<Command>(16);
        let (event_tx, rx) = bounded::<Event>(EVENT_CAPACITY);
        let cancel = Arc::new(AtomicBool::new(false));
        let sink = EventSink {
            tx: event_tx,
            waker,
        };
        let worker_cancel = cancel.clone();
        let thread = std::thread::Builder::new()
            .name("fakelens-compute".into())
            .spawn(move || jobs::run(cmd_rx, sink, worker_cancel))?;
        Ok(WorkerHandle {
            tx,
            rx,
            cancel,
            thread: Some(thread),
        })
    }

    /// Queues a command. Returns false if the worker has stopped or its queue is full.
    pub fn send(&self, command: Command) -> bool {
        self.tx.try_send(command).is_ok()
    }

    /// Asks the running job to stop at the next batch.
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::Relaxed);
    }

    /// Events received so far (never blocks).
    pub fn try_recv(&self) -> Option<Event> {
        self.rx.try_recv().ok()
    }

    /// Waits up to `timeout` for the next event (for tests and the CLI, never the UI).
    pub fn recv_timeout(&self, timeout: std::time::Duration) -> Option<Event> {
        self.rx.recv_timeout(timeout).ok()
    }
}

impl Drop for WorkerHandle {
    fn drop(&mut self) {
        self.cancel.store(true, Ordering::Relaxed);
        let _ = self.tx.try_send(Command::Shutdown);
        // Drain so a worker blocked on a full channel can finish; then detach: the thread
        // stops within one batch, and the process may exit before it does.
        while self.rx.try_recv().is_ok() {}
        drop(self.thread.take());
    }
}
