//! The chain's stage: a blocking thread that numbers each batch, runs it through the policies,
//! and hands the result to every sink and the dead letters to the dead-letter sink.

use std::sync::Arc;
use std::time::Instant;

use tokio::sync::mpsc;

use super::commits::Commits;
use super::record::{DeadRecords, Envelope, PolicyStamp};
use super::sink_stage::SinkItem;
use super::{MemoryBudget, MemoryTicket};
use crate::metrics::ChainMeter;
use crate::policy::PolicyChain;

/// Row counts the chain stage keeps: the run summary's accounting.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct ChainCounts {
    /// Batches numbered.
    pub batches: u64,
    /// Rows that entered the chain.
    pub rows_in: u64,
    /// Records sources rejected (they skip the chain).
    pub rejected: u64,
    /// Rows the chain passed to the sinks.
    pub rows_out: u64,
}

/// The queues out of the chain stage.
#[derive(Debug)]
pub struct ChainOutputs {
    /// One per data sink.
    pub sinks: Vec<mpsc::Sender<(u64, SinkItem)>>,
    /// The dead-letter sink.
    pub dead_letter: mpsc::Sender<(u64, Vec<DeadRecords>)>,
    /// The device's memory budget, told the guests' memory after each batch.
    pub budget: Option<Arc<MemoryBudget>>,
}

/// The chain stopped because a sink stopped taking batches.
#[derive(Debug, thiserror::Error)]
#[error("a sink stopped taking batches")]
pub struct SinkGone;

/// The policy stamps of a chain, in order.
#[must_use]
pub fn stamps(chain: &PolicyChain) -> Vec<PolicyStamp> {
    chain
        .policies()
        .iter()
        .map(|p| {
            let module = p.runner.module();
            PolicyStamp {
                name: module.name().to_owned(),
                // The signed version when the policy came from a bundle.
                version: p.active_version().map_or_else(
                    || module.manifest().crate_version.clone(),
                    |v| v.version.to_string(),
                ),
                sha256: module.sha256_hex(),
            }
        })
        .collect()
}

/// Runs until the input closes (every batcher has finished). Returns the chain (for its
/// statistics) and the counts. After each batch, the chain's statistics go to `meter`.
///
/// # Errors
/// [`SinkGone`] when a sink's stage has stopped (it failed; its error is reported there).
pub fn run(
    mut chain: PolicyChain,
    mut input: mpsc::Receiver<Envelope>,
    outputs: &ChainOutputs,
    commits: &Commits,
    counts: &parking_lot::Mutex<ChainCounts>,
    meter: &mut ChainMeter,
) -> Result<PolicyChain, SinkGone> {
    let mut all_stamps: Arc<[PolicyStamp]> = stamps(&chain).into();
    let mut generation = chain.generation();
    let mut seq = 0u64;
    while let Some(envelope) = input.blocking_recv() {
        seq += 1;
        meter.numbered();
        let Envelope {
            source,
            batch,
            rejected,
            checkpoint,
            tickets,
            ..
        } = envelope;
        let tickets: Arc<[Arc<MemoryTicket>]> = tickets.into();
        let mut dead = Vec::new();
        {
            let mut c = counts.lock();
            c.batches += 1;
            c.rejected += rejected.len() as u64;
            c.rows_in += batch.as_ref().map_or(0, |b| b.num_rows() as u64);
        }
        if !rejected.is_empty() {
            dead.push(DeadRecords::Rejected {
                source: Arc::clone(&source),
                records: rejected,
            });
        }
        let output = match batch {
            Some(batch) if batch.num_rows() > 0 => {
                let started = Instant::now();
                let out = chain.run(batch);
                meter.batch_time(started.elapsed());
                if let Some(budget) = &outputs.budget {
                    budget.set_guest_memory(chain.guest_memory_bytes());
                }
                // A policy switched version at this batch boundary: files and dead letters
                // name the version that processed their rows.
                if chain.generation() != generation {
                    generation = chain.generation();
                    all_stamps = stamps(&chain).into();
                }
                for (index, (policy, stamp)) in
                    chain.policies().iter().zip(&*all_stamps).enumerate()
                {
                    meter.publish(index, stamp, &policy.stats);
                }
                for letter in out.dead_letters {
                    dead.push(DeadRecords::Policy {
                        policy: all_stamps[letter.index].clone(),
                        kind: letter.error.kind().as_str(),
                        reason: letter.error.to_string(),
                        rows: letter.rows,
                    });
                }
                out.batch
            }
            _ => None,
        };
        // No rows left: sinks still get the number, with an empty batch they do not write.
        let batch = output.unwrap_or_else(|| {
            arrow_array::RecordBatch::new_empty(Arc::new(arrow_schema::Schema::empty()))
        });
        counts.lock().rows_out += batch.num_rows() as u64;
        if let Some(checkpoint) = checkpoint {
            commits.expect(seq, Arc::clone(&source), checkpoint);
        }
        for tx in &outputs.sinks {
            let item = SinkItem {
                batch: batch.clone(),
                stamps: Arc::clone(&all_stamps),
                tickets: Arc::clone(&tickets),
            };
            tx.blocking_send((seq, item)).map_err(|_| SinkGone)?;
        }
        outputs
            .dead_letter
            .blocking_send((seq, dead))
            .map_err(|_| SinkGone)?;
    }
    Ok(chain)
}
