//! Empty on purpose: the eBPF program is the `weir-flows` binary (`src/main.rs`). This library
//! only lets user-space crates depend on the package from their build scripts.
#![no_std]
