//! What flows between the stages: chunks from sources, rejected records, and the provenance
//! stamps sinks record.

use std::path::PathBuf;
use std::sync::Arc;

use arrow_array::RecordBatch;

use super::MemoryTicket;

/// A file source's read position, stored in the state directory so that a restarted follow
/// source neither re-reads nor skips a line.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The file.
    pub path: PathBuf,
    /// Its device number, so a replaced file (log rotation) is noticed.
    pub dev: u64,
    /// Its inode number.
    pub ino: u64,
    /// The byte offset just past the last line included.
    pub offset: u64,
}

/// A record a source could not decode into its schema. It goes to the dead-letter sink.
#[derive(Debug, Clone)]
pub struct Rejected {
    /// Where it came from, e.g. `data/a.ndjson:17` or `udp 127.0.0.1:40000`.
    pub location: String,
    /// Why, e.g. `column "temp": expected a number, got "hot"`.
    pub reason: String,
    /// The record's original bytes (a line, a CSV record, a datagram).
    pub raw: Vec<u8>,
}

/// What a source hands the batcher: decoded rows, rejected records, or both.
#[derive(Debug, Clone, Default)]
pub struct SourceChunk {
    /// Decoded rows (all with the source's schema).
    pub batch: Option<RecordBatch>,
    /// Records that did not fit.
    pub rejected: Vec<Rejected>,
    /// For follow mode: the position once this chunk is durable downstream.
    pub checkpoint: Option<Checkpoint>,
    /// Input bytes this chunk covers (for throughput and progress).
    pub bytes: u64,
    /// Its charge on the memory budget, if there is one (set when the source sends it).
    pub ticket: Option<Arc<MemoryTicket>>,
}

impl SourceChunk {
    /// Rows in the chunk, decoded plus rejected.
    #[must_use]
    pub fn records(&self) -> u64 {
        self.batch.as_ref().map_or(0, |b| b.num_rows() as u64) + self.rejected.len() as u64
    }
}

/// The identity of a policy version that touched the data; Parquet files record these.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
pub struct PolicyStamp {
    /// The policy name from its manifest.
    pub name: String,
    /// Its version (the crate version until signed bundles carry one).
    pub version: String,
    /// The module's sha256, hex.
    pub sha256: String,
}

/// Rows for the dead-letter sink.
#[derive(Debug, Clone)]
pub enum DeadRecords {
    /// Records a source could not decode.
    Rejected {
        /// The source's name.
        source: Arc<str>,
        /// The records.
        records: Vec<Rejected>,
    },
    /// Rows a policy failed on, as the policy received them.
    Policy {
        /// The policy.
        policy: PolicyStamp,
        /// Error kind, e.g. `time_limit` (see [`crate::policy::ErrorKind::as_str`]).
        kind: &'static str,
        /// The full error message.
        reason: String,
        /// The rows.
        rows: RecordBatch,
    },
}

impl DeadRecords {
    /// How many rows this carries.
    #[must_use]
    pub fn rows(&self) -> u64 {
        match self {
            Self::Rejected { records, .. } => records.len() as u64,
            Self::Policy { rows, .. } => rows.num_rows() as u64,
        }
    }
}

/// What the batcher hands the chain: a batch of one source's rows (up to `batch_max_rows`),
/// the records it rejected meanwhile, and the checkpoint reached.
#[derive(Debug, Clone)]
pub struct Envelope {
    /// The source's name.
    pub source: Arc<str>,
    /// The rows, if any.
    pub batch: Option<RecordBatch>,
    /// Records that did not fit the source's schema.
    pub rejected: Vec<Rejected>,
    /// For follow mode: the position once this envelope is durable downstream.
    pub checkpoint: Option<Checkpoint>,
    /// Input bytes covered.
    pub bytes: u64,
    /// The charges of its chunks on the memory budget: released when the last sink has
    /// taken the batch's output.
    pub tickets: Vec<Arc<MemoryTicket>>,
}
