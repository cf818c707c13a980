//! [`SourceMeter`]: one source's counters, updated per chunk.

use std::collections::BTreeMap;
use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::metrics::counter::Counter;

use crate::capture::CaptureCounters;

/// Capture counters by source name, as last published (read at scrape time).
pub(crate) type CaptureSnapshots = Arc<Mutex<BTreeMap<String, CaptureCounters>>>;

/// A source's counters: rows decoded, records rejected, bytes read (each one atomic, added to
/// once per chunk), and the place where an `ebpf_flows` source publishes its capture counters.
///
/// The default meter counts into counters no registry reads (tests, `weir check`).
#[derive(Debug, Clone, Default)]
pub struct SourceMeter {
    name: String,
    rows: Counter,
    rejected: Counter,
    bytes: Counter,
    capture: CaptureSnapshots,
}

impl SourceMeter {
    /// A meter counting into these counters.
    pub(crate) fn new(
        name: &str,
        rows: Counter,
        rejected: Counter,
        bytes: Counter,
        capture: CaptureSnapshots,
    ) -> Self {
        Self {
            name: name.to_owned(),
            rows,
            rejected,
            bytes,
            capture,
        }
    }

    /// Counts a chunk: `rows` decoded, `rejected` records refused.
    pub fn chunk(&self, rows: u64, rejected: u64) {
        self.rows.inc_by(rows);
        if rejected > 0 {
            self.rejected.inc_by(rejected);
        }
    }

    /// Counts input bytes read.
    pub fn bytes(&self, bytes: u64) {
        self.bytes.inc_by(bytes);
    }

    /// Publishes the capture's counters so far (they replace the previous ones). Call it now
    /// and then (e.g. once a second), not per packet or flow.
    pub fn capture(&self, counters: CaptureCounters) {
        self.capture.lock().insert(self.name.clone(), counters);
    }

    /// Rows counted so far.
    #[must_use]
    pub fn rows(&self) -> u64 {
        self.rows.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_source_meter_adds_per_chunk_and_replaces_capture_counters() {
        let capture = CaptureSnapshots::default();
        let (rows, rejected, bytes) = (Counter::default(), Counter::default(), Counter::default());
        let meter = SourceMeter::new(
            "in",
            rows.clone(),
            rejected.clone(),
            bytes.clone(),
            Arc::clone(&capture),
        );
        meter.chunk(10, 2);
        meter.chunk(5, 0);
        meter.bytes(100);
        meter.bytes(28);
        assert_eq!((rows.get(), rejected.get(), bytes.get()), (15, 2, 128));
        assert_eq!(meter.rows(), 15);
        for flows in [3, 7] {
            meter.capture(CaptureCounters {
                flows,
                ..CaptureCounters::default()
            });
        }
        assert_eq!(capture.lock()["in"].flows, 7);
    }
}
