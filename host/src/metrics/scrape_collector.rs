//! [`ScrapeCollector`]: the metrics read when a scrape asks for them: the registry's swaps,
//! refusals and compilations, the running versions, capture counters, queue depths and the
//! process's memory and descriptors.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric as _};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;

use super::process_stats::ProcessStats;
use super::source_meter::CaptureSnapshots;
use crate::capture::CaptureCounters;
use crate::pipeline::MemoryBudget;
use crate::policy::{PolicyControl, RefusalCode};

/// Reads one queue: (items waiting, capacity), or `None` once the queue is gone.
pub(crate) type QueueProbe = Box<dyn Fn() -> Option<(usize, usize)> + Send + Sync>;

/// The capture counters: (name without `weir_` and `_total`, help, value).
type CaptureField = (&'static str, &'static str, fn(&CaptureCounters) -> u64);

/// Every capture counter, in the order `weir status` shows them.
pub(crate) const CAPTURE_COUNTERS: [CaptureField; 11] = [
    ("capture_flows", "Flow records emitted.", |c| c.flows),
    (
        "capture_packets",
        "Packets counted in emitted flow records.",
        |c| c.packets,
    ),
    (
        "capture_bytes",
        "Bytes counted in emitted flow records.",
        |c| c.bytes,
    ),
    (
        "capture_map_full",
        "Packets the flow map had no room for, sent as ring-buffer events instead (not lost).",
        |c| c.map_full,
    ),
    ("capture_ring_events", "Ring-buffer events received.", |c| {
        c.ring_events
    }),
    (
        "capture_ringbuf_full",
        "Packets lost: the flow map was full and the ring buffer too.",
        |c| c.ringbuf_full,
    ),
    (
        "capture_map_errors",
        "Packets lost because the flow map refused an insert for another reason.",
        |c| c.map_error,
    ),
    (
        "capture_unsupported",
        "Frames that are not IPv4 or IPv6 (counted in no flow).",
        |c| c.unsupported,
    ),
    (
        "capture_truncated",
        "IP packets too short for the headers they announce (counted in no flow).",
        |c| c.truncated,
    ),
    (
        "capture_interface_lost",
        "Times a captured interface disappeared.",
        |c| c.interface_lost,
    ),
    (
        "capture_interface_reattached",
        "Times a captured interface came back and the program was attached again.",
        |c| c.interface_reattached,
    ),
];

/// Reads what is not counted on the data path, at scrape time.
pub(crate) struct ScrapeCollector {
    pub(crate) control: Arc<dyn PolicyControl>,
    pub(crate) capture: CaptureSnapshots,
    pub(crate) queues: Arc<Mutex<Vec<(String, QueueProbe)>>>,
    /// The memory budget of the run, once it has one.
    pub(crate) budget: Arc<Mutex<Option<Arc<MemoryBudget>>>>,
}

impl std::fmt::Debug for ScrapeCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScrapeCollector").finish_non_exhaustive()
    }
}

fn counter(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: u64,
) -> Result<(), std::fmt::Error> {
    ConstCounter::new(value).encode(encoder.encode_descriptor(
        name,
        help,
        None,
        MetricType::Counter,
    )?)
}

fn gauge(
    encoder: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    value: i64,
) -> Result<(), std::fmt::Error> {
    ConstGauge::new(value).encode(encoder.encode_descriptor(name, help, None, MetricType::Gauge)?)
}

