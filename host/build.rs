//! Builds the flow-capture eBPF program (`ebpf/flows`) with aya-build into
//! `$OUT_DIR/weir-flows`, which `capture::loader` embeds, so a plain `cargo build` of the host
//! carries the kernel program.
//!
//! The nested build uses the pinned toolchain (`rust-toolchain.toml`) with `RUSTC_BOOTSTRAP=1`,
//! for `-Z build-std=core` and the atomic-add intrinsic. It is set here, for the nested cargo
//! only: exported for the whole host build it would make every build script that probes for
//! nightly features turn them on. bpf-linker must be built against that toolchain's libLLVM;
//! `cargo xtask setup` installs it (docs/capture.md).

use anyhow::Context as _;

/// The toolchain `rustup run` uses for the eBPF build: the pinned one, whose libLLVM
/// bpf-linker is linked against (a newer `stable` could carry another LLVM).
const EBPF_TOOLCHAIN: &str = "1.95.0";

fn main() -> anyhow::Result<()> {
    // SAFETY: the build script is single-threaded here; nothing reads the environment
    // concurrently.
    unsafe { std::env::set_var("RUSTC_BOOTSTRAP", "1") };
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf/flows");
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "weir-ebpf-flows",
            root_dir: root,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(EBPF_TOOLCHAIN),
    )
    .context(
        "building the eBPF program ebpf/flows (is bpf-linker installed? run `cargo xtask setup`)",
    )
}
