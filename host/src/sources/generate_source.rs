//! `type = "generate"`: flows or sensor readings made up on the spot, for demos and benchmarks.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arrow_schema::SchemaRef;
use tokio::task::JoinHandle;

use super::generate::{AddressFormat, flow_batch_at, flow_schema, sensor_batch};
use super::{SchemaOrigin, Source, SourceContext, SourceError, SourceReport};
use crate::config::{Config, GenerateKind, GenerateSourceConfig};
use crate::pipeline::SourceChunk;

/// Generated records: `rows` in all (or until stopped), at `rate` rows/s (or as fast as the
/// pipeline takes them).
#[derive(Debug)]
pub struct GenerateSource {
    cfg: GenerateSourceConfig,
    schema: SchemaRef,
}

impl GenerateSource {
    /// Opens a generator.
    ///
    /// # Errors
    /// None today; the signature matches the other sources.
    pub fn open(
        _config: &Config,
        _name: &str,
        cfg: &GenerateSourceConfig,
    ) -> Result<Box<dyn Source>, SourceError> {
        let schema = match cfg.kind {
            GenerateKind::Flows => flow_schema(),
            GenerateKind::Sensors => sensor_batch(1, 0).schema(),
        };
        Ok(Box::new(Self {
            cfg: cfg.clone(),
            schema,
        }))
    }
}

impl Source for GenerateSource {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn schema_origin(&self) -> SchemaOrigin {
        SchemaOrigin::Embedded
    }

    fn total_bytes(&self) -> Option<u64> {
        None
    }

    fn start(self: Box<Self>, ctx: SourceContext) -> JoinHandle<Result<SourceReport, SourceError>> {
        tokio::spawn(async move { self.run(ctx).await })
    }
}

impl GenerateSource {
    async fn run(self, ctx: SourceContext) -> Result<SourceReport, SourceError> {
        let mut report = SourceReport::default();
        let total = self.cfg.rows.unwrap_or(u64::MAX);
        let mut seed = self.cfg.seed.unwrap_or(1);
        // With a rate, emit a slice of it every 100ms; without, full batches.
        let tick = Duration::from_millis(100);
        let per_tick = self.cfg.rate.map(|r| r.div_ceil(10).max(1));
        let mut interval = tokio::time::interval(tick);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while report.rows < total {
            let chunk_rows = per_tick
                .unwrap_or(ctx.batch_rows as u64)
                .min(ctx.batch_rows as u64)
                .min(total - report.rows);
            if per_tick.is_some() {
                tokio::select! {
                    () = ctx.shutdown.cancelled() => break,
                    _ = interval.tick() => {}
                }
            } else if ctx.shutdown.is_cancelled() {
                break;
            }
            let rows = usize::try_from(chunk_rows).unwrap_or(usize::MAX);
            let batch = match self.cfg.kind {
                GenerateKind::Flows => flow_batch_at(rows, seed, report.rows, AddressFormat::Text),
                GenerateKind::Sensors => sensor_batch(rows, seed),
            };
            seed = seed.wrapping_add(1);
            let bytes = batch.get_array_memory_size() as u64;
            ctx.bytes_read.fetch_add(bytes, Ordering::Relaxed);
            report.rows += chunk_rows;
            report.bytes += bytes;
            let mut chunk = SourceChunk {
                batch: Some(batch),
                bytes,
                ..SourceChunk::default()
            };
            ctx.wait_for_room().await;
            ctx.charge(&mut chunk);
            ctx.meter.bytes(bytes);
            ctx.meter.chunk(chunk_rows, 0);
            // The pipeline drains on shutdown, so this send completes: nothing counted is lost.
            if ctx.tx.send(chunk).await.is_err() {
                return Err(SourceError::Closed {
                    source_name: ctx.name.to_string(),
                });
            }
        }
        Ok(report)
    }
}
