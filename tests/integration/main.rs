//! Weir's integration tests, one module per area. They use real wasmtime and real policy modules
//! built from Rust by `cargo xtask build-policies`; hand-written WAT appears only in `hostile`.

mod capture;
mod cli;
mod hostile;
mod isolation;
mod metrics;
mod pipeline;
mod pipeline_formats;
mod pipeline_lifecycle;
mod policies;
mod runtime;
mod signing;
