//! Each example policy, built to wasm from Rust, checked against expected output values.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use arrow_array::types::{Float64Type, TimestampMicrosecondType, UInt32Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
    UInt8Array, UInt16Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, TimeUnit};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::{PolicyError, PolicyRunner};
use weir_tests::{engine, load, runner};

fn f64s(values: &[Option<f64>]) -> ArrayRef {
    Arc::new(values.iter().copied().collect::<Float64Array>())
}

fn strs(values: &[Option<&str>]) -> ArrayRef {
    Arc::new(values.iter().copied().collect::<StringArray>())
}

fn column_f64(batch: &RecordBatch, name: &str) -> Vec<Option<f64>> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column `{name}`"));
    col.as_primitive::<Float64Type>().iter().collect()
}

fn column_str(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
    let col = batch
        .column_by_name(name)
        .unwrap_or_else(|| panic!("no column `{name}`"));
    col.as_string::<i32>()
        .iter()
        .map(|s| s.map(str::to_owned))
        .collect()
}

fn names(batch: &RecordBatch) -> Vec<String> {
    batch
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[test]
fn sensor_normalize_maps_names_and_units_and_nulls_impossible_values() {
    let n = None;
    let batch = RecordBatch::try_from_iter([
        (
            "device_id",
            strs(&[
                Some("a"),
                Some("b"),
                Some("c"),
                Some("d"),
                Some("e"),
                Some("f"),
            ]),
        ),
        ("temperature_celsius", f64s(&[Some(20.0), n, n, n, n, n])),
        (
            "temp_value",
            f64s(&[Some(99.0), n, n, Some(f64::NAN), Some(-300.0), n]),
        ),
        ("temp_f", f64s(&[n, Some(212.0), n, n, n, n])),
        ("t℃", f64s(&[n, n, Some(-5.5), n, n, n])),
        ("humidity_percent", f64s(&[Some(55.5), n, n, n, n, n])),
        ("hum", f64s(&[n, Some(101.0), n, n, n, n])),
        ("rh", f64s(&[n, n, Some(0.5), n, Some(-0.1), n])),
        (
            "battery_v",
            f64s(&[Some(3.0), Some(3.1), n, Some(2.9), Some(3.2), Some(3.3)]),
        ),
    ])
    .unwrap();
    let out = runner(&engine(), "sensor-normalize", "")
        .process(&batch)
        .unwrap();
    assert_eq!(
        names(&out),
        [
            "device_id",
            "battery_v",
            "sensor.temperature.celsius",
            "sensor.humidity.percent"
        ],
        "read columns are consumed, unknown ones pass through in order"
    );
    assert_eq!(
        column_f64(&out, "sensor.temperature.celsius"),
        [Some(20.0), Some(100.0), Some(-5.5), None, None, None]
    );
    assert_eq!(
        column_f64(&out, "sensor.humidity.percent"),
        [Some(55.5), None, Some(50.0), None, None, None]
    );
    // Passthrough columns are the host's own arrays, untouched.
    assert_eq!(
        out.column_by_name("battery_v").unwrap(),
        batch.column_by_name("battery_v").unwrap()
    );
}

#[test]
fn sensor_normalize_handles_absent_inputs_and_casts_integers() {
    // Only `temp_f`, as integers: the host casts Int64 to the declared Float64 losslessly.
    let batch = RecordBatch::try_from_iter([(
        "temp_f",
        Arc::new(Int64Array::from(vec![Some(32), None, Some(-40)])) as ArrayRef,
    )])
    .unwrap();
    let out = runner(&engine(), "sensor-normalize", "")
        .process(&batch)
        .unwrap();
    assert_eq!(
        names(&out),
        ["sensor.temperature.celsius", "sensor.humidity.percent"]
    );
    assert_eq!(
        column_f64(&out, "sensor.temperature.celsius"),
        [Some(0.0), None, Some(-40.0)]
    );
    assert_eq!(
        column_f64(&out, "sensor.humidity.percent"),
        [None, None, None]
    );
}

#[test]
fn drop_outliers_keeps_rows_within_configured_bounds() {
    let n = None;
    let batch = RecordBatch::try_from_iter([
        (
            "id",
            strs(&[
                Some("0"),
                Some("1"),
                Some("2"),
                Some("3"),
                Some("4"),
                Some("5"),
            ]),
        ),
        (
            "sensor.temperature.celsius",
            f64s(&[
                Some(20.0),
                Some(90.0),
                n,
                Some(-40.0),
                Some(0.0),
                Some(f64::NAN),
            ]),
        ),
        (
            "sensor.humidity.percent",
            f64s(&[
                Some(50.0),
                Some(50.0),
                Some(50.0),
                n,
                Some(101.0),
                Some(1.0),
            ]),
        ),
    ])
    .unwrap();
    let params = r#"{"temperature": {"min": -40, "max": 85}, "humidity": {"min": 0, "max": 100}}"#;
    let out = runner(&engine(), "drop-outliers", params)
        .process(&batch)
        .unwrap();
    // 1: too hot; 4: humidity over 100; 5: NaN. Nulls are not outliers; bounds are inclusive.
    assert_eq!(
        column_str(&out, "id"),
        [Some("0".into()), Some("2".into()), Some("3".into())]
    );
    assert_eq!(out.schema(), batch.schema(), "a filter keeps the schema");
}

#[test]
fn drop_outliers_refuses_inverted_bounds_at_init() {
    let engine = engine();
    let err = PolicyRunner::new(
        load(&engine, "drop-outliers"),
        br#"{"temperature": {"min": 50, "max": 10}}"#.to_vec(),
    )
    .unwrap_err();
    match err {
        PolicyError::Config { message } => {
            assert!(
                message.contains("temperature: min is greater than max"),
                "{message}"
            );
        }
        other => panic!("wanted a config error, got {other}"),
    }
}

#[test]
fn redact_replaces_identifiers_with_a_keyed_hash() {
    let fox = "The quick brown fox jumps over the lazy dog";
    let batch = RecordBatch::try_from_iter([
        ("device_id", strs(&[Some(fox), None, Some(fox)])),
        ("src_ip", strs(&[Some("10.0.0.1"), Some("10.0.0.2"), None])),
        ("reading", f64s(&[Some(1.0), Some(2.0), Some(3.0)])),
    ])
    .unwrap();
    // key "key" in hex; HMAC-SHA256("key", fox) = f7bc83f430538424b13298e6aa6fb143...
    let out = runner(&engine(), "redact", r#"{"key": "hex:6b6579"}"#)
        .process(&batch)
        .unwrap();
    let device = column_str(&out, "device_id");
    assert_eq!(device[0].as_deref(), Some("h:f7bc83f430538424"));
    assert_eq!(device[1], None, "nulls stay null");
    assert_eq!(device[2], device[0], "equal inputs give equal outputs");
    let src = column_str(&out, "src_ip");
    assert!(src[0].as_deref().unwrap().starts_with("h:") && src[0] != src[1]);
    assert!(!src.iter().flatten().any(|s| s.contains("10.0.0")));
    assert_eq!(src[2], None);
    // Untouched columns stay in place.
    assert_eq!(
        names(&out),
        ["device_id", "src_ip", "reading"],
        "no `dst_ip` is invented"
    );
    assert_eq!(
        out.column_by_name("reading").unwrap(),
        batch.column_by_name("reading").unwrap()
    );
}

#[test]
fn redact_leaves_unselected_columns_untouched() {
    let batch = RecordBatch::try_from_iter([
        ("device_id", strs(&[Some("dev-1"), Some("dev-2")])),
        ("src_ip", strs(&[Some("10.0.0.1"), None])),
    ])
    .unwrap();
    let out = runner(
        &engine(),
        "redact",
        r#"{"key": "k", "columns": ["device_id"]}"#,
    )
    .process(&batch)
    .unwrap();
    assert_eq!(names(&out), ["device_id", "src_ip"]);
    assert!(
        column_str(&out, "device_id")
            .iter()
            .flatten()
            .all(|s| s.starts_with("h:"))
    );
    // The host's own array, not a copy through the guest.
    assert!(Arc::ptr_eq(
        out.column_by_name("src_ip").unwrap(),
        batch.column_by_name("src_ip").unwrap()
    ));
}

#[test]
fn redact_without_a_key_is_a_config_error() {
    let engine = engine();
    let err = PolicyRunner::new(load(&engine, "redact"), b"{}".to_vec()).unwrap_err();
    assert!(
        matches!(&err, PolicyError::Config { message } if message.contains("key")),
        "{err}"
    );
}

fn flows() -> RecordBatch {
    RecordBatch::try_from_iter([
        (
            "src_addr",
            strs(&[
                Some("10.1.2.3"),
                Some("192.168.1.1"),
                Some("fd00::1"),
                Some("8.8.8.8"),
                Some("not an ip"),
                None,
            ]),
        ),
        (
            "dst_addr",
            strs(&[
                Some("1.1.1.1"),
                Some("192.168.1.2"),
                Some("2001:db8::1"),
                Some("10.9.9.9"),
                Some("1.2.3.4"),
                Some("10.0.0.1"),
            ]),
        ),
        (
            "src_port",
            Arc::new(UInt16Array::from(vec![5000, 22, 6000, 7000, 8000, 9000])) as ArrayRef,
        ),
        (
            "dst_port",
            Arc::new(UInt16Array::from(vec![443, 5001, 53, 22, 80, 443])) as ArrayRef,
        ),
        (
            "proto",
            Arc::new(UInt8Array::from(vec![6, 6, 17, 6, 6, 6])) as ArrayRef,
        ),
        (
            "row",
            Arc::new(UInt64Array::from(vec![0, 1, 2, 3, 4, 5])) as ArrayRef,
        ),
    ])
    .unwrap()
}

fn rows(batch: &RecordBatch) -> Vec<u64> {
    batch
        .column_by_name("row")
        .unwrap()
        .as_primitive::<arrow_array::types::UInt64Type>()
        .values()
        .to_vec()
}

#[test]
fn flow_filter_drops_or_keeps_by_cidr_port_and_protocol() {
    let engine = engine();
    let cases = [
        // Any address in 10/8 or fd00::/8 (row 5 via its destination).
        (
            r#"{"mode": "drop", "cidrs": ["10.0.0.0/8", "fd00::/8"]}"#,
            vec![1, 4],
        ),
        (
            r#"{"mode": "keep", "cidrs": ["10.0.0.0/8", "fd00::/8"]}"#,
            vec![0, 2, 3, 5],
        ),
        // Port 22 on either side, TCP only.
        (
            r#"{"mode": "keep", "ports": [22], "protocols": [6]}"#,
            vec![1, 3],
        ),
        // All rules together.
        (
            r#"{"mode": "keep", "cidrs": ["10.0.0.0/8"], "ports": [443]}"#,
            vec![0, 5],
        ),
        (
            r#"{"mode": "drop", "protocols": [17]}"#,
            vec![0, 1, 3, 4, 5],
        ),
    ];
    for (params, expected) in cases {
        let out = runner(&engine, "flow-filter", params)
            .process(&flows())
            .unwrap();
        assert_eq!(rows(&out), expected, "{params}");
    }
}

#[test]
fn flow_filter_names_a_bad_cidr() {
    let engine = engine();
    let err = PolicyRunner::new(
        load(&engine, "flow-filter"),
        br#"{"cidrs": ["10.0.0.0/33"]}"#.to_vec(),
    )
    .unwrap_err();
    assert!(
        matches!(&err, PolicyError::Config { message } if message.contains("10.0.0.0/33")),
        "{err}"
    );
}

#[test]
fn bench_filter_matches_a_row_by_row_reference() {
    let batch = weir_host::sources::generate::flow_batch(10_000, 9);
    let out = runner(
        &engine(),
        "bench-filter",
        r#"{"proto": 6, "dst_port": 443, "min_bytes": 5000}"#,
    )
    .process(&batch)
    .unwrap();
    let proto = batch
        .column_by_name("proto")
        .unwrap()
        .as_primitive::<arrow_array::types::UInt8Type>();
    let port = batch
        .column_by_name("dst_port")
        .unwrap()
        .as_primitive::<arrow_array::types::UInt16Type>();
    let bytes = batch
        .column_by_name("bytes")
        .unwrap()
        .as_primitive::<arrow_array::types::UInt64Type>();
    let expected: Vec<usize> = (0..batch.num_rows())
        .filter(|&i| proto.value(i) == 6 && port.value(i) == 443 && bytes.value(i) > 5000)
        .collect();
    assert!(!expected.is_empty() && expected.len() < batch.num_rows());
    let ts = batch
        .column(0)
        .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
    let out_ts = out
        .column(0)
        .as_primitive::<arrow_array::types::TimestampMicrosecondType>();
    let kept: Vec<i64> = expected.iter().map(|&i| ts.value(i)).collect();
    assert_eq!(out_ts.values().to_vec(), kept);
    assert_eq!(out.num_columns(), batch.num_columns());
    assert!(out.column(1).len() == kept.len() && out.column(1).null_count() == 0);
}

#[test]
fn example_filters_fit_the_100_kb_budget() {
    // DESIGN.md §1: a simple filter policy is at most 100 KB, which keeps a hot swap's compile
    // short. `cargo xtask build-policies` runs wasm-opt -Oz on every module.
    for name in ["bench-filter", "drop-outliers", "flow-filter"] {
        let size = weir_tests::policy_bytes(name).len();
        assert!(
            size <= 100_000,
            "{name}.wasm is {size} bytes, over the 100 KB budget"
        );
    }
}

const SECOND: i64 = 1_000_000;
/// 2026-01-01T00:00:00Z in µs.
const NEW_YEAR: i64 = 1_767_225_600 * SECOND;

/// Flow records shaped like the `ebpf_flows` source's: more columns than `top-talkers` reads
/// (`ts_end`, ports, protocol, direction, interface), which it must ignore.
fn flow_records(rows: &[(i64, &str, &str, u64, u64)]) -> RecordBatch {
    let ts = |offset: i64| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.0 + offset))
                .with_timezone("UTC"),
        )
    };
    let text = |values: Vec<&str>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let n = rows.len();
    RecordBatch::try_from_iter([
        ("ts", ts(0)),
        ("ts_end", ts(SECOND)),
        ("src_addr", text(rows.iter().map(|r| r.1).collect())),
        ("dst_addr", text(rows.iter().map(|r| r.2).collect())),
        (
            "src_port",
            Arc::new(UInt16Array::from(vec![40_000; n])) as ArrayRef,
        ),
        ("proto", Arc::new(UInt8Array::from(vec![6; n])) as ArrayRef),
        (
            "packets",
            Arc::new(rows.iter().map(|r| r.4).collect::<UInt64Array>()) as ArrayRef,
        ),
        (
            "bytes",
            Arc::new(rows.iter().map(|r| r.3).collect::<UInt64Array>()) as ArrayRef,
        ),
        ("direction", text(vec!["egress"; n])),
        ("interface", text(vec!["eth0"; n])),
    ])
    .unwrap()
}

