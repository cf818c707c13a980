//! Metrics end to end: the real `weir` binary runs a known NDJSON file through a signed chain
//! (sensor-normalize → drop-outliers → guest-fail, which fails every batch), with a stdin source
//! held open so that it keeps running. `GET /metrics` is scraped over HTTP, parsed here (a small
//! parser independent of the host's) and checked against the numbers the input implies, then
//! against the run summary; `weir status` must print the same numbers; the logs of `weir run`
//! come out as JSON with `--log-format json`.
//!
//! The capture counters are checked with known traffic through an `ebpf_flows` source in a
//! network namespace (root, as for the capture tests; fails, never skips, without it).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;
use weir_tests::bundle_tools::sign_policy;
use weir_tests::flow_rows::{CaptureConfig, NetnsWeir, SOURCE};
use weir_tests::netns::{A_V4, B_V4, Testbed, netns_exec, udp_send};
use weir_tests::weir_process::{Running, Scratch, free_tcp_port, weir_bin};

/// Good lines in the input; every tenth is an outlier (100 °C).
const GOOD: u64 = 600;
/// Lines that are not JSON.
const GARBAGE: u64 = 4;
const OUTLIERS: u64 = GOOD / 10;
const BATCH_ROWS: u64 = 100;

/// One sample: name, labels, value.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format as far as this test needs (label values hold no `"`, `,` or `}`).
fn parse(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("name and value");
            let (name, labels) = match series.split_once('{') {
                Some((name, rest)) => {
                    let body = rest.strip_suffix('}').expect("closing brace");
                    let labels = body
                        .split(',')
                        .map(|pair| {
                            let (k, v) = pair.split_once('=').expect("label=value");
                            (k.to_owned(), v.trim_matches('"').to_owned())
                        })
                        .collect();
                    (name, labels)
                }
                None => (series, BTreeMap::new()),
            };
            let value = match value {
                "+Inf" => f64::INFINITY,
                v => v.parse().unwrap_or_else(|e| panic!("{line}: {e}")),
            };
            Sample {
                name: name.to_owned(),
                labels,
                value,
            }
        })
        .collect()
}

struct Scrape(Vec<Sample>);

impl Scrape {
    /// `GET /metrics` from inside the network namespace `ns`.
    fn get_in(ns: &str, base: &str) -> (Self, String) {
        let base = base.to_owned();
        Testbed::in_netns(ns, move || Ok(Self::get(&base))).expect("scrape inside the namespace")
    }

    fn get(base: &str) -> (Self, String) {
        let mut r = ureq::get(format!("{base}/metrics"))
            .call()
            .expect("GET /metrics");
        assert_eq!(r.status(), 200);
        let content_type = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert!(
            content_type.starts_with("application/openmetrics-text"),
            "{content_type}"
        );
        let text = r.body_mut().read_to_string().expect("metrics text");
        assert!(text.ends_with("# EOF\n"), "{text}");
        (Self(parse(&text)), text)
    }

    /// The sum of the samples `name` carrying (at least) `labels`; `None` when there is none.
    fn find(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let matching: Vec<f64> = self
            .0
            .iter()
            .filter(|s| {
                s.name == name
                    && labels
                        .iter()
                        .all(|(k, v)| s.labels.get(*k).is_some_and(|x| x == v))
            })
            .map(|s| s.value)
            .collect();
        (!matching.is_empty()).then(|| matching.iter().sum())
    }

    /// As [`Scrape::find`], as a count that must be there.
    fn n(&self, name: &str, labels: &[(&str, &str)]) -> u64 {
        let v = self
            .find(name, labels)
            .unwrap_or_else(|| panic!("no {name} {labels:?}"));
        assert!(v >= 0.0 && v.fract() == 0.0, "{name} {labels:?} = {v}");
        v as u64
    }

    fn policy(&self, counter: &str, position: &str) -> u64 {
        self.n(
            &format!("weir_policy_{counter}_total"),
            &[("position", position)],
        )
    }
}

/// The cells of the first line of `text` containing `needle` (a comfy-table row).
fn row(text: &str, needle: &str) -> Vec<String> {
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("no line with {needle:?} in\n{text}"));
    line.split(['│', '┆'])
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .map(str::to_owned)
        .collect()
}

/// Expected cells: anything printable.
macro_rules! cells {
    ($($x:expr),* $(,)?) => { vec![$($x.to_string()),*] };
}

