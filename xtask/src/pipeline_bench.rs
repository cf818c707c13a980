//! The pipeline figures of `cargo xtask bench`, measured on the release `weir` binary:
//! end-to-end NDJSON → sensor-normalize → drop-outliers → redact → Parquet throughput on one
//! core (`taskset -c 0`), against the same pipeline without policies in the same run; the time
//! from start to ready; idle RSS; and the binary's size.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::{policies, util};

/// Lines of sensor NDJSON per run.
const ROWS: u64 = 1_000_000;
/// Runs per configuration; the median counts.
const RUNS: usize = 3;

/// Signs the three sensor policies with a bench key (made once) into `dir/bundles`, under the
/// current time as version (newer than whatever the bench's state directory accepted before).
fn sign_policies(weir: &Path, dir: &Path, policies: &Path) -> Result<()> {
    let keys = dir.join("keys");
    if !keys.join("bench.key").is_file() {
        let _ = std::fs::remove_dir_all(&keys);
        util::run(
            Command::new(weir)
                .args(["keygen", "--name", "bench", "--out-dir"])
                .arg(&keys)
                .stdout(Stdio::null()),
        )?;
    }
    let bundles = dir.join("bundles");
    std::fs::create_dir_all(&bundles)?;
    let version = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .to_string();
    for name in ["sensor-normalize", "drop-outliers", "redact"] {
        let out = bundles.join(format!("{name}.wpol"));
        let _ = std::fs::remove_file(&out);
        util::run(
            Command::new(weir)
                .arg("sign")
                .arg("--key")
                .arg(keys.join("bench.key"))
                .args(["--name", name, "--version", &version])
                .arg(policies.join(format!("{name}.wasm")))
                .arg("-o")
                .arg(&out)
                .stdout(Stdio::null()),
        )?;
    }
    Ok(())
}

fn sensors_toml(dir: &Path, with_policies: bool, source: &str) -> String {
    let chain = if with_policies {
        format!(
            r#"
[trust]
[[trust.keys]]
name = "bench"
public_key = "{d}/keys/bench.pub"
[[policies]]
bundle = "{d}/bundles/sensor-normalize.wpol"
[[policies]]
bundle = "{d}/bundles/drop-outliers.wpol"
params = {{ temperature = {{ min = -40.0, max = 60.0 }}, humidity = {{ min = 0.0, max = 100.0 }} }}
[[policies]]
bundle = "{d}/bundles/redact.wpol"
params = {{ key = "bench-secret", columns = ["device_id"] }}
"#,
            d = dir.display()
        )
    } else {
        String::new()
    };
    format!(
        r#"
[pipeline]
state_dir = "{state}"
{source}
[sources.sensors.schema]
columns = [{columns}]
{chain}
[sinks.lake]
type = "parquet"
path = "{out}"
[dead_letter]
path = "{out}/dead-letter"
"#,
        state = dir.join("state").display(),
        out = dir.join("out").display(),
        columns = COLUMNS
            .iter()
            .map(|c| format!("{c:?}"))
            .collect::<Vec<_>>()
            .join(", "),
    )
}

/// Mirrors `weir_host::sources::generate::SENSOR_NDJSON_COLUMNS` (xtask does not link the
/// host).
const COLUMNS: [&str; 11] = [
    "ts: timestamp(ms, UTC)",
    "device_id: utf8",
    "model: utf8",
    "temperature_celsius: float64?",
    "temp_value: float64?",
    "temp_f: float64?",
    "t℃: float64?",
    "humidity_percent: float64?",
    "hum: float64?",
    "rh: float64?",
    "battery_v: float64?",
];

