//! [`ChainMeter`]: what the policy chain did, published by the chain's stage once per batch.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;

use crate::pipeline::PolicyStamp;
use crate::policy::{ErrorKind, PolicyStats};

/// Upper bounds (seconds) of the batch latency histogram's buckets: 50 µs to 5 s, about three
/// per decade.
pub const BATCH_SECONDS_BUCKETS: [f64; 16] = [
    0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 2.5, 5.0,
];

/// The per-policy counters: (name without `weir_` and `_total`, help without the final period
/// the encoder adds), in the order [`policy_values`] returns them.
pub(crate) const POLICY_COUNTERS: [(&str, &str); 10] = [
    (
        "policy_batches",
        "Batches the policy was given (a split batch's retries are not counted again)",
    ),
    ("policy_rows_in", "Rows the policy received"),
    (
        "policy_rows_out",
        "Rows the policy passed on (including rows passed on unprocessed after a failure with \
         on_error = \"pass\")",
    ),
    (
        "policy_rows_filtered",
        "Rows the policy's selection removed",
    ),
    (
        "policy_rows_dropped",
        "Rows dropped after the policy failed on them (on_error = \"drop\")",
    ),
    (
        "policy_rows_dead_lettered",
        "Rows sent to the dead-letter sink after the policy failed on them",
    ),
    (
        "policy_rows_passed_on_error",
        "Rows passed on unprocessed after the policy failed on them (on_error = \"pass\"; also \
         in rows_out)",
    ),
    (
        "policy_batch_splits",
        "Times a failing batch (or part of one) was split in two and the halves retried",
    ),
    (
        "policy_rows_rescued",
        "Rows of failing batches that went on after isolation (their part succeeded on a retry)",
    ),
    (
        "policy_instances_recycled",
        "Warm instances replaced on schedule (not after a failure)",
    ),
];

/// The values of [`POLICY_COUNTERS`] in `stats`.
fn policy_values(stats: &PolicyStats) -> [u64; POLICY_COUNTERS.len()] {
    [
        stats.batches,
        stats.rows_in,
        stats.rows_out,
        stats.rows_filtered,
        stats.rows_dropped,
        stats.rows_dead_lettered,
        stats.rows_passed_on_error,
        stats.batch_splits,
        stats.rows_rescued,
        stats.instances_recycled,
    ]
}

/// Labels of a per-policy counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyLabels {
    /// The policy's name.
    pub(crate) policy: String,
    /// Its position in the chain (0 first).
    pub(crate) position: String,
    /// The version that processed the rows.
    pub(crate) version: String,
}

/// Labels of the error counter.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct PolicyErrorLabels {
    /// The policy's name.
    pub(crate) policy: String,
    /// Its position in the chain.
    pub(crate) position: String,
    /// The version that failed.
    pub(crate) version: String,
    /// [`ErrorKind::as_str`].
    pub(crate) kind: String,
}

/// The families a [`ChainMeter`] counts into (shared with the registry).
#[derive(Debug, Clone)]
pub(crate) struct ChainFamilies {
    /// One family per entry of [`POLICY_COUNTERS`].
    pub(crate) policy: [Family<PolicyLabels, Counter>; POLICY_COUNTERS.len()],
    /// Failures by kind.
    pub(crate) errors: Family<PolicyErrorLabels, Counter>,
    /// Time of one batch through the chain.
    pub(crate) batch_seconds: Histogram,
    /// Batches numbered by the chain's stage.
    pub(crate) batches: Counter,
}

impl ChainFamilies {
    /// Removes every per-policy series of `labels` (its counters and its errors of every kind).
    fn remove(&self, labels: &PolicyLabels) {
        for family in &self.policy {
            family.remove(labels);
        }
        for kind in ErrorKind::ALL {
            self.errors.remove(&PolicyErrorLabels {
                policy: labels.policy.clone(),
                position: labels.position.clone(),
                version: labels.version.clone(),
                kind: kind.as_str().to_owned(),
            });
        }
    }
}

impl Default for ChainFamilies {
    fn default() -> Self {
        Self {
            policy: Default::default(),
            errors: Family::default(),
            batch_seconds: Histogram::new(BATCH_SECONDS_BUCKETS),
            batches: Counter::default(),
        }
    }
}

