//! A sink's stage: a blocking thread that takes batches in sequence order, writes them, ticks
//! the sink for time-based rotation, and publishes what it has committed.

use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use tokio::runtime::Handle;
use tokio::sync::mpsc;

use super::MemoryTicket;
use super::commits::Commits;
use super::record::{DeadRecords, PolicyStamp};
use crate::sinks::{DeadLetterSink, Sink, SinkError, SinkReport};

/// How often an idle sink is ticked.
const TICK: Duration = Duration::from_millis(100);

/// A batch for a data sink.
#[derive(Debug, Clone)]
pub struct SinkItem {
    /// The rows (possibly none).
    pub batch: RecordBatch,
    /// The policy versions that produced them.
    pub stamps: Arc<[PolicyStamp]>,
    /// The input's charges on the memory budget, shared by every sink's copy: released when
    /// the last sink has taken the batch.
    #[expect(dead_code, reason = "held for its drop, which releases the charge")]
    pub tickets: Arc<[Arc<MemoryTicket>]>,
}

/// What a stage drives: a data sink or the dead-letter sink.
pub trait StageSink: Send {
    /// What one sequence number carries.
    type Item: Send;
    /// Writes `item` for `seq`.
    ///
    /// # Errors
    /// The sink's error.
    fn write(&mut self, seq: u64, item: Self::Item) -> Result<(), SinkError>;
    /// Time-based work.
    ///
    /// # Errors
    /// The sink's error.
    fn tick(&mut self, now: Instant) -> Result<(), SinkError>;
    /// Highest durable sequence number.
    fn committed(&self) -> u64;
    /// Finalizes.
    ///
    /// # Errors
    /// The sink's error.
    fn finish(&mut self) -> Result<SinkReport, SinkError>;
}

impl StageSink for Box<dyn Sink> {
    type Item = SinkItem;
    fn write(&mut self, seq: u64, item: SinkItem) -> Result<(), SinkError> {
        Sink::write(self.as_mut(), seq, &item.batch, &item.stamps)
    }
    fn tick(&mut self, now: Instant) -> Result<(), SinkError> {
        Sink::tick(self.as_mut(), now)
    }
    fn committed(&self) -> u64 {
        Sink::committed(self.as_ref())
    }
    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        Sink::finish(self.as_mut())
    }
}

impl StageSink for DeadLetterSink {
    type Item = Vec<DeadRecords>;
    fn write(&mut self, seq: u64, item: Vec<DeadRecords>) -> Result<(), SinkError> {
        DeadLetterSink::write(self, seq, &item)
    }
    fn tick(&mut self, now: Instant) -> Result<(), SinkError> {
        DeadLetterSink::tick(self, now)
    }
    fn committed(&self) -> u64 {
        DeadLetterSink::committed(self)
    }
    fn finish(&mut self) -> Result<SinkReport, SinkError> {
        DeadLetterSink::finish(self)
    }
}

/// Runs a sink until its channel closes, then finalizes it. On a write failure the stage
/// stops taking batches (the chain then stops, and the run fails with this error); nothing
/// after the failure is committed, so follow checkpoints stay behind it.
///
/// # Errors
/// The first sink error.
pub fn run<S: StageSink>(
    mut sink: S,
    index: usize,
    mut rx: mpsc::Receiver<(u64, S::Item)>,
    commits: &Commits,
    runtime: &Handle,
) -> Result<SinkReport, SinkError> {
    let mut last_tick = Instant::now();
    loop {
        let next = runtime.block_on(async { tokio::time::timeout(TICK, rx.recv()).await });
        match next {
            Ok(Some((seq, item))) => sink.write(seq, item)?,
            Ok(None) => break,
            Err(_elapsed) => {}
        }
        let now = Instant::now();
        if now.duration_since(last_tick) >= TICK {
            sink.tick(now)?;
            last_tick = now;
        }
        commits.publish(index, sink.committed());
    }
    let report = sink.finish()?;
    commits.publish(index, sink.committed());
    Ok(report)
}
