//! `cargo xtask fuzz`: runs the cargo-fuzz targets in `fuzz/` (docs/fuzzing.md) one after the
//! other, each for a fixed time, and fails on any finding.
//!
//! Each target runs as `cargo +nightly fuzz run` on a scratch corpus (`<target dir>/fuzz/
//! corpus/<target>`, where libFuzzer writes what it finds new) seeded from the committed
//! `fuzz/corpus/<target>` (read only, so a run never dirties the checkout), with
//! `-max_total_time`, `-timeout` and `-print_final_stats=1`. The exec count comes from
//! libFuzzer's `stat::number_of_executed_units`. A finding is a new `crash-`, `timeout-`,
//! `oom-` or `leak-` file in `fuzz/artifacts/<target>/`, or a non-zero exit; xtask names it and
//! exits non-zero. `--merge` adds the scratch corpus's new coverage to the committed corpus
//! (`-merge=1`, which keeps only inputs that add coverage).

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, Result, bail};

use crate::{policies, util};

/// Modules the `guest_output` target instantiates (`fuzz/src/guest.rs`).
const GUEST_MODULES: &[&str] = &[
    "weir-guest-roundtrip",
    "redact",
    "drop-outliers",
    "top-talkers",
];

/// Seconds one input may take before libFuzzer reports a timeout.
const UNIT_TIMEOUT_SECS: u32 = 10;

/// Artifact name prefixes that are findings.
const FINDINGS: &[&str] = &["crash-", "timeout-", "oom-", "leak-"];

/// What `cargo xtask fuzz` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per target.
    pub seconds: u32,
    /// Only this target (all when `None`).
    pub target: Option<String>,
    /// Merge new coverage into the committed corpus afterwards.
    pub merge: bool,
}

/// One target's run.
#[derive(Debug)]
struct Outcome {
    target: String,
    execs: Option<u64>,
    seconds: f64,
    corpus: usize,
    findings: Vec<PathBuf>,
    slow: Vec<PathBuf>,
    failed: Option<String>,
}

/// Runs the targets.
pub fn run(root: &Path, opts: &Options) -> Result<()> {
    let fuzz_dir = root.join("fuzz");
    let all = targets(&fuzz_dir)?;
    let selected: Vec<String> = match &opts.target {
        Some(t) if all.contains(t) => vec![t.clone()],
        Some(t) => bail!("no fuzz target `{t}`; the targets are: {}", all.join(", ")),
        None => all,
    };
    if !util::on_path("cargo-fuzz") {
        bail!("cargo-fuzz is not installed (or not on PATH); run `cargo xtask setup`");
    }
    if selected.iter().any(|t| t == "guest_output") {
        ensure_guest_modules(root)?;
    }
    let build_dir = fuzz_build_dir(root)?;
    // One target, or all of them (cargo fuzz builds one or all).
    util::run(
        fuzz_cargo(root, &build_dir)
            .args(["build", "--sanitizer", "none"])
            .args(opts.target.as_slice()),
    )
    .context("building the fuzz targets (needs the nightly toolchain: `rustup toolchain install nightly`)")?;
    let mut outcomes = Vec::new();
    for target in &selected {
        outcomes.push(run_target(root, &build_dir, target, opts)?);
    }
    print_table(&outcomes);
    let mut problems = Vec::new();
    for o in &outcomes {
        for f in &o.findings {
            problems.push(format!("{}: finding {}", o.target, f.display()));
        }
        if let Some(why) = &o.failed {
            problems.push(format!("{}: {why}", o.target));
        }
    }
    if !problems.is_empty() {
        bail!(
            "fuzzing found problems (reproduce with `cargo +nightly fuzz run --sanitizer none \
             <target> <artifact>` in {}):\n  {}",
            root.display(),
            problems.join("\n  ")
        );
    }
    Ok(())
}

/// The `[[bin]]` names of fuzz/Cargo.toml.
fn targets(fuzz_dir: &Path) -> Result<Vec<String>> {
    let path = fuzz_dir.join("Cargo.toml");
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    let names: Vec<String> = table
        .get("bin")
        .and_then(toml::Value::as_array)
        .map(|bins| {
            bins.iter()
                .filter_map(|b| b.get("name").and_then(toml::Value::as_str))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if names.is_empty() {
        bail!("{} declares no [[bin]] fuzz targets", path.display());
    }
    Ok(names)
}

/// Builds the policy modules the guest target needs when one is missing.
fn ensure_guest_modules(root: &Path) -> Result<()> {
    let dir = policies::output_dir(root);
    if GUEST_MODULES
        .iter()
        .all(|m| dir.join(format!("{m}.wasm")).is_file())
    {
        return Ok(());
    }
    println!(
        "fuzz: policy modules missing in {}; building them",
        dir.display()
    );
    policies::build(root)
}

/// The fuzz crate's own build directory: `<target dir>/fuzz`, so that its sanitizer and
/// coverage flags never invalidate the workspace's build cache.
fn fuzz_build_dir(root: &Path) -> Result<PathBuf> {
    Ok(util::metadata(root)?.target_directory.join("fuzz"))
}

/// `cargo +nightly fuzz <...>` in the workspace root, with its own target dir.
fn fuzz_cargo(root: &Path, build_dir: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root)
        .arg("+nightly")
        .arg("fuzz")
        .env("CARGO_TARGET_DIR", build_dir)
        .env("WEIR_POLICY_DIR", policies::output_dir(root))
        .env_remove("RUSTFLAGS");
    cmd
}

/// Artifact files in `dir` (none when it does not exist).
fn artifacts(dir: &Path) -> BTreeSet<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file())
                .collect()
        })
        .unwrap_or_default()
}