/// When the last commit that changed the host's code (or its dependencies) was made.
fn last_commit_time(root: &Path) -> Result<std::time::SystemTime> {
    let out = util::output(
        Command::new("git")
            .args([
                "log",
                "-1",
                "--format=%ct",
                "--",
                "host",
                "guest-sdk",
                "Cargo.toml",
                "Cargo.lock",
            ])
            .current_dir(root),
    )?;
    let secs: u64 = out.trim().parse().context("git log -1 --format=%ct")?;
    Ok(std::time::UNIX_EPOCH + Duration::from_secs(secs))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// One timed run on core 0; returns (seconds in the pipeline, summary).
fn timed_run(weir: &Path, config: &Path, dir: &Path) -> Result<(f64, Value)> {
    let _ = std::fs::remove_dir_all(dir.join("out"));
    let summary = dir.join("summary.json");
    let mut cmd = Command::new("taskset");
    cmd.args(["-c", "0"])
        .arg(weir)
        .args(["run", "--no-progress", "--config"])
        .arg(config)
        .arg("--summary-json")
        .arg(&summary)
        .env("RUST_LOG", "warn");
    util::output(&mut cmd).context("a pipeline bench run failed")?;
    let s: Value = serde_json::from_slice(&std::fs::read(&summary)?)?;
    if s["balanced"] != Value::Bool(true) {
        bail!("the bench run lost rows: {s}");
    }
    Ok((s["elapsed_secs"].as_f64().unwrap_or(f64::NAN), s))
}

/// Start to ready and idle RSS, with a UDP source that waits for data (loopback).
fn ready_and_idle(weir: &Path, config: &Path) -> Result<(f64, f64, f64)> {
    let mut child = Command::new(weir)
        .args(["run", "--no-progress", "--config"])
        .arg(config)
        .env("RUST_LOG", "weir_host=info,warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("starting weir")?;
    let started = Instant::now();
    let mut stderr = child.stderr.take().context("stderr")?;
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    let ready = loop {
        let n = stderr.read(&mut buf)?;
        if n == 0 {
            bail!(
                "weir exited before it was ready:\n{}",
                String::from_utf8_lossy(&seen)
            );
        }
        seen.extend_from_slice(&buf[..n]);
        if String::from_utf8_lossy(&seen).contains("pipeline ready") {
            break started.elapsed().as_secs_f64() * 1e3;
        }
    };
    let internal = String::from_utf8_lossy(&seen)
        .split("ready_ms=")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or(f64::NAN);
    std::thread::sleep(Duration::from_secs(2));
    let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()))?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("VmRSS")?;
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(child.id().to_string())
        .status();
    let _ = child.wait();
    Ok((ready, internal, rss_kib / 1024.0))
}

