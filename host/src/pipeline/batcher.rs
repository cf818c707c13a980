//! The batcher: gathers one source's chunks into batches of at most `max_rows`, and hands a
//! batch on when it is full or when its first row has waited `max_delay`.

use std::sync::Arc;
use std::time::Duration;

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::MemoryTicket;
use super::record::{Checkpoint, Envelope, Rejected, SourceChunk};

/// Pending rows of one source.
#[derive(Debug)]
pub struct Batcher {
    source: Arc<str>,
    schema: SchemaRef,
    max_rows: usize,
    max_delay: Duration,
    batches: Vec<RecordBatch>,
    rows: usize,
    rejected: Vec<Rejected>,
    checkpoint: Option<Checkpoint>,
    bytes: u64,
    /// The memory-budget charges of the pending chunks.
    tickets: Vec<Arc<MemoryTicket>>,
    /// When the oldest pending record must leave.
    deadline: Option<Instant>,
}

/// The batcher's failure: the chain stopped taking batches.
#[derive(Debug, thiserror::Error)]
#[error("source {source_name}: the policy chain stopped taking batches")]
pub struct BatcherClosed {
    /// The source's name.
    pub source_name: String,
}

impl Batcher {
    /// A batcher for `source`, whose chunks all have `schema`.
    #[must_use]
    pub fn new(source: Arc<str>, schema: SchemaRef, max_rows: usize, max_delay: Duration) -> Self {
        Self {
            source,
            schema,
            max_rows: max_rows.max(1),
            max_delay,
            batches: Vec::new(),
            rows: 0,
            rejected: Vec::new(),
            checkpoint: None,
            bytes: 0,
            tickets: Vec::new(),
            deadline: None,
        }
    }

    /// Runs until the source's channel closes, then hands on what is pending.
    ///
    /// # Errors
    /// When the chain's channel is closed.
    pub async fn run(
        mut self,
        mut rx: mpsc::Receiver<SourceChunk>,
        tx: mpsc::Sender<Envelope>,
    ) -> Result<(), BatcherClosed> {
        loop {
            let chunk = match self.deadline {
                Some(deadline) => tokio::select! {
                    chunk = rx.recv() => chunk,
                    () = tokio::time::sleep_until(deadline) => {
                        self.send_pending(&tx).await?;
                        continue;
                    }
                },
                None => rx.recv().await,
            };
            let Some(chunk) = chunk else {
                self.send_pending(&tx).await?;
                return Ok(());
            };
            for envelope in self.push(chunk) {
                self.send(&tx, envelope).await?;
            }
        }
    }

    /// Adds a chunk; returns the envelopes that are ready.
    pub fn push(&mut self, chunk: SourceChunk) -> Vec<Envelope> {
        let mut ready = Vec::new();
        let chunk_rows = chunk.batch.as_ref().map_or(0, RecordBatch::num_rows);
        if self.rows > 0 && self.rows + chunk_rows > self.max_rows {
            ready.extend(self.take());
        }
        if self.deadline.is_none() {
            self.deadline = Some(Instant::now() + self.max_delay);
        }
        self.rejected.extend(chunk.rejected);
        self.bytes += chunk.bytes;
        self.tickets.extend(chunk.ticket);
        if chunk.checkpoint.is_some() {
            self.checkpoint = chunk.checkpoint;
        }
        match chunk.batch {
            Some(batch) if batch.num_rows() > self.max_rows => {
                // Hand on full slices now; the checkpoint rides on the last one.
                let mut offset = 0;
                while batch.num_rows() - offset > self.max_rows {
                    let checkpoint = self.checkpoint.take();
                    ready.push(Envelope {
                        source: Arc::clone(&self.source),
                        batch: Some(batch.slice(offset, self.max_rows)),
                        rejected: std::mem::take(&mut self.rejected),
                        checkpoint: None,
                        bytes: std::mem::take(&mut self.bytes),
                        // The chunk's charge rides on the last slice.
                        tickets: Vec::new(),
                    });
                    self.checkpoint = checkpoint;
                    offset += self.max_rows;
                }
                self.rows = batch.num_rows() - offset;
                self.batches.push(batch.slice(offset, self.rows));
            }
            Some(batch) if batch.num_rows() > 0 => {
                self.rows += batch.num_rows();
                self.batches.push(batch);
            }
            _ => {}
        }
        if self.rows >= self.max_rows || self.rejected.len() >= self.max_rows {
            ready.extend(self.take());
        }
        ready
    }

    /// Takes everything pending as one envelope (none if nothing is pending).
    pub fn take(&mut self) -> Option<Envelope> {
        self.deadline = None;
        if self.rows == 0 && self.rejected.is_empty() && self.checkpoint.is_none() {
            self.bytes = 0;
            self.tickets.clear();
            return None;
        }
        let batch = match self.batches.len() {
            0 => None,
            1 => self.batches.pop(),
            _ => Some(
                arrow_select::concat::concat_batches(&self.schema, &self.batches)
                    .expect("every chunk of a source has the source's schema"),
            ),
        };
        self.batches.clear();
        self.rows = 0;
        Some(Envelope {
            source: Arc::clone(&self.source),
            batch,
            rejected: std::mem::take(&mut self.rejected),
            checkpoint: self.checkpoint.take(),
            bytes: std::mem::take(&mut self.bytes),
            tickets: std::mem::take(&mut self.tickets),
        })
    }

