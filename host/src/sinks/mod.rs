//! Sinks: where the chain's output goes. Each sink runs on its own blocking thread and gets
//! every batch, in sequence order.
//!
//! * [`parquet`](ParquetSink): a directory of Parquet files, rotated by rows, bytes and time,
//!   each written under a temporary name and renamed when complete.
//! * [`arrow_ipc`](ArrowIpcSink): Arrow IPC file or stream, to a path or stdout.
//! * [`stdout`](StdoutSink): a table or NDJSON.
//! * [`dead_letter`](DeadLetterSink): Arrow IPC files of rejected and failed rows with the reason.
//!
//! **Commit protocol.** Batches carry a sequence number that rises by one per batch, and every
//! sink sees every number (a batch may be empty when a filter removed all its rows). A sink's
//! [`Sink::committed`] is the highest number such that every row of every batch up to it is
//! durable in a finalized output. Follow-mode checkpoints advance only to what all sinks have
//! committed, so a crash never skips data.

mod error;

pub use error::SinkError;

use std::path::PathBuf;
use std::time::Instant;

use arrow_array::RecordBatch;

use crate::pipeline::PolicyStamp;

/// What a sink did, for the run summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SinkReport {
    /// Rows written.
    pub rows: u64,
    /// Bytes written (after encoding and compression).
    pub bytes: u64,
    /// Finalized files, in order.
    pub files: Vec<PathBuf>,
}

/// A sink for the chain's output.
pub trait Sink: Send {
    /// Writes the batch numbered `seq`. `stamps` are the policy versions that produced it.
    /// `batch` may have no rows; the sink still records `seq`.
    ///
    /// # Errors
    /// An I/O or encoding failure, naming the output.
    fn write(
        &mut self,
        seq: u64,
        batch: &RecordBatch,
        stamps: &[PolicyStamp],
    ) -> Result<(), SinkError>;

    /// Called about every 100ms, whether or not data came: time-based rotation.
    ///
    /// # Errors
    /// As for [`Sink::write`].
    fn tick(&mut self, now: Instant) -> Result<(), SinkError>;

    /// The highest sequence number whose rows (and all before) are durable; 0 for none.
    fn committed(&self) -> u64;

    /// Flushes and finalizes everything; the sink is not used afterwards.
    ///
    /// # Errors
    /// As for [`Sink::write`].
    fn finish(&mut self) -> Result<SinkReport, SinkError>;
}