/// Runs the pipeline measurements; returns (rows, figures) for the bench summary.
pub fn run(root: &Path) -> Result<(Vec<Value>, Vec<Value>)> {
    util::run(util::cargo(root).args(["build", "--release", "-p", "weir-host", "--bin", "weir"]))
        .context("building the release weir")?;
    let target = util::metadata(root)?.target_directory;
    let weir = target.join("release/weir");
    let dir = target.join("bench/pipeline");
    std::fs::create_dir_all(&dir)?;
    let data = dir.join("sensors.ndjson");
    util::run(
        Command::new(&weir)
            .args([
                "generate",
                "sensors",
                "--rows",
                &ROWS.to_string(),
                "--garbage-per-mille",
                "2",
                "-o",
            ])
            .arg(&data),
    )?;
    let bytes = std::fs::metadata(&data)?.len() as f64;
    sign_policies(&weir, &dir, &policies::output_dir(root))?;
    let file_source = format!(
        "[sources.sensors]\ntype = \"file\"\npath = \"{}\"",
        data.display()
    );
    let write = |name: &str, text: String| -> Result<PathBuf> {
        let p = dir.join(name);
        std::fs::write(&p, text)?;
        Ok(p)
    };
    let with = write("with.toml", sensors_toml(&dir, true, &file_source))?;
    let without = write("without.toml", sensors_toml(&dir, false, &file_source))?;
    // Warm the compile cache and the page cache.
    timed_run(&weir, &with, &dir)?;
    let (mut t_with, mut t_without) = (Vec::new(), Vec::new());
    let mut last = Value::Null;
    for _ in 0..RUNS {
        let (t, s) = timed_run(&weir, &with, &dir)?;
        t_with.push(t);
        last = s;
        t_without.push(timed_run(&weir, &without, &dir)?.0);
    }
    let (t_with, t_without) = (median(t_with), median(t_without));
    let mb_s = bytes / 1e6 / t_with;
    let rows_s = ROWS as f64 / t_with;
    let base_mb_s = bytes / 1e6 / t_without;

    let udp = format!(
        "[sources.sensors]\ntype = \"udp\"\nlisten = \"127.0.0.1:{}\"",
        std::net::UdpSocket::bind("127.0.0.1:0")?
            .local_addr()?
            .port()
    );
    let idle = write("idle.toml", sensors_toml(&dir, true, &udp))?;
    let mut readies = Vec::new();
    let mut internal = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..5 {
        let (r, i, m) = ready_and_idle(&weir, &idle)?;
        readies.push(r);
        internal.push(i);
        rss.push(m);
    }
    let (ready, ready_internal, rss) = (median(readies), median(internal), median(rss));
    let mut static_bin = None;
    let mut sizes = vec![(
        "release (glibc, not stripped)".to_owned(),
        std::fs::metadata(&weir)?.len(),
    )];
    let dist = target.join("dist");
    for entry in std::fs::read_dir(&dist)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with("weir-") && name.contains("x86_64") {
            // A static binary built before the last commit may not read today's config.
            let built = entry.metadata()?.modified()?;
            if built < last_commit_time(root)? {
                println!(
                    "  !!! {} is older than the last commit to the host: not measured (run \
                     `cargo xtask dist` to rebuild it)",
                    entry.path().display()
                );
                continue;
            }
            sizes.push((format!("dist {name}"), entry.metadata()?.len()));
            static_bin = Some(entry.path());
        }
    }
    // Idle memory of what gateways run: the static binary when it is fresh (its code is denser
    // than the glibc release build's), else the release binary.
    let (idle_rss, idle_of) = match &static_bin {
        Some(bin) => {
            let mut v = Vec::new();
            for _ in 0..5 {
                v.push(ready_and_idle(bin, &idle)?.2);
            }
            (median(v), "static x86_64 binary")
        }
        None => (rss, "release glibc binary (no fresh static binary)"),
    };
    let static_mb = sizes
        .iter()
        .find(|(n, _)| n.starts_with("dist"))
        .map(|(_, s)| *s as f64 / 1e6);
    let per_policy: Vec<String> = last["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| {
            format!(
                "{} {}→{}",
                p["name"].as_str().unwrap_or("?"),
                p["rows_in"],
                p["rows_out"]
            )
        })
        .collect();
    let rows = vec![
        json!({
            "name": "pipeline: NDJSON → 3 policies → Parquet, 1 core",
            "weir_ns": t_with * 1e9,
            "baseline_ns": t_without * 1e9,
            "ratio": t_with / t_without,
            "target": "≥ 100 MB/s",
            "pass": mb_s >= 100.0,
            "note": format!(
                "{mb_s:.0} MB/s, {rows_s:.0} rows/s; baseline = same pipeline without policies, {base_mb_s:.0} MB/s; {}",
                per_policy.join(", ")
            ),
        }),
        json!({
            "name": "start to ready (3 policies, compile cache warm)",
            "weir_ns": ready * 1e6,
            "target": "≤ 50 ms",
            "pass": ready <= 50.0,
            "note": format!("spawn → 'pipeline ready' on stderr; weir's own count from main: {ready_internal:.1} ms"),
        }),
        json!({
            "name": "idle RSS (UDP source waiting, 3 policies)",
            "target": "≤ 20 MB",
            "pass": idle_rss <= 20.0,
            "note": format!("{idle_rss:.1} MiB VmRSS after 2 s idle, {idle_of}; release glibc binary {rss:.1} MiB"),
        }),
        json!({
            "name": "static x86_64 binary size",
            "target": "≤ 25 MB",
            "pass": static_mb.map(|m| m <= 25.0),
            "note": static_mb.map_or_else(
                || "no target/dist binary: run `cargo xtask dist` first".to_owned(),
                |m| format!("{m:.1} MB"),
            ),
        }),
    ];
    let mut figures = vec![
        json!({"name": "pipeline throughput, 1 core", "value": mb_s, "unit": "MB/s of NDJSON"}),
        json!({"name": "pipeline rows, 1 core", "value": rows_s, "unit": "rows/s"}),
        json!({"name": "pipeline without policies, 1 core", "value": base_mb_s, "unit": "MB/s of NDJSON"}),
        json!({"name": "start to ready", "value": ready, "unit": "ms"}),
        json!({"name": "idle RSS", "value": rss, "unit": "MiB"}),
    ];
    // What operators run: the static binary from `cargo xtask dist`, when there is one.
    if let Some(bin) = static_bin {
        let mut times = Vec::new();
        for _ in 0..RUNS {
            times.push(timed_run(&bin, &with, &dir)?.0);
        }
        let t = median(times);
        figures.push(json!({
            "name": "pipeline throughput, 1 core, static x86_64 binary",
            "value": bytes / 1e6 / t,
            "unit": "MB/s of NDJSON",
        }));
    }
    for (name, size) in sizes {
        figures.push(json!({"name": format!("binary size, {name}"), "value": size as f64 / 1e6, "unit": "MB"}));
    }
    Ok((rows, figures))
}