fn setup(s: &Scratch, port: u16) -> std::path::PathBuf {
    let (normalize, public) = sign_policy(s.path(), "sensor-normalize");
    let (outliers, _) = sign_policy(s.path(), "drop-outliers");
    let (fail, _) = sign_policy(s.path(), "weir-guest-fail");
    let mut input = String::new();
    for i in 0..GOOD {
        if i % 150 == 7 {
            input.push_str("this line is not JSON\n");
        }
        let celsius = if i % 10 == 0 { 100.0 } else { 20.5 };
        input.push_str(&format!(
            "{{\"ts\":{},\"device_id\":\"d{}\",\"model\":\"m1\",\"temperature_celsius\":{celsius}}}\n",
            1_700_000_000_000u64 + i,
            i % 7
        ));
    }
    assert_eq!(input.lines().count() as u64, GOOD + GARBAGE);
    let _ = s.write("data/sensors.ndjson", &input);
    let columns: Vec<String> = weir_host::sources::generate::SENSOR_NDJSON_COLUMNS
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    s.write(
        "weir.toml",
        format!(
            r#"
[pipeline]
batch_max_rows = {BATCH_ROWS}
batch_max_delay = "50ms"
queue_depth = 4
state_dir = "state"

[sources.sensors]
type = "file"
path = "data/*.ndjson"
[sources.sensors.schema]
columns = [{columns}]

# Held open by the test: the host keeps running (and serving /metrics) after the file is read.
[sources.live]
type = "stdin"
[sources.live.schema]
columns = ["seq: int64"]

[trust]
[[trust.keys]]
name = "ops"
public_key = "{public}"

[[policies]]
bundle = "{normalize}"
[[policies]]
bundle = "{outliers}"
params = {{ temperature = {{ min = -40.0, max = 60.0 }} }}
[[policies]]
bundle = "{fail}"
params = {{ mode = "error" }}
on_error = "dead_letter"

[sinks.out]
type = "parquet"
path = "out"

[dead_letter]
path = "dead"

[admin]
listen = "127.0.0.1:{port}"
"#,
            columns = columns.join(", "),
            normalize = normalize.display(),
            outliers = outliers.display(),
            fail = fail.display(),
            public = public.display(),
        ),
    )
}