/// Retired versions per chain position whose series are still served. A hot swap retires a
/// version; its counters stay for this many more swaps (so a scraper sees their final values
/// for a while), then their series are removed: a device that swaps policies for months does
/// not serve, or hold, a series per version it ever ran.
pub const RETIRED_VERSIONS_KEPT: usize = 4;

/// One chain position's counters (for the version it runs) and the totals already counted.
#[derive(Debug)]
struct Position {
    labels: PolicyLabels,
    counters: Vec<Counter>,
    counted: [u64; POLICY_COUNTERS.len()],
    errors_counted: BTreeMap<ErrorKind, u64>,
    /// Labels of the versions this position ran before, oldest first.
    retired: VecDeque<PolicyLabels>,
}

/// Publishes the chain's statistics. The chain's [`PolicyStats`] are running totals; after each
/// batch the meter adds what changed to the atomic counters of the policy's (name, position,
/// version), so rows processed after a hot swap count under the new version. A few atomic adds
/// per policy and batch; nothing per row.
#[derive(Debug)]
pub struct ChainMeter {
    families: ChainFamilies,
    positions: Vec<Option<Position>>,
}

impl ChainMeter {
    pub(crate) fn new(families: ChainFamilies) -> Self {
        Self {
            families,
            positions: Vec::new(),
        }
    }

    /// Counts a batch numbered by the chain's stage (with or without rows).
    pub fn numbered(&self) {
        self.families.batches.inc();
    }

    /// Records the time one batch took through the policy chain.
    pub fn batch_time(&self, elapsed: Duration) {
        self.families.batch_seconds.observe(elapsed.as_secs_f64());
    }

