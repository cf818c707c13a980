//! [`PolicyChain`]: batches through several policies in order, with per-policy fail modes and
//! counts that account for every row.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use arrow_array::RecordBatch;
use arrow_select::concat::concat_batches;

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

/// How a failing batch is split to find the rows the policy fails on (poison-batch
/// isolation). Applies to fail modes `dead_letter` and `drop`; `pass` passes the whole batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Isolation {
    /// Halvings at most: the smallest piece is `rows / 2^max_depth` rows (or one row).
    /// 0 turns isolation off.
    pub max_depth: u32,
    /// Calls at most on the pieces of one failing batch, beyond the first call (each split
    /// costs two). Bounds the extra work a policy that fails on everything can cause.
    pub max_retries: u32,
}

impl Default for Isolation {
    /// 16 halvings (single rows for batches up to 65,536 rows), 64 retries (about two
    /// calls per halving per poison row: enough for three poison rows in a batch of 8,192).
    fn default() -> Self {
        Self {
            max_depth: 16,
            max_retries: 64,
        }
    }
}

/// When a chain position's warm instance is replaced by a fresh one on schedule, so that a
/// guest that leaks memory cannot grow until it fails. A recycle starts the policy's own
/// state (aggregates) over, so both are off unless configured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recycle {
    /// After this many batches on one instance.
    pub after_batches: Option<NonZeroU64>,
    /// As soon as its linear memory has reached this many bytes after a batch (a high-water
    /// mark below the memory limit, so the fresh instance comes before a batch fails).
    pub memory_bytes: Option<u64>,
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
    /// When its instance is recycled.
    recycle: Recycle,
    /// Batches the current instance has run.
    batches_on_instance: u64,
    /// The last isolation rescued nothing (the policy fails on everything): the next failing
    /// batches are not split, until a call succeeds again.
    isolation_futile: bool,
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
    fn new(runner: PolicyRunner, fail_mode: FailMode, slot: Option<Followed>) -> Self {
        Self {
            runner,
            fail_mode,
            stats: PolicyStats::default(),
            slot,
            recycle: Recycle::default(),
            batches_on_instance: 0,
            isolation_futile: false,
        }
    }

    /// The signed version it runs, when it follows a registry slot.
    #[must_use]
    pub fn active_version(&self) -> Option<&Arc<ActiveVersion>> {
        self.slot.as_ref().map(|f| &f.running)
    }

    /// When its instance is recycled.
    #[must_use]
    pub fn recycle(&self) -> Recycle {
        self.recycle
    }

    /// One call of the runner, with the counts every call updates.
    fn call(&mut self, batch: &RecordBatch) -> Result<RecordBatch, PolicyError> {
        let result = self.runner.process(batch);
        match &result {
            Ok(_) => {
                self.isolation_futile = false;
                self.batches_on_instance += 1;
            }
            Err(error) => {
                // The failed instance is gone; the next call starts a fresh one.
                self.batches_on_instance = 0;
                *self.stats.errors.entry(error.kind()).or_default() += 1;
            }
        }
        result
    }

    /// Replaces the instance if it is due (after a successful batch).
    fn recycle_if_due(&mut self, index: usize) {
        let Recycle {
            after_batches,
            memory_bytes,
        } = self.recycle;
        let memory = self.runner.memory_bytes().unwrap_or(0) as u64;
        let by_batches = after_batches.is_some_and(|n| self.batches_on_instance >= n.get());
        let by_memory = memory_bytes.is_some_and(|mark| memory >= mark);
        if !(by_batches || by_memory) {
            return;
        }
        self.batches_on_instance = 0;
        match self.runner.recycle() {
            Ok(()) => {
                self.stats.instances_recycled += 1;
                tracing::debug!(
                    policy = self.runner.name(),
                    position = index,
                    memory_bytes = memory,
                    by_batches,
                    by_memory,
                    "policy instance recycled"
                );
            }
            Err(error) => tracing::warn!(
                policy = self.runner.name(),
                position = index,
                %error,
                "a recycled policy instance could not start; the next batch tries again"
            ),
        }
    }

    /// Splits `batch`, on which the first call failed, and retries the halves, then the
    /// halves of the halves that fail, within `limits`. Pieces are taken left to right.
    fn isolate(&mut self, batch: &RecordBatch, limits: Isolation) -> Isolated {
        let mut out = Isolated::default();
        let rows = batch.num_rows();
        if limits.max_depth == 0 || limits.max_retries < 2 || rows < 2 {
            return out;
        }
        let mut budget = limits.max_retries;
        // Pieces still to call, the next one last: (offset, rows, depth).
        let mut pending = Vec::new();
        let split = |offset: usize, len: usize, depth: u32, pending: &mut Vec<_>| {
            let half = len / 2;
            pending.push((offset + half, len - half, depth + 1));
            pending.push((offset, half, depth + 1));
        };
        budget -= 2;
        out.splits += 1;
        split(0, rows, 0, &mut pending);
        while let Some((offset, len, depth)) = pending.pop() {
            let error = match self.call(&batch.slice(offset, len)) {
                Ok(output) => {
                    out.rescued += len as u64;
                    out.outputs.push(output);
                    continue;
                }
                Err(error) => error,
            };
            if len > 1 && depth < limits.max_depth && budget >= 2 {
                budget -= 2;
                out.splits += 1;
                split(offset, len, depth, &mut pending);
                continue;
            }
            // Neighbouring pieces that failed the same way make one dead letter.
            match out.failed.last_mut() {
                Some((o, l, e)) if *o + *l == offset && e.kind() == error.kind() => *l += len,
                _ => out.failed.push((offset, len, error)),
            }
        }
        out
    }
}

