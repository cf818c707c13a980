//! Policy runtime benchmarks (criterion), each against a native arrow-rs baseline measured in the
//! same run. Writes `target/bench/summary.json`, which `cargo xtask bench` prints.
//!
//! Needs the policies built: `cargo xtask bench` does that (or `cargo xtask build-policies`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arrow_arith::boolean::and;
use arrow_array::cast::AsArray;
use arrow_array::types::{Float64Type, UInt8Type, UInt16Type, UInt64Type};
use arrow_array::{
    Array, ArrayRef, Float64Array, RecordBatch, Scalar, UInt8Array, UInt16Array, UInt64Array,
};
use arrow_ord::cmp::{eq, gt};
use arrow_schema::{DataType, Field, Schema};
use arrow_select::filter::filter_record_batch;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion};
use serde_json::json;
use weir_host::engine::{Engine, Limits};
use weir_host::policy::{PolicyModule, PolicyRunner};
use weir_host::sources::generate::{AddressFormat, flow_batch, flow_batch_with, sensor_batch};

const BIG: usize = 1 << 20;
const SMALL: usize = 1024;
const EXAMPLES: [&str; 6] = [
    "sensor-normalize",
    "drop-outliers",
    "redact",
    "flow-filter",
    "bench-filter",
    "top-talkers",
];

fn workspace_target() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"),
        PathBuf::from,
    )
}

fn policy_bytes(name: &str) -> Vec<u8> {
    let dir = std::env::var_os("WEIR_POLICY_DIR")
        .map_or_else(|| workspace_target().join("policies"), PathBuf::from);
    let path = dir.join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run `cargo xtask bench`",
            path.display()
        )
    })
}

fn load(engine: &Engine, name: &str) -> Arc<PolicyModule> {
    Arc::new(PolicyModule::compile(engine, name, &policy_bytes(name)).expect("policy loads"))
}

/// The native baseline of `bench-filter`: `proto == 6 && dst_port == 443 && bytes > 1000`.
fn native_filter(batch: &RecordBatch) -> RecordBatch {
    let proto = batch
        .column_by_name("proto")
        .unwrap()
        .as_primitive::<UInt8Type>();
    let port = batch
        .column_by_name("dst_port")
        .unwrap()
        .as_primitive::<UInt16Type>();
    let bytes = batch
        .column_by_name("bytes")
        .unwrap()
        .as_primitive::<UInt64Type>();
    let m1 = eq(proto, &Scalar::new(UInt8Array::from(vec![6u8]))).unwrap();
    let m2 = eq(port, &Scalar::new(UInt16Array::from(vec![443u16]))).unwrap();
    let m3 = gt(bytes, &Scalar::new(UInt64Array::from(vec![1000u64]))).unwrap();
    let mask = and(&and(&m1, &m2).unwrap(), &m3).unwrap();
    filter_record_batch(batch, &mask).unwrap()
}