    /// Publishes the totals of the policy at `index`, run by `stamp`'s version.
    pub fn publish(&mut self, index: usize, stamp: &PolicyStamp, stats: &PolicyStats) {
        if self.positions.len() <= index {
            self.positions.resize_with(index + 1, || None);
        }
        let slot = &mut self.positions[index];
        let stale = slot
            .as_ref()
            .is_none_or(|p| p.labels.version != stamp.version || p.labels.policy != stamp.name);
        if stale {
            let labels = PolicyLabels {
                policy: stamp.name.clone(),
                position: index.to_string(),
                version: stamp.version.clone(),
            };
            let counters = self
                .families
                .policy
                .iter()
                .map(|f| f.get_or_create_owned(&labels))
                .collect();
            // What the previous version counted stays with it.
            let (counted, errors_counted, mut retired) = slot.take().map_or_else(
                || ([0; POLICY_COUNTERS.len()], BTreeMap::new(), VecDeque::new()),
                |p| {
                    let mut retired = p.retired;
                    retired.push_back(p.labels);
                    (p.counted, p.errors_counted, retired)
                },
            );
            while retired.len() > RETIRED_VERSIONS_KEPT {
                if let Some(old) = retired.pop_front() {
                    self.families.remove(&old);
                }
            }
            *slot = Some(Position {
                labels,
                counters,
                counted,
                errors_counted,
                retired,
            });
        }
        let Some(position) = slot.as_mut() else {
            return;
        };
        let values = policy_values(stats);
        for ((counter, counted), value) in position
            .counters
            .iter()
            .zip(position.counted.iter_mut())
            .zip(values)
        {
            if value > *counted {
                counter.inc_by(value - *counted);
                *counted = value;
            }
        }
        if stats.errors != position.errors_counted {
            for (kind, &n) in &stats.errors {
                let before = position.errors_counted.get(kind).copied().unwrap_or(0);
                if n > before {
                    let labels = PolicyErrorLabels {
                        policy: position.labels.policy.clone(),
                        position: position.labels.position.clone(),
                        version: position.labels.version.clone(),
                        kind: kind.as_str().to_owned(),
                    };
                    self.families
                        .errors
                        .get_or_create(&labels)
                        .inc_by(n - before);
                }
            }
            position.errors_counted.clone_from(&stats.errors);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(version: &str) -> PolicyStamp {
        PolicyStamp {
            name: "clamp".into(),
            version: version.into(),
            sha256: "ab".repeat(32),
        }
    }

    fn labels(version: &str) -> PolicyLabels {
        PolicyLabels {
            policy: "clamp".into(),
            position: "1".into(),
            version: version.into(),
        }
    }

    fn count(families: &ChainFamilies, which: usize, version: &str) -> u64 {
        families.policy[which]
            .get(&labels(version))
            .map_or(0, |c| c.get())
    }

    #[test]
    fn metrics_chain_meter_adds_deltas_and_splits_by_version() {
        let families = ChainFamilies::default();
        let mut meter = ChainMeter::new(families.clone());
        let mut stats = PolicyStats {
            batches: 2,
            rows_in: 100,
            rows_out: 90,
            rows_filtered: 10,
            ..PolicyStats::default()
        };
        meter.publish(1, &stamp("1"), &stats);
        meter.publish(1, &stamp("1"), &stats);
        assert_eq!(count(&families, 1, "1"), 100, "totals are not added twice");
        stats.batches = 3;
        stats.rows_in = 150;
        stats.rows_dead_lettered = 50;
        stats.batch_splits = 4;
        stats.rows_rescued = 7;
        stats.instances_recycled = 1;
        stats.errors.insert(ErrorKind::GuestError, 5);
        meter.publish(1, &stamp("2"), &stats);
        assert_eq!(count(&families, 1, "1"), 100);
        assert_eq!(
            count(&families, 1, "2"),
            50,
            "rows after the swap count for v2"
        );
        assert_eq!(count(&families, 0, "2"), 1);
        assert_eq!(count(&families, 5, "2"), 50);
        assert_eq!(count(&families, 7, "2"), 4);
        assert_eq!(count(&families, 8, "2"), 7);
        assert_eq!(count(&families, 9, "2"), 1);
        stats.errors.insert(ErrorKind::GuestError, 6);
        stats.errors.insert(ErrorKind::TimeLimit, 1);
        meter.publish(1, &stamp("2"), &stats);
        let error = |kind: &str| {
            families
                .errors
                .get(&PolicyErrorLabels {
                    policy: "clamp".into(),
                    position: "1".into(),
                    version: "2".into(),
                    kind: kind.into(),
                })
                .map(|c| c.get())
        };
        assert_eq!(error("guest_error"), Some(6));
        assert_eq!(error("time_limit"), Some(1));
        assert_eq!(error("memory_limit"), None);
        meter.batch_time(Duration::from_micros(70));
        meter.batch_time(Duration::from_millis(30));
        meter.numbered();
        assert_eq!(families.batches.get(), 1);
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register("h", "", families.batch_seconds.clone());
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        let samples = crate::metrics::MetricSamples::parse(&text).unwrap();
        assert_eq!(samples.value("h_count", &[]), Some(2.0));
        assert_eq!(
            samples.value("h_bucket", &[("le", "0.00005")]),
            Some(0.0),
            "{text}"
        );
        assert_eq!(
            samples.value("h_bucket", &[("le", "0.0001")]),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            samples.value("h_bucket", &[("le", "0.025")]),
            Some(1.0),
            "{text}"
        );
        assert_eq!(
            samples.value("h_bucket", &[("le", "0.05")]),
            Some(2.0),
            "{text}"
        );
        assert_eq!(
            samples.value("h_bucket", &[("le", "+Inf")]),
            Some(2.0),
            "{text}"
        );
    }

    #[test]
    fn metrics_chain_meter_keeps_the_series_of_a_few_retired_versions_only() {
        let families = ChainFamilies::default();
        let mut meter = ChainMeter::new(families.clone());
        let mut stats = PolicyStats::default();
        for version in 1..=10 {
            stats.batches += 1;
            stats.rows_in += 10;
            stats.errors.insert(ErrorKind::TimeLimit, version);
            meter.publish(1, &stamp(&version.to_string()), &stats);
        }
        let error = |version: &str| {
            families
                .errors
                .get(&PolicyErrorLabels {
                    policy: "clamp".into(),
                    position: "1".into(),
                    version: version.into(),
                    kind: "time_limit".into(),
                })
                .map(|c| c.get())
        };
        let kept = 10 - RETIRED_VERSIONS_KEPT as u64;
        for version in 1..=10u64 {
            let v = version.to_string();
            let present = families.policy[1].get(&labels(&v)).is_some();
            assert_eq!(present, version >= kept, "version {version}");
            assert_eq!(error(&v).is_some(), version >= kept, "version {version}");
        }
        // The current version still counts on.
        assert_eq!(count(&families, 1, "10"), 10);
        stats.rows_in += 5;
        meter.publish(1, &stamp("10"), &stats);
        assert_eq!(count(&families, 1, "10"), 15);
        assert_eq!(count(&families, 1, &kept.to_string()), 10);
    }
}