/// What [`ChainPolicy::isolate`] made of a failing batch.
#[derive(Debug, Default)]
struct Isolated {
    /// The outputs of the pieces that succeeded, in row order.
    outputs: Vec<RecordBatch>,
    /// The pieces that failed for good: (offset, rows, error), in row order.
    failed: Vec<(usize, usize, PolicyError)>,
    /// Rows in the pieces that succeeded.
    rescued: u64,
    /// Splits made.
    splits: u64,
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
    isolation: Isolation,
}

impl PolicyChain {
    /// An empty chain (passes batches through).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a policy.
    pub fn push(&mut self, runner: PolicyRunner, fail_mode: FailMode) {
        self.policies
            .push(ChainPolicy::new(runner, fail_mode, None));
    }

    /// Sets how failing batches are split (the default is [`Isolation::default`]).
    pub fn set_isolation(&mut self, isolation: Isolation) {
        self.isolation = isolation;
    }

    /// Sets when the instance at `index` is recycled (ignored for an index past the end).
    pub fn set_recycle(&mut self, index: usize, recycle: Recycle) {
        if let Some(policy) = self.policies.get_mut(index) {
            policy.recycle = recycle;
        }
    }

    /// Appends a policy that follows `slot`: at each batch boundary the chain switches to the
    /// slot's active version if it changed. `runner` runs the slot's current version.
    pub fn push_slot(&mut self, runner: PolicyRunner, fail_mode: FailMode, slot: Arc<PolicySlot>) {
        let active = slot.active();
        let followed = Followed {
            slot,
            running: Arc::clone(&active),
            seen: active,
        };
        self.policies
            .push(ChainPolicy::new(runner, fail_mode, Some(followed)));
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
                    policy.batches_on_instance = 0;
                    policy.isolation_futile = false;
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

    /// The linear memory of every warm instance in the chain, in all.
    #[must_use]
    pub fn guest_memory_bytes(&self) -> u64 {
        self.policies
            .iter()
            .map(|p| p.runner.memory_bytes().unwrap_or(0) as u64)
            .sum()
    }

    /// Runs `batch` through every policy.
    ///
    /// When a policy fails on a batch (fail mode `dead_letter` or `drop`), the batch is split
    /// and the halves retried ([`Isolation`]): only the pieces that still fail meet the fail
    /// mode, and the rest go on, in row order.
    pub fn run(&mut self, batch: RecordBatch) -> ChainOutput {
        self.refresh();
        let isolation = self.isolation;
        let mut out = ChainOutput::default();
        let mut current = batch;
        for (index, policy) in self.policies.iter_mut().enumerate() {
            let rows = current.num_rows() as u64;
            policy.stats.batches += 1;
            policy.stats.rows_in += rows;
            let result = policy.call(&current);
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
            current = match result {
                Ok(next) => {
                    let kept = next.num_rows() as u64;
                    policy.stats.rows_out += kept;
                    policy.stats.rows_filtered += rows.saturating_sub(kept);
                    next
                }
                Err(error) => match policy.on_failure(index, current, error, isolation, &mut out) {
                    Some(next) => next,
                    None => return out,
                },
            };
            policy.recycle_if_due(index);
            if current.num_rows() == 0 {
                return out;
            }
        }
        out.batch = Some(current);
        out
    }
}

impl ChainPolicy {
    /// What follows a failed first call on `batch`: isolation, then the fail mode for what
    /// still fails. Returns what goes on to the next policy, or `None` when nothing does.
    fn on_failure(
        &mut self,
        index: usize,
        batch: RecordBatch,
        error: PolicyError,
        isolation: Isolation,
        out: &mut ChainOutput,
    ) -> Option<RecordBatch> {
        let rows = batch.num_rows() as u64;
        tracing::warn!(
            policy = self.runner.name(),
            kind = error.kind().as_str(),
            rows,
            fail_mode = ?self.fail_mode,
            error = %error,
            "policy failed on a batch"
        );
        if self.fail_mode == FailMode::Pass {
            self.stats.rows_out += rows;
            self.stats.rows_passed_on_error += rows;
            return Some(batch);
        }
        let isolated = if self.isolation_futile {
            Isolated::default()
        } else {
            self.isolate(&batch, isolation)
        };
        self.stats.batch_splits += isolated.splits;
        if isolated.splits > 0 && isolated.rescued == 0 {
            // Every piece failed: the policy fails on everything (or the pieces ran out
            // before reaching good rows). Spare the next failing batches the retries.
            self.isolation_futile = true;
        }
        let joined = match isolated.outputs.first() {
            Some(first) if isolated.rescued > 0 => {
                concat_batches(&first.schema(), &isolated.outputs).map_err(|e| {
                    tracing::warn!(
                        policy = self.runner.name(),
                        position = index,
                        error = %e,
                        "the pieces of a split batch came out with different schemas; the \
                         whole batch meets the fail mode"
                    );
                })
            }
            _ => Err(()),
        };
        let Ok(joined) = joined else {
            self.dispose(index, batch.clone(), batch.num_rows(), 0, error, out);
            return None;
        };
        let kept = joined.num_rows() as u64;
        self.stats.rows_rescued += isolated.rescued;
        self.stats.rows_out += kept;
        self.stats.rows_filtered += isolated.rescued.saturating_sub(kept);
        tracing::info!(
            policy = self.runner.name(),
            position = index,
            rows,
            rescued = isolated.rescued,
            failed = rows - isolated.rescued,
            splits = isolated.splits,
            "isolated the rows a policy fails on; the rest go on"
        );
        for (offset, len, error) in isolated.failed {
            self.dispose(index, batch.slice(offset, len), len, offset, error, out);
        }
        Some(joined)
    }

    /// Sends `rows` rows (`piece`, at `offset` in its batch) that the policy failed on to the
    /// fail mode (`dead_letter` or `drop`).
    fn dispose(
        &mut self,
        index: usize,
        piece: RecordBatch,
        rows: usize,
        offset: usize,
        error: PolicyError,
        out: &mut ChainOutput,
    ) {
        let rows = rows as u64;
        match self.fail_mode {
            FailMode::Drop => self.stats.rows_dropped += rows,
            // (`pass` never gets here: it passes the whole batch on.)
            FailMode::DeadLetter | FailMode::Pass => {
                tracing::debug!(position = index, offset, rows, "rows to dead-letter");
                self.stats.rows_dead_lettered += rows;
                out.dead_letters.push(DeadLetter {
                    policy: self.runner.name().to_owned(),
                    index,
                    error,
                    rows: piece,
                });
            }
        }
    }
}
