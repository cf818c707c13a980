//! Sources: where records come from. Each source decodes its input into Arrow record batches
//! of one schema and sends [`SourceChunk`]s to the batcher over a bounded channel, so a slow
//! pipeline slows the source down.
//!
//! * `file`: NDJSON, CSV, Parquet and Arrow IPC, with globs; `follow` tails a growing NDJSON
//!   file and resumes from a checkpoint.
//! * `stdin`: NDJSON.
//! * `udp`: NDJSON datagrams.
//! * `generate`: flows or sensor readings, for demos and benchmarks.
//! * `ebpf_flows`: network flows counted in the kernel ([`crate::capture`]).
//!
//! A record that does not fit the schema is never dropped: it travels as a
//! [`Rejected`](crate::pipeline::Rejected) to the dead-letter sink with the reason (see
//! [`NdjsonDecoder`] for how bad lines are found without slowing the clean ones).
//!
//! Follow-mode positions are kept by [`checkpoint_store`]; the pipeline stores them once the
//! sinks have committed, the source loads them when it starts.

pub mod checkpoint_store;
mod chunk_sender;
mod columnar_file;
mod csv_decoder;
mod ebpf_flows_source;
mod error;
mod file_source;
mod follow_source;
#[doc(hidden)]
pub mod fuzzing;
pub mod generate;
mod generate_source;
mod line_buffer;
mod ndjson_decoder;
mod pending_chunk;
mod record_segment;
mod schema_infer;
mod stdin_source;
#[cfg(test)]
mod test_support;
mod udp_source;

pub use error::SourceError;
pub use ndjson_decoder::NdjsonDecoder;

use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, SourceConfig};
use crate::pipeline::SourceChunk;

/// How a source's schema was obtained, for the start-up report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemaOrigin {
    /// Declared in the config.
    Declared,
    /// Inferred from a sample (what was read, e.g. `first 1000 lines of data/a.ndjson`).
    Inferred(String),
    /// Carried by the input itself (Parquet, Arrow IPC) or fixed (generate).
    Embedded,
}

impl std::fmt::Display for SchemaOrigin {
    /// `declared`, `inferred from …` or `from the input`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Declared => f.write_str("declared"),
            Self::Inferred(from) => write!(f, "inferred from {from}"),
            Self::Embedded => f.write_str("from the input"),
        }
    }
}

/// What a source did, for the run summary.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct SourceReport {
    /// Records decoded into rows.
    pub rows: u64,
    /// Records rejected (sent to dead-letter).
    pub rejected: u64,
    /// Input bytes read.
    pub bytes: u64,
    /// Files read completely.
    pub files: u64,
    /// Flow capture counters (`ebpf_flows` sources).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capture: Option<crate::capture::CaptureCounters>,
}

/// Everything a running source needs from the pipeline.
#[derive(Debug, Clone)]
pub struct SourceContext {
    /// The source's name from the config.
    pub name: Arc<str>,
    /// Where chunks go. `send` waits when the pipeline is behind: that is the backpressure.
    pub tx: mpsc::Sender<SourceChunk>,
    /// Cancelled on SIGINT/SIGTERM: stop reading, send what is decoded, return.
    pub shutdown: CancellationToken,
    /// Input bytes read so far (progress display).
    pub bytes_read: Arc<AtomicU64>,
    /// Rows per chunk to aim for (the pipeline's `batch_max_rows`).
    pub batch_rows: usize,
    /// The state directory (follow-mode checkpoints live in `<state_dir>/checkpoints/`).
    pub state_dir: std::path::PathBuf,
    /// The source's metrics (rows, rejections and bytes, counted per chunk).
    pub meter: crate::metrics::SourceMeter,
    /// The device's memory budget, if configured: a source waits for room before it sends.
    pub budget: Option<Arc<crate::pipeline::MemoryBudget>>,
}

impl SourceContext {
    /// Waits, from a task, until the memory budget (if any) has room for another chunk.
    pub async fn wait_for_room(&self) {
        if let Some(budget) = &self.budget {
            budget.wait(&self.shutdown).await;
        }
    }

    /// As [`wait_for_room`](Self::wait_for_room), on a blocking thread.
    pub fn wait_for_room_blocking(&self) {
        if let Some(budget) = &self.budget {
            budget.wait_blocking(&self.shutdown);
        }
    }

    /// Charges `chunk`'s rows and rejected records to the memory budget (if any) until the
    /// sinks have taken them.
    pub fn charge(&self, chunk: &mut SourceChunk) {
        if let Some(budget) = &self.budget {
            let held = chunk
                .batch
                .as_ref()
                .map_or(0, arrow_array::RecordBatch::get_array_memory_size)
                + chunk.rejected.iter().map(|r| r.raw.len()).sum::<usize>();
            chunk.ticket = Some(Arc::new(budget.charge(held as u64)));
        }
    }
}

/// An opened source: its schema is known (declared, inferred or read), its inputs exist.
pub trait Source: Send {
    /// The schema of the batches it will send.
    fn schema(&self) -> SchemaRef;

    /// How the schema was obtained.
    fn schema_origin(&self) -> SchemaOrigin;

    /// Total input bytes, when finite and known (files): the progress bar's length.
    fn total_bytes(&self) -> Option<u64>;

    /// Starts reading on the current tokio runtime. The task returns when the input ends or
    /// on shutdown, after sending every chunk it decoded.
    fn start(self: Box<Self>, ctx: SourceContext) -> JoinHandle<Result<SourceReport, SourceError>>;
}

/// Opens the source `name` described by `source`: resolves paths, checks that inputs exist,
/// and declares or infers the schema.
///
/// # Errors
/// A [`SourceError`] naming the source, the input and the cause.
pub fn open(
    config: &Config,
    name: &str,
    source: &SourceConfig,
) -> Result<Box<dyn Source>, SourceError> {
    let opened: Box<dyn Source> = match source {
        SourceConfig::File(c) if c.follow => {
            Box::new(follow_source::FollowSource::open(config, name, c)?)
        }
        SourceConfig::File(c) => Box::new(file_source::FileSource::open(config, name, c)?),
        SourceConfig::Stdin(c) => Box::new(stdin_source::StdinSource::open(
            name,
            &c.schema,
            Box::new(std::io::stdin()),
        )?),
        SourceConfig::Udp(c) => Box::new(udp_source::UdpSource::open(name, c)?),
        SourceConfig::Generate(c) => generate_source::GenerateSource::open(config, name, c)?,
        SourceConfig::EbpfFlows(c) => Box::new(ebpf_flows_source::EbpfFlowsSource::open(name, c)?),
    };
    Ok(opened)
}
