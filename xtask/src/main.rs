//! `cargo xtask`: Weir's developer tasks.
//!
//! Run `cargo xtask --help` for the list. Each subcommand lives in its own module; this file only
//! parses the command line and dispatches.

mod bench;
mod demo;
mod policies;
mod setup;
mod test;
mod util;

use clap::{Parser, Subcommand};

/// Weir's developer tasks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Install what a fresh Debian machine needs (rustup targets and components, tools).
    /// Idempotent: a second run only checks.
    Setup,
    /// Build every crate under policies/ and tests/guests/ for wasm32-wasip1 and copy the
    /// modules to target/policies/.
    BuildPolicies,
    /// The whole suite: setup, fmt, clippy (host and wasm), cargo-deny, build-policies, tests.
    Test,
    /// Run the policy benchmarks and print target/bench/summary.json as a table.
    Bench {
        /// Arguments passed through to criterion (after `--`).
        #[arg(last = true)]
        criterion_args: Vec<String>,
    },
    /// Run setup and build-policies, then the host's demo example.
    Demo {
        /// Arguments passed through to the demo (after `--`).
        #[arg(last = true)]
        demo_args: Vec<String>,
    },
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let root = util::workspace_root();
    match cli.command {
        Command::Setup => setup::run(&root),
        Command::BuildPolicies => policies::build(&root),
        Command::Test => test::run(&root),
        Command::Bench { criterion_args } => bench::run(&root, &criterion_args),
        Command::Demo { demo_args } => demo::run(&root, &demo_args),
    }
}
