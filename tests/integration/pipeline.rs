//! The pipeline end to end through the `weir` binary: NDJSON with garbage lines through the
//! three sensor policies into Parquet, values compared row by row with an independent
//! computation; the dead letters; the Parquet metadata; pyarrow reading the output.

use std::collections::HashMap;

use arrow_array::cast::AsArray as _;
use arrow_array::types::{Float64Type, TimestampMillisecondType};
use arrow_array::{Array, RecordBatch};
use hmac::{Hmac, Mac as _};
use serde_json::Value;
use sha2::{Digest as _, Sha256};
use weir_tests::bundle_tools::sign_policy;
use weir_tests::policy_dir;
use weir_tests::weir_process::{
    Scratch, parquet_files, parquet_metadata, read_ipc_dir, read_parquet_dir, run_weir,
};

const KEY: &str = "integration-secret";

fn sensors_config(scratch: &Scratch, extra_sink: &str) -> std::path::PathBuf {
    let (normalize, public) = sign_policy(scratch.path(), "sensor-normalize");
    let (outliers, _) = sign_policy(scratch.path(), "drop-outliers");
    let (redact, _) = sign_policy(scratch.path(), "redact");
    let columns: Vec<String> = weir_host::sources::generate::SENSOR_NDJSON_COLUMNS
        .iter()
        .map(|c| format!("{c:?}"))
        .collect();
    scratch.write(
        "weir.toml",
        format!(
            r#"
[pipeline]
batch_max_rows = 1000
state_dir = "state"

[sources.sensors]
type = "file"
path = "data/*.ndjson"
[sources.sensors.schema]
columns = [{columns}]

[trust]
[[trust.keys]]
name = "ops"
public_key = "{public}"

[[policies]]
bundle = "{normalize}"
[[policies]]
bundle = "{outliers}"
params = {{ temperature = {{ min = -40.0, max = 60.0 }}, humidity = {{ min = 0.0, max = 100.0 }} }}
[[policies]]
bundle = "{redact}"
params = {{ key = "{KEY}", columns = ["device_id"] }}

[sinks.lake]
type = "parquet"
path = "out"
rotate_rows = 1500
{extra_sink}

[dead_letter]
path = "dead"
"#,
            columns = columns.join(", "),
            normalize = normalize.display(),
            outliers = outliers.display(),
            redact = redact.display(),
            public = public.display(),
        ),
    )
}

/// What the chain should make of one input line, computed without weir.
#[derive(Debug, PartialEq)]
struct Expected {
    ts: i64,
    device: String,
    celsius: Option<f64>,
    percent: Option<f64>,
}

fn expected_rows(lines: &[&str]) -> (Vec<Expected>, Vec<usize>, usize) {
    let mut out = Vec::new();
    let mut rejected = Vec::new();
    let mut filtered = 0;
    for (i, line) in lines.iter().enumerate() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            rejected.push(i + 1);
            continue;
        };
        let num = |k: &str| v.get(k).and_then(Value::as_f64);
        let bad_type = v
            .as_object()
            .unwrap()
            .iter()
            .any(|(k, x)| k != "device_id" && k != "model" && x.is_string());
        if v.get("device_id").is_none() || bad_type {
            rejected.push(i + 1);
            continue;
        }
        let celsius = num("temperature_celsius")
            .or(num("temp_value"))
            .or(num("temp_f").map(|f| (f - 32.0) * 5.0 / 9.0))
            .or(num("t℃"))
            .filter(|c| c.is_finite() && (-273.15..=1000.0).contains(c));
        let percent = num("humidity_percent")
            .or(num("hum"))
            .or(num("rh").map(|f| f * 100.0))
            .filter(|p| p.is_finite() && (0.0..=100.0).contains(p));
        let outlier = celsius.is_some_and(|c| !(-40.0..=60.0).contains(&c))
            || percent.is_some_and(|p| !(0.0..=100.0).contains(&p));
        if outlier {
            filtered += 1;
            continue;
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(KEY.as_bytes()).unwrap();
        mac.update(v["device_id"].as_str().unwrap().as_bytes());
        let device = format!("h:{}", hex::encode(&mac.finalize().into_bytes()[..8]));
        out.push(Expected {
            ts: v["ts"].as_i64().unwrap(),
            device,
            celsius,
            percent,
        });
    }
    (out, rejected, filtered)
}

