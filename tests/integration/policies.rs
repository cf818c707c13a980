//! Each example policy, built to wasm from Rust, checked against expected output values.

use std::sync::Arc;

use arrow_array::cast::AsArray;
use arrow_array::types::Float64Type;
use arrow_array::{
    Array, ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, UInt8Array, UInt16Array,
    UInt64Array,
};
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