    async fn send_pending(&mut self, tx: &mpsc::Sender<Envelope>) -> Result<(), BatcherClosed> {
        match self.take() {
            Some(envelope) => self.send(tx, envelope).await,
            None => Ok(()),
        }
    }

    async fn send(
        &self,
        tx: &mpsc::Sender<Envelope>,
        envelope: Envelope,
    ) -> Result<(), BatcherClosed> {
        tx.send(envelope).await.map_err(|_| BatcherClosed {
            source_name: self.source.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use arrow_array::{Int64Array, RecordBatch};
    use arrow_schema::{DataType, Field, Schema};

    use super::*;

    fn schema() -> SchemaRef {
        Arc::new(Schema::new(vec![Field::new("v", DataType::Int64, false)]))
    }

    fn chunk(from: i64, n: i64) -> SourceChunk {
        let batch = RecordBatch::try_new(
            schema(),
            vec![Arc::new(Int64Array::from_iter_values(from..from + n))],
        )
        .unwrap();
        SourceChunk {
            batch: Some(batch),
            bytes: n as u64,
            ..SourceChunk::default()
        }
    }

    fn values(envelopes: &[Envelope]) -> Vec<i64> {
        envelopes
            .iter()
            .filter_map(|e| e.batch.as_ref())
            .flat_map(|b| {
                b.column(0)
                    .as_any()
                    .downcast_ref::<Int64Array>()
                    .unwrap()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn fills_batches_up_to_max_rows_in_order() {
        let mut b = Batcher::new("s".into(), schema(), 100, Duration::from_secs(1));
        let mut out = Vec::new();
        let mut next = 0;
        for n in [30, 30, 30, 30, 250, 5] {
            out.extend(b.push(chunk(next, n)));
            next += n;
        }
        out.extend(b.take());
        assert!(
            out.iter()
                .all(|e| e.batch.as_ref().unwrap().num_rows() <= 100)
        );
        assert_eq!(values(&out), (0..next).collect::<Vec<_>>());
        assert_eq!(out.iter().map(|e| e.bytes).sum::<u64>(), next as u64);
        // 30+30+30 fill 90; the fourth 30 would overflow, so 90 leaves; the 250-row chunk pushes
        // out that 30, leaves as 100+100 and keeps 50, which the last 5 join.
        let sizes: Vec<usize> = out
            .iter()
            .map(|e| e.batch.as_ref().unwrap().num_rows())
            .collect();
        assert_eq!(sizes, vec![90, 30, 100, 100, 55]);
    }

    #[test]
    fn checkpoint_rides_on_the_envelope_that_completes_its_chunk() {
        let mut b = Batcher::new("s".into(), schema(), 100, Duration::from_secs(1));
        let cp = Checkpoint {
            path: PathBuf::from("f"),
            dev: 1,
            ino: 2,
            offset: 999,
        };
        let mut c = chunk(0, 250);
        c.checkpoint = Some(cp.clone());
        let mut out = b.push(c);
        assert!(
            out.iter().all(|e| e.checkpoint.is_none()),
            "slices before the last carry none"
        );
        out.extend(b.take());
        assert_eq!(out.last().unwrap().checkpoint.as_ref(), Some(&cp));
        assert_eq!(values(&out).len(), 250);
    }

    #[test]
    fn rejected_only_chunks_still_travel() {
        let mut b = Batcher::new("s".into(), schema(), 100, Duration::from_secs(1));
        let c = SourceChunk {
            rejected: vec![Rejected {
                location: "x:1".into(),
                reason: "bad".into(),
                raw: b"{".to_vec(),
            }],
            ..SourceChunk::default()
        };
        assert!(b.push(c).is_empty());
        let e = b.take().unwrap();
        assert!(e.batch.is_none());
        assert_eq!(e.rejected.len(), 1);
        assert!(b.take().is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_partial_batch_leaves_after_max_delay() {
        let (in_tx, in_rx) = mpsc::channel(4);
        let (out_tx, mut out_rx) = mpsc::channel(4);
        let b = Batcher::new("s".into(), schema(), 100, Duration::from_millis(200));
        let task = tokio::spawn(b.run(in_rx, out_tx));
        in_tx.send(chunk(0, 10)).await.unwrap();
        let started = Instant::now();
        let e = out_rx.recv().await.unwrap();
        assert_eq!(e.batch.unwrap().num_rows(), 10);
        assert!(started.elapsed() >= Duration::from_millis(199));
        drop(in_tx);
        task.await.unwrap().unwrap();
        assert!(out_rx.recv().await.is_none());
    }
}
