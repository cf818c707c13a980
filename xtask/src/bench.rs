//! `cargo xtask bench`: builds the policies, runs the policy benchmarks and prints the summary
//! the bench writes to `target/bench/summary.json`, with the pipeline, hot-swap and
//! flow-capture figures merged in. Needs root (the flow-capture bench creates network
//! namespaces and loads eBPF programs).

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Deserialize;
use serde_json::Value;

use crate::{pipeline_bench, policies, util};

/// Where the bench writes its summary: `<target dir>/bench/summary.json`, where the target
/// dir is the one cargo uses (`CARGO_TARGET_DIR` or `<workspace>/target`). Also passed to the
/// bench as `WEIR_BENCH_SUMMARY`.
pub fn summary_path(root: &Path) -> Result<PathBuf> {
    let meta = util::metadata(root)?;
    Ok(meta.target_directory.join("bench").join("summary.json"))
}

/// The summary the bench writes.
#[derive(Debug, Deserialize)]
struct Summary {
    #[serde(default)]
    rows: Vec<Row>,
    #[serde(default)]
    figures: Vec<Figure>,
}

/// One comparison against a baseline.
#[derive(Debug, Deserialize)]
struct Row {
    name: String,
    weir_ns: Option<f64>,
    baseline_ns: Option<f64>,
    ratio: Option<f64>,
    /// A number (a maximum ratio) or free text.
    target: Option<Value>,
    pass: Option<bool>,
    note: Option<String>,
}

/// One stand-alone measurement.
#[derive(Debug, Deserialize)]
struct Figure {
    name: String,
    value: Value,
    #[serde(default)]
    unit: String,
}

/// Runs `cargo bench -p weir-host --bench policies -- <criterion_args>`, then the pipeline,
/// hot-swap and flow-capture benches, and prints the merged summary. Fails when not root, if a
/// summary is missing or any row missed its target.
pub fn run(root: &Path, criterion_args: &[String]) -> Result<()> {
    // Checked first, not after the long criterion run.
    if !is_root()? {
        bail!(
            "`cargo xtask bench` includes the flow-capture benchmark (tests/benches/capture.rs), \
             which needs root: it creates network namespaces and loads eBPF programs. Run it as \
             root"
        );
    }
    policies::build(root).context("build-policies failed")?;
    let summary = summary_path(root)?;
    if summary.exists() {
        std::fs::remove_file(&summary)
            .with_context(|| format!("removing the stale {}", summary.display()))?;
    }
    let mut cmd = util::cargo(root);
    cmd.args(["bench", "-p", "weir-host", "--bench", "policies"])
        .env("WEIR_POLICY_DIR", policies::output_dir(root))
        .env("WEIR_BENCH_SUMMARY", &summary);
    if !criterion_args.is_empty() {
        cmd.arg("--").args(criterion_args);
    }
    util::run(&mut cmd).context("the benchmarks failed")?;

    let text = std::fs::read_to_string(&summary).with_context(|| {
        format!(
            "the bench finished but wrote no summary at {}",
            summary.display()
        )
    })?;
    let mut raw: Value =
        serde_json::from_str(&text).with_context(|| format!("parsing {}", summary.display()))?;
    let (mut rows, mut figures) =
        pipeline_bench::run(root).context("the pipeline benchmark failed")?;
    let (swap_rows, swap_figures) = swap_bench(root)?;
    rows.extend(swap_rows);
    figures.extend(swap_figures);
    let (capture_rows, capture_figures) = capture_bench(root)?;
    rows.extend(capture_rows);
    figures.extend(capture_figures);
    for (key, extra) in [("rows", rows), ("figures", figures)] {
        if let Some(list) = raw.get_mut(key).and_then(Value::as_array_mut) {
            list.extend(extra);
        } else {
            raw[key] = Value::Array(extra);
        }
    }
    std::fs::write(&summary, serde_json::to_vec_pretty(&raw)?)
        .with_context(|| format!("writing {}", summary.display()))?;
    let parsed: Summary =
        serde_json::from_value(raw).with_context(|| format!("parsing {}", summary.display()))?;
    print_summary(&parsed);
    println!("summary: {}", summary.display());

    let missed: Vec<&str> = parsed
        .rows
        .iter()
        .filter(|r| r.pass == Some(false))
        .map(|r| r.name.as_str())
        .collect();
    if !missed.is_empty() {
        bail!(
            "{} of {} targets missed: {}",
            missed.len(),
            parsed.rows.len(),
            missed.join(", ")
        );
    }
    Ok(())
}

