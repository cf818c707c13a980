//! The Weir demo: the example policies over generated batches, with before/after tables.
//!
//! Run it with `cargo xtask demo` (which builds the policies first). It needs the built modules
//! in `$WEIR_POLICY_DIR` (default `target/policies`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context as _, Result};
use arrow_array::RecordBatch;
use arrow_cast::pretty::pretty_format_batches;
use weir_host::engine::{Engine, Limits};
use weir_host::policy::{FailMode, PolicyChain, PolicyModule, PolicyRunner, compile_in_background};
use weir_host::sources::generate::{flow_batch, sensor_batch};

fn policy_dir() -> PathBuf {
    std::env::var_os("WEIR_POLICY_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"),
        PathBuf::from,
    )
}

/// Compiles the policies in parallel on background threads, as the runtime does.
fn load_all(engine: &Engine, names: &[&str]) -> Result<Vec<Arc<PolicyModule>>> {
    let tasks: Vec<_> = names
        .iter()
        .map(|name| {
            let path = policy_dir().join(format!("{name}.wasm"));
            let bytes = std::fs::read(&path)
                .with_context(|| format!("reading {} (run `cargo xtask demo`)", path.display()))?;
            Ok(compile_in_background(engine, name, bytes))
        })
        .collect::<Result<_>>()?;
    let modules = tasks
        .into_iter()
        .map(|t| t.wait().map_err(anyhow::Error::from))
        .collect::<Result<Vec<_>>>()?;
    for m in &modules {
        println!(
            "  {:<18} {:>6.1} KiB  compiled in {:>5.1} ms  sha256 {}…",
            m.name(),
            m.size() as f64 / 1024.0,
            m.compile_time().as_secs_f64() * 1e3,
            &m.sha256_hex()[..16]
        );
    }
    Ok(modules)
}

fn show(title: &str, batch: &RecordBatch, columns: &[&str], rows: usize) -> Result<()> {
    let indices: Vec<usize> = columns
        .iter()
        .filter_map(|c| batch.schema().index_of(c).ok())
        .collect();
    let view = batch
        .project(&indices)?
        .slice(0, rows.min(batch.num_rows()));
    println!(
        "\n{title} ({} rows, showing {})",
        batch.num_rows(),
        view.num_rows()
    );
    println!("{}", pretty_format_batches(&[view])?);
    Ok(())
}

fn main() -> Result<()> {
    let engine = Engine::new(Limits::default()).context("starting the engine")?;
    println!("Weir demo — policies from {}", policy_dir().display());
    let modules = load_all(
        &engine,
        &[
            "sensor-normalize",
            "drop-outliers",
            "redact",
            "flow-filter",
            "bench-filter",
        ],
    )?;
    let [normalize, outliers, redact, flow_filter, bench_filter] =
        <[Arc<PolicyModule>; 5]>::try_from(modules).expect("five modules");

    // 1. Sensor readings: normalize → drop outliers → redact.
    let mut chain = PolicyChain::new();
    chain.push(
        PolicyRunner::new(normalize, Vec::new())?,
        FailMode::DeadLetter,
    );
    chain.push(
        PolicyRunner::new(
            outliers,
            br#"{"temperature": {"min": -40, "max": 85}, "humidity": {"min": 0, "max": 100}}"#
                .to_vec(),
        )?,
        FailMode::DeadLetter,
    );
    chain.push(
        PolicyRunner::new(
            redact,
            br#"{"key": "demo-secret", "columns": ["device_id"]}"#.to_vec(),
        )?,
        FailMode::DeadLetter,
    );
    let before = sensor_batch(12, 7);
    show(
        "Sensor readings in",
        &before,
        &[
            "device_id",
            "model",
            "temperature_celsius",
            "temp_f",
            "t℃",
            "temp_value",
            "rh",
            "hum",
            "humidity_percent",
        ],
        12,
    )?;
    let out = chain.run(before);
    if let Some(after) = &out.batch {
        show(
            "After sensor-normalize → drop-outliers → redact",
            after,
            &[
                "device_id",
                "model",
                "sensor.temperature.celsius",
                "sensor.humidity.percent",
                "battery_v",
            ],
            12,
        )?;
    }
    let started = Instant::now();
    let mut rows = 0;
    for seed in 0..20 {
        let batch = sensor_batch(50_000, seed);
        rows += batch.num_rows();
        let out = chain.run(batch);
        anyhow::ensure!(out.dead_letters.is_empty(), "unexpected dead letters");
    }
    let elapsed = started.elapsed();
    println!(
        "\n{rows} more sensor rows through the chain in {:.0} ms ({:.1} M rows/s)",
        elapsed.as_secs_f64() * 1e3,
        rows as f64 / elapsed.as_secs_f64() / 1e6
    );
    println!(
        "{:<18} {:>9} {:>9} {:>9} {:>6}",
        "policy", "rows in", "rows out", "filtered", "dead"
    );
    for p in chain.policies() {
        let s = &p.stats;
        println!(
            "{:<18} {:>9} {:>9} {:>9} {:>6}",
            p.runner.name(),
            s.rows_in,
            s.rows_out,
            s.rows_filtered,
            s.rows_dead_lettered
        );
    }

    // 2. Network flows: drop SSH and DNS, keep HTTPS over TCP with real traffic.
    let flows = flow_batch(12, 3);
    show(
        "Flows in",
        &flows,
        &[
            "src_addr", "dst_addr", "src_port", "dst_port", "proto", "bytes",
        ],
        12,
    )?;
    let mut ff = PolicyRunner::new(
        flow_filter,
        br#"{"mode": "drop", "ports": [22, 53]}"#.to_vec(),
    )?;
    let kept = ff.process(&flows)?;
    show(
        "After flow-filter (drop ports 22 and 53)",
        &kept,
        &[
            "src_addr", "dst_addr", "src_port", "dst_port", "proto", "bytes",
        ],
        12,
    )?;
    let mut bf = PolicyRunner::new(bench_filter, Vec::new())?;
    let big = flow_batch(1 << 20, 1);
    let started = Instant::now();
    let https = bf.process(&big)?;
    println!(
        "\nbench-filter (proto == 6 && dst_port == 443 && bytes > 1000): {} of {} flows kept in {:.1} ms",
        https.num_rows(),
        big.num_rows(),
        started.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}