type Input = (&'static str, fn(f64) -> f64);
const TEMPERATURE: [Input; 4] = [
    ("temperature_celsius", |c| c),
    ("temp_value", |c| c),
    ("temp_f", |f| (f - 32.0) * 5.0 / 9.0),
    ("t℃", |c| c),
];
const HUMIDITY: [Input; 3] = [
    ("humidity_percent", |p| p),
    ("hum", |p| p),
    ("rh", |f| f * 100.0),
];

/// The first present source in precedence order, converted, and nulled when outside `[lo, hi]`
/// or not finite.
fn coalesce(batch: &RecordBatch, sources: &[Input], lo: f64, hi: f64) -> Float64Array {
    let cols: Vec<_> = sources
        .iter()
        .filter_map(|(n, f)| Some((batch.column_by_name(n)?.as_primitive::<Float64Type>(), *f)))
        .collect();
    (0..batch.num_rows())
        .map(|row| {
            cols.iter()
                .find_map(|(col, convert)| col.is_valid(row).then(|| convert(col.value(row))))
                .filter(|v| v.is_finite() && (lo..=hi).contains(v))
        })
        .collect()
}

/// The native baseline of `sensor-normalize`.
fn native_normalize(batch: &RecordBatch) -> RecordBatch {
    let temperature = coalesce(batch, &TEMPERATURE, -273.15, 1000.0);
    let humidity = coalesce(batch, &HUMIDITY, 0.0, 100.0);
    let read: Vec<&str> = TEMPERATURE
        .iter()
        .chain(&HUMIDITY)
        .map(|(n, _)| *n)
        .collect();
    let schema = batch.schema();
    let mut fields: Vec<Field> = Vec::new();
    let mut columns: Vec<ArrayRef> = Vec::new();
    for (f, c) in schema.fields().iter().zip(batch.columns()) {
        if !read.contains(&f.name().as_str()) {
            fields.push(f.as_ref().clone());
            columns.push(Arc::clone(c));
        }
    }
    fields.push(Field::new(
        "sensor.temperature.celsius",
        DataType::Float64,
        true,
    ));
    fields.push(Field::new(
        "sensor.humidity.percent",
        DataType::Float64,
        true,
    ));
    columns.push(Arc::new(temperature));
    columns.push(Arc::new(humidity));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).unwrap()
}

fn bench_filter(c: &mut Criterion, engine: &Engine) {
    let module = load(engine, "bench-filter");
    let mut runner = PolicyRunner::new(module, Vec::new()).unwrap();
    let mut group = c.benchmark_group("filter");
    for rows in [BIG, SMALL] {
        let batch = flow_batch(rows, 42);
        // Same answer, or the comparison means nothing.
        assert_eq!(runner.process(&batch).unwrap(), native_filter(&batch));
        if rows == BIG {
            group
                .sample_size(20)
                .measurement_time(Duration::from_secs(4));
        } else {
            group
                .sample_size(50)
                .measurement_time(Duration::from_secs(2));
        }
        group.bench_with_input(BenchmarkId::new("native", rows), &batch, |b, batch| {
            b.iter(|| native_filter(black_box(batch)));
        });
        group.bench_with_input(BenchmarkId::new("weir", rows), &batch, |b, batch| {
            b.iter(|| runner.process(black_box(batch)).unwrap());
        });
    }
    // The same filter when addresses are 16-byte binary: the native filter step is much cheaper,
    // so the boundary crossing weighs more.
    let batch = flow_batch_with(BIG, 42, AddressFormat::Binary16);
    assert_eq!(runner.process(&batch).unwrap(), native_filter(&batch));
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_with_input(BenchmarkId::new("native-bin16", BIG), &batch, |b, batch| {
        b.iter(|| native_filter(black_box(batch)));
    });
    group.bench_with_input(BenchmarkId::new("weir-bin16", BIG), &batch, |b, batch| {
        b.iter(|| runner.process(black_box(batch)).unwrap());
    });
    group.finish();
}

fn bench_transform(c: &mut Criterion, engine: &Engine) {
    let module = load(engine, "sensor-normalize");
    let mut runner = PolicyRunner::new(module, Vec::new()).unwrap();
    let batch = sensor_batch(BIG, 42);
    assert_eq!(runner.process(&batch).unwrap(), native_normalize(&batch));
    let mut group = c.benchmark_group("transform");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(4));
    group.bench_with_input(BenchmarkId::new("native", BIG), &batch, |b, batch| {
        b.iter(|| native_normalize(black_box(batch)));
    });
    group.bench_with_input(BenchmarkId::new("weir", BIG), &batch, |b, batch| {
        b.iter(|| runner.process(black_box(batch)).unwrap());
    });
    group.finish();
}

fn bench_instantiate(c: &mut Criterion, engine: &Engine) {
    let module = load(engine, "drop-outliers");
    let params = br#"{"temperature":{"min":-40,"max":85}}"#.to_vec();
    let mut group = c.benchmark_group("instantiate");
    group.bench_function("drop-outliers", |b| {
        b.iter(|| PolicyRunner::new(Arc::clone(&module), params.clone()).unwrap());
    });
    group.finish();
}

