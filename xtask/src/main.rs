//! `cargo xtask`: Weir's developer tasks.
//!
//! Run `cargo xtask --help` for the list. Each subcommand lives in its own module; this file only
//! parses the command line and dispatches.

mod bench;
mod bpf_linker;
mod demo;
mod dist;
mod fuzz;
mod pipeline_bench;
mod policies;
mod setup;
mod soak;
mod test;
mod util;

use std::process::ExitCode;

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
    /// Build static (musl) release binaries of `weir` for x86_64 and aarch64 into target/dist/,
    /// write SHA256SUMS, check they are static and run them (aarch64 under qemu).
    Dist {
        /// Which target to build.
        #[arg(long, value_enum, default_value = "all")]
        target: dist::Selection,
    },
    /// Run the release `weir` for N minutes under sustained input, with hot swaps of signed
    /// policies and a hostile policy; check memory, file descriptors and row accounting, and
    /// write target/soak/report.json (docs/soak.md). Not part of `test`.
    Soak(soak::SoakArgs),
    /// Run the cargo-fuzz targets in fuzz/ (nightly), each for `--seconds`, one after the
    /// other; print each one's exec count and fail on any finding (docs/fuzzing.md).
    Fuzz {
        /// Seconds per target.
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        /// Only this target.
        #[arg(long)]
        target: Option<String>,
        /// Afterwards, merge new coverage into the committed corpus (fuzz/corpus/).
        #[arg(long)]
        merge: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match dispatch(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The error chain, outermost first; no backtrace (RUST_BACKTRACE is often set
            // for the guests' and host's sake, and a backtrace of xtask helps nobody).
            eprintln!("\nerror: {err}");
            for cause in err.chain().skip(1) {
                eprintln!("  caused by: {cause}");
            }
            ExitCode::FAILURE
        }
    }
}

fn dispatch(command: Command) -> anyhow::Result<()> {
    let root = util::workspace_root();
    match command {
        Command::Setup => setup::run(&root),
        Command::BuildPolicies => policies::build(&root),
        Command::Test => test::run(&root),
        Command::Bench { criterion_args } => bench::run(&root, &criterion_args),
        Command::Demo { demo_args } => demo::run(&root, &demo_args),
        Command::Dist { target } => dist::run(&root, target),
        Command::Soak(args) => soak::run(&root, &args),
        Command::Fuzz {
            seconds,
            target,
            merge,
        } => fuzz::run(
            &root,
            &fuzz::Options {
                seconds,
                target,
                merge,
            },
        ),
    }
}
