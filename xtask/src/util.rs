//! Helpers shared by the subcommands: the workspace root and running commands.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

/// The workspace root: the parent of this crate's manifest directory.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// A `cargo` command that runs in the workspace root, so rust-toolchain.toml selects the
/// pinned toolchain.
pub fn cargo(root: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.current_dir(root);
    cmd
}

/// Renders a command as a shell-like line, for logs and error messages.
pub fn display(cmd: &Command) -> String {
    let mut line = String::new();
    for (key, value) in cmd.get_envs() {
        if let Some(value) = value {
            line.push_str(&format!("{}={} ", key.to_string_lossy(), quote(value)));
        }
    }
    line.push_str(&cmd.get_program().to_string_lossy());
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&quote(arg));
    }
    line
}

fn quote(s: &OsStr) -> String {
    let s = s.to_string_lossy();
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c))
    {
        s.into_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Runs `cmd` with inherited stdio, echoing it first; fails if it cannot start or exits non-zero.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = display(cmd);
    println!("$ {line}");
    let status = cmd
        .status()
        .with_context(|| format!("could not start `{line}` (is it installed and on PATH?)"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout; fails if it cannot start or exits non-zero
/// (the error carries its stderr).
pub fn output(cmd: &mut Command) -> Result<String> {
    let line = display(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("could not start `{line}` (is it installed and on PATH?)"))?;
    if !out.status.success() {
        bail!(
            "`{line}` failed ({}):\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim_end()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}

/// Whether `program` can be found on PATH (like `command -v`).
pub fn on_path(program: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let candidate = dir.join(program);
            candidate.is_file()
        })
    })
}

/// Like [`run`], but also returns what the command printed on stdout (which is still shown
/// as it comes). Fails if it cannot start or exits non-zero.
pub fn run_tee(cmd: &mut Command) -> Result<String> {
    use std::io::{BufRead, BufReader, Write};

    let line = display(cmd);
    println!("$ {line}");
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("could not start `{line}` (is it installed and on PATH?)"))?;
    let mut captured = String::new();
    if let Some(stdout) = child.stdout.take() {
        let mut out = std::io::stdout().lock();
        for read in BufReader::new(stdout).lines() {
            let text = read.with_context(|| format!("reading the output of `{line}`"))?;
            writeln!(out, "{text}").context("writing to stdout")?;
            captured.push_str(&text);
            captured.push('\n');
        }
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(captured)
}

/// What xtask reads from `cargo metadata --no-deps`.
#[derive(Debug, Deserialize)]
pub struct Metadata {
    /// The workspace members.
    pub packages: Vec<MetadataPackage>,
    /// The effective target directory (honours `CARGO_TARGET_DIR` and cargo config).
    pub target_directory: PathBuf,
}

/// What xtask reads from `cargo metadata --no-deps`.
/// A workspace member in `cargo metadata` output.
#[derive(Debug, Deserialize)]
pub struct MetadataPackage {
    /// The package name.
    pub name: String,
}

/// `cargo metadata --no-deps`: the workspace's packages and its effective target directory.
pub fn metadata(root: &Path) -> Result<Metadata> {
    let json = output(cargo(root).args(["metadata", "--no-deps", "--format-version", "1"]))
        .context("reading the workspace with `cargo metadata`")?;
    serde_json::from_str(&json).context("parsing `cargo metadata` output")
}
