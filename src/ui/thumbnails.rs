//! Lazily decoded thumbnails and previews for the Dataset tab: a background thread decodes
//! only what the grid asks for (the most recent requests first), so a 10,000-image folder
//! scrolls smoothly. Decoding images is plain data work; no tensors here.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crossbeam_channel::{Receiver, Sender, unbounded};

/// Most entries kept before the cache is cleared.
const MAX_ENTRIES: usize = 4000;

enum Slot {
    Pending,
    Ready(egui::TextureHandle),
    Failed(String),
}

/// What the grid can draw for a path right now.
pub enum Thumb<'a> {
    Loading,
    Ready(&'a egui::TextureHandle),
    Failed(&'a str),
}

type Key = (PathBuf, u32);

/// The UI side of the thumbnail loader.
pub struct Thumbnails {
    requests: Sender<Key>,
    results: Receiver<(Key, Result<egui::ColorImage, String>)>,
    slots: HashMap<Key, Slot>,
}

impl Thumbnails {
    /// Starts the loader thread; `ctx` is woken when a thumbnail is ready.
    pub fn new(ctx: &egui::Context) -> std::io::Result<Thumbnails> {
        let (requests, req_rx) = unbounded::<Key>();
        let (res_tx, results) = unbounded();
        let ctx = ctx.clone();
        std::thread::Builder::new()
            .name("fakelens-thumbnails".into())
            .spawn(move || loader(req_rx, res_tx, ctx))?;
        Ok(Thumbnails {
            requests,
            results,
            slots: HashMap::new(),
        })
    }

    /// The thumbnail of `path` fitted in `size`×`size`, asking for it if needed.
    pub fn get(&mut self, ctx: &egui::Context, path: &Path, size: u32) -> Thumb<'_> {
        self.receive(ctx);
        let key = (path.to_path_buf(), size);
        if !self.slots.contains_key(&key) {
            if self.slots.len() >= MAX_ENTRIES {
                self.slots.clear();
            }
            if self.requests.send(key.clone()).is_ok() {
                self.slots.insert(key.clone(), Slot::Pending);
            }
        }
        match self.slots.get(&key) {
            Some(Slot::Ready(t)) => Thumb::Ready(t),
            Some(Slot::Failed(e)) => Thumb::Failed(e),
            _ => Thumb::Loading,
        }
    }

    fn receive(&mut self, ctx: &egui::Context) {
        while let Ok((key, result)) = self.results.try_recv() {
            let slot = match result {
                Ok(image) => {
                    let name = format!("thumb:{}:{}", key.0.display(), key.1);
                    Slot::Ready(ctx.load_texture(name, image, egui::TextureOptions::LINEAR))
                }
                Err(e) => Slot::Failed(e),
            };
            self.slots.insert(key, slot);
        }
    }
}

fn loader(
    requests: Receiver<Key>,
    results: Sender<(Key, Result<egui::ColorImage, String>)>,
    ctx: egui::Context,
) {
    let mut pending: Vec<Key> = Vec::new();
    loop {
        if pending.is_empty() {
            match requests.recv() {
                Ok(key) => pending.push(key),
                Err(_) => return,
            }
        }
        pending.extend(requests.try_iter());
        // Newest first: those are the rows on screen now.
        let Some(key) = pending.pop() else { continue };
        let result = crate::data::decode_rgb(&key.0)
            .map(|rgb| {
                let fitted = fit(&rgb, key.1);
                egui::ColorImage::from_rgb(
                    [fitted.width() as usize, fitted.height() as usize],
                    fitted.as_raw(),
                )
            })
            .map_err(|e| e.to_string());
        if results.send((key, result)).is_err() {
            return;
        }
        ctx.request_repaint();
    }
}

/// Scales `rgb` to fit in `size`×`size`, keeping its aspect ratio.
fn fit(rgb: &image::RgbImage, size: u32) -> image::RgbImage {
    let (w, h) = (rgb.width().max(1), rgb.height().max(1));
    let scale = size as f32 / w.max(h) as f32;
    let (tw, th) = (
        ((w as f32 * scale).round() as u32).max(1),
        ((h as f32 * scale).round() as u32).max(1),
    );
    image::imageops::resize(rgb, tw, th, image::imageops::FilterType::Triangle)
}
