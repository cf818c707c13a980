//! The `weir` command line: argument parsing and one module per subcommand.

mod eval;
mod inspect;

use clap::{Parser, Subcommand};

pub use eval::EvalArgs;
pub use inspect::InspectArgs;

/// Weir: a WebAssembly edge preprocessing runtime.
#[derive(Debug, Parser)]
#[command(name = "weir", version, about)]
pub struct Cli {
    /// The subcommand.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check a policy module (manifest, imports, exports), compile it and print what it declares.
    Inspect(InspectArgs),
    /// Run one or more policies over NDJSON records or generated data and show before and after.
    Eval(EvalArgs),
}

impl Cli {
    /// Runs the chosen subcommand.
    ///
    /// # Errors
    /// Whatever the subcommand reports.
    pub fn run(self) -> anyhow::Result<()> {
        match self.command {
            Command::Inspect(args) => inspect::run(&args),
            Command::Eval(args) => eval::run(&args),
        }
    }
}
