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

mod arrow_ipc_sink;
mod dead_letter_sink;
mod error;
mod finalize;
mod parquet_sink;
mod stdout_sink;

pub use arrow_ipc_sink::ArrowIpcSink;
pub use dead_letter_sink::DeadLetterSink;
pub use error::SinkError;
pub use parquet_sink::{POLICIES_KEY, ParquetSink, VERSION_KEY};
pub use stdout_sink::StdoutSink;

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow_array::RecordBatch;

use crate::config::SinkConfig;
use crate::pipeline::PolicyStamp;

/// Opens the sink named `name` described by `cfg`. `resolve` turns a configured path into the
/// one to use (relative paths are relative to the config file); the arrow_ipc path `-` (stdout)
/// is not resolved.
///
/// # Errors
/// The sink could not be opened (e.g. its directory cannot be created), naming the output.
pub fn open(
    name: &str,
    cfg: &SinkConfig,
    resolve: impl Fn(&Path) -> PathBuf,
) -> Result<Box<dyn Sink>, SinkError> {
    Ok(match cfg {
        SinkConfig::Parquet(c) => Box::new(ParquetSink::new(name, c, resolve(&c.path))?),
        SinkConfig::ArrowIpc(c) => {
            let path = if arrow_ipc_sink::is_stdout(&c.path) {
                c.path.clone()
            } else {
                resolve(&c.path)
            };
            Box::new(ArrowIpcSink::new(name, c, path)?)
        }
        SinkConfig::Stdout(c) => Box::new(StdoutSink::new(name, c)),
    })
}

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
