//! Short file-system jobs off the UI thread (listing runs, reading a run's record, walking a
//! dropped folder): one named thread per job, its answer sent to `tx`, then a repaint.

use crossbeam_channel::Sender;

/// Runs `job` on a thread named `name`; its answer goes to `tx`, and the window repaints.
pub fn spawn<T: Send + 'static>(
    ctx: &egui::Context,
    name: &str,
    tx: Sender<T>,
    job: impl FnOnce() -> T + Send + 'static,
) -> std::io::Result<()> {
    let ctx = ctx.clone();
    std::thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            // The tab may be gone; then nobody waits for the answer.
            let _ = tx.send(job());
            ctx.request_repaint();
        })
        .map(drop)
}
