//! Per-instance host state: the memory limiter and what the guest reported before trapping.

use wasmtime::ResourceLimiter;

/// The error a guest's memory growth turns into when it would pass the instance's cap.
///
/// It travels inside the `wasmtime::Error` of the failing call, so the runtime can tell an
/// out-of-memory stop apart from any other trap.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("linear memory would grow to {desired} bytes, over the cap of {cap} bytes")]
pub struct MemoryCapExceeded {
    /// The size the guest asked for.
    pub desired: usize,
    /// The instance's cap.
    pub cap: usize,
}

/// The data every policy `Store` carries.
#[derive(Debug)]
pub struct GuestState {
    memory_cap: usize,
    table_cap: usize,
    /// Set when the guest hit its memory cap (growth was refused).
    pub memory_cap_hit: Option<MemoryCapExceeded>,
    /// The last panic message the guest reported through `weir.panic`.
    pub panic_message: Option<String>,
    /// Log lines the guest may still emit during the current call.
    pub log_budget: u32,
    /// Longest message kept, in bytes.
    pub max_message_bytes: usize,
    /// Policy name, for log lines.
    pub policy: String,
}

impl GuestState {
    /// Log lines a guest may emit per call; the rest are counted and dropped.
    pub const LOG_LINES_PER_CALL: u32 = 16;

    /// State for a new instance of `policy`.
    #[must_use]
    pub fn new(
        policy: &str,
        memory_cap: usize,
        table_cap: usize,
        max_message_bytes: usize,
    ) -> Self {
        Self {
            memory_cap,
            table_cap,
            memory_cap_hit: None,
            panic_message: None,
            log_budget: Self::LOG_LINES_PER_CALL,
            max_message_bytes,
            policy: policy.to_owned(),
        }
    }

    /// Clears per-call state before a call into the guest.
    pub fn begin_call(&mut self) {
        self.log_budget = Self::LOG_LINES_PER_CALL;
    }

    /// Decodes a guest message lossily and caps its length.
    #[must_use]
    pub fn message_from(&self, bytes: &[u8]) -> String {
        let bytes = &bytes[..bytes.len().min(self.max_message_bytes)];
        String::from_utf8_lossy(bytes).into_owned()
    }
}

impl ResourceLimiter for GuestState {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_cap {
            let hit = MemoryCapExceeded {
                desired,
                cap: self.memory_cap,
            };
            self.memory_cap_hit = Some(hit);
            // Trap right away: a policy that runs out of its budget is stopped, not left to
            // limp on with a failed allocation.
            return Err(wasmtime::Error::new(hit));
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= self.table_cap)
    }
}
