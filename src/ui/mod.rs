//! The window: an app shell with a tab bar (Dataset, Training, Compare, Explain, Inspect) over the compute
//! worker.
//! UI code only reads plain data from worker events and returns user choices as values.

pub mod app;
pub mod background;
pub mod compare_plots;
pub mod compare_tab;
pub mod dataset_tab;
pub mod explain_split;
pub mod explain_tab;
pub mod explain_view;
pub mod inspect_tab;
pub mod run_list;
pub mod thumbnails;
pub mod training_tab;

pub use app::{FakeLensApp, Settings, Tab};

use std::path::PathBuf;

/// Command-line choices for the window.
#[derive(Clone, Debug, Default)]
pub struct WindowOptions {
    /// Save a PNG of the first settled frame, then quit.
    pub screenshot: Option<PathBuf>,
    pub tab: Option<String>,
    pub data: Option<PathBuf>,
    /// A run directory whose history is shown in the Training tab.
    pub run: Option<PathBuf>,
    /// Runs ticked and evaluated in the Compare tab.
    pub compare: Vec<PathBuf>,
    /// Runs ticked in the Explain tab.
    pub explain: Vec<PathBuf>,
    /// Runs ticked in the Inspect tab, and files judged there.
    pub detector: Vec<PathBuf>,
    pub inspect: Vec<PathBuf>,
}

/// Opens the window.
pub fn run_window(opts: WindowOptions) -> anyhow::Result<()> {
    let tab = match &opts.tab {
        Some(name) => Some(name.parse::<Tab>().map_err(anyhow::Error::msg)?),
        None => None,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("FakeLens")
            .with_inner_size([1280.0, 800.0])
            .with_min_inner_size([800.0, 500.0])
            .with_drag_and_drop(true),
        ..Default::default()
    };
    eframe::run_native(
        "FakeLens",
        options,
        Box::new(move |cc| Ok(Box::new(FakeLensApp::from_creation_context(cc, tab, opts)?))),
    )
    .map_err(|e| anyhow::anyhow!("cannot open the window: {e}"))
}