fn actual_rows(batches: &[RecordBatch]) -> Vec<Expected> {
    let mut out = Vec::new();
    for b in batches {
        let ts = b
            .column_by_name("ts")
            .unwrap()
            .as_primitive::<TimestampMillisecondType>();
        let dev = b.column_by_name("device_id").unwrap().as_string::<i32>();
        let c = b
            .column_by_name("sensor.temperature.celsius")
            .unwrap()
            .as_primitive::<Float64Type>();
        let h = b
            .column_by_name("sensor.humidity.percent")
            .unwrap()
            .as_primitive::<Float64Type>();
        for i in 0..b.num_rows() {
            out.push(Expected {
                ts: ts.value(i),
                device: dev.value(i).to_owned(),
                celsius: c.is_valid(i).then(|| c.value(i)),
                percent: h.is_valid(i).then(|| h.value(i)),
            });
        }
    }
    out
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        (None, None) => true,
        _ => false,
    }
}

#[test]
fn sensor_ndjson_through_three_policies_into_parquet_value_for_value() {
    let scratch = Scratch::new("sensors");
    let mut text = Vec::new();
    weir_host::sources::generate::write_sensor_ndjson(&mut text, 2500, 11, 20).unwrap();
    let mut text2 = Vec::new();
    weir_host::sources::generate::write_sensor_ndjson(&mut text2, 1700, 12, 20).unwrap();
    let _ = scratch.write("data/a.ndjson", &text);
    let _ = scratch.write("data/b.ndjson", &text2);
    let config = sensors_config(&scratch, "");
    let run = run_weir(&scratch, &["run", "--config", config.to_str().unwrap()]);
    let s = run.ok();

    let a = String::from_utf8(text).unwrap();
    let b = String::from_utf8(text2).unwrap();
    let la: Vec<&str> = a.lines().collect();
    let lb: Vec<&str> = b.lines().collect();
    let (mut want, rej_a, filt_a) = expected_rows(&la);
    let (want_b, rej_b, filt_b) = expected_rows(&lb);
    want.extend(want_b);
    assert!(
        !rej_a.is_empty() && filt_a > 0,
        "the data has garbage and outliers"
    );

    let got = actual_rows(&read_parquet_dir(&scratch.join("out")));
    assert_eq!(got.len(), want.len(), "rows out");
    for (i, (g, w)) in got.iter().zip(&want).enumerate() {
        assert!(
            g.ts == w.ts
                && g.device == w.device
                && close(g.celsius, w.celsius)
                && close(g.percent, w.percent),
            "row {i}: got {g:?}, want {w:?}"
        );
    }
    assert_eq!(s["rows_in"], 4200);
    assert_eq!(s["rows_out"].as_u64().unwrap() as usize, want.len());
    assert_eq!(
        s["rows_filtered"].as_u64().unwrap() as usize,
        filt_a + filt_b
    );
    assert_eq!(
        s["sources"]["sensors"]["rejected"].as_u64().unwrap() as usize,
        rej_a.len() + rej_b.len()
    );
    // 4200 rows minus rejects and outliers, 1500 per file.
    let files = parquet_files(&scratch.join("out"));
    assert_eq!(files.len(), want.len().div_ceil(1500), "{files:?}");

    // The dead letters: exactly the garbage lines, with file:line, reason and the raw bytes.
    let dead = read_ipc_dir(&scratch.join("dead"));
    let mut locations = Vec::new();
    for (_, batch) in &dead {
        let loc = batch
            .column_by_name("_weir_location")
            .unwrap()
            .as_string::<i32>();
        let reason = batch
            .column_by_name("_weir_reason")
            .unwrap()
            .as_string::<i32>();
        let raw = batch.column_by_name("raw").unwrap().as_binary::<i32>();
        let origin = batch
            .column_by_name("_weir_origin")
            .unwrap()
            .as_string::<i32>();
        for i in 0..batch.num_rows() {
            assert_eq!(origin.value(i), "source:sensors");
            assert!(!reason.value(i).is_empty());
            let l = loc.value(i);
            let (file, line) = l.rsplit_once(':').unwrap();
            let line: usize = line.parse().unwrap();
            let lines = if file.ends_with("a.ndjson") { &la } else { &lb };
            assert_eq!(raw.value(i), lines[line - 1].as_bytes(), "{l}");
            locations.push((file.ends_with("a.ndjson"), line));
        }
    }
    let mut want_locations: Vec<(bool, usize)> = rej_a.iter().map(|&l| (true, l)).collect();
    want_locations.extend(rej_b.iter().map(|&l| (false, l)));
    locations.sort_unstable();
    want_locations.sort_unstable();
    assert_eq!(locations, want_locations);

    // Metadata: every policy that touched the rows, with the sha256 of its module file.
    let meta: HashMap<String, String> = parquet_metadata(&files[0]).into_iter().collect();
    let policies: Value = serde_json::from_str(&meta["weir.policies"]).unwrap();
    let names: Vec<&str> = policies
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    for name in ["sensor-normalize", "drop-outliers", "redact"] {
        assert!(names.contains(&name), "{name} in {policies}");
        let sha = hex::encode(Sha256::digest(
            std::fs::read(policy_dir().join(format!("{name}.wasm"))).unwrap(),
        ));
        assert!(
            policies
                .as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == name && p["sha256"] == sha.as_str())
        );
    }
}

