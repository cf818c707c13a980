//! `cargo xtask setup`: installs what a fresh Debian machine needs.
//!
//! Every item is checked first and installed only when missing, so a second run is quick and
//! prints "already present" for everything. Any refused install is an error naming the command.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// rustup targets the pinned toolchain needs: wasm32-wasip1 for the policies, and the two musl
/// targets `cargo xtask dist` builds static `weir` binaries for.
const TARGETS: &[&str] = &[
    "wasm32-wasip1",
    "x86_64-unknown-linux-musl",
    "aarch64-unknown-linux-musl",
];

/// rustup components the pinned toolchain needs.
const COMPONENTS: &[&str] = &["rustfmt", "clippy", "rust-src"];

/// The cargo-deny release `setup` installs. 0.20.2 declares rust-version 1.88 and builds with
/// `--locked` on the pinned 1.95 toolchain.
pub const CARGO_DENY_VERSION: &str = "0.20.2";

/// The cargo-fuzz release `setup` installs (`cargo xtask fuzz`, docs/fuzzing.md).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// The toolchain the fuzz crate builds with (libFuzzer's coverage instrumentation needs
/// nightly `-Z` flags), and the components it uses there.
const FUZZ_TOOLCHAIN: &str = "nightly";
const FUZZ_COMPONENTS: &[&str] = &["clippy", "rustfmt"];

/// Debian packages later steps need:
/// - binaryen for `wasm-opt`, which `build-policies` runs on every module;
/// - for `dist`: musl-tools (`musl-gcc`, the C compiler for x86_64-unknown-linux-musl, which
///   wasmtime's and zstd's C code need), gcc-aarch64-linux-gnu (the C compiler for
///   aarch64-unknown-linux-musl) with libc6-dev-arm64-cross (its C headers: only a Recommends
///   of the compiler, which `--no-install-recommends` leaves out; without it zstd-sys fails on
///   `bits/libc-header-start.h`), qemu-user-static (`qemu-aarch64-static`, to run the aarch64
///   binary; on Debian 12 qemu-user ships the same emulator as `qemu-aarch64`, but only
///   qemu-user-static has the `-static` name and needs no shared libraries) and binutils
///   (`readelf`, for the static-linking check).
/// - for flow capture (`ebpf/`): iproute2 (`ip netns`, veth pairs for the tests), ethtool
///   (offloads on and off in the GSO tests) and bpftool (the tests check that nothing stays
///   attached after shutdown).
/// - for the operations tests: util-linux (`setpriv`, to run capture with exactly the example
///   systemd unit's capabilities) and systemd (`systemd-analyze verify` on that unit).
const DEBIAN_PACKAGES: &[&str] = &[
    "binaryen",
    "iproute2",
    "ethtool",
    "bpftool",
    "util-linux",
    "systemd",
    "musl-tools",
    "gcc-aarch64-linux-gnu",
    "libc6-dev-arm64-cross",
    "qemu-user-static",
    "binutils",
];

/// The pyarrow release one integration test reads Parquet files with. Debian 12 has no
/// python3-pyarrow package, so it comes from PyPI; 26.0.1 has a manylinux wheel for CPython
/// 3.11 on x86_64 (Debian 12's Python version, and the pyenv Python on these machines), so
/// nothing is compiled.
const PYARROW_VERSION: &str = "26.0.1";

/// Runs every setup step.
pub fn run(root: &Path) -> Result<()> {
    let toolchain = pinned_toolchain(root)?;
    println!("setup: toolchain {toolchain} (from rust-toolchain.toml)");
    ensure_toolchain(&toolchain)?;
    ensure_targets(&toolchain)?;
    ensure_components(&toolchain, COMPONENTS)?;
    ensure_cargo_deny(root)?;
    ensure_fuzz_toolchain()?;
    ensure_cargo_fuzz(root)?;
    let installed = crate::bpf_linker::ensure(root, &toolchain)?;
    report(
        &format!("bpf-linker {}", crate::bpf_linker::BPF_LINKER_VERSION),
        installed,
    );
    ensure_debian_packages(DEBIAN_PACKAGES)?;
    ensure_pyarrow()?;
    println!("setup: done");
    Ok(())
}

fn report(item: &str, installed: bool) {
    let state = if installed {
        "installed"
    } else {
        "already present"
    };
    println!("  {item:<44} {state}");
}

