//! `cargo xtask demo`: setup, build-policies, then the host's demo example.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{policies, setup, util};

/// Runs the demo, passing `args` through to it.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    setup::run(root).context("setup failed")?;
    policies::build(root).context("build-policies failed")?;
    let mut cmd = util::cargo(root);
    cmd.args(["run", "--release", "-p", "weir-host", "--example", "demo"])
        .env("WEIR_POLICY_DIR", policies::output_dir(root));
    if !args.is_empty() {
        cmd.arg("--").args(args);
    }
    util::run(&mut cmd).context("the demo failed")
}
