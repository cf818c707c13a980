//! `cargo xtask setup`: installs what a fresh Debian machine needs.
//!
//! Every item is checked first and installed only when missing, so a second run is quick and
//! prints "already present" for everything. Any refused install is an error naming the command.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::util;

/// rustup targets the pinned toolchain needs.
const TARGETS: &[&str] = &["wasm32-wasip1"];

/// rustup components the pinned toolchain needs.
const COMPONENTS: &[&str] = &["rustfmt", "clippy", "rust-src"];

/// The cargo-deny release `setup` installs. 0.20.2 declares rust-version 1.88 and builds with
/// `--locked` on the pinned 1.95 toolchain.
pub const CARGO_DENY_VERSION: &str = "0.20.2";

/// Debian packages later steps need: binaryen for `wasm-opt`, which `build-policies` runs on
/// every module.
const DEBIAN_PACKAGES: &[&str] = &["binaryen"];

/// Runs every setup step.
pub fn run(root: &Path) -> Result<()> {
    let toolchain = pinned_toolchain(root)?;
    println!("setup: toolchain {toolchain} (from rust-toolchain.toml)");
    ensure_toolchain(&toolchain)?;
    ensure_targets(&toolchain)?;
    ensure_components(&toolchain)?;
    ensure_cargo_deny(root)?;
    ensure_debian_packages(DEBIAN_PACKAGES)?;
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

fn ensure_components(toolchain: &str) -> Result<()> {
    let host = host_triple(toolchain)?;
    let installed = util::output(rustup().args([
        "component",
        "list",
        "--installed",
        "--toolchain",
        toolchain,
    ]))?;
    for &component in COMPONENTS {
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
        report(&format!("rustup component {component}"), !present);
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
