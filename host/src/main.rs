//! The `weir` binary.

use clap::Parser as _;

/// mimalloc instead of the C library's allocator: the static musl binaries otherwise spend much
/// of their time in musl's malloc (measured: 2× the CPU of the glibc build on the sensor
/// pipeline), and it is faster than glibc's for the pipeline's many short-lived buffers too.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Errors go to stderr as one line: the context chain, without a backtrace (operators read
/// these; `RUST_LOG=debug` shows more).
fn main() -> std::process::ExitCode {
    match weir_host::cli::Cli::parse().run() {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("Error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
