//! [`EbpfFlowsSource`]: `type = "ebpf_flows"`: flows counted in the kernel (see
//! [`crate::capture`]), one row per ended flow, until shutdown.
//!
//! The program is loaded and attached when the source opens, so by the time the pipeline says
//! it is ready, packets are being counted. On shutdown the links are detached first, then the
//! map is drained and every open flow is sent with `end_reason = shutdown`.

use std::time::{Duration, Instant};

use arrow_schema::SchemaRef;
use tokio::task::JoinHandle;

use super::chunk_sender::ChunkSender;
use super::{SchemaOrigin, Source, SourceContext, SourceError, SourceReport};
use crate::capture::{FlowCapture, FlowRecord, flow_schema};
use crate::config::EbpfFlowsSourceConfig;
use crate::pipeline::SourceChunk;

/// What one flow record stands for in the byte counts: its kernel key and value.
const RECORD_BYTES: u64 = 88;

/// How often the capture counters are read for the metrics.
const PUBLISH_EVERY: Duration = Duration::from_secs(1);

/// An attached capture.
#[derive(Debug)]
pub(crate) struct EbpfFlowsSource {
    name: String,
    capture: FlowCapture,
}

impl EbpfFlowsSource {
    /// Loads the program and attaches it to every configured interface.
    ///
    /// # Errors
    /// [`SourceError::Capture`]: bad settings, a missing interface, no privileges, a verifier
    /// refusal.
    pub(crate) fn open(name: &str, cfg: &EbpfFlowsSourceConfig) -> Result<Self, SourceError> {
        let capture = FlowCapture::open(&cfg.options()).map_err(|cause| SourceError::Capture {
            source_name: name.to_owned(),
            cause,
        })?;
        Ok(Self {
            name: name.to_owned(),
            capture,
        })
    }

    fn run(self, ctx: SourceContext) -> Result<SourceReport, SourceError> {
        let Self { name, mut capture } = self;
        let err = |cause| SourceError::Capture {
            source_name: name.clone(),
            cause,
        };
        let mut sender = ChunkSender::new(ctx);
        let mut published: Option<Instant> = None;
        while !sender.cancelled() {
            let records = capture.poll(Duration::from_millis(50)).map_err(err)?;
            send(&name, &capture, &records, &mut sender)?;
            if published.is_none_or(|at| at.elapsed() >= PUBLISH_EVERY) {
                match capture.counters() {
                    Ok(counters) => sender.meter().capture(counters),
                    Err(error) => {
                        tracing::warn!(source = %name, %error, "reading the capture counters failed");
                    }
                }
                published = Some(Instant::now());
            }
        }
        // Detach, drain, and end every flow still open.
        let (rest, counters) = capture.finish().map_err(err)?;
        send(&name, &capture, &rest, &mut sender)?;
        drop(capture);
        tracing::info!(source = %name, %counters, "flow capture finished");
        sender.meter().capture(counters);
        let mut report = sender.finish();
        report.capture = Some(counters);
        Ok(report)
    }
}

fn send(
    name: &str,
    capture: &FlowCapture,
    records: &[FlowRecord],
    sender: &mut ChunkSender,
) -> Result<(), SourceError> {
    for part in records.chunks(sender.batch_rows().max(1)) {
        let batch = capture
            .batch(part)
            .map_err(|e| SourceError::format(name, "kernel flows", e.to_string()))?;
        sender.read_bytes(part.len() as u64 * RECORD_BYTES);
        sender.send_blocking(SourceChunk {
            batch: Some(batch),
            rejected: Vec::new(),
            checkpoint: None,
            bytes: 0,
            ticket: None,
        })?;
    }
    Ok(())
}

impl Source for EbpfFlowsSource {
    fn schema(&self) -> SchemaRef {
        flow_schema()
    }

    fn schema_origin(&self) -> SchemaOrigin {
        SchemaOrigin::Embedded
    }

    fn total_bytes(&self) -> Option<u64> {
        None
    }

    fn start(self: Box<Self>, ctx: SourceContext) -> JoinHandle<Result<SourceReport, SourceError>> {
        tokio::task::spawn_blocking(move || self.run(ctx))
    }
}