/// Runs `cargo bench -p weir-host --bench swap` (hot swap: upload → active, batch latency
/// during swaps) and returns its rows and figures.
fn swap_bench(root: &Path) -> Result<(Vec<Value>, Vec<Value>)> {
    let out = summary_path(root)?.with_file_name("swap.json");
    if out.exists() {
        std::fs::remove_file(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    let mut cmd = util::cargo(root);
    cmd.args(["bench", "-p", "weir-host", "--bench", "swap"])
        .env("WEIR_POLICY_DIR", policies::output_dir(root))
        .env("WEIR_SWAP_SUMMARY", &out);
    util::run(&mut cmd).context("the swap benchmark failed")?;
    rows_and_figures(&out)
}

/// Runs `cargo bench -p weir-tests --bench capture` (flow capture on a veth pair between two
/// network namespaces: per-packet overhead of the eBPF program, user-space CPU per 10k
/// flows/s; needs root) and returns its rows and figures.
fn capture_bench(root: &Path) -> Result<(Vec<Value>, Vec<Value>)> {
    let out = summary_path(root)?.with_file_name("capture.json");
    if out.exists() {
        std::fs::remove_file(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    let mut cmd = util::cargo(root);
    cmd.args(["bench", "-p", "weir-tests", "--bench", "capture"])
        .env("WEIR_CAPTURE_SUMMARY", &out);
    util::run(&mut cmd).context("the capture benchmark failed")?;
    rows_and_figures(&out)
}

/// The `rows` and `figures` lists of a bench's JSON summary at `path`.
fn rows_and_figures(path: &Path) -> Result<(Vec<Value>, Vec<Value>)> {
    let raw: Value = serde_json::from_slice(
        &std::fs::read(path).with_context(|| format!("reading {}", path.display()))?,
    )
    .with_context(|| format!("parsing {}", path.display()))?;
    let list = |key: &str| raw[key].as_array().cloned().unwrap_or_default();
    Ok((list("rows"), list("figures")))
}

/// Whether this process runs with effective user id 0 (from `/proc/self/status`: xtask does
/// not link libc).
fn is_root() -> Result<bool> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    // `Uid:` real, effective, saved, filesystem.
    let effective = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .context("no effective uid in /proc/self/status")?;
    Ok(effective == "0")
}

fn print_summary(summary: &Summary) {
    if !summary.rows.is_empty() {
        let mut table = Table::new();
        table.load_preset(UTF8_FULL_CONDENSED).set_header([
            "benchmark",
            "weir",
            "baseline",
            "ratio",
            "target",
            "pass",
            "note",
        ]);
        for r in &summary.rows {
            table.add_row([
                r.name.clone(),
                r.weir_ns.map_or_else(String::new, format_ns),
                r.baseline_ns.map_or_else(String::new, format_ns),
                r.ratio.map_or_else(String::new, |x| format!("{x:.2}×")),
                r.target.as_ref().map_or_else(String::new, format_target),
                match r.pass {
                    Some(true) => "yes".to_owned(),
                    Some(false) => "NO".to_owned(),
                    None => String::new(),
                },
                r.note.clone().unwrap_or_default(),
            ]);
        }
        for col in 1..=3 {
            if let Some(c) = table.column_mut(col) {
                c.set_cell_alignment(CellAlignment::Right);
            }
        }
        println!("{table}");
    }
    if !summary.figures.is_empty() {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_header(["figure", "value", "unit"]);
        for f in &summary.figures {
            let value = match &f.value {
                Value::Number(n) => n.as_f64().map_or_else(|| n.to_string(), format_number),
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            table.add_row([f.name.clone(), value, f.unit.clone()]);
        }
        if let Some(c) = table.column_mut(1) {
            c.set_cell_alignment(CellAlignment::Right);
        }
        println!("{table}");
    }
}

/// A duration in nanoseconds, in the most readable unit.
fn format_ns(ns: f64) -> String {
    if ns >= 1e9 {
        format!("{:.2} s", ns / 1e9)
    } else if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.1} ns")
    }
}

fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else if x.abs() >= 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.3}")
    }
}

fn format_target(target: &Value) -> String {
    match target {
        Value::Number(n) => n
            .as_f64()
            .map_or_else(|| n.to_string(), |x| format!("≤ {x}×")),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_summary_format() {
        let json = r#"{"rows": [{"name": "filter 1Mi", "weir_ns": 5.0e6, "baseline_ns": 4.0e6,
            "ratio": 1.25, "target": 1.5, "pass": true, "note": "same run"}],
            "figures": [{"name": "wasm size", "value": 41234, "unit": "bytes"}]}"#;
        let s: Summary = serde_json::from_str(json).unwrap();
        assert_eq!(s.rows.len(), 1);
        assert_eq!(s.rows[0].pass, Some(true));
        assert_eq!(s.figures[0].unit, "bytes");
        assert_eq!(format_ns(5.0e6), "5.00 ms");
        assert_eq!(format_target(&s.rows[0].target.clone().unwrap()), "≤ 1.5×");
        print_summary(&s);
    }
}