fn count_files(dir: &Path) -> usize {
    artifacts(dir).len()
}

fn run_target(root: &Path, build_dir: &Path, target: &str, opts: &Options) -> Result<Outcome> {
    let committed = root.join("fuzz").join("corpus").join(target);
    let scratch = build_dir.join("corpus").join(target);
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let artifact_dir = root.join("fuzz").join("artifacts").join(target);
    let before = artifacts(&artifact_dir);
    let log_path = build_dir.join("logs").join(format!("{target}.log"));
    fs::create_dir_all(log_path.parent().expect("a parent"))
        .context("creating the fuzz log directory")?;
    let log =
        fs::File::create(&log_path).with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = fuzz_cargo(root, build_dir);
    cmd.args(["run", "--sanitizer", "none", target])
        .arg(&scratch)
        .arg(&committed)
        .arg("--")
        .arg(format!("-max_total_time={}", opts.seconds))
        .arg(format!("-timeout={UNIT_TIMEOUT_SECS}"))
        .arg("-print_final_stats=1")
        .stdin(Stdio::null())
        .stdout(log.try_clone().context("duplicating the log file")?)
        .stderr(log);
    println!(
        "\n==> fuzz {target}: {} s (log: {})\n$ {}",
        opts.seconds,
        log_path.display(),
        util::display(&cmd)
    );
    let start = Instant::now();
    let status = cmd
        .status()
        .context("could not start `cargo +nightly fuzz` (run `cargo xtask setup`)")?;
    let seconds = start.elapsed().as_secs_f64();
    let text = fs::read_to_string(&log_path).unwrap_or_default();
    let execs: Option<u64> = text.lines().find_map(|line| {
        line.trim()
            .strip_prefix("stat::number_of_executed_units:")
            .and_then(|n| n.trim().parse().ok())
    });
    let new: Vec<PathBuf> = artifacts(&artifact_dir)
        .difference(&before)
        .cloned()
        .collect();
    let is = |p: &Path, prefixes: &[&str]| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| prefixes.iter().any(|f| n.starts_with(f)))
    };
    let findings: Vec<PathBuf> = new.iter().filter(|p| is(p, FINDINGS)).cloned().collect();
    let slow: Vec<PathBuf> = new
        .iter()
        .filter(|p| is(p, &["slow-unit-"]))
        .cloned()
        .collect();
    let failed = if status.success() {
        None
    } else {
        // The end of libFuzzer's report says what happened.
        let tail: Vec<&str> = text.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        eprintln!("{}", tail.join("\n"));
        Some(format!(
            "`cargo fuzz run` exited with {status}; log {}",
            log_path.display()
        ))
    };
    if execs.is_none() && failed.is_none() {
        bail!(
            "fuzz {target}: no `stat::number_of_executed_units` in {}",
            log_path.display()
        );
    }
    if opts.merge && failed.is_none() && findings.is_empty() {
        util::run(
            fuzz_cargo(root, build_dir)
                .args(["run", "--sanitizer", "none", target])
                .arg(&committed)
                .arg(&scratch)
                .args(["--", "-merge=1"]),
        )
        .with_context(|| format!("merging the new corpus of {target}"))?;
    }
    let corpus = count_files(&committed) + count_files(&scratch);
    println!(
        "fuzz {target}: {} execs in {seconds:.0} s, corpus {corpus} inputs{}",
        execs.map_or_else(|| "?".to_owned(), |n| n.to_string()),
        if findings.is_empty() {
            String::new()
        } else {
            format!(", {} findings", findings.len())
        }
    );
    for p in &slow {
        println!("  note: slow input {}", p.display());
    }
    Ok(Outcome {
        target: target.to_owned(),
        execs,
        seconds,
        corpus,
        findings,
        slow,
        failed,
    })
}

fn print_table(outcomes: &[Outcome]) {
    let mut table = comfy_table::Table::new();
    table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    table.set_header([
        "target", "seconds", "execs", "execs/s", "corpus", "findings",
    ]);
    for o in outcomes {
        let rate = o.execs.map_or_else(
            || "?".to_owned(),
            |n| format!("{:.0}", n as f64 / o.seconds),
        );
        table.add_row([
            o.target.clone(),
            format!("{:.0}", o.seconds),
            o.execs.map_or_else(|| "?".to_owned(), |n| n.to_string()),
            rate,
            o.corpus.to_string(),
            match (o.findings.len(), o.slow.len(), &o.failed) {
                (0, 0, None) => "none".to_owned(),
                (0, s, None) => format!("none ({s} slow inputs)"),
                (0, _, Some(_)) => "run failed".to_owned(),
                (n, _, _) => format!("{n}"),
            },
        ]);
    }
    println!("\n{table}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_the_fuzz_targets() {
        let names = targets(&util::workspace_root().join("fuzz")).unwrap();
        for t in ["bundle", "manifest", "guest_output", "decoders"] {
            assert!(names.iter().any(|n| n == t), "{t} in {names:?}");
        }
    }
}
