//! Resource limits applied to every policy instance and call.

use std::time::Duration;

/// Limits for policies run by one [`Engine`](super::Engine).
///
/// The defaults follow DESIGN.md §2: a 50 ms deadline per batch, 500 ms per instance
/// initialization, 64 MiB of linear memory per instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock budget for one batch through one policy (all of its morsels).
    pub batch_deadline: Duration,
    /// Wall-clock budget for instantiation, the start function, `_initialize` and `weir_init`.
    pub init_deadline: Duration,
    /// Linear memory cap per instance, in bytes.
    pub memory_bytes: usize,
    /// Largest table an instance may grow to, in elements.
    pub table_elements: usize,
    /// Largest module accepted for compilation, in bytes.
    pub max_module_bytes: usize,
    /// How long a caller waits for a background compilation before giving up.
    pub compile_timeout: Duration,
    /// Epoch tick: the granularity of every deadline.
    pub tick: Duration,
    /// Most instances alive at once (pooling allocator slots).
    pub max_instances: u32,
    /// Target size, in bytes of projected input, of one morsel: row-preserving policies see large
    /// batches in morsels of about this size so that the copied columns stay in cache.
    pub morsel_bytes: usize,
    /// Longest guest log or panic message kept, in bytes.
    pub max_message_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            batch_deadline: Duration::from_millis(50),
            init_deadline: Duration::from_millis(500),
            memory_bytes: 64 << 20,
            table_elements: 100_000,
            max_module_bytes: 16 << 20,
            compile_timeout: Duration::from_secs(30),
            tick: Duration::from_millis(1),
            max_instances: 64,
            morsel_bytes: 256 << 10,
            max_message_bytes: 4096,
        }
    }
}

impl Limits {
    /// A deadline expressed in epoch ticks (at least one).
    #[must_use]
    pub fn ticks(&self, deadline: Duration) -> u64 {
        let tick = self.tick.as_nanos().max(1);
        u64::try_from(deadline.as_nanos().div_ceil(tick))
            .unwrap_or(u64::MAX)
            .max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlines_round_up_to_whole_ticks() {
        let limits = Limits::default();
        assert_eq!(limits.ticks(Duration::from_millis(50)), 50);
        assert_eq!(limits.ticks(Duration::from_micros(1500)), 2);
        assert_eq!(limits.ticks(Duration::ZERO), 1);
    }
}