/// One `top-talkers` output row: window start and end (µs), src, dst, bytes, packets, flows,
/// rank.
type Talker = (
    i64,
    i64,
    Option<String>,
    Option<String>,
    u64,
    u64,
    u64,
    Option<u32>,
);

fn talkers(batch: &RecordBatch) -> Vec<Talker> {
    let ts = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>()
            .clone()
    };
    let count = |name: &str| {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<UInt64Type>()
            .clone()
    };
    let (start, end) = (ts("window_start"), ts("window_end"));
    let (src, dst) = (column_str(batch, "src_addr"), column_str(batch, "dst_addr"));
    let (bytes, packets, flows) = (count("bytes"), count("packets"), count("flows"));
    let rank = batch
        .column_by_name("rank")
        .unwrap()
        .as_primitive::<UInt32Type>();
    (0..batch.num_rows())
        .map(|i| {
            (
                start.value(i),
                end.value(i),
                src[i].clone(),
                dst[i].clone(),
                bytes.value(i),
                packets.value(i),
                flows.value(i),
                rank.is_valid(i).then(|| rank.value(i)),
            )
        })
        .collect()
}

fn talker(window: (i64, i64), pair: (&str, &str), sums: (u64, u64, u64), rank: u32) -> Talker {
    (
        window.0,
        window.1,
        Some(pair.0.into()),
        Some(pair.1.into()),
        sums.0,
        sums.1,
        sums.2,
        Some(rank),
    )
}