/// The `channel` in rust-toolchain.toml.
fn pinned_toolchain(root: &Path) -> Result<String> {
    let path = root.join("rust-toolchain.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    table
        .get("toolchain")
        .and_then(|t| t.get("channel"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{} has no [toolchain] channel", path.display()))
}

fn rustup() -> Command {
    Command::new("rustup")
}

fn ensure_toolchain(toolchain: &str) -> Result<()> {
    let list = util::output(rustup().args(["toolchain", "list"]))
        .context("listing rustup toolchains (is rustup installed?)")?;
    let present = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| name == toolchain || name.starts_with(&format!("{toolchain}-")));
    if !present {
        util::run(rustup().args(["toolchain", "install", toolchain, "--profile", "minimal"]))
            .with_context(|| format!("rustup refused to install toolchain {toolchain}"))?;
    }
    report(&format!("rust toolchain {toolchain}"), !present);
    Ok(())
}

fn ensure_targets(toolchain: &str) -> Result<()> {
    let installed =
        util::output(rustup().args(["target", "list", "--installed", "--toolchain", toolchain]))?;
    for &target in TARGETS {
        let present = installed.lines().any(|line| line.trim() == target);
        if !present {
            util::run(rustup().args(["target", "add", "--toolchain", toolchain, target]))
                .with_context(|| format!("rustup refused to add target {target}"))?;
        }
        report(&format!("rustup target {target}"), !present);
    }
    Ok(())
}

/// Adds to `toolchain` each of `components` it lacks.
fn ensure_components(toolchain: &str, components: &[&str]) -> Result<()> {
    let host = host_triple(toolchain)?;
    let installed = util::output(rustup().args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]))?;
    for &component in components {
        // Installed components are listed as `name` or `name-<host triple>`.
        let with_host = format!("{component}-{host}");
        let present = installed
            .lines()
            .map(str::trim)
            .any(|line| line == component || line == with_host);
        if !present {
            util::run(rustup().args(["component", "add", "--toolchain", toolchain, component]))
                .with_context(|| format!("rustup refused to add component {component}"))?;
        }
        report(
            &format!("rustup component {component} ({toolchain})"),
            !present,
        );
    }
    Ok(())
}

/// The toolchain's host triple, from `rustc -vV`.
fn host_triple(toolchain: &str) -> Result<String> {
    let version = util::output(rustup().args(["run", toolchain, "rustc", "-vV"]))?;
    version
        .lines()
        .find_map(|line| line.strip_prefix("host: "))
        .map(|h| h.trim().to_owned())
        .context("`rustc -vV` printed no host triple")
}

