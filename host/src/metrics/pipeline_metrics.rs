//! [`PipelineMetrics`]: every metric of a running host, and their text encoding.

use std::sync::Arc;

use parking_lot::Mutex;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use tokio::sync::mpsc;

use super::chain_meter::{ChainFamilies, ChainMeter, POLICY_COUNTERS};
use super::scrape_collector::{QueueProbe, ScrapeCollector};
use super::source_meter::{CaptureSnapshots, SourceMeter};
use crate::pipeline::MemoryBudget;
use crate::policy::PolicyControl;

/// The `Content-Type` of [`PipelineMetrics::encode`]'s text (OpenMetrics 1.0, which Prometheus
/// scrapes natively).
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Label of the per-source counters.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

/// Every metric of a host: counters the data path adds to ([`SourceMeter`], [`ChainMeter`]),
/// and a collector that reads the rest at scrape time. Shared (in an `Arc`) by the pipeline and
/// the admin API; see `docs/metrics.md` for the list.
pub struct PipelineMetrics {
    registry: Registry,
    source_rows: Family<SourceLabels, Counter>,
    source_rejected: Family<SourceLabels, Counter>,
    source_bytes: Family<SourceLabels, Counter>,
    chain: ChainFamilies,
    capture: CaptureSnapshots,
    queues: Arc<Mutex<Vec<(String, QueueProbe)>>>,
    budget: Arc<Mutex<Option<Arc<MemoryBudget>>>>,
}

impl std::fmt::Debug for PipelineMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PipelineMetrics")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

impl PipelineMetrics {
    /// The metrics of a host whose policies `control` runs (its swaps, refusals and versions
    /// are read from it at scrape time).
    #[must_use]
    pub fn new(control: Arc<dyn PolicyControl>) -> Self {
        // Help texts of registered metrics end without a period: the encoder adds one.
        let mut registry = Registry::default();
        let source_rows = Family::<SourceLabels, Counter>::default();
        let source_rejected = Family::<SourceLabels, Counter>::default();
        let source_bytes = Family::<SourceLabels, Counter>::default();
        registry.register(
            "weir_source_rows",
            "Records a source decoded into rows",
            source_rows.clone(),
        );
        registry.register(
            "weir_source_rejected_records",
            "Records a source rejected (they go to the dead-letter sink with the reason)",
            source_rejected.clone(),
        );
        registry.register(
            "weir_source_read_bytes",
            "Input bytes a source read (for ebpf_flows: 88 bytes per flow record)",
            source_bytes.clone(),
        );
        let chain = ChainFamilies::default();
        registry.register(
            "weir_chain_batches",
            "Batches the policy chain's stage numbered (with or without rows)",
            chain.batches.clone(),
        );
        registry.register(
            "weir_chain_batch_duration_seconds",
            "Time one batch took through the whole policy chain",
            chain.batch_seconds.clone(),
        );
        for ((name, help), family) in POLICY_COUNTERS.iter().zip(&chain.policy) {
            registry.register(format!("weir_{name}"), *help, family.clone());
        }
        registry.register(
            "weir_policy_errors",
            "Failed policy calls, by kind (time_limit, memory_limit, guest_error, bad_output, \
             bad_input, guest_fault); the retries of split batches included",
            chain.errors.clone(),
        );
        let capture = CaptureSnapshots::default();
        let queues = Arc::new(Mutex::new(Vec::new()));
        let budget = Arc::new(Mutex::new(None));
        registry.register_collector(Box::new(ScrapeCollector {
            control,
            capture: Arc::clone(&capture),
            queues: Arc::clone(&queues),
            budget: Arc::clone(&budget),
        }));
        Self {
            registry,
            source_rows,
            source_rejected,
            source_bytes,
            chain,
            capture,
            queues,
            budget,
        }
    }

    /// Reports `budget` as the `weir_memory_budget_*` metrics from now on.
    pub fn watch_budget(&self, budget: &Arc<MemoryBudget>) {
        *self.budget.lock() = Some(Arc::clone(budget));
    }