/// A labelled family of constant values: `samples` are (label value, value).
fn family<M: prometheus_client::encoding::EncodeMetric>(
    encoder: &mut DescriptorEncoder<'_>,
    (name, help, kind): (&str, &str, MetricType),
    label: &str,
    samples: impl IntoIterator<Item = (String, M)>,
) -> Result<(), std::fmt::Error> {
    let mut metric = encoder.encode_descriptor(name, help, None, kind)?;
    for (value, m) in samples {
        let labels = [(label, value.as_str())];
        m.encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

fn as_i64(n: impl TryInto<i64>) -> i64 {
    n.try_into().unwrap_or(i64::MAX)
}

impl Collector for ScrapeCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let health = self.control.health();
        counter(
            &mut encoder,
            "weir_swaps",
            "Policy versions activated since the host started (hot swaps; the first versions \
             are not counted).",
            health.swaps,
        )?;
        counter(
            &mut encoder,
            "weir_compilations",
            "Policy module compilations since the host started (authenticated cache loads \
             included).",
            health.compilations,
        )?;
        family(
            &mut encoder,
            (
                "weir_refusals",
                "Policy bundles refused since the host started, by refusal code.",
                MetricType::Counter,
            ),
            "code",
            RefusalCode::ALL.iter().map(|code| {
                let n = health.refusals.get(code.as_str()).copied().unwrap_or(0);
                (code.as_str().to_owned(), ConstCounter::new(n))
            }),
        )?;
        let policies = self.control.list();
        if !policies.is_empty() {
            family(
                &mut encoder,
                (
                    "weir_policy_active_version",
                    "The signed version of each policy that runs now.",
                    MetricType::Gauge,
                ),
                "policy",
                policies
                    .iter()
                    .map(|p| (p.name.clone(), ConstGauge::new(as_i64(p.version)))),
            )?;
            family(
                &mut encoder,
                (
                    "weir_policy_swaps",
                    "Versions of each policy activated since the host started (excluding the \
                     first).",
                    MetricType::Counter,
                ),
                "policy",
                policies
                    .iter()
                    .map(|p| (p.name.clone(), ConstCounter::new(p.swaps))),
            )?;
        }

        let capture = self.capture.lock().clone();
        if !capture.is_empty() {
            for (name, help, field) in CAPTURE_COUNTERS {
                family(
                    &mut encoder,
                    (&format!("weir_{name}"), help, MetricType::Counter),
                    "source",
                    capture
                        .iter()
                        .map(|(source, c)| (source.clone(), ConstCounter::new(field(c)))),
                )?;
            }
        }

        let queues: Vec<(String, (usize, usize))> = self
            .queues
            .lock()
            .iter()
            .filter_map(|(name, probe)| Some((name.clone(), probe()?)))
            .collect();
        if !queues.is_empty() {
            family(
                &mut encoder,
                (
                    "weir_queue_depth",
                    "Items waiting in a bounded queue between two pipeline stages.",
                    MetricType::Gauge,
                ),
                "queue",
                queues
                    .iter()
                    .map(|(name, (depth, _))| (name.clone(), ConstGauge::new(as_i64(*depth)))),
            )?;
            family(
                &mut encoder,
                (
                    "weir_queue_capacity",
                    "Items a bounded queue between two pipeline stages holds at most \
                     (pipeline.queue_depth).",
                    MetricType::Gauge,
                ),
                "queue",
                queues
                    .iter()
                    .map(|(name, (_, cap))| (name.clone(), ConstGauge::new(as_i64(*cap)))),
            )?;
        }

        let budget = self.budget.lock().as_ref().map(|b| b.report());
        if let Some(b) = budget {
            gauge(
                &mut encoder,
                "weir_memory_budget_limit_bytes",
                "The device-wide memory budget (limits.memory_budget).",
                as_i64(b.limit),
            )?;
            family(
                &mut encoder,
                (
                    "weir_memory_budget_used_bytes",
                    "What the budget holds now: guest linear memory, and batches between the \
                     sources and the sinks.",
                    MetricType::Gauge,
                ),
                "part",
                [
                    ("guests".to_owned(), ConstGauge::new(as_i64(b.guest))),
                    ("batches".to_owned(), ConstGauge::new(as_i64(b.queued))),
                ],
            )?;
            gauge(
                &mut encoder,
                "weir_memory_budget_peak_bytes",
                "The most the budget held at once since the start.",
                as_i64(b.peak),
            )?;
            counter(
                &mut encoder,
                "weir_memory_budget_pauses",
                "Times a source waited for room in the memory budget.",
                b.pauses,
            )?;
            ConstCounter::new(b.paused_ms as f64 / 1000.0).encode(encoder.encode_descriptor(
                "weir_memory_budget_paused_seconds",
                "Time sources spent waiting for room in the memory budget, in all.",
                None,
                MetricType::Counter,
            )?)?;
        }

        let process = ProcessStats::read();
        if let Some(rss) = process.resident_bytes {
            gauge(
                &mut encoder,
                "weir_process_resident_memory_bytes",
                "Resident memory of the weir process (/proc/self/statm).",
                as_i64(rss),
            )?;
        }
        if let Some(fds) = process.open_fds {
            gauge(
                &mut encoder,
                "weir_process_open_fds",
                "Open file descriptors of the weir process.",
                as_i64(fds),
            )?;
        }
        Ok(())
    }
}
