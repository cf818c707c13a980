//! [`PolicyChain`]: batches through several policies in order, with per-policy fail modes and
//! counts that account for every row.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;

use super::error::{ErrorKind, PolicyError};
use super::registry::{ActiveVersion, PolicySlot};
use super::runner::PolicyRunner;

/// What happens to a batch when its policy fails on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailMode {
    /// The batch's rows go to the dead-letter output with the reason (nothing is lost).
    #[default]
    DeadLetter,
    /// The batch's rows are dropped and counted.
    Drop,
    /// The batch passes to the next policy unchanged.
    Pass,
}

/// Rows a policy could not process, with the reason.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// The policy that failed.
    pub policy: String,
    /// Its position in the chain (names need not be unique: one module can run twice with
    /// different parameters).
    pub index: usize,
    /// Why.
    pub error: PolicyError,
    /// The rows as the policy received them.
    pub rows: RecordBatch,
}

/// Counts for one policy of a chain. Every row that enters is accounted for:
/// `rows_in = rows_out + rows_filtered + rows_dead_lettered + rows_dropped` for row-preserving
/// policies (aggregating transforms may change the row count, shown in `rows_out`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PolicyStats {
    /// Batches processed.
    pub batches: u64,
    /// Rows received.
    pub rows_in: u64,
    /// Rows passed on.
    pub rows_out: u64,
    /// Rows removed by the policy's selection.
    pub rows_filtered: u64,
    /// Rows sent to dead-letter after a failure.
    pub rows_dead_lettered: u64,
    /// Rows dropped after a failure (fail mode `drop`).
    pub rows_dropped: u64,
    /// Rows passed on unprocessed after a failure (fail mode `pass`; included in `rows_out`).
    pub rows_passed_on_error: u64,
    /// Failures by kind (every failed call, the retries of split batches included).
    pub errors: BTreeMap<ErrorKind, u64>,
    /// Times a failing batch (or part of one) was split in two and the halves retried
    /// (poison-batch isolation).
    pub batch_splits: u64,
    /// Rows of failing batches that went on after isolation: their part of the batch
    /// succeeded on a retry.
    pub rows_rescued: u64,
    /// Warm instances replaced on schedule (after `recycle_after_batches`, or at the memory
    /// high-water mark), not after a failure.
    pub instances_recycled: u64,
}

/// One policy of a chain and its fail mode.
#[derive(Debug)]
pub struct ChainPolicy {
    /// The runner.
    pub runner: PolicyRunner,
    /// What to do when it fails.
    pub fail_mode: FailMode,
    /// Its counts.
    pub stats: PolicyStats,
    /// The registry slot it follows (hot swap).
    slot: Option<Followed>,
}

/// A slot a chain position follows: the version it runs, and the newest it has looked at (a
/// version whose runner could not start is looked at once, and the old one keeps running).
#[derive(Debug)]
struct Followed {
    slot: Arc<PolicySlot>,
    running: Arc<ActiveVersion>,
    seen: Arc<ActiveVersion>,
}

impl ChainPolicy {
    /// The signed version it runs, when it follows a registry slot.
    #[must_use]
    pub fn active_version(&self) -> Option<&Arc<ActiveVersion>> {
        self.slot.as_ref().map(|f| &f.running)
    }
}

/// The result of one batch through a chain.
#[derive(Debug, Default)]
pub struct ChainOutput {
    /// What came out of the last policy (absent when no row is left).
    pub batch: Option<RecordBatch>,
    /// Rows that went to dead-letter on the way.
    pub dead_letters: Vec<DeadLetter>,
}

/// Policies applied in order to each batch.
#[derive(Debug, Default)]
pub struct PolicyChain {
    policies: Vec<ChainPolicy>,
    generation: u64,
}

impl PolicyChain {
    /// An empty chain (passes batches through).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a policy.
    pub fn push(&mut self, runner: PolicyRunner, fail_mode: FailMode) {
        self.policies.push(ChainPolicy {
            runner,
            fail_mode,
            stats: PolicyStats::default(),
            slot: None,
        });
    }

