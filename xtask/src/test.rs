//! `cargo xtask test`: the whole suite, in order, failing fast.
//!
//! Steps: setup, fmt check, clippy on the workspace (natively, policies included), clippy on
//! the wasm crates for wasm32-wasip1, clippy on the eBPF program for bpfel-unknown-none,
//! cargo-deny, build-policies, then `cargo test --workspace`
//! with `WEIR_POLICY_DIR` pointing at the built modules, then every fuzz target for 20 s
//! (`cargo xtask fuzz`). Native clippy and tests use
//! `--all-features`, so optional features (weir-sdk's `arrow`) are checked too. The elapsed time of each step is
//! printed at the end, also when a step fails.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::policies::{self, WASM_TARGET};
use crate::{fuzz, setup, util};

/// Seconds each fuzz target runs in the suite (docs/fuzzing.md).
const FUZZ_SECONDS: u32 = 20;

/// Runs the suite.
pub fn run(root: &Path) -> Result<()> {
    let mut timings: Vec<(&'static str, Duration)> = Vec::new();
    let result = run_steps(root, &mut timings);
    print_timings(&timings);
    let counts = result?;
    // The last line: a plain summary that CI log readers recognise.
    println!(
        "tests: {} passed, {} failed, {} skipped",
        counts.passed, counts.failed, counts.ignored
    );
    Ok(())
}

fn step(
    timings: &mut Vec<(&'static str, Duration)>,
    name: &'static str,
    f: impl FnOnce() -> Result<()>,
) -> Result<()> {
    println!("\n==> {name}");
    let start = Instant::now();
    let result = f();
    timings.push((name, start.elapsed()));
    result.with_context(|| format!("`cargo xtask test` failed at step `{name}`"))
}

fn run_steps(root: &Path, timings: &mut Vec<(&'static str, Duration)>) -> Result<TestCounts> {
    step(timings, "setup", || setup::run(root))?;
    step(timings, "fmt", || {
        util::run(util::cargo(root).args(["fmt", "--all", "--check"]))
            .context("formatting differs; run `cargo fmt --all`")
    })?;
    step(timings, "clippy (native)", || {
        util::run(util::cargo(root).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--all-features",
            "--",
            "-D",
            "warnings",
        ]))
    })?;
    let wasm_crates = policies::discover(root)?;
    step(timings, "clippy (wasm32-wasip1)", || {
        if wasm_crates.is_empty() {
            println!("no wasm crates");
            return Ok(());
        }
        let mut cmd = policies::wasm_cargo(root);
        cmd.args(["clippy", "--target", WASM_TARGET]);
        policies::package_args(&mut cmd, &wasm_crates);
        cmd.args(["--", "-D", "warnings"]);
        util::run(&mut cmd)
    })?;
    step(timings, "clippy (bpfel-unknown-none)", || {
        // The kernel program, for the eBPF target, as aya-build builds it: stable with
        // RUSTC_BOOTSTRAP for `-Z build-std=core`, in its own target dir so that the
        // variable never reaches the host build's cache.
        util::run(
            util::cargo(root)
                .args([
                    "clippy",
                    "-p",
                    "weir-ebpf-flows",
                    "--bins",
                    "--release",
                    "--target",
                    "bpfel-unknown-none",
                    "-Z",
                    "build-std=core",
                    "--",
                    "-D",
                    "warnings",
                ])
                .env("RUSTC_BOOTSTRAP", "1")
                .env("CARGO_TARGET_DIR", root.join("target").join("ebpf-clippy")),
        )
    })?;
    step(timings, "cargo-deny", || {
        // No `advisories`: its database is fetched from a host CI cannot reach.
        util::run(util::cargo(root).args(["deny", "check", "licenses", "bans", "sources"]))
    })?;
    step(timings, "build-policies", || policies::build(root))?;
    let mut counts = TestCounts::default();
    step(timings, "cargo test", || {
        let out = util::run_tee(
            util::cargo(root)
                .args(["test", "--workspace", "--all-features"])
                .env("WEIR_POLICY_DIR", policies::output_dir(root)),
        )?;
        counts = TestCounts::parse(&out);
        Ok(())
    })?;
    step(timings, "fuzz (20 s per target)", || {
        fuzz::run(
            root,
            &fuzz::Options {
                seconds: FUZZ_SECONDS,
                target: None,
                merge: false,
            },
        )
    })?;
    Ok(counts)
}

/// Test counts summed over every `test result:` line cargo test printed.
#[derive(Debug, Default, PartialEq, Eq)]
struct TestCounts {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl TestCounts {
    fn parse(output: &str) -> Self {
        let mut counts = Self::default();
        for line in output.lines() {
            let Some(rest) = line.trim().strip_prefix("test result: ") else {
                continue;
            };
            // "ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in ..."
            let rest = rest.split_once(". ").map_or(rest, |(_, r)| r);
            for part in rest.split(';') {
                let mut words = part.split_whitespace();
                let (Some(n), Some(what)) = (words.next(), words.next()) else {
                    continue;
                };
                let Ok(n) = n.parse::<u64>() else { continue };
                match what {
                    "passed" => counts.passed += n,
                    "failed" => counts.failed += n,
                    "ignored" => counts.ignored += n,
                    _ => {}
                }
            }
        }
        counts
    }
}

fn print_timings(timings: &[(&'static str, Duration)]) {
    if timings.is_empty() {
        return;
    }
    println!("\nstep timings:");
    let total: Duration = timings.iter().map(|(_, d)| *d).sum();
    for (name, elapsed) in timings {
        println!("  {name:<28} {:>8.1} s", elapsed.as_secs_f64());
    }
    println!("  {:<28} {:>8.1} s", "total", total.as_secs_f64());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_cargo_test_results() {
        let out = "running 3 tests\n\
            test result: ok. 3 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
            test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s\n\
            test result: FAILED. 5 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.2s\n";
        assert_eq!(
            TestCounts::parse(out),
            TestCounts {
                passed: 8,
                failed: 2,
                ignored: 1
            }
        );
    }
}
