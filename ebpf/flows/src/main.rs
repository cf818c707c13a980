//! The flow-accounting TC program (DESIGN.md section 5), built for `bpfel-unknown-none` by
//! aya-build. On any other target this is an empty binary, so that a host build of the eBPF
//! workspace does not fail.
#![cfg_attr(target_arch = "bpf", no_std)]
#![cfg_attr(target_arch = "bpf", no_main)]
// Atomic add on map values: the bpf target has no compare-and-swap, so core's `AtomicU64` has
// no `fetch_add` there; the intrinsic lowers to the BPF atomic add instruction. Available on
// stable through RUSTC_BOOTSTRAP=1, which the build needs anyway for `-Z build-std=core`.
#![cfg_attr(target_arch = "bpf", feature(core_intrinsics))]
#![cfg_attr(
    target_arch = "bpf",
    expect(internal_features, reason = "atomic_xadd, see above")
)]

#[cfg(target_arch = "bpf")]
mod program;

/// Host builds get an empty binary; the program exists only for the bpf target.
#[cfg(not(target_arch = "bpf"))]
fn main() {}
