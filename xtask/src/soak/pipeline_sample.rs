//! [`PipelineSample`]: what the pipeline holds and how loaded the machine is at one moment, so
//! that a change in RSS can be set against the backlog that explains it (or does not).
//!
//! Read from weir's own `GET /metrics` on the admin listener (`weir_queue_depth`, and
//! `weir_memory_budget_used_bytes` since the soak's config sets a budget) and from
//! `/proc/loadavg`. A scrape that fails leaves its fields empty rather than failing the soak:
//! these figures explain, the checks are elsewhere.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use serde::Serialize;

use super::trend::{in_window, median};

/// One reading of the pipeline and the machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PipelineSample {
    /// Seconds since the soak's input started.
    pub t_secs: f64,
    /// The machine's 1-minute load average.
    pub load1: Option<f64>,
    /// Items waiting in all of weir's queues (chunks and batches).
    pub queued: Option<u64>,
    /// Bytes of chunks and batches between the source and the sinks (the budget's `batches`).
    pub held_batch_bytes: Option<u64>,
    /// Linear memory of every policy instance (the budget's `guests`).
    pub guest_bytes: Option<u64>,
}

impl PipelineSample {
    /// Reads the machine's load and weir's metrics at `admin` now, stamped `t_secs`.
    #[must_use]
    pub fn read(admin: SocketAddr, t_secs: f64) -> Self {
        let load1 = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse().ok());
        let text = scrape(admin).unwrap_or_default();
        Self {
            t_secs,
            load1,
            queued: sum(&text, "weir_queue_depth", ""),
            held_batch_bytes: sum(&text, "weir_memory_budget_used_bytes", "part=\"batches\""),
            guest_bytes: sum(&text, "weir_memory_budget_used_bytes", "part=\"guests\""),
        }
    }
}

/// `GET /metrics` over plain HTTP/1.1 on loopback; the body, or `None` on any failure.
fn scrape(admin: SocketAddr) -> Option<String> {
    let timeout = Some(Duration::from_secs(2));
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(timeout).ok()?;
    stream.set_write_timeout(timeout).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// The sum of every sample of metric `name` whose labels contain `label` (`""`: all of them),
/// or `None` when there is none.
fn sum(text: &str, name: &str, label: &str) -> Option<u64> {
    let values: Vec<f64> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix(name)?;
            let (labels, value) = match rest.strip_prefix('{') {
                Some(rest) => rest.split_once("} ")?,
                None => ("", rest.strip_prefix(' ')?),
            };
            labels.contains(label).then(|| value.trim().parse().ok())?
        })
        .collect();
    (!values.is_empty()).then(|| values.iter().sum::<f64>() as u64)
}

/// The pipeline's levels at the end of warm-up and at the end of the run (medians over the
/// same windows as [`super::trend::Trend`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct PipelineTrend {
    /// 1-minute load average, warm-up window.
    pub load1_warmup: Option<f64>,
    /// 1-minute load average, end window.
    pub load1_end: Option<f64>,
    /// Items queued, warm-up window.
    pub queued_warmup: Option<u64>,
    /// Items queued, end window.
    pub queued_end: Option<u64>,
    /// Batch bytes held, warm-up window.
    pub held_batch_bytes_warmup: Option<u64>,
    /// Batch bytes held, end window.
    pub held_batch_bytes_end: Option<u64>,
    /// The most batch bytes held at one sample after warm-up.
    pub held_batch_bytes_max: Option<u64>,
}

impl PipelineTrend {
    /// The levels of `samples` over the window of `window_secs` ending at `warmup_secs` and
    /// the one ending at the last sample.
    #[must_use]
    pub fn of(samples: &[PipelineSample], warmup_secs: f64, window_secs: f64) -> Self {
        let last = samples.last().map_or(0.0, |s| s.t_secs);
        Self {
            load1_warmup: level(samples, warmup_secs, window_secs, |s| s.load1),
            load1_end: level(samples, last, window_secs, |s| s.load1),
            queued_warmup: level(samples, warmup_secs, window_secs, |s| s.queued),
            queued_end: level(samples, last, window_secs, |s| s.queued),
            held_batch_bytes_warmup: level(samples, warmup_secs, window_secs, |s| {
                s.held_batch_bytes
            }),
            held_batch_bytes_end: level(samples, last, window_secs, |s| s.held_batch_bytes),
            held_batch_bytes_max: samples
                .iter()
                .filter(|s| s.t_secs >= warmup_secs)
                .filter_map(|s| s.held_batch_bytes)
                .max(),
        }
    }
}

/// The median of `field` over the samples in the window of `window` seconds ending at `end`.
fn level<T: Copy + PartialOrd>(
    samples: &[PipelineSample],
    end: f64,
    window: f64,
    field: fn(&PipelineSample) -> Option<T>,
) -> Option<T> {
    median(
        samples
            .iter()
            .filter(|s| in_window(s.t_secs, end, window))
            .filter_map(field),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const METRICS: &str = "\
# TYPE weir_queue_depth gauge
weir_queue_depth{queue=\"source/feed\"} 3
weir_queue_depth{queue=\"chain\"} 4
weir_queue_depth_other 99
weir_memory_budget_used_bytes{part=\"guests\"} 1048576
weir_memory_budget_used_bytes{part=\"batches\"} 2500000
weir_process_open_fds 18
";

    #[test]
    fn sums_the_metrics_it_reads() {
        assert_eq!(sum(METRICS, "weir_queue_depth", ""), Some(7));
        assert_eq!(
            sum(METRICS, "weir_memory_budget_used_bytes", "part=\"batches\""),
            Some(2_500_000)
        );
        assert_eq!(
            sum(METRICS, "weir_memory_budget_used_bytes", "part=\"guests\""),
            Some(1_048_576)
        );
        assert_eq!(sum(METRICS, "weir_process_open_fds", ""), Some(18));
        assert_eq!(sum(METRICS, "weir_memory_budget_limit_bytes", ""), None);
    }

    #[test]
    fn a_failed_scrape_leaves_the_fields_empty() {
        // A port nothing listens on: bind one, then drop it.
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let s = PipelineSample::read(addr, 1.0);
        assert_eq!(
            (s.queued, s.held_batch_bytes, s.guest_bytes),
            (None, None, None)
        );
        assert!(s.load1.is_some_and(|l| l >= 0.0));
    }

    #[test]
    fn levels_are_window_medians() {
        let samples: Vec<PipelineSample> = (0..100)
            .map(|i| PipelineSample {
                t_secs: f64::from(i),
                load1: Some(if i < 50 { 0.5 } else { 2.0 }),
                queued: Some(if i < 50 { 1 } else { 12 }),
                held_batch_bytes: Some(if i == 70 { 9_000_000 } else { 1_000_000 }),
                guest_bytes: None,
            })
            .collect();
        let t = PipelineTrend::of(&samples, 40.0, 10.0);
        assert_eq!((t.load1_warmup, t.load1_end), (Some(0.5), Some(2.0)));
        assert_eq!((t.queued_warmup, t.queued_end), (Some(1), Some(12)));
        assert_eq!(t.held_batch_bytes_end, Some(1_000_000));
        assert_eq!(t.held_batch_bytes_max, Some(9_000_000));
    }
}
