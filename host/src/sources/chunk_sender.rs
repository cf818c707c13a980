//! [`ChunkSender`]: hands a source's chunks to the pipeline and keeps its report.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::{SourceContext, SourceError, SourceReport};
use crate::pipeline::SourceChunk;

/// Sends chunks over the bounded channel (waiting when the pipeline is behind) and counts
/// rows, rejections and bytes.
#[derive(Debug)]
pub(crate) struct ChunkSender {
    ctx: SourceContext,
    report: SourceReport,
    /// Bytes read that no chunk has carried yet.
    unsent_bytes: u64,
}

impl ChunkSender {
    /// A sender for `ctx`.
    pub(crate) fn new(ctx: SourceContext) -> Self {
        Self {
            ctx,
            report: SourceReport::default(),
            unsent_bytes: 0,
        }
    }

    /// Rows per chunk to aim for.
    pub(crate) fn batch_rows(&self) -> usize {
        self.ctx.batch_rows.max(1)
    }

    /// Whether shutdown was asked for.
    pub(crate) fn cancelled(&self) -> bool {
        self.ctx.shutdown.is_cancelled()
    }

    /// The shutdown token.
    pub(crate) fn shutdown(&self) -> &tokio_util::sync::CancellationToken {
        &self.ctx.shutdown
    }

    /// Counts input bytes read; the next chunk sent carries them.
    pub(crate) fn read_bytes(&mut self, bytes: u64) {
        self.unsent_bytes += bytes;
        self.report.bytes += bytes;
        self.ctx.bytes_read.fetch_add(bytes, Ordering::Relaxed);
        self.ctx.meter.bytes(bytes);
    }

    /// Counts a file read completely.
    pub(crate) fn file_done(&mut self) {
        self.report.files += 1;
    }

    fn prepare(&mut self, mut chunk: SourceChunk) -> Option<SourceChunk> {
        if chunk.records() == 0 {
            return None;
        }
        chunk.bytes = std::mem::take(&mut self.unsent_bytes);
        self.ctx.charge(&mut chunk);
        let rows = chunk.batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        self.report.rows += rows;
        self.report.rejected += chunk.rejected.len() as u64;
        self.ctx.meter.chunk(rows, chunk.rejected.len() as u64);
        Some(chunk)
    }

    /// Sends `chunk` from a blocking thread; a chunk without records is not sent.
    ///
    /// # Errors
    /// [`SourceError::Closed`] when the pipeline stopped taking chunks.
    pub(crate) fn send_blocking(&mut self, chunk: SourceChunk) -> Result<(), SourceError> {
        self.ctx.wait_for_room_blocking();
        match self.prepare(chunk) {
            Some(chunk) => self
                .ctx
                .tx
                .blocking_send(chunk)
                .map_err(|_| SourceError::closed(&self.ctx.name)),
            None => Ok(()),
        }
    }

    /// Sends `chunk` from a task; a chunk without records is not sent.
    ///
    /// # Errors
    /// [`SourceError::Closed`] when the pipeline stopped taking chunks.
    pub(crate) async fn send(&mut self, chunk: SourceChunk) -> Result<(), SourceError> {
        self.ctx.wait_for_room().await;
        match self.prepare(chunk) {
            Some(chunk) => self
                .ctx
                .tx
                .send(chunk)
                .await
                .map_err(|_| SourceError::closed(&self.ctx.name)),
            None => Ok(()),
        }
    }

    /// Waits `duration` on a blocking thread, looking at the shutdown token every 10 ms;
    /// returns `true` when shutdown came first. (No runtime timer: this must work while the
    /// runtime shuts down.)
    pub(crate) fn sleep_blocking(&self, duration: Duration) -> bool {
        let deadline = Instant::now() + duration;
        loop {
            if self.cancelled() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            std::thread::sleep((deadline - now).min(Duration::from_millis(10)));
        }
    }

    /// The source's metrics.
    pub(crate) fn meter(&self) -> &crate::metrics::SourceMeter {
        &self.ctx.meter
    }

    /// The report.
    pub(crate) fn finish(self) -> SourceReport {
        self.report
    }
}
