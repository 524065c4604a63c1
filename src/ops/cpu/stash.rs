//! A value an op's forward pass keeps for its backward pass (Candle hands `bwd` only `&self`,
//! so the forward pass records it behind a lock): the pools' argmax, batch-norm statistics.

use std::sync::{Arc, Mutex, PoisonError};

pub struct ForwardStash<T>(Mutex<Option<Arc<T>>>);

impl<T> Default for ForwardStash<T> {
    fn default() -> Self {
        ForwardStash(Mutex::new(None))
    }
}

impl<T> ForwardStash<T> {
    /// Records `value` (a later forward pass of the same op replaces it).
    pub fn put(&self, value: T) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(value));
    }

    /// The recorded value; an error naming `op` if no forward pass recorded one.
    pub fn get(&self, op: &str) -> candle_core::Result<Arc<T>> {
        let kept = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        kept.ok_or_else(|| {
            candle_core::Error::Msg(format!("{op}: backward before the forward pass"))
        })
    }
}
