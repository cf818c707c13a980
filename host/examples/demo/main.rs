//! The Weir demo: a realistic sensor stream through `sensor-normalize` → `drop-outliers` →
//! `redact` into Parquet, run by the real `weir` binary, then read back.
//!
//! Run it with `cargo xtask demo`, which installs what is missing, builds the policies and the
//! release binary, and passes their locations in `$WEIR_POLICY_DIR` and `$WEIR_BIN`. The
//! pipeline is `examples/sensors/weir.toml`; the data is generated into
//! `examples/sensors/data/` on the fly. `-- --rows N` changes the amount (default 1,000,000).
//! Run as root, it then captures network flows in the kernel ([`flows`], `examples/flows`).

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result, bail};
use arrow_array::RecordBatch;
use arrow_array::cast::AsArray as _;
use arrow_cast::pretty::pretty_format_batches;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::Value;
use weir_host::sources::generate::write_sensor_ndjson;

mod flows;

const FILES: u64 = 4;

fn example_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/sensors");
    dir.canonicalize().unwrap_or(dir)
}

fn weir_bin() -> PathBuf {
    std::env::var_os("WEIR_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/weir"),
        PathBuf::from,
    )
}

fn rows_arg() -> Result<u64> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.as_slice() {
        [] => Ok(1_000_000),
        [flag, n] if flag == "--rows" => n.parse().context("--rows takes a number"),
        _ => bail!("usage: demo [--rows N]"),
    }
}

fn generate(dir: &Path, rows: u64) -> Result<u64> {
    let data = dir.join("data");
    let _ = std::fs::remove_dir_all(&data);
    std::fs::create_dir_all(&data).with_context(|| format!("creating {}", data.display()))?;
    let bar = indicatif::ProgressBar::new(rows);
    bar.set_style(
        indicatif::ProgressStyle::with_template("  generating {bar:40} {pos}/{len} lines")
            .expect("valid template"),
    );
    let (mut bytes, mut garbage) = (0, 0);
    for f in 0..FILES {
        let path = data.join(format!("sensors-{f}.ndjson"));
        let file =
            std::fs::File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let mut w = std::io::BufWriter::with_capacity(1 << 20, file);
        let n = rows / FILES + u64::from(f < rows % FILES);
        // In slices, so the bar moves.
        let mut left = n;
        let mut seed = 100 * f;
        while left > 0 {
            let slice = left.min(50_000);
            let stats = write_sensor_ndjson(&mut w, slice, seed, 3)?;
            bytes += stats.bytes;
            garbage += stats.garbage;
            bar.inc(slice);
            left -= slice;
            seed += 1;
        }
        w.flush()?;
    }
    bar.finish_and_clear();
    println!(
        "  {rows} lines in {FILES} files, {:.1} MB, {garbage} of them garbage on purpose, about \
         2% outliers",
        bytes as f64 / 1e6
    );
    Ok(bytes)
}

/// What the demo read back: the files (path, rows, bytes), a preview, the policies metadata.
struct ReadBack {
    files: Vec<(PathBuf, u64, u64)>,
    preview: Option<RecordBatch>,
    metadata: String,
}

fn read_back(out: &Path) -> Result<ReadBack> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(out)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    let mut listing = Vec::new();
    let mut preview = None;
    let mut metadata = String::new();
    for path in &files {
        let builder = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(path)?)
            .with_context(|| format!("reading {}", path.display()))?;
        if metadata.is_empty()
            && let Some(kv) = builder.metadata().file_metadata().key_value_metadata()
        {
            metadata = kv
                .iter()
                .find(|k| k.key == "weir.policies")
                .and_then(|k| k.value.clone())
                .unwrap_or_default();
        }
        let mut rows = 0;
        for batch in builder.build()? {
            let batch = batch.with_context(|| format!("reading {}", path.display()))?;
            rows += batch.num_rows() as u64;
            if preview.is_none() {
                preview = Some(batch.slice(0, 8.min(batch.num_rows())));
            }
        }
        listing.push((path.clone(), rows, std::fs::metadata(path)?.len()));
    }
    Ok(ReadBack {
        files: listing,
        preview,
        metadata,
    })
}

fn policy_dir() -> PathBuf {
    std::env::var_os("WEIR_POLICY_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"),
        PathBuf::from,
    )
}

