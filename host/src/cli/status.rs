//! `weir status`: a running host's metrics (`GET /metrics`) as tables: sources, policies,
//! errors, the chain's batch latency, swaps and refusals, capture, queues, memory.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use anyhow::Context as _;
use comfy_table::{CellAlignment, Table};

use super::admin_client::AdminTarget;
use crate::metrics::MetricSamples;

/// Arguments of `weir status`.
#[derive(Debug, clap::Args)]
pub struct StatusArgs {
    /// The admin API.
    #[command(flatten)]
    pub admin: AdminTarget,
    /// Print the metrics text as served instead of tables.
    #[arg(long)]
    pub raw: bool,
}

pub(crate) fn run(args: &StatusArgs) -> anyhow::Result<()> {
    let client = args.admin.client(Duration::from_secs(30))?;
    let text = client.metrics()?;
    if args.raw {
        print!("{text}");
        return Ok(());
    }
    let samples = MetricSamples::parse(&text)
        .with_context(|| format!("{}/metrics answered with bad metrics text", client.base()))?;
    print!("{}", render(&samples));
    Ok(())
}

/// A count as an integer when it is one.
fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else {
        format!("{v}")
    }
}

fn table(header: &[&str], rows: Vec<Vec<String>>, right_from: usize) -> Table {
    let mut table = Table::new();
    table.load_preset(comfy_table::presets::UTF8_FULL_CONDENSED);
    if header.iter().any(|h| !h.is_empty()) {
        table.set_header(header.to_vec());
    }
    for row in rows {
        table.add_row(row);
    }
    for column in right_from..header.len() {
        if let Some(c) = table.column_mut(column) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    table
}

fn section(out: &mut String, title: &str, body: impl std::fmt::Display) {
    let _ = writeln!(out, "{title}\n{body}\n");
}

/// A duration in seconds, readably.
fn seconds(s: f64) -> String {
    if !s.is_finite() {
        "> 5 s".to_owned()
    } else if s < 1e-3 {
        format!("{:.0} µs", s * 1e6)
    } else if s < 1.0 {
        format!("{:.2} ms", s * 1e3)
    } else {
        format!("{s:.2} s")
    }
}

/// The smallest bucket bound under which at least `q` of the observations fall.
fn quantile_bound(buckets: &[(f64, f64)], count: f64, q: f64) -> Option<f64> {
    buckets
        .iter()
        .find(|(_, cumulative)| *cumulative >= q * count)
        .map(|(le, _)| *le)
}

/// The tables `weir status` prints.
#[must_use]
pub(crate) fn render(s: &MetricSamples) -> String {
    let mut out = String::new();

    let sources: Vec<Vec<String>> = s
        .named("weir_source_rows_total")
        .map(|sample| {
            let l = [("source", sample.label("source"))];
            vec![
                sample.label("source").to_owned(),
                num(sample.value),
                num(s.sum("weir_source_rejected_records_total", &l)),
                num(s.sum("weir_source_read_bytes_total", &l)),
            ]
        })
        .collect();
    if sources.is_empty() {
        out.push_str("Sources: none (no pipeline runs)\n\n");
    } else {
        section(
            &mut out,
            "Sources",
            table(&["source", "rows", "rejected", "bytes"], sources, 1),
        );
    }

    // Per chain position, over every version that ran there.
    let mut positions: BTreeMap<u64, (String, Vec<String>)> = BTreeMap::new();
    for sample in s.named("weir_policy_rows_in_total") {
        let Ok(position) = sample.label("position").parse::<u64>() else {
            continue;
        };
        let entry = positions
            .entry(position)
            .or_insert_with(|| (sample.label("policy").to_owned(), Vec::new()));
        entry.1.push(sample.label("version").to_owned());
    }
    let counters = [
        "batches",
        "rows_in",
        "rows_out",
        "rows_filtered",
        "rows_dropped",
        "rows_dead_lettered",
        "errors",
        "batch_splits",
        "rows_rescued",
        "instances_recycled",
    ];
    let policies: Vec<Vec<String>> = positions
        .iter()
        .map(|(position, (policy, versions))| {
            let p = position.to_string();
            let l = [("position", p.as_str()), ("policy", policy.as_str())];
            let mut row = vec![p.clone(), policy.clone(), versions.join(", ")];
            row.extend(
                counters
                    .iter()
                    .map(|c| num(s.sum(&format!("weir_policy_{c}_total"), &l))),
            );
            row
        })
        .collect();
    if !policies.is_empty() {
        section(
            &mut out,
            "Policies",
            table(
                &[
                    "#",
                    "policy",
                    "version",
                    "batches",
                    "rows in",
                    "rows out",
                    "filtered",
                    "dropped",
                    "dead-lettered",
                    "errors",
                    "splits",
                    "rescued",
                    "recycled",
                ],
                policies,
                3,
            ),
        );
    }

    let mut errors: BTreeMap<(u64, String, String), f64> = BTreeMap::new();
    for sample in s.named("weir_policy_errors_total") {
        let position = sample.label("position").parse().unwrap_or(u64::MAX);
        *errors
            .entry((
                position,
                sample.label("policy").to_owned(),
                sample.label("kind").to_owned(),
            ))
            .or_default() += sample.value;
    }
    if errors.is_empty() {
        out.push_str("Errors: none\n\n");
    } else {
        let rows = errors
            .into_iter()
            .map(|((position, policy, kind), n)| vec![position.to_string(), policy, kind, num(n)])
            .collect();
        section(
            &mut out,
            "Errors",
            table(&["#", "policy", "kind", "count"], rows, 3),
        );
    }

    let count = s.sum("weir_chain_batch_duration_seconds_count", &[]);
    let sum = s.sum("weir_chain_batch_duration_seconds_sum", &[]);
    let mut buckets: Vec<(f64, f64)> = s
        .named("weir_chain_batch_duration_seconds_bucket")
        .filter_map(|b| {
            let le = b.label("le");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().ok()?
            };
            Some((le, b.value))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    let mut chain = vec![
        vec![
            "batches numbered".to_owned(),
            num(s.sum("weir_chain_batches_total", &[])),
        ],
        vec!["batches through the policies".to_owned(), num(count)],
    ];
    if count > 0.0 {
        chain.push(vec!["mean time per batch".to_owned(), seconds(sum / count)]);
        for (name, q) in [("p50 at most", 0.5), ("p99 at most", 0.99)] {
            if let Some(le) = quantile_bound(&buckets, count, q) {
                chain.push(vec![name.to_owned(), seconds(le)]);
            }
        }
    }
    section(&mut out, "Chain", table(&["", ""], chain, 1));

    let mut registry = vec![
        vec!["swaps".to_owned(), num(s.sum("weir_swaps_total", &[]))],
        vec![
            "compilations".to_owned(),
            num(s.sum("weir_compilations_total", &[])),
        ],
    ];
    let refusals: Vec<_> = s
        .named("weir_refusals_total")
        .filter(|r| r.value > 0.0)
        .collect();
    registry.push(vec![
        "refusals".to_owned(),
        num(refusals.iter().fold(0.0, |total, r| total + r.value)),
    ]);
    for r in refusals {
        registry.push(vec![
            format!("  refused: {}", r.label("code")),
            num(r.value),
        ]);
    }
    for v in s.named("weir_policy_active_version") {
        registry.push(vec![
            format!("version running: {}", v.label("policy")),
            num(v.value),
        ]);
    }
    section(&mut out, "Registry", table(&["", ""], registry, 1));

    let capture_columns = [
        ("flows", "flows"),
        ("packets", "packets"),
        ("bytes", "bytes"),
        ("map_full", "map full"),
        ("ring_events", "ring events"),
        ("ringbuf_full", "ring buffer full (lost)"),
        ("map_errors", "map errors (lost)"),
        ("unsupported", "not IP"),
        ("truncated", "truncated"),
        ("interface_lost", "interfaces lost"),
        ("interface_reattached", "re-attached"),
    ];
    let capture: Vec<Vec<String>> = s
        .named("weir_capture_flows_total")
        .map(|f| {
            let l = [("source", f.label("source"))];
            let mut row = vec![f.label("source").to_owned()];
            row.extend(
                capture_columns
                    .iter()
                    .map(|(c, _)| num(s.sum(&format!("weir_capture_{c}_total"), &l))),
            );
            row
        })
        .collect();
    if !capture.is_empty() {
        let mut header = vec!["source"];
        header.extend(capture_columns.iter().map(|(_, h)| *h));
        section(&mut out, "Capture", table(&header, capture, 1));
    }

    let queues: Vec<Vec<String>> = s
        .named("weir_queue_depth")
        .map(|q| {
            let l = [("queue", q.label("queue"))];
            vec![
                q.label("queue").to_owned(),
                num(q.value),
                num(s.sum("weir_queue_capacity", &l)),
            ]
        })
        .collect();
    if !queues.is_empty() {
        section(
            &mut out,
            "Queues",
            table(&["queue", "waiting", "capacity"], queues, 1),
        );
    }

    if let Some(limit) = s.value("weir_memory_budget_limit_bytes", &[]) {
        let bytes = |v: f64| format!("{} ({} bytes)", bytesize::ByteSize(v as u64), num(v));
        let part = |p: &str| s.sum("weir_memory_budget_used_bytes", &[("part", p)]);
        let rows = vec![
            vec!["limit".to_owned(), bytes(limit)],
            vec!["guests".to_owned(), bytes(part("guests"))],
            vec!["batches".to_owned(), bytes(part("batches"))],
            vec![
                "peak".to_owned(),
                bytes(s.sum("weir_memory_budget_peak_bytes", &[])),
            ],
            vec![
                "sources paused".to_owned(),
                format!(
                    "{} times, {}",
                    num(s.sum("weir_memory_budget_pauses_total", &[])),
                    seconds(s.sum("weir_memory_budget_paused_seconds_total", &[]))
                ),
            ],
        ];
        section(&mut out, "Memory budget", table(&["", ""], rows, 1));
    }

    let mut process = Vec::new();
    if let Some(rss) = s.value("weir_process_resident_memory_bytes", &[]) {
        process.push(vec![
            "resident memory".to_owned(),
            format!("{} ({} bytes)", bytesize::ByteSize(rss as u64), num(rss)),
        ]);
    }
    if let Some(fds) = s.value("weir_process_open_fds", &[]) {
        process.push(vec!["open files".to_owned(), num(fds)]);
    }
    if !process.is_empty() {
        section(&mut out, "Process", table(&["", ""], process, 1));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::test_support::{FakeControl, TestServer};
    use crate::cli::admin_client::AdminClient;

    const TEXT: &str = r#"# TYPE weir_source_rows counter
weir_source_rows_total{source="sensors"} 604
weir_source_rows_total{source="idle"} 0
weir_source_rejected_records_total{source="sensors"} 4
weir_source_read_bytes_total{source="sensors"} 51234
weir_policy_batches_total{policy="drop-outliers",position="1",version="1"} 7
weir_policy_rows_in_total{policy="drop-outliers",position="1",version="1"} 600
weir_policy_rows_in_total{policy="drop-outliers",position="1",version="2"} 150
weir_policy_rows_out_total{policy="drop-outliers",position="1",version="1"} 540
weir_policy_rows_filtered_total{policy="drop-outliers",position="1",version="1"} 60
weir_policy_rows_in_total{policy="weir-guest-fail",position="2",version="1"} 540
weir_policy_rows_dead_lettered_total{policy="weir-guest-fail",position="2",version="1"} 539
weir_policy_errors_total{policy="weir-guest-fail",position="2",version="1",kind="guest_error"} 7
weir_policy_errors_total{policy="weir-guest-fail",position="2",version="1",kind="time_limit"} 2
weir_chain_batches_total 8
weir_chain_batch_duration_seconds_sum 0.7
weir_chain_batch_duration_seconds_count 7
weir_chain_batch_duration_seconds_bucket{le="0.001"} 3
weir_chain_batch_duration_seconds_bucket{le="0.25"} 6
weir_chain_batch_duration_seconds_bucket{le="+Inf"} 7
weir_swaps_total 3
weir_compilations_total 5
weir_refusals_total{code="downgrade"} 2
weir_refusals_total{code="bad_signature"} 0
weir_capture_flows_total{source="net"} 12
weir_capture_ringbuf_full_total{source="net"} 1
weir_queue_depth{queue="chain"} 2
weir_queue_capacity{queue="chain"} 4
weir_memory_budget_limit_bytes 268435456
weir_memory_budget_used_bytes{part="guests"} 2097152
weir_memory_budget_used_bytes{part="batches"} 1048576
weir_memory_budget_peak_bytes 3145728
weir_memory_budget_pauses_total 7
weir_memory_budget_paused_seconds_total 1.5
weir_process_resident_memory_bytes 73400320
weir_process_open_fds 17
# EOF
"#;

    fn line_with<'a>(text: &'a str, needle: &str) -> &'a str {
        text.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"))
    }

    fn cells(line: &str) -> Vec<&str> {
        line.split(['│', '┆'])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect()
    }

    #[test]
    fn metrics_status_renders_every_section() {
        let text = render(&MetricSamples::parse(TEXT).unwrap());
        assert_eq!(
            cells(line_with(&text, "sensors")),
            ["sensors", "604", "4", "51234"]
        );
        assert_eq!(cells(line_with(&text, " idle ")), ["idle", "0", "0", "0"]);
        assert_eq!(
            cells(line_with(&text, "drop-outliers")),
            [
                "1",
                "drop-outliers",
                "1, 2",
                "7",
                "750",
                "540",
                "60",
                "0",
                "0",
                "0",
                "0",
                "0",
                "0"
            ]
        );
        assert_eq!(
            cells(line_with(&text, "539")),
            [
                "2",
                "weir-guest-fail",
                "1",
                "0",
                "540",
                "0",
                "0",
                "0",
                "539",
                "9",
                "0",
                "0",
                "0"
            ]
        );
        assert_eq!(
            cells(line_with(&text, "guest_error")),
            ["2", "weir-guest-fail", "guest_error", "7"]
        );
        assert_eq!(
            cells(line_with(&text, "time_limit")),
            ["2", "weir-guest-fail", "time_limit", "2"]
        );
        assert_eq!(
            cells(line_with(&text, "batches numbered")),
            ["batches numbered", "8"]
        );
        assert_eq!(
            cells(line_with(&text, "batches through")),
            ["batches through the policies", "7"]
        );
        assert_eq!(
            cells(line_with(&text, "mean time")),
            ["mean time per batch", "100.00 ms"]
        );
        assert_eq!(cells(line_with(&text, "p50")), ["p50 at most", "250.00 ms"]);
        assert_eq!(cells(line_with(&text, "p99")), ["p99 at most", "> 5 s"]);
        assert_eq!(cells(line_with(&text, "swaps")), ["swaps", "3"]);
        assert!(text.contains("Memory budget"), "{text}");
        assert_eq!(
            cells(line_with(&text, "│ limit ")),
            ["limit", "256.0 MiB (268435456 bytes)"]
        );
        assert_eq!(
            cells(line_with(&text, "sources paused")),
            ["sources paused", "7 times, 1.50 s"]
        );
        assert_eq!(cells(line_with(&text, "refusals")), ["refusals", "2"]);
        assert_eq!(
            cells(line_with(&text, "refused: downgrade")),
            ["refused: downgrade", "2"]
        );
        assert!(
            !text.contains("bad_signature"),
            "zero refusals are left out"
        );
        let capture = cells(line_with(&text, " net "));
        assert_eq!(capture[..2], ["net", "12"]);
        assert_eq!(capture[6], "1", "ring buffer full: {capture:?}");
        assert_eq!(cells(line_with(&text, "chain ")), ["chain", "2", "4"]);
        assert!(line_with(&text, "resident memory").contains("73400320 bytes"));
        assert_eq!(cells(line_with(&text, "open files")), ["open files", "17"]);
    }

    #[test]
    fn metrics_status_of_a_host_without_a_pipeline_says_so() {
        let text = render(&MetricSamples::parse("weir_swaps_total 0\n# EOF\n").unwrap());
        assert!(text.contains("Sources: none"), "{text}");
        assert!(text.contains("Errors: none"), "{text}");
        assert!(!text.contains("Policies"), "{text}");
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn metrics_status_reads_a_running_host() {
        let server = TestServer::start(FakeControl::accepting()).await;
        let url = server.server.url();
        tokio::task::spawn_blocking(move || {
            for raw in [false, true] {
                run(&StatusArgs {
                    admin: AdminTarget {
                        to: url.clone(),
                        ca_cert: None,
                    },
                    raw,
                })
                .unwrap();
            }
            let client = AdminClient::new(&url, None, Duration::from_secs(5)).unwrap();
            let samples = MetricSamples::parse(&client.metrics().unwrap()).unwrap();
            // FakeControl's health: 3 swaps, 4 compilations, 2 downgrades.
            assert_eq!(samples.value("weir_swaps_total", &[]), Some(3.0));
            assert_eq!(
                samples.value("weir_refusals_total", &[("code", "downgrade")]),
                Some(2.0)
            );
            let text = render(&samples);
            assert_eq!(
                cells(line_with(&text, "compilations")),
                ["compilations", "4"]
            );
        })
        .await
        .unwrap();
        server.shutdown.cancel();
    }
}
