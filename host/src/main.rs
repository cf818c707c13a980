//! The `weir` binary. The pipeline commands arrive with the pipeline issue; today the binary
//! inspects policy modules.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::PolicyModule;

/// Weir: a WebAssembly edge preprocessing runtime.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Check a policy module (manifest, imports, exports), compile it and print what it declares.
    Inspect {
        /// The module (`.wasm`).
        module: PathBuf,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Inspect { module } => inspect(&module),
    }
}

fn inspect(path: &std::path::Path) -> anyhow::Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let engine = Engine::new(Limits::default()).context("starting the WebAssembly engine")?;
    let module = PolicyModule::compile(&engine, &path.display().to_string(), &bytes)?;
    let m = module.manifest();
    println!("policy    {} ({:?})", m.name, m.kind);
    println!(
        "module    {} bytes, sha256 {}",
        module.size(),
        module.sha256_hex()
    );
    println!(
        "compiled  {:.1} ms",
        module.compile_time().as_secs_f64() * 1e3
    );
    for c in &m.reads {
        println!(
            "reads     {}: {}{}",
            c.name,
            c.ty,
            if c.optional { " (optional)" } else { "" }
        );
    }
    for c in &m.writes {
        println!(
            "writes    {}: {}{}",
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
