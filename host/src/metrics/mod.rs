//! Metrics: what a running pipeline has done, in the Prometheus / OpenMetrics text format, served
//! at `GET /metrics` on the admin listener and shown by `weir status`. Every metric is listed in
//! `docs/metrics.md`.
//!
//! Nothing here runs per row. The data path updates atomic counters once per chunk or batch
//! ([`SourceMeter`], [`ChainMeter`]); everything else (queue depths, the registry's swaps and
//! refusals, capture counters, the process's memory) is read when a scrape asks for it
//! ([`PipelineMetrics::encode`]).
//!
//! * [`PipelineMetrics`]: the registry of every metric, shared by the pipeline and the admin API.
//! * [`SourceMeter`]: one source's rows, rejections and bytes, and its capture counters.
//! * [`ChainMeter`]: per-policy counts, errors by kind and the batch latency histogram.
//! * [`MetricSamples`]: the text format parsed back (for `weir status`).

mod chain_meter;
mod metric_samples;
mod pipeline_metrics;
mod process_stats;
mod scrape_collector;
mod source_meter;

pub use chain_meter::{BATCH_SECONDS_BUCKETS, ChainMeter};
pub use metric_samples::{MetricSamples, Sample, SamplesError};
pub use pipeline_metrics::{CONTENT_TYPE, PipelineMetrics};
pub use process_stats::ProcessStats;
pub use source_meter::SourceMeter;