/// The installed cargo-deny version, if any (`cargo deny --version` prints `cargo-deny X.Y.Z`).
fn cargo_deny_version(root: &Path) -> Option<String> {
    let out = util::output(util::cargo(root).args(["deny", "--version"])).ok()?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

fn ensure_cargo_deny(root: &Path) -> Result<()> {
    let item = format!("cargo-deny {CARGO_DENY_VERSION}");
    let found = cargo_deny_version(root);
    if found.as_deref() == Some(CARGO_DENY_VERSION) {
        report(&item, false);
        return Ok(());
    }
    if let Some(other) = &found {
        println!("  cargo-deny {other} found; installing the pinned {CARGO_DENY_VERSION}");
    }
    // Build it in its own target dir so it never touches the workspace's build cache.
    let build_dir = root.join("target").join("tools");
    util::run(
        util::cargo(root)
            .args(["install", "--locked", "--force", "cargo-deny", "--version"])
            .arg(CARGO_DENY_VERSION)
            .env("CARGO_TARGET_DIR", &build_dir),
    )
    .context("installing cargo-deny failed")?;
    match cargo_deny_version(root) {
        Some(v) if v == CARGO_DENY_VERSION => {}
        other => bail!(
            "cargo-deny was installed but `cargo deny --version` reports {other:?}; \
             is $CARGO_HOME/bin on PATH?"
        ),
    }
    report(&item, true);
    Ok(())
}

/// The nightly toolchain for the fuzz crate, with clippy and rustfmt.
fn ensure_fuzz_toolchain() -> Result<()> {
    let list = util::output(rustup().args(["toolchain", "list"]))
        .context("listing rustup toolchains (is rustup installed?)")?;
    let present = list
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .any(|name| name == FUZZ_TOOLCHAIN || name.starts_with(&format!("{FUZZ_TOOLCHAIN}-")));
    if !present {
        util::run(rustup().args([
            "toolchain",
            "install",
            FUZZ_TOOLCHAIN,
            "--profile",
            "minimal",
        ]))
        .with_context(|| format!("rustup refused to install toolchain {FUZZ_TOOLCHAIN}"))?;
    }
    report(
        &format!("rust toolchain {FUZZ_TOOLCHAIN} (fuzzing)"),
        !present,
    );
    ensure_components(FUZZ_TOOLCHAIN, FUZZ_COMPONENTS)?;
    Ok(())
}

/// The installed cargo-fuzz version, if any (`cargo fuzz --version` prints `cargo-fuzz X.Y.Z`).
fn cargo_fuzz_version(root: &Path) -> Option<String> {
    let out = util::output(util::cargo(root).args(["fuzz", "--version"])).ok()?;
    out.split_whitespace().nth(1).map(str::to_owned)
}

fn ensure_cargo_fuzz(root: &Path) -> Result<()> {
    let item = format!("cargo-fuzz {CARGO_FUZZ_VERSION}");
    let found = cargo_fuzz_version(root);
    if found.as_deref() == Some(CARGO_FUZZ_VERSION) {
        report(&item, false);
        return Ok(());
    }
    if let Some(other) = &found {
        println!("  cargo-fuzz {other} found; installing the pinned {CARGO_FUZZ_VERSION}");
    }
    util::run(
        util::cargo(root)
            .args(["install", "--locked", "--force", "cargo-fuzz", "--version"])
            .arg(CARGO_FUZZ_VERSION)
            .env("CARGO_TARGET_DIR", root.join("target").join("tools")),
    )
    .context("installing cargo-fuzz failed")?;
    match cargo_fuzz_version(root) {
        Some(v) if v == CARGO_FUZZ_VERSION => {}
        other => bail!(
            "cargo-fuzz was installed but `cargo fuzz --version` reports {other:?}; \
             is $CARGO_HOME/bin on PATH?"
        ),
    }
    report(&item, true);
    Ok(())
}

fn dpkg_installed(package: &str) -> bool {
    util::output(Command::new("dpkg-query").args(["-W", "-f=${Status}", package]))
        .is_ok_and(|status| status.trim_end().ends_with(" installed"))
}

/// Installs missing Debian packages with apt-get, running `apt-get update` once, only when
/// something is missing.
fn ensure_debian_packages(packages: &[&str]) -> Result<()> {
    if packages.is_empty() {
        return Ok(());
    }
    if !util::on_path("dpkg-query") || !util::on_path("apt-get") {
        bail!(
            "this machine has no dpkg/apt-get; install these packages by hand: {}",
            packages.join(" ")
        );
    }
    let missing: Vec<&str> = packages
        .iter()
        .copied()
        .filter(|p| !dpkg_installed(p))
        .collect();
    if !missing.is_empty() {
        let apt = |args: &[&str]| -> Command {
            let mut cmd = if is_root() {
                Command::new("apt-get")
            } else {
                let mut sudo = Command::new("sudo");
                sudo.arg("apt-get");
                sudo
            };
            cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
            cmd
        };
        util::run(&mut apt(&["update"])).context("`apt-get update` was refused")?;
        let mut install = apt(&["install", "-y", "--no-install-recommends"]);
        install.args(&missing);
        util::run(&mut install)
            .with_context(|| format!("apt-get refused to install {}", missing.join(" ")))?;
    }
    for &package in packages {
        report(
            &format!("debian package {package}"),
            missing.contains(&package),
        );
    }
    Ok(())
}

/// Installs pyarrow with pip, only when `python3 -c "import pyarrow"` fails. Any version that
/// imports is accepted, so a developer's newer pyarrow is left alone.
fn ensure_pyarrow() -> Result<()> {
    let item = format!("python package pyarrow ({PYARROW_VERSION} if missing)");
    if !util::on_path("python3") {
        bail!("python3 is not on PATH; install Debian's python3 and python3-pip, then rerun setup");
    }
    if pyarrow_importable() {
        report(&item, false);
        return Ok(());
    }
    // `--only-binary` so that a missing wheel fails at once instead of building Arrow's C++.
    util::run(Command::new("python3").args([
        "-m",
        "pip",
        "install",
        "--only-binary=pyarrow",
        &format!("pyarrow=={PYARROW_VERSION}"),
    ]))
    .with_context(|| {
        format!(
            "pip refused to install pyarrow=={PYARROW_VERSION} (is pip installed? on Debian: \
             `apt-get install python3-pip`; a Debian-managed Python may also need \
             `--break-system-packages` or a virtualenv)"
        )
    })?;
    if !pyarrow_importable() {
        bail!(
            "pip installed pyarrow=={PYARROW_VERSION} but `python3 -c \"import pyarrow\"` still \
             fails; is `python3` the interpreter pip installed into?"
        );
    }
    report(&item, true);
    Ok(())
}

fn pyarrow_importable() -> bool {
    util::output(Command::new("python3").args(["-c", "import pyarrow"])).is_ok()
}

fn is_root() -> bool {
    util::output(Command::new("id").arg("-u")).is_ok_and(|uid| uid.trim() == "0")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_pinned_toolchain() {
        let channel = pinned_toolchain(&util::workspace_root()).unwrap();
        assert!(!channel.is_empty());
    }

    #[test]
    fn dpkg_check_tells_installed_from_missing() {
        if !util::on_path("dpkg-query") {
            return;
        }
        assert!(dpkg_installed("dpkg"));
        assert!(!dpkg_installed("weir-no-such-package"));
    }
}