/// Runs `weir ARGS` and fails with its output when it fails.
fn weir(args: &[&std::ffi::OsStr]) -> Result<String> {
    let out = Command::new(weir_bin())
        .args(args)
        .output()
        .with_context(|| format!("starting {}", weir_bin().display()))?;
    if !out.status.success() {
        bail!(
            "weir {} failed ({}): {}",
            args.iter()
                .map(|a| a.to_string_lossy())
                .collect::<Vec<_>>()
                .join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Makes the operator key and the admin token in `dir/keys` (once), and signs `names` into
/// `dir/bundles`. The version is the signing time in seconds, so every run signs a newer
/// version than the one the state directory accepted last time.
fn sign_policies(dir: &Path, names: &[&str]) -> Result<()> {
    let keys = dir.join("keys");
    if !keys.join("ops.key").is_file() {
        let _ = std::fs::remove_dir_all(&keys);
        let out = weir(&[
            "keygen".as_ref(),
            "--name".as_ref(),
            "ops".as_ref(),
            "--out-dir".as_ref(),
            keys.as_os_str(),
        ])?;
        print!("{}", indent(&out));
    }
    let token = keys.join("admin.token");
    if !token.is_file() {
        let mut secret = [0u8; 24];
        getrandom::fill(&mut secret).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        std::fs::write(&token, format!("{}\n", hex::encode(secret)))?;
        std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    }
    let bundles = dir.join("bundles");
    std::fs::create_dir_all(&bundles)?;
    let version = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_secs()
        .to_string();
    for &name in names {
        let module = policy_dir().join(format!("{name}.wasm"));
        let bundle = bundles.join(format!("{name}.wpol"));
        let out = weir(&[
            "sign".as_ref(),
            "--key".as_ref(),
            keys.join("ops.key").as_os_str(),
            "--name".as_ref(),
            name.as_ref(),
            "--version".as_ref(),
            version.as_ref(),
            module.as_os_str(),
            "-o".as_ref(),
            bundle.as_os_str(),
        ])?;
        print!("{}", indent(&out));
    }
    Ok(())
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

fn main() -> Result<()> {
    let rows = rows_arg()?;
    let dir = example_dir();
    println!("Weir demo: sensors → sensor-normalize → drop-outliers → redact → Parquet\n");
    println!("0. An operator key; the three policies signed with it (only signed code runs)");
    sign_policies(&dir, &["sensor-normalize", "drop-outliers", "redact"])?;
    println!("\n1. A sensor stream from four models (different field names and units)");
    let bytes = generate(&dir, rows)?;
    let out = dir.join("out");
    let _ = std::fs::remove_dir_all(&out);

    println!("\n2. weir run --config examples/sensors/weir.toml\n");
    let summary_path = dir.join("state/summary.json");
    std::fs::create_dir_all(dir.join("state"))?;
    let started = Instant::now();
    let status = Command::new(weir_bin())
        .args(["run", "--config"])
        .arg(dir.join("weir.toml"))
        .arg("--summary-json")
        .arg(&summary_path)
        .status()
        .with_context(|| format!("starting {}", weir_bin().display()))?;
    let wall = started.elapsed();
    if !status.success() {
        bail!("weir run failed ({status})");
    }
    let summary: Value = serde_json::from_slice(&std::fs::read(&summary_path)?)?;

    println!("\n3. What came out, read back from the Parquet files");
    let ReadBack {
        files,
        preview,
        metadata,
    } = read_back(&out)?;
    for (path, rows, size) in &files {
        println!(
            "  {}  {rows:>8} rows  {:>7.1} KiB",
            path.strip_prefix(&dir).unwrap_or(path).display(),
            *size as f64 / 1024.0
        );
    }
    if let Some(p) = preview {
        println!("{}", pretty_format_batches(&[p])?);
    }
    if let Ok(policies) = serde_json::from_str::<Value>(&metadata) {
        println!("  key-value metadata weir.policies:");
        for p in policies.as_array().into_iter().flatten() {
            println!(
                "    {} {} sha256 {}…",
                p["name"].as_str().unwrap_or("?"),
                p["version"].as_str().unwrap_or("?"),
                &p["sha256"].as_str().unwrap_or("?")[..16]
            );
        }
    }
    let dead = dir.join("out/dead-letter");
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for entry in std::fs::read_dir(&dead)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
    {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "arrow") {
            continue;
        }
        let reader = arrow_ipc::reader::FileReader::try_new(std::fs::File::open(&path)?, None)?;
        for batch in reader {
            let batch = batch?;
            if let Some(col) = batch.column_by_name("_weir_reason") {
                for r in col.as_string::<i32>().iter().flatten() {
                    let short: String = r.chars().take(70).collect();
                    *reasons.entry(short).or_default() += 1;
                }
            }
        }
    }
    println!("  dead letters by reason (first 70 characters):");
    for (reason, n) in reasons.iter().take(6) {
        println!("    {n:>6}  {reason}");
    }

    println!("\n4. Summary");
    let n = |v: &Value| v.as_u64().unwrap_or(0);
    println!(
        "  rows in {}  out {}  filtered {}  dead-lettered {}  ({})",
        n(&summary["rows_in"]),
        n(&summary["rows_out"]),
        n(&summary["rows_filtered"]),
        n(&summary["rows_dead_lettered"]),
        if summary["balanced"] == Value::Bool(true) {
            "every row accounted for"
        } else {
            "NOT BALANCED"
        }
    );
    for p in summary["policies"].as_array().into_iter().flatten() {
        println!(
            "  {:<17} in {:>8}  out {:>8}  filtered {:>6}  dead-lettered {:>4}",
            p["name"].as_str().unwrap_or("?"),
            n(&p["rows_in"]),
            n(&p["rows_out"]),
            n(&p["filtered"]),
            n(&p["dead_lettered"])
        );
    }
    let secs = summary["elapsed_secs"]
        .as_f64()
        .unwrap_or(wall.as_secs_f64());
    println!(
        "  {} Parquet files; {:.2} s in the pipeline ({:.2} s with start-up), {:.0} rows/s, {:.0} MB/s \
         of NDJSON; ready after {:.1} ms",
        files.len(),
        secs,
        wall.as_secs_f64(),
        n(&summary["rows_in"]) as f64 / secs.max(1e-9),
        bytes as f64 / 1e6 / secs.max(1e-9),
        summary["ready_ms"].as_f64().unwrap_or(0.0)
    );
    flows::run(&weir_bin(), sign_policies)?;
    Ok(())
}
