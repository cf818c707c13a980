//! `cargo xtask build-policies`: builds the policy and test-guest crates to WebAssembly.
//!
//! Crates are discovered by reading policies/ and tests/guests/: every directory with a
//! Cargo.toml is one. They are built in one cargo invocation with the `wasm` profile for
//! `wasm32-wasip1`, and each module is copied to [`output_dir`] as `<crate-name>.wasm`.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};

use crate::util;

/// The WebAssembly target policies are built for.
pub const WASM_TARGET: &str = "wasm32-wasip1";

/// The cargo profile policies are built with (defined in the workspace Cargo.toml).
const WASM_PROFILE: &str = "wasm";

/// Directories (relative to the workspace root) whose sub-directories are wasm crates.
const WASM_CRATE_DIRS: &[&str] = &["policies", "tests/guests"];

/// Target-specific rustflags for the wasm target. They are passed as
/// `CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS`, which applies only to wasm32-wasip1 artifacts, so
/// host builds in the same target directory keep their cache.
const WASM_RUSTFLAGS: &str = "-C target-feature=+simd128";

/// `wasm-opt` (Debian's binaryen) arguments: optimize for size. The feature flags are needed
/// because `strip = true` drops the target-features section, and must match what rustc emits
/// with [`WASM_RUSTFLAGS`]. Custom sections (the `weir.policy` manifest) are kept.
const WASM_OPT_ARGS: &[&str] = &[
    "-Oz",
    "--enable-simd",
    "--enable-bulk-memory",
    "--enable-sign-ext",
    "--enable-nontrapping-float-to-int",
    "--enable-mutable-globals",
    "--enable-multivalue",
    "--enable-reference-types",
];

/// Where built modules are collected: `<workspace>/target/policies`. Tests, benches and the
/// demo find them there through `WEIR_POLICY_DIR`.
pub fn output_dir(root: &Path) -> PathBuf {
    root.join("target").join("policies")
}

/// A crate built to wasm.
#[derive(Debug, Clone)]
pub struct WasmCrate {
    /// The `[package] name`.
    pub name: String,
    /// The crate's directory.
    pub dir: PathBuf,
}

/// A module copied to [`output_dir`].
#[derive(Debug)]
struct BuiltModule {
    /// The crate name (the file is `<name>.wasm`).
    name: String,
    /// Size in bytes as rustc linked it.
    linked: u64,
    /// Size in bytes after `wasm-opt`.
    size: u64,
}

/// Finds the policy and test-guest crates by reading their directories, sorted by name.
pub fn discover(root: &Path) -> Result<Vec<WasmCrate>> {
    let mut crates = Vec::new();
    for rel in WASM_CRATE_DIRS {
        let dir = root.join(rel);
        if !dir.is_dir() {
            continue;
        }
        let entries =
            std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries {
            let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
            let manifest = entry.path().join("Cargo.toml");
            if !manifest.is_file() {
                continue;
            }
            crates.push(WasmCrate {
                name: package_name(&manifest)?,
                dir: entry.path(),
            });
        }
    }
    crates.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(crates)
}

fn package_name(manifest: &Path) -> Result<String> {
    let text = std::fs::read_to_string(manifest)
        .with_context(|| format!("reading {}", manifest.display()))?;
    let table: toml::Table = text
        .parse()
        .with_context(|| format!("parsing {}", manifest.display()))?;
    table
        .get("package")
        .and_then(|p| p.get("name"))
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{} has no [package] name", manifest.display()))
}

/// Fails with a clear message if a discovered crate is not a workspace member (cargo would
/// otherwise only say that `-p` matched nothing).
fn check_members(root: &Path, crates: &[WasmCrate], meta: &util::Metadata) -> Result<()> {
    let outside: Vec<String> = crates
        .iter()
        .filter(|c| !meta.packages.iter().any(|p| p.name == c.name))
        .map(|c| {
            let rel = c.dir.strip_prefix(root).unwrap_or(&c.dir);
            format!("{} ({})", c.name, rel.display())
        })
        .collect();
    if !outside.is_empty() {
        bail!(
            "these wasm crates are not workspace members: {}; add their directory to \
             [workspace] members in Cargo.toml",
            outside.join(", ")
        );
    }
    Ok(())
}

/// A cargo command for the wasm target: rustflags for wasm32-wasip1 only, and none of the
/// caller's global RUSTFLAGS, which would override the target-specific ones and invalidate
/// the host's cache.
pub fn wasm_cargo(root: &Path) -> Command {
    let mut cmd = util::cargo(root);
    cmd.env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env("CARGO_TARGET_WASM32_WASIP1_RUSTFLAGS", WASM_RUSTFLAGS);
    cmd
}

/// Appends `-p <name>` for each crate.
pub fn package_args(cmd: &mut Command, crates: &[WasmCrate]) {
    for c in crates {
        cmd.arg("-p").arg(&c.name);
    }
}

/// Builds all wasm crates, copies the modules to [`output_dir`] and prints their sizes.
pub fn build(root: &Path) -> Result<()> {
    let crates = discover(root)?;
    if crates.is_empty() {
        println!(
            "build-policies: no crates under {}",
            WASM_CRATE_DIRS.join(" or ")
        );
        return Ok(());
    }
    let meta = util::metadata(root)?;
    check_members(root, &crates, &meta)?;
    if std::env::var_os("RUSTFLAGS").is_some() {
        println!(
            "build-policies: ignoring RUSTFLAGS for the wasm build (it would override {WASM_RUSTFLAGS:?})"
        );
    }

    let mut cmd = wasm_cargo(root);
    cmd.args(["build", "--profile", WASM_PROFILE, "--target", WASM_TARGET]);
    package_args(&mut cmd, &crates);
    util::run(&mut cmd).with_context(|| {
        let names: Vec<&str> = crates.iter().map(|c| c.name.as_str()).collect();
        format!(
            "building the policies to wasm failed (crates: {}); see cargo's errors above",
            names.join(", ")
        )
    })?;

    let artifacts = meta.target_directory.join(WASM_TARGET).join(WASM_PROFILE);
    let out = output_dir(root);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    let mut built = Vec::new();
    for c in &crates {
        let artifact = artifacts.join(format!("{}.wasm", c.name.replace('-', "_")));
        if !artifact.is_file() {
            bail!(
                "{} built but produced no module at {}; is its [lib] crate-type \"cdylib\"?",
                c.name,
                artifact.display()
            );
        }
        let dest = out.join(format!("{}.wasm", c.name));
        let linked = std::fs::metadata(&artifact)
            .with_context(|| format!("reading {}", artifact.display()))?
            .len();
        let mut opt = Command::new("wasm-opt");
        opt.args(WASM_OPT_ARGS).arg(&artifact).arg("-o").arg(&dest);
        util::run(&mut opt).with_context(|| {
            format!(
                "wasm-opt failed on {} (is binaryen installed? `cargo xtask setup` installs it)",
                artifact.display()
            )
        })?;
        let size = std::fs::metadata(&dest)
            .with_context(|| format!("reading {}", dest.display()))?
            .len();
        built.push(BuiltModule {
            name: c.name.clone(),
            linked,
            size,
        });
    }
    print_table(&out, &built);
    Ok(())
}

fn print_table(out: &Path, built: &[BuiltModule]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "module",
        "linked (KB)",
        "after wasm-opt (KB)",
    ]);
    for m in built {
        let kb = |bytes: u64| format!("{:.1}", bytes as f64 / 1000.0);
        table.add_row([m.name.clone(), kb(m.linked), kb(m.size)]);
    }
    for i in [1, 2] {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("{table}");
    println!("modules in {}", out.display());
}
