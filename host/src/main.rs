//! The `weir` binary.

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    weir_host::cli::Cli::parse().run()
}