    /// Appends a policy that follows `slot`: at each batch boundary the chain switches to the
    /// slot's active version if it changed. `runner` runs the slot's current version.
    pub fn push_slot(&mut self, runner: PolicyRunner, fail_mode: FailMode, slot: Arc<PolicySlot>) {
        let active = slot.active();
        self.policies.push(ChainPolicy {
            runner,
            fail_mode,
            stats: PolicyStats::default(),
            slot: Some(Followed {
                slot,
                running: Arc::clone(&active),
                seen: active,
            }),
        });
    }

    /// Increases whenever a policy switched version (so callers can refresh what they derive
    /// from the versions, such as file metadata).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Takes each slot's active version: the batch that starts now runs on these versions to
    /// its end. A version whose runner cannot start keeps the old runner (and says so).
    fn refresh(&mut self) {
        for (index, policy) in self.policies.iter_mut().enumerate() {
            let Some(Followed {
                slot,
                running,
                seen,
            }) = &mut policy.slot
            else {
                continue;
            };
            let latest = slot.active();
            if Arc::ptr_eq(&latest, seen) {
                continue;
            }
            *seen = Arc::clone(&latest);
            let runner = match latest.take_warm(index) {
                Some(runner) => Ok(runner),
                None => policy.runner.with_module(Arc::clone(&latest.module)),
            };
            match runner {
                Ok(runner) => {
                    tracing::info!(
                        policy = slot.name(),
                        position = index,
                        from = running.version,
                        to = latest.version,
                        "chain switched policy version at a batch boundary"
                    );
                    policy.runner = runner;
                    *running = latest;
                    self.generation += 1;
                }
                Err(error) => {
                    tracing::error!(
                        policy = slot.name(),
                        position = index,
                        version = latest.version,
                        %error,
                        "new policy version could not start; the chain keeps the old one"
                    );
                }
            }
        }
    }

    /// The policies, in order.
    #[must_use]
    pub fn policies(&self) -> &[ChainPolicy] {
        &self.policies
    }

    /// Runs `batch` through every policy.
    pub fn run(&mut self, batch: RecordBatch) -> ChainOutput {
        self.refresh();
        let mut out = ChainOutput::default();
        let mut current = batch;
        for (index, policy) in self.policies.iter_mut().enumerate() {
            let rows = current.num_rows() as u64;
            let stats = &mut policy.stats;
            stats.batches += 1;
            stats.rows_in += rows;
            let result = policy.runner.process(&current);
            if let Some(Followed { slot, .. }) = &policy.slot {
                let counters = &slot.counters;
                counters.rows_in.fetch_add(rows, Ordering::Relaxed);
                match &result {
                    Ok(next) => {
                        counters
                            .rows_out
                            .fetch_add(next.num_rows() as u64, Ordering::Relaxed);
                        slot.record(index, &current, next.schema());
                    }
                    // A batch the running version fails on is no canary for the next one.
                    Err(_) => {
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            match result {
                Ok(next) => {
                    let kept = next.num_rows() as u64;
                    stats.rows_out += kept;
                    stats.rows_filtered += rows.saturating_sub(kept);
                    current = next;
                }
                Err(error) => {
                    *stats.errors.entry(error.kind()).or_default() += 1;
                    tracing::warn!(
                        policy = policy.runner.name(),
                        kind = error.kind().as_str(),
                        rows,
                        fail_mode = ?policy.fail_mode,
                        error = %error,
                        "policy failed on a batch"
                    );
                    match policy.fail_mode {
                        FailMode::DeadLetter => {
                            stats.rows_dead_lettered += rows;
                            out.dead_letters.push(DeadLetter {
                                policy: policy.runner.name().to_owned(),
                                index,
                                error,
                                rows: current,
                            });
                            return out;
                        }
                        FailMode::Drop => {
                            stats.rows_dropped += rows;
                            return out;
                        }
                        FailMode::Pass => {
                            stats.rows_out += rows;
                            stats.rows_passed_on_error += rows;
                        }
                    }
                }
            }
            if current.num_rows() == 0 {
                return out;
            }
        }
        out.batch = Some(current);
        out
    }
}
