//! Installs bpf-linker, which links the eBPF program (`ebpf/flows`) that `host/build.rs`
//! builds with aya-build.
//!
//! A plain `cargo install bpf-linker` fails on Debian 12: bpf-linker 0.13 needs LLVM 22 and
//! Debian ships LLVM 14. The pinned Rust toolchain carries its own `libLLVM.so` (the one rustc
//! uses), so bpf-linker is built against that: symlinks in `~/.local/llvm-rust/lib` give it an
//! LLVM prefix, and the binary keeps a RUNPATH there. bpf-linker must be rebuilt when the
//! toolchain changes; the check below reads the library the binary needs and compares it
//! with the pinned toolchain's (`bpf-linker --version` does not print the LLVM version).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::util;

/// The bpf-linker release (the newest that fits rustc 1.95; see shared/notes/toolchain.md).
pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// Makes sure `bpf-linker` `BPF_LINKER_VERSION`, linked against `toolchain`'s libLLVM, is on
/// PATH. Returns whether it had to be installed.
pub fn ensure(root: &Path, toolchain: &str) -> Result<bool> {
    let sysroot = util::output(
        Command::new("rustup").args(["run", toolchain, "rustc", "--print", "sysroot"]),
    )
    .context("asking rustc for its sysroot")?;
    let lib_dir = PathBuf::from(sysroot.trim()).join("lib");
    let llvm = std::fs::read_dir(&lib_dir)
        .with_context(|| format!("reading {}", lib_dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("libLLVM.so."))
        })
        .with_context(|| {
            format!(
                "toolchain {toolchain} has no libLLVM.so.* in {} (is it a full rustup toolchain?)",
                lib_dir.display()
            )
        })?;
    let soname = llvm
        .file_name()
        .and_then(|n| n.to_str())
        .context("libLLVM file name is not UTF-8")?
        .to_owned();
    if installed_matches(&soname) {
        return Ok(false);
    }
    let major = llvm_major(toolchain)?;
    let home = std::env::var_os("HOME").context("HOME is not set")?;
    let prefix = PathBuf::from(home).join(".local/llvm-rust");
    let prefix_lib = prefix.join("lib");
    std::fs::create_dir_all(&prefix_lib)
        .with_context(|| format!("creating {}", prefix_lib.display()))?;
    for link in [prefix_lib.join("libLLVM.so"), prefix_lib.join(&soname)] {
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&llvm, &link)
            .with_context(|| format!("linking {} to {}", link.display(), llvm.display()))?;
    }
    println!("  building bpf-linker {BPF_LINKER_VERSION} against {soname} (about 1-2 minutes)");
    util::run(
        util::cargo(root)
            .args(["install", "--locked", "--force", "bpf-linker", "--version"])
            .arg(BPF_LINKER_VERSION)
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{major}"))
            .env("LLVM_PREFIX", &prefix)
            .env("CARGO_TARGET_DIR", root.join("target").join("tools")),
    )
    .context("installing bpf-linker failed")?;
    if !installed_matches(&soname) {
        bail!(
            "bpf-linker was installed but does not resolve {soname}; is $CARGO_HOME/bin on PATH?"
        );
    }
    Ok(true)
}

/// Whether `bpf-linker` on PATH is `BPF_LINKER_VERSION` and needs exactly `soname`, found.
fn installed_matches(soname: &str) -> bool {
    let Ok(version) = util::output(Command::new("bpf-linker").arg("--version")) else {
        return false;
    };
    if version.split_whitespace().nth(1) != Some(BPF_LINKER_VERSION) {
        return false;
    }
    let Ok(path) = util::output(Command::new("sh").args(["-c", "command -v bpf-linker"])) else {
        return false;
    };
    // `ldd` names each needed library and where it resolved; "not found" if it did not.
    util::output(Command::new("ldd").arg(path.trim())).is_ok_and(|ldd| {
        ldd.lines()
            .any(|l| l.trim_start().starts_with(soname) && !l.contains("not found"))
    })
}

/// The LLVM major version of `toolchain`'s rustc (`LLVM version: 22.1.2` in `rustc -vV`).
fn llvm_major(toolchain: &str) -> Result<String> {
    let v = util::output(Command::new("rustup").args(["run", toolchain, "rustc", "-vV"]))?;
    v.lines()
        .find_map(|l| l.strip_prefix("LLVM version: "))
        .and_then(|v| v.split('.').next())
        .map(str::to_owned)
        .context("`rustc -vV` printed no LLVM version")
}
