//! `cargo xtask test`: the whole suite, in order, failing fast.
//!
//! Steps: setup, fmt check, clippy on the workspace (natively, policies included), clippy on
//! the wasm crates for wasm32-wasip1, cargo-deny, build-policies, then `cargo test --workspace`
//! with `WEIR_POLICY_DIR` pointing at the built modules. The elapsed time of each step is
//! printed at the end, also when a step fails.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::policies::{self, WASM_TARGET};
use crate::{setup, util};

/// Runs the suite.
pub fn run(root: &Path) -> Result<()> {
    let mut timings: Vec<(&'static str, Duration)> = Vec::new();
    let result = run_steps(root, &mut timings);
    print_timings(&timings);
    result
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

fn run_steps(root: &Path, timings: &mut Vec<(&'static str, Duration)>) -> Result<()> {
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
    step(timings, "cargo-deny", || {
        // No `advisories`: its database is fetched from a host CI cannot reach.
        util::run(util::cargo(root).args(["deny", "check", "licenses", "bans", "sources"]))
    })?;
    step(timings, "build-policies", || policies::build(root))?;
    step(timings, "cargo test", || {
        util::run(
            util::cargo(root)
                .args(["test", "--workspace"])
                .env("WEIR_POLICY_DIR", policies::output_dir(root)),
        )
    })?;
    Ok(())
}

fn print_timings(timings: &[(&'static str, Duration)]) {
    if timings.is_empty() {
        return;
    }
    println!("\nstep timings:");
    let total: Duration = timings.iter().map(|(_, d)| *d).sum();
    for (name, elapsed) in timings {
        println!("  {name:<24} {:>8.1} s", elapsed.as_secs_f64());
    }
    println!("  {:<24} {:>8.1} s", "total", total.as_secs_f64());
}
