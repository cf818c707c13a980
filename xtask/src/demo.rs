//! `cargo xtask demo`: setup, build-policies, the release `weir` binary, then the host's demo
//! example, which runs `examples/sensors` end to end.

use std::path::Path;

use anyhow::{Context, Result};

use crate::{policies, setup, util};

/// Runs the demo, passing `args` through to it.
pub fn run(root: &Path, args: &[String]) -> Result<()> {
    setup::run(root).context("setup failed")?;
    policies::build(root).context("build-policies failed")?;
    util::run(util::cargo(root).args([
        "build",
        "--release",
        "-p",
        "weir-host",
        "--bin",
        "weir",
        "--example",
        "demo",
    ]))
    .context("building weir and the demo")?;
    let target = util::metadata(root)?.target_directory;
    let mut cmd = std::process::Command::new(target.join("release/examples/demo"));
    cmd.env("WEIR_POLICY_DIR", policies::output_dir(root))
        .env("WEIR_BIN", target.join("release/weir"));
    cmd.args(args);
    util::run(&mut cmd).context("the demo failed")
}