fn median_ns(criterion_dir: &Path, id: &str) -> f64 {
    let path = criterion_dir.join(id).join("new/estimates.json");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["median"]["point_estimate"].as_f64().unwrap()
}

fn compile_figures(engine: &Engine) -> Vec<serde_json::Value> {
    let mut figures = Vec::new();
    for name in EXAMPLES {
        let bytes = policy_bytes(name);
        let mut times: Vec<Duration> = (0..5)
            .map(|_| {
                let t = Instant::now();
                PolicyModule::compile(engine, name, &bytes).unwrap();
                t.elapsed()
            })
            .collect();
        times.sort();
        figures.push(json!({"name": format!("{name} module size"), "value": bytes.len() as f64 / 1024.0, "unit": "KiB"}));
        figures.push(json!({"name": format!("{name} compile time (median of 5)"), "value": times[2].as_secs_f64() * 1e3, "unit": "ms"}));
    }
    figures
}

fn main() {
    let criterion_dir = workspace_target().join("criterion");
    let mut c = Criterion::default()
        .output_directory(&criterion_dir)
        .configure_from_args();
    // A 1 Mi-row batch is far larger than the pipeline's batches; give it a deadline to match,
    // so that a noisy machine does not turn a slow sample into a time-limit error.
    let limits = Limits {
        batch_deadline: Duration::from_secs(2),
        ..Limits::default()
    };
    let engine = Engine::new(limits).expect("engine starts");
    bench_filter(&mut c, &engine);
    bench_transform(&mut c, &engine);
    bench_instantiate(&mut c, &engine);
    c.final_summary();

    let row = |name: &str, weir: &str, native: &str, target: f64| {
        let (w, n) = (
            median_ns(&criterion_dir, weir),
            median_ns(&criterion_dir, native),
        );
        let ratio = w / n;
        json!({"name": name, "weir_ns": w, "baseline_ns": n, "ratio": ratio, "target": target,
               "pass": ratio <= target, "note": format!("median, ratio target <= {target}x")})
    };
    let overhead = median_ns(&criterion_dir, &format!("filter/weir/{SMALL}"));
    let native_small = median_ns(&criterion_dir, &format!("filter/native/{SMALL}"));
    let mut figures = vec![
        json!({"name": "per-batch overhead at 1024 rows (weir - native)", "value": (overhead - native_small) / 1e3, "unit": "us"}),
        json!({"name": "bench-filter at 1024 rows", "value": overhead / 1e3, "unit": "us"}),
        json!({"name": "instantiate + init (drop-outliers)", "value": median_ns(&criterion_dir, "instantiate/drop-outliers") / 1e3, "unit": "us"}),
    ];
    figures.extend(compile_figures(&engine));
    let mut small = row(
        "filter, 1 Ki flow rows (per-batch overhead)",
        &format!("filter/weir/{SMALL}"),
        &format!("filter/native/{SMALL}"),
        f64::INFINITY,
    );
    small["target"] = json!(null);
    small["pass"] = json!(overhead <= 20_000.0);
    small["note"] = json!("absolute target: weir <= 20 us per batch");
    let summary = json!({
        "rows": [
            row("filter, 1 Mi flow rows (bench-filter vs arrow-rs kernels)", &format!("filter/weir/{BIG}"), &format!("filter/native/{BIG}"), 1.5),
            row("filter, 1 Mi flow rows, 16-byte binary addresses", &format!("filter/weir-bin16/{BIG}"), &format!("filter/native-bin16/{BIG}"), 1.5),
            row("transform, 1 Mi sensor rows (sensor-normalize vs native Rust)", &format!("transform/weir/{BIG}"), &format!("transform/native/{BIG}"), 2.0),
            small,
        ],
        "figures": figures,
    });
    let out = workspace_target().join("bench");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap(),
    )
    .unwrap();
    println!("{}", serde_json::to_string_pretty(&summary).unwrap());
}