#[test]
fn top_talkers_ranks_pairs_per_window_across_batches() {
    let mut r = runner(&engine(), "top-talkers", r#"{"window": 10, "n": 2}"#);
    let (a, b, c, d) = ("10.0.0.1", "10.0.0.2", "fd00::3", "192.0.2.4");
    let w = |k: i64| (NEW_YEAR + k * 10 * SECOND, NEW_YEAR + (k + 1) * 10 * SECOND);
    let at = |s: i64| NEW_YEAR + s * SECOND;

    // Window [0 s, 10 s) opens; nothing closes: zero rows, in the declared output schema.
    let first = r
        .process(&flow_records(&[
            (at(0), a, b, 1_000, 10),
            (at(2), c, d, 5_000, 4),
            (at(3), a, b, 2_500, 5),
            (at(4), b, a, 700, 7),
        ]))
        .unwrap();
    assert_eq!(first.num_rows(), 0);
    let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let expected = Schema::new(vec![
        Field::new("window_start", utc.clone(), false),
        Field::new("window_end", utc, false),
        Field::new("src_addr", DataType::Utf8, true),
        Field::new("dst_addr", DataType::Utf8, true),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("packets", DataType::UInt64, false),
        Field::new("flows", DataType::UInt64, false),
        Field::new("rank", DataType::UInt32, true),
    ]);
    assert_eq!(
        first.schema().fields(),
        expected.fields(),
        "only the aggregate's columns: every input column is dropped"
    );

    // More of window 0 (in any order), then a record of window 1: window 0 closes.
    let second = r
        .process(&flow_records(&[
            (at(12), c, d, 1, 1),
            (at(9), a, b, 2_000, 20),
            (at(1), b, a, 9_000, 1),
        ]))
        .unwrap();
    assert_eq!(
        talkers(&second),
        [
            talker(w(0), (b, a), (9_700, 8, 2), 1),
            talker(w(0), (a, b), (5_500, 35, 3), 2),
        ],
        "c → d (5 000 bytes) is third and n is 2"
    );

    // A record of window 3 closes window 1 (window 2 had no records); a record of the closed
    // window 0 is late: dropped, not added anywhere.
    let third = r
        .process(&flow_records(&[
            (at(35), a, b, 1, 1),
            (at(5), c, d, 1_000_000, 1),
            (at(19), c, d, 3, 2),
            (at(11), a, d, 4, 1),
        ]))
        .unwrap();
    assert_eq!(
        talkers(&third),
        [
            talker(w(1), (c, d), (4, 3, 2), 1),
            talker(w(1), (a, d), (4, 1, 1), 2),
        ],
        "ties on bytes go to packets"
    );
}

#[test]
fn top_talkers_matches_a_reference_on_generated_flows() {
    // 30 000 records, 1 ms apart from 2026-01-01T00:00:00Z, from the `generate` source's flow
    // generator, in three batches; 2 s windows.
    let all = weir_host::sources::generate::flow_batch(30_000, 9);
    let mut r = runner(&engine(), "top-talkers", r#"{"window": 2, "n": 5}"#);
    let mut got = Vec::new();
    for k in 0..3 {
        let out = r.process(&all.slice(k * 10_000, 10_000)).unwrap();
        assert!(out.num_rows() > 0, "batch {k} closes windows");
        got.extend(talkers(&out));
    }

    let ts = all
        .column_by_name("ts")
        .unwrap()
        .as_primitive::<TimestampMicrosecondType>();
    let (src, dst) = (column_str(&all, "src_addr"), column_str(&all, "dst_addr"));
    let count = |name: &str| {
        all.column_by_name(name)
            .unwrap()
            .as_primitive::<UInt64Type>()
            .clone()
    };
    let (bytes, packets) = (count("bytes"), count("packets"));
    let window = 2 * SECOND;
    // Per window start: per (src, dst), (bytes, packets, flows).
    type Sums = HashMap<(String, String), (u64, u64, u64)>;
    let mut sums: BTreeMap<i64, Sums> = BTreeMap::new();
    for i in 0..all.num_rows() {
        let start = ts.value(i).div_euclid(window) * window;
        let pair = (src[i].clone().unwrap(), dst[i].clone().unwrap());
        let s = sums.entry(start).or_default().entry(pair).or_default();
        *s = (s.0 + bytes.value(i), s.1 + packets.value(i), s.2 + 1);
    }
    let latest = ts.values().iter().copied().max().unwrap();
    let mut expected = Vec::new();
    for (start, pairs) in sums {
        if start + window > latest {
            continue; // still open
        }
        let mut ranked: Vec<_> = pairs.into_iter().collect();
        ranked.sort_by(|(pa, a), (pb, b)| {
            (b.0, b.1, b.2)
                .cmp(&(a.0, a.1, a.2))
                .then_with(|| pa.cmp(pb))
        });
        for (rank, ((s, d), sums)) in (1..).zip(ranked.into_iter().take(5)) {
            expected.push(talker((start, start + window), (&s, &d), sums, rank));
        }
    }
    assert_eq!(
        expected.len(),
        14 * 5,
        "windows [0 s, 28 s) closed, [28 s, 30 s) open"
    );
    assert_eq!(got, expected);
}

#[test]
fn top_talkers_sums_pairs_beyond_max_pairs_into_an_overflow_row() {
    // 100 010 distinct pairs (two distinct addresses each) against the default `max_pairs` of
    // 100 000, in four batches: the state must fit the default memory cap (64 MiB). The batch
    // deadline is relaxed only because the test machine may be loaded.
    let engine = Engine::new(Limits {
        batch_deadline: Duration::from_secs(5),
        ..Limits::default()
    })
    .unwrap();
    assert_eq!(Limits::default().memory_bytes, 64 << 20);
    let mut r = runner(&engine, "top-talkers", r#"{"n": 3}"#);
    let pairs = 100_010u64;
    let addresses: Vec<(String, String)> = (0..pairs)
        .map(|i| {
            let [_, a, b, c] = u32::try_from(i).unwrap().to_be_bytes();
            (format!("10.{a}.{b}.{c}"), format!("fd00::{i:x}"))
        })
        .collect();
    for chunk in (0..pairs).collect::<Vec<_>>().chunks(25_003) {
        let rows: Vec<_> = chunk
            .iter()
            .map(|&i| {
                let (s, d) = &addresses[usize::try_from(i).unwrap()];
                (NEW_YEAR, s.as_str(), d.as_str(), i + 1, 1)
            })
            .collect();
        assert_eq!(r.process(&flow_records(&rows)).unwrap().num_rows(), 0);
    }
    let out = r
        .process(&flow_records(&[(NEW_YEAR + 10 * SECOND, "a", "b", 1, 1)]))
        .unwrap();
    let w = (NEW_YEAR, NEW_YEAR + 10 * SECOND);
    let addr = |i: usize| (addresses[i].0.as_str(), addresses[i].1.as_str());
    // The first 100 000 pairs are held; the top three of them by bytes are the last three.
    let overflow: u64 = (100_001..=pairs).sum();
    assert_eq!(
        talkers(&out),
        [
            talker(w, addr(99_999), (100_000, 1, 1), 1),
            talker(w, addr(99_998), (99_999, 1, 1), 2),
            talker(w, addr(99_997), (99_998, 1, 1), 3),
            (w.0, w.1, None, None, overflow, 10, 10, None),
        ]
    );
}

#[test]
fn top_talkers_refuses_bad_parameters_at_init() {
    let engine = engine();
    for (params, key) in [
        (
            r#"{"window": 0}"#,
            "window: must be between 1 and 86400, got 0",
        ),
        (r#"{"n": 0}"#, "n: must be between 1 and 10000"),
        (
            r#"{"max_pairs": 5000000}"#,
            "max_pairs: must be between 1 and 1000000",
        ),
        (r#"{"top": 5}"#, "unknown field `top`"),
    ] {
        let err = PolicyRunner::new(load(&engine, "top-talkers"), params.as_bytes().to_vec())
            .unwrap_err();
        assert!(
            matches!(&err, PolicyError::Config { message } if message.contains(key)),
            "{params}: {err}"
        );
    }
}
