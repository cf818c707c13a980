//! `weir inspect`: what a policy module declares.

use std::path::PathBuf;

use anyhow::Context as _;

use crate::engine::{Engine, Limits};
use crate::policy::PolicyModule;

/// Arguments of `weir inspect`.
#[derive(Debug, clap::Args)]
pub struct InspectArgs {
    /// The module (`.wasm`).
    pub module: PathBuf,
}

/// Reads and compiles a module, and prints its manifest.
pub(crate) fn load(engine: &Engine, path: &std::path::Path) -> anyhow::Result<PolicyModule> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    Ok(PolicyModule::compile(
        engine,
        &path.display().to_string(),
        &bytes,
    )?)
}

pub(crate) fn run(args: &InspectArgs) -> anyhow::Result<()> {
    let engine = Engine::new(Limits::default()).context("starting the WebAssembly engine")?;
    let module = load(&engine, &args.module)?;
    let m = module.manifest();
    println!(
        "policy      {} ({:?}, built from {} with weir-sdk {})",
        m.name, m.kind, m.crate_version, m.sdk_version
    );
    println!(
        "module      {} bytes, sha256 {}",
        module.size(),
        module.sha256_hex()
    );
    println!(
        "compiled    {:.1} ms",
        module.compile_time().as_secs_f64() * 1e3
    );
    for c in &m.reads {
        println!(
            "reads       {}: {}{}",
            c.name,
            c.ty,
            if c.optional { " (optional)" } else { "" }
        );
    }
    for c in &m.writes {
        println!(
            "writes      {}: {}{}",
            c.name,
            c.ty,
            if c.optional { " (nullable)" } else { "" }
        );
    }
    if !m.writes.is_empty() {
        println!("passthrough {:?}", m.passthrough);
    }
    Ok(())
}