#[test]
fn metrics_count_every_row_and_weir_status_shows_them() {
    let s = Scratch::new("metrics");
    let port = free_tcp_port();
    let config = setup(&s, port);
    let base = format!("http://127.0.0.1:{port}");
    let mut weir = Running::start_piped(
        &s,
        &[
            "--log-format",
            "json",
            "run",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    weir.wait_for("admin API listening", Duration::from_secs(120));

    // Until the whole file has been through the chain (the last policy is published last).
    let started = Instant::now();
    let (m, text) = loop {
        let (m, text) = Scrape::get(&base);
        let done = m.find("weir_policy_rows_in_total", &[("position", "2")]);
        if done == Some((GOOD - OUTLIERS) as f64) {
            break (m, text);
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the file did not get through the chain in 60 s:\n{text}\n{}",
            weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    };

    // Sources.
    let file_len = std::fs::metadata(s.join("data/sensors.ndjson"))
        .unwrap()
        .len();
    let sensors = [("source", "sensors")];
    assert_eq!(m.n("weir_source_rows_total", &sensors), GOOD);
    assert_eq!(m.n("weir_source_rejected_records_total", &sensors), GARBAGE);
    assert_eq!(m.n("weir_source_read_bytes_total", &sensors), file_len);
    assert_eq!(m.n("weir_source_rows_total", &[("source", "live")]), 0);

    // Policies, with their names and signed versions.
    for (position, policy) in [
        ("0", "sensor-normalize"),
        ("1", "drop-outliers"),
        ("2", "weir-guest-fail"),
    ] {
        let labels = [("position", position), ("policy", policy), ("version", "1")];
        assert!(
            m.find("weir_policy_rows_in_total", &labels).is_some(),
            "position {position} is {policy} version 1:\n{text}"
        );
    }
    let kept = GOOD - OUTLIERS;
    let expect = [
        ("0", [GOOD, GOOD, 0, 0, 0]),
        ("1", [GOOD, kept, OUTLIERS, 0, 0]),
        ("2", [kept, 0, 0, 0, kept]),
    ];
    for (position, [rows_in, rows_out, filtered, dropped, dead]) in expect {
        let got = [
            m.policy("rows_in", position),
            m.policy("rows_out", position),
            m.policy("rows_filtered", position),
            m.policy("rows_dropped", position),
            m.policy("rows_dead_lettered", position),
        ];
        assert_eq!(
            got,
            [rows_in, rows_out, filtered, dropped, dead],
            "position {position}"
        );
    }
    for counter in ["batch_splits", "rows_rescued", "instances_recycled"] {
        for position in ["0", "1"] {
            assert_eq!(m.policy(counter, position), 0, "{counter} at {position}");
        }
        // Exported for the failing policy too (isolation may split its batches).
        let _ = m.policy(counter, "2");
    }

    // Errors by kind: only the failing policy, only guest errors, at least one per batch.
    let failing_batches = m.policy("batches", "2");
    let guest_errors = m.n(
        "weir_policy_errors_total",
        &[("position", "2"), ("kind", "guest_error")],
    );
    assert!(failing_batches >= GOOD.div_ceil(BATCH_ROWS));
    assert!(guest_errors >= failing_batches, "{guest_errors} errors");
    assert_eq!(
        m.n("weir_policy_errors_total", &[]),
        guest_errors,
        "no other kind, no other policy:\n{text}"
    );

    // The latency histogram: one observation per batch through the chain.
    let observed = m.n("weir_chain_batch_duration_seconds_count", &[]);
    assert_eq!(observed, m.policy("batches", "0"));
    assert_eq!(
        observed, failing_batches,
        "every batch reached the last policy"
    );
    assert_eq!(
        m.n(
            "weir_chain_batch_duration_seconds_bucket",
            &[("le", "+Inf")]
        ),
        observed
    );
    assert!(
        m.find("weir_chain_batch_duration_seconds_sum", &[])
            .unwrap()
            > 0.0
    );
    let chain_batches = m.n("weir_chain_batches_total", &[]);
    assert!(chain_batches >= observed);

    // The registry: nothing swapped or refused; the versions that run.
    assert_eq!(m.n("weir_swaps_total", &[]), 0);
    assert_eq!(m.n("weir_refusals_total", &[]), 0);
    assert_eq!(
        m.n("weir_policy_active_version", &[("policy", "drop-outliers")]),
        1
    );

    // Queues still open (the file source's has closed), and the process.
    for queue in ["source/live", "chain", "sink/out", "dead_letter"] {
        assert_eq!(
            m.n("weir_queue_capacity", &[("queue", queue)]),
            4,
            "{queue}"
        );
        assert!(m.n("weir_queue_depth", &[("queue", queue)]) <= 4);
    }
    assert!(
        m.find("weir_queue_depth", &[("queue", "source/sensors")])
            .is_none()
    );
    let rss = m.n("weir_process_resident_memory_bytes", &[]);
    let vm_rss = weir.rss_kib().expect("VmRSS") * 1024;
    assert!(
        rss > vm_rss / 2 && rss < vm_rss * 2,
        "RSS {rss} vs /proc/PID/status {vm_rss}"
    );
    let fds = m.n("weir_process_open_fds", &[]);
    let listed = std::fs::read_dir(format!("/proc/{}/fd", weir.child.id()))
        .unwrap()
        .count() as u64;
    assert!(fds.abs_diff(listed) <= 8, "{fds} fds vs {listed} listed");

    // `weir status` shows the same numbers.
    let out = Command::new(weir_bin())
        .args(["status", "--to", &base])
        .output()
        .expect("weir status runs");
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{status}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        row(&status, "sensors"),
        cells!["sensors", GOOD, GARBAGE, file_len]
    );
    assert_eq!(
        row(&status, "drop-outliers"),
        cells![
            1,
            "drop-outliers",
            1,
            m.policy("batches", "1"),
            GOOD,
            kept,
            OUTLIERS,
            0,
            0,
            0,
            0,
            0,
            0
        ]
    );
    let fail_row = row(&status, "weir-guest-fail");
    assert_eq!(
        fail_row[..10],
        cells![
            2,
            "weir-guest-fail",
            1,
            failing_batches,
            kept,
            0,
            0,
            0,
            kept,
            guest_errors
        ][..]
    );
    assert_eq!(
        row(&status, "guest_error"),
        cells![2, "weir-guest-fail", "guest_error", guest_errors]
    );
    assert_eq!(
        row(&status, "batches through"),
        cells!["batches through the policies", observed]
    );
    assert_eq!(row(&status, "swaps"), cells!["swaps", 0]);
    let chain_row = row(&status, "chain ");
    assert_eq!(
        (chain_row[0].as_str(), chain_row[2].as_str()),
        ("chain", "4")
    );
    assert!(status.contains("resident memory"), "{status}");

    // End the run: the summary agrees with what was scraped.
    drop(weir.child.stdin.take());
    let finished = weir.wait(Duration::from_secs(120));
    let summary = finished.ok();
    assert_eq!(summary["sources"]["sensors"]["rows"], GOOD);
    assert_eq!(summary["chain"]["batches"], chain_batches);
    let policies = summary["policies"].as_array().unwrap();
    for (i, p) in policies.iter().enumerate() {
        let position = i.to_string();
        assert_eq!(p["rows_in"], m.policy("rows_in", &position), "policy {i}");
        assert_eq!(p["rows_out"], m.policy("rows_out", &position), "policy {i}");
    }
    assert_eq!(policies[2]["errors"]["guest_error"], guest_errors);
    assert_eq!(policies[2]["dead_lettered"], kept);

    // `--log-format json` covers `weir run`: its events are JSON lines.
    let events: Vec<Value> = finished
        .stderr
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for message in [
        "admin API listening",
        "pipeline ready",
        "policy failed on a batch",
    ] {
        assert!(
            events.iter().any(|e| e["fields"]["message"] == message),
            "no JSON event {message:?} in\n{}",
            finished.stderr
        );
    }
}

/// Frame bytes of a UDP/IPv4 datagram: Ethernet, IPv4 and UDP headers.
const V4_HDRS: u64 = 14 + 20 + 8;

#[test]
fn metrics_show_capture_counters_while_flows_are_captured() {
    let bed = Testbed::new("metrics", false)
        .unwrap_or_else(|e| panic!("creating network namespaces (this test needs root): {e:#}"));
    let s = Scratch::new("metrics-capture");
    let port = free_tcp_port();
    // Flows end after 1 s idle: they are emitted, and counted, while weir runs.
    let config = CaptureConfig {
        idle_timeout: "1s".into(),
        drain_interval: "200ms".into(),
        active_timeout: "60s".into(),
        ..CaptureConfig::default()
    };
    let toml = config.toml();
    let off = "listen = \"off\"";
    assert!(toml.contains(off), "{toml}");
    let path = s.write(
        "weir.toml",
        toml.replace(off, &format!("listen = \"127.0.0.1:{port}\"")),
    );
    let mut weir = NetnsWeir::run(&bed.a, &s, &path);
    weir.wait_ready();
    let base = format!("http://127.0.0.1:{port}");

    let (src, dst) = (
        SocketAddr::new(B_V4.into(), 6000),
        SocketAddr::new(A_V4.into(), 7000),
    );
    let _ = udp_send(&bed, true, src, dst, 5, 300).unwrap();
    let source = [("source", SOURCE)];
    let started = Instant::now();
    let (m, text) = loop {
        let (m, text) = Scrape::get_in(&bed.a, &base);
        if m.find("weir_capture_flows_total", &source) == Some(1.0) {
            break (m, text);
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "the flow was not counted within 20 s:\n{text}\n{}",
            weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    // One way, no IPv6: the datagrams are the only IP traffic on the pair.
    let per = V4_HDRS + 300;
    assert_eq!(m.n("weir_capture_packets_total", &source), 5, "{text}");
    assert_eq!(m.n("weir_capture_bytes_total", &source), 5 * per);
    for lost in [
        "ringbuf_full",
        "map_errors",
        "map_full",
        "truncated",
        "interface_lost",
    ] {
        assert_eq!(
            m.n(&format!("weir_capture_{lost}_total"), &source),
            0,
            "{lost}"
        );
    }
    // The flow record went through the source like any row (88 bytes a record).
    let started = Instant::now();
    let m = loop {
        let (m, _) = Scrape::get_in(&bed.a, &base);
        if m.find("weir_source_rows_total", &source) == Some(1.0) {
            break m;
        }
        assert!(started.elapsed() < Duration::from_secs(10));
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(m.n("weir_source_read_bytes_total", &source), 88);

    let status = netns_exec(
        &bed.a,
        weir_bin().to_str().unwrap(),
        &["status", "--to", &base],
    )
    .unwrap();
    let capture = status
        .lines()
        .filter(|l| l.contains(SOURCE))
        .nth(1)
        .unwrap_or_else(|| panic!("no capture row in\n{status}"));
    let capture = row(capture, SOURCE);
    assert_eq!(capture[..4], cells![SOURCE, 1, 5, 5 * per][..], "{status}");
    assert!(status.contains("ring buffer full (lost)"), "{status}");

    let done = weir.stop(libc::SIGTERM);
    let summary = done.ok();
    let counters = &summary["sources"][SOURCE]["capture"];
    assert_eq!(counters["flows"], 1, "{summary:#}");
    assert_eq!(counters["packets"], 5);
    assert_eq!(counters["bytes"], 5 * per);
}