    /// The meter of the source `name` (its counters appear, at zero, from now on).
    #[must_use]
    pub fn source_meter(&self, name: &str) -> SourceMeter {
        let labels = SourceLabels {
            source: name.to_owned(),
        };
        SourceMeter::new(
            name,
            self.source_rows.get_or_create_owned(&labels),
            self.source_rejected.get_or_create_owned(&labels),
            self.source_bytes.get_or_create_owned(&labels),
            Arc::clone(&self.capture),
        )
    }

    /// The meter of the policy chain (one per run).
    #[must_use]
    pub fn chain_meter(&self) -> ChainMeter {
        ChainMeter::new(self.chain.clone())
    }

    /// Reports the depth of the queue `tx` sends into as `weir_queue_depth{queue="<name>"}`.
    /// Only a weak handle is kept: the queue still closes when its senders are dropped.
    pub fn watch_queue<T: Send + 'static>(&self, name: impl Into<String>, tx: &mpsc::Sender<T>) {
        let weak = tx.downgrade();
        let probe: QueueProbe = Box::new(move || {
            let tx = weak.upgrade()?;
            let max = tx.max_capacity();
            Some((max - tx.capacity(), max))
        });
        self.queues.lock().push((name.into(), probe));
    }

    /// Every metric, in the OpenMetrics text format (ending with `# EOF`). Reads the registry
    /// and /proc: call it from a blocking context.
    #[must_use]
    pub fn encode(&self) -> String {
        let mut text = String::new();
        // Writing into a String cannot fail, and the collectors' own errors are formatting
        // errors of the same kind.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut text, &self.registry) {
            tracing::error!(%error, "encoding the metrics failed");
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::admin::test_support::FakeControl;
    use crate::metrics::MetricSamples;
    use crate::pipeline::PolicyStamp;
    use crate::policy::{ErrorKind, PolicyStats};

    fn labels<'a>(pairs: &'a [(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        pairs.to_vec()
    }

    #[test]
    fn metrics_text_has_every_kind_of_metric_with_help_and_values() {
        let metrics = PipelineMetrics::new(FakeControl::accepting());
        let sensors = metrics.source_meter("sensors");
        sensors.chunk(1000, 3);
        sensors.bytes(64_000);
        let _idle = metrics.source_meter("idle");
        let flows = metrics.source_meter("flows");
        flows.capture(crate::capture::CaptureCounters {
            flows: 12,
            packets: 40,
            ringbuf_full: 2,
            ..Default::default()
        });
        let mut chain = metrics.chain_meter();
        let stamp = PolicyStamp {
            name: "drop-outliers".into(),
            version: "3".into(),
            sha256: String::new(),
        };
        let mut stats = PolicyStats {
            batches: 2,
            rows_in: 1000,
            rows_out: 900,
            rows_filtered: 100,
            ..PolicyStats::default()
        };
        stats.errors.insert(ErrorKind::TimeLimit, 1);
        chain.publish(0, &stamp, &stats);
        chain.numbered();
        chain.numbered();
        chain.batch_time(Duration::from_micros(80));
        chain.batch_time(Duration::from_millis(3));
        let (tx, _rx) = mpsc::channel::<u32>(4);
        tx.try_send(1).unwrap();
        tx.try_send(2).unwrap();
        metrics.watch_queue("chain", &tx);
        let budget = crate::pipeline::MemoryBudget::new(10_000);
        budget.set_guest_memory(4_000);
        let ticket = budget.charge(3_000);
        metrics.watch_budget(&budget);

        let text = metrics.encode();
        drop(ticket);
        assert!(text.ends_with("# EOF\n"), "{text}");
        assert!(!text.contains("..\n"), "{text}");
        let samples = MetricSamples::parse(&text).unwrap();
        let v = |name: &str, l: &[(&str, &str)]| samples.value(name, &labels(l));
        assert_eq!(
            v("weir_source_rows_total", &[("source", "sensors")]),
            Some(1000.0)
        );
        assert_eq!(
            v("weir_source_rows_total", &[("source", "idle")]),
            Some(0.0)
        );
        assert_eq!(
            v(
                "weir_source_rejected_records_total",
                &[("source", "sensors")]
            ),
            Some(3.0)
        );
        assert_eq!(
            v("weir_source_read_bytes_total", &[("source", "sensors")]),
            Some(64_000.0)
        );
        let policy = [
            ("policy", "drop-outliers"),
            ("position", "0"),
            ("version", "3"),
        ];
        assert_eq!(v("weir_policy_rows_in_total", &policy), Some(1000.0));
        assert_eq!(v("weir_policy_rows_out_total", &policy), Some(900.0));
        assert_eq!(v("weir_policy_rows_filtered_total", &policy), Some(100.0));
        assert_eq!(v("weir_policy_batch_splits_total", &policy), Some(0.0));
        let mut errors = policy.to_vec();
        errors.push(("kind", "time_limit"));
        assert_eq!(v("weir_policy_errors_total", &errors), Some(1.0));
        assert_eq!(v("weir_chain_batches_total", &[]), Some(2.0));
        assert_eq!(v("weir_chain_batch_duration_seconds_count", &[]), Some(2.0));
        assert_eq!(
            v(
                "weir_chain_batch_duration_seconds_bucket",
                &[("le", "0.0001")]
            ),
            Some(1.0)
        );
        assert_eq!(
            v(
                "weir_chain_batch_duration_seconds_bucket",
                &[("le", "+Inf")]
            ),
            Some(2.0)
        );
        assert_eq!(v("weir_swaps_total", &[]), Some(3.0));
        assert_eq!(v("weir_compilations_total", &[]), Some(4.0));
        assert_eq!(
            v("weir_refusals_total", &[("code", "downgrade")]),
            Some(2.0)
        );
        assert_eq!(
            v("weir_refusals_total", &[("code", "bad_signature")]),
            Some(0.0)
        );
        assert_eq!(
            v("weir_policy_active_version", &[("policy", "clamp")]),
            Some(7.0)
        );
        assert_eq!(
            v("weir_capture_flows_total", &[("source", "flows")]),
            Some(12.0)
        );
        assert_eq!(
            v("weir_capture_ringbuf_full_total", &[("source", "flows")]),
            Some(2.0)
        );
        assert_eq!(v("weir_memory_budget_limit_bytes", &[]), Some(10_000.0));
        assert_eq!(
            v("weir_memory_budget_used_bytes", &[("part", "guests")]),
            Some(4_000.0)
        );
        assert_eq!(
            v("weir_memory_budget_used_bytes", &[("part", "batches")]),
            Some(3_000.0)
        );
        assert_eq!(v("weir_memory_budget_peak_bytes", &[]), Some(7_000.0));
        assert_eq!(v("weir_memory_budget_pauses_total", &[]), Some(0.0));
        assert_eq!(v("weir_memory_budget_paused_seconds_total", &[]), Some(0.0));
        assert_eq!(v("weir_queue_depth", &[("queue", "chain")]), Some(2.0));
        assert_eq!(v("weir_queue_capacity", &[("queue", "chain")]), Some(4.0));
        assert!(v("weir_process_resident_memory_bytes", &[]).unwrap() > 1e6);
        assert!(v("weir_process_open_fds", &[]).unwrap() >= 3.0);
        // Every metric has its help and type.
        for family in samples.families() {
            assert!(
                text.contains(&format!("# HELP {family} ")),
                "no HELP for {family}"
            );
            assert!(
                text.contains(&format!("# TYPE {family} ")),
                "no TYPE for {family}"
            );
        }

        // The queue closes when its last sender goes, and is no longer reported.
        drop(tx);
        let text = metrics.encode();
        assert!(!text.contains("weir_queue_depth"), "{text}");
    }
}
