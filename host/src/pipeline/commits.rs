//! Commit tracking: which batches every sink has made durable, and the follow-mode
//! checkpoints that this allows to be stored.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::Mutex;

use super::record::Checkpoint;

/// Shared between the chain stage (which numbers batches) and the sink stages (which commit
/// them).
#[derive(Debug)]
pub struct Commits {
    committed: Vec<AtomicU64>,
    pending: Mutex<VecDeque<(u64, Arc<str>, Checkpoint)>>,
    state_dir: PathBuf,
    stored: AtomicU64,
}

impl Commits {
    /// Tracking for `sinks` sinks (the dead-letter sink included).
    #[must_use]
    pub fn new(sinks: usize, state_dir: PathBuf) -> Self {
        Self {
            committed: (0..sinks).map(|_| AtomicU64::new(0)).collect(),
            pending: Mutex::new(VecDeque::new()),
            state_dir,
            stored: AtomicU64::new(0),
        }
    }

    /// Records that batch `seq` reached `checkpoint` of `source` once durable.
    pub fn expect(&self, seq: u64, source: Arc<str>, checkpoint: Checkpoint) {
        self.pending.lock().push_back((seq, source, checkpoint));
    }

    /// Sink `index` has made everything up to `seq` durable. Stores the checkpoints every sink
    /// has now passed.
    pub fn publish(&self, index: usize, seq: u64) {
        let previous = self.committed[index].fetch_max(seq, Ordering::AcqRel);
        if previous >= seq {
            return;
        }
        let floor = self.floor();
        let mut latest: Vec<(Arc<str>, Checkpoint)> = Vec::new();
        // Held while storing, so that two sinks committing at once cannot store an older
        // checkpoint after a newer one.
        let mut pending = self.pending.lock();
        {
            while pending.front().is_some_and(|(s, _, _)| *s <= floor) {
                let (_, source, checkpoint) = pending.pop_front().expect("front exists");
                match latest.iter_mut().find(|(s, _)| *s == source) {
                    Some(slot) => slot.1 = checkpoint,
                    None => latest.push((source, checkpoint)),
                }
            }
        }
        for (source, checkpoint) in latest {
            match crate::sources::checkpoint_store::store(&self.state_dir, &source, &checkpoint) {
                Ok(()) => {
                    self.stored.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(source = %source, offset = checkpoint.offset, "checkpoint stored");
                }
                // The data is durable; a failed checkpoint only means re-reading after a
                // restart would duplicate. Say so loudly.
                Err(error) => tracing::error!(
                    source = %source,
                    state_dir = %self.state_dir.display(),
                    %error,
                    "cannot store the follow checkpoint; a restart would re-read from the last stored one"
                ),
            }
        }
        drop(pending);
    }

    /// The highest sequence number every sink has committed.
    #[must_use]
    pub fn floor(&self) -> u64 {
        self.committed
            .iter()
            .map(|c| c.load(Ordering::Acquire))
            .min()
            .unwrap_or(0)
    }

    /// How many checkpoints were stored.
    #[must_use]
    pub fn stored(&self) -> u64 {
        self.stored.load(Ordering::Relaxed)
    }
}