#[test]
fn pyarrow_reads_the_schema_and_the_metadata() {
    let scratch = Scratch::new("pyarrow");
    let mut text = Vec::new();
    weir_host::sources::generate::write_sensor_ndjson(&mut text, 500, 5, 0).unwrap();
    let _ = scratch.write("data/a.ndjson", &text);
    let config = sensors_config(&scratch, "");
    let _ = run_weir(&scratch, &["run", "--config", config.to_str().unwrap()]).ok();
    let file = &parquet_files(&scratch.join("out"))[0];
    let script = r#"
import json, sys
import pyarrow.parquet as pq
f = pq.ParquetFile(sys.argv[1])
meta = {k.decode(): v.decode() for k, v in (f.schema_arrow.metadata or {}).items()}
kv = {k.decode(): v.decode() for k, v in (f.metadata.metadata or {}).items()}
cols = {c.name: str(c.type) for c in f.schema_arrow}
rg = f.metadata.row_group(0)
codecs = sorted({rg.column(i).compression for i in range(rg.num_columns)})
stats = all(rg.column(i).statistics is not None for i in range(rg.num_columns))
print(json.dumps({"columns": cols, "kv": kv, "rows": f.metadata.num_rows, "codecs": codecs, "stats": stats}))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", script, file.to_str().unwrap()])
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "pyarrow failed (installed by `cargo xtask setup`):\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["columns"]["ts"], "timestamp[ms, tz=UTC]");
    assert_eq!(v["columns"]["device_id"], "string");
    assert_eq!(v["columns"]["sensor.temperature.celsius"], "double");
    assert_eq!(v["columns"]["battery_v"], "double");
    assert!(
        v["columns"].get("temp_f").is_none(),
        "consumed by sensor-normalize"
    );
    assert_eq!(v["codecs"], serde_json::json!(["ZSTD"]));
    assert_eq!(v["stats"], true);
    let policies: Value = serde_json::from_str(v["kv"]["weir.policies"].as_str().unwrap()).unwrap();
    assert_eq!(policies.as_array().unwrap().len(), 3);
    assert!(v["kv"]["weir.version"].as_str().is_some());
}
