//! [`PolicySlot`]: one policy name's active version, shared between the registry (which swaps
//! it) and the chain (which reads it at every batch boundary).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parking_lot::Mutex;

use crate::policy::load::PolicyModule;
use crate::policy::runner::PolicyRunner;

/// A verified, compiled version of a policy, ready for the chain.
#[derive(Debug)]
pub struct ActiveVersion {
    /// The compiled module.
    pub module: Arc<PolicyModule>,
    /// The signed version.
    pub version: u64,
    /// Module sha256, hex.
    pub sha256_hex: String,
    /// The keys whose signatures verified.
    pub signers: Vec<String>,
    /// When it became active.
    pub activated_at: SystemTime,
    /// Warm runners made during the canary, one per chain position (taken by the chain when it
    /// switches, so the data path does not even pay for instantiation).
    warm: Mutex<Vec<(usize, PolicyRunner)>>,
}

impl ActiveVersion {
    /// A version with no warm runners.
    #[must_use]
    pub fn new(
        module: Arc<PolicyModule>,
        version: u64,
        signers: Vec<String>,
        warm: Vec<(usize, PolicyRunner)>,
    ) -> Self {
        Self {
            sha256_hex: module.sha256_hex(),
            module,
            version,
            signers,
            activated_at: SystemTime::now(),
            warm: Mutex::new(warm),
        }
    }

    /// The warm runner made for chain position `index`, if it is still there.
    pub fn take_warm(&self, index: usize) -> Option<PolicyRunner> {
        let mut warm = self.warm.lock();
        let at = warm.iter().position(|(i, _)| *i == index)?;
        Some(warm.swap_remove(at).1)
    }
}

/// The batches a position saw last, for canaries: inputs, and the schema its output had.
#[derive(Debug, Default)]
struct Recent {
    inputs: VecDeque<RecordBatch>,
    output_schema: Option<SchemaRef>,
}

/// One chain position that runs the slot's policy.
#[derive(Debug)]
pub struct SlotPosition {
    /// Index in the chain.
    pub index: usize,
    /// Parameters (JSON) of that position.
    pub params: Vec<u8>,
    recent: Mutex<Recent>,
}

/// Counters of a slot, over every version (read by `GET /v1/policies`).
#[derive(Debug, Default)]
pub struct SlotCounters {
    /// Rows received.
    pub rows_in: AtomicU64,
    /// Rows passed on.
    pub rows_out: AtomicU64,
    /// Batches the policy failed on.
    pub errors: AtomicU64,
    /// Promotions after the first version.
    pub swaps: AtomicU64,
}

/// A policy name's active version and the chain positions that run it.
#[derive(Debug)]
pub struct PolicySlot {
    name: String,
    active: ArcSwap<ActiveVersion>,
    positions: Vec<SlotPosition>,
    keep_recent: usize,
    /// Counters over every version.
    pub counters: SlotCounters,
    /// Serializes promotions of this name (verification of different names runs in parallel).
    pub(crate) promotion: Mutex<()>,
}

impl PolicySlot {
    /// A slot for `name` starting on `active`, run at `positions` (index, params), keeping the
    /// last `keep_recent` input batches of each position for canaries.
    #[must_use]
    pub fn new(
        name: String,
        active: ActiveVersion,
        positions: Vec<(usize, Vec<u8>)>,
        keep_recent: usize,
    ) -> Self {
        Self {
            name,
            active: ArcSwap::from_pointee(active),
            positions: positions
                .into_iter()
                .map(|(index, params)| SlotPosition {
                    index,
                    params,
                    recent: Mutex::new(Recent::default()),
                })
                .collect(),
            keep_recent,
            counters: SlotCounters::default(),
            promotion: Mutex::new(()),
        }
    }

    /// The policy name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The active version (a batch takes it at its start and finishes on it).
    #[must_use]
    pub fn active(&self) -> Arc<ActiveVersion> {
        self.active.load_full()
    }

    /// Makes `next` the active version: every batch that starts after this runs it.
    pub fn activate(&self, next: ActiveVersion) {
        self.active.store(Arc::new(next));
        self.counters.swaps.fetch_add(1, Ordering::Relaxed);
    }

    /// The chain positions that run this policy.
    #[must_use]
    pub fn positions(&self) -> &[SlotPosition] {
        &self.positions
    }

    /// Records the input of a batch at chain position `index` and the schema of its output.
    pub fn record(&self, index: usize, input: &RecordBatch, output_schema: SchemaRef) {
        if self.keep_recent == 0 || input.num_rows() == 0 {
            return;
        }
        if let Some(position) = self.positions.iter().find(|p| p.index == index) {
            let mut recent = position.recent.lock();
            if recent.inputs.len() == self.keep_recent {
                recent.inputs.pop_front();
            }
            recent.inputs.push_back(input.clone());
            recent.output_schema = Some(output_schema);
        }
    }
}

impl SlotPosition {
    /// The recent input batches (oldest first) and the schema of the last output.
    #[must_use]
    pub fn recent(&self) -> (Vec<RecordBatch>, Option<SchemaRef>) {
        let recent = self.recent.lock();
        (
            recent.inputs.iter().cloned().collect(),
            recent.output_schema.clone(),
        )
    }
}
