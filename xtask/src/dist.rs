//! `cargo xtask dist`: static release binaries of `weir` for x86_64 and aarch64 Linux.
//!
//! Each target is built with the workspace's `dist` profile (size first, speed kept for the
//! data path; see `Cargo.toml`) for musl (`+crt-static`), stripped, and copied to
//! `<workspace>/target/dist/weir-<version>-<triple>`; `target/dist/SHA256SUMS` lists the binaries
//! of the run. Every binary is then checked: statically linked (`readelf`: no `INTERP` program
//! header, no `NEEDED` entry), the right machine, at most [`MAX_SIZE_MB`] (this one fails the
//! run at the end, after the other checks). Each one is run, natively
//! or under qemu-user: `--version`, a policy with `weir eval`, and `weir run` over a small NDJSON
//! file once that subcommand exists. See docs/dist.md.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use comfy_table::{CellAlignment, Table, presets::UTF8_FULL_CONDENSED};
use serde::Deserialize;

use crate::{policies, util};

/// The package and binary `dist` builds.
const PACKAGE: &str = "weir-host";
/// The binary's name.
const BIN: &str = "weir";

/// The largest binary `dist` accepts, in MB (10^6 bytes).
const MAX_SIZE_MB: f64 = 25.0;

/// The policy the smoke runs use (built by `cargo xtask build-policies`).
const SMOKE_POLICY: &str = "drop-outliers.wasm";

/// Rows `weir eval --generate sensors` makes in the smoke run.
const SMOKE_ROWS: usize = 1000;

/// Rustflags for both targets: static linking (musl's default, spelled out) and no symbols.
/// They are target-specific rustflags rather than a profile setting: with `--target`, build
/// scripts and proc macros (built for the host in `<target dir>/release/`) do not get them, so
/// they keep the cache an ordinary `cargo build --release` uses. The profile is `dist` (see
/// [`PROFILE`] and docs/dist.md).
const RUSTFLAGS: &str = "-C target-feature=+crt-static -C strip=symbols";

/// The cargo profile of the static binaries, defined in the workspace `Cargo.toml`.
const PROFILE: &str = "dist";

/// Which targets to build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Selection {
    /// x86_64-unknown-linux-musl.
    #[value(name = "x86_64")]
    X86_64,
    /// aarch64-unknown-linux-musl.
    #[value(name = "aarch64")]
    Aarch64,
    /// Both.
    #[value(name = "all")]
    All,
}

/// One target `dist` builds for.
#[derive(Debug)]
struct DistTarget {
    /// The architecture as in `std::env::consts::ARCH` and qemu's binary names.
    arch: &'static str,
    /// The Rust target triple.
    triple: &'static str,
    /// The C compiler for the target (wasmtime and zstd compile C), passed as `CC_<triple>`.
    cc: &'static str,
    /// The archiver for the target's C code, passed as `AR_<triple>`.
    ar: &'static str,
    /// The linker, when rustc's default (`cc`, the host's gcc) cannot link for the target.
    linker: Option<&'static str>,
    /// `Machine:` as `readelf -h` prints it.
    machine: &'static str,
}

const TARGETS: &[DistTarget] = &[
    DistTarget {
        arch: "x86_64",
        triple: "x86_64-unknown-linux-musl",
        cc: "musl-gcc",
        ar: "ar",
        linker: None,
        machine: "Advanced Micro Devices X86-64",
    },
    DistTarget {
        arch: "aarch64",
        triple: "aarch64-unknown-linux-musl",
        cc: "aarch64-linux-gnu-gcc",
        ar: "aarch64-linux-gnu-ar",
        // The toolchain's lld links against the self-contained musl CRT objects and libc that
        // rustup ships with the target.
        linker: Some("rust-lld"),
        machine: "AArch64",
    },
];

impl Selection {
    fn targets(self) -> Vec<&'static DistTarget> {
        TARGETS
            .iter()
            .filter(|t| match self {
                Self::All => true,
                Self::X86_64 => t.arch == "x86_64",
                Self::Aarch64 => t.arch == "aarch64",
            })
            .collect()
    }
}

/// What `dist` reads from `cargo metadata --no-deps`.
#[derive(Debug, Deserialize)]
struct Metadata {
    packages: Vec<Package>,
    target_directory: PathBuf,
}

/// A workspace member in `cargo metadata` output.
#[derive(Debug, Deserialize)]
struct Package {
    name: String,
    version: String,
}

/// One built and checked binary.
#[derive(Debug)]
struct Built {
    target: &'static DistTarget,
    path: PathBuf,
    build_time: Duration,
    size: u64,
    sha256: String,
    linkage: &'static str,
    runner: Runner,
    ran: Vec<String>,
}

/// Where dist binaries go: `<workspace>/target/dist`.
pub fn output_dir(root: &Path) -> PathBuf {
    root.join("target").join("dist")
}

/// Builds, checks and runs the selected targets, then prints a table.
pub fn run(root: &Path, selection: Selection) -> Result<()> {
    let meta = metadata(root)?;
    let version = meta
        .packages
        .iter()
        .find(|p| p.name == PACKAGE)
        .map(|p| p.version.clone())
        .with_context(|| format!("`cargo metadata` lists no package {PACKAGE}"))?;
    let out = output_dir(root);
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;
    if std::env::var_os("RUSTFLAGS").is_some() {
        println!("dist: ignoring RUSTFLAGS (it would override the targets' {RUSTFLAGS:?})");
    }

    let mut built = Vec::new();
    for target in selection.targets() {
        println!("\n==> dist: build {}", target.triple);
        let started = Instant::now();
        build(root, target)?;
        let build_time = started.elapsed();
        println!(
            "dist: {} built in {:.0} s",
            target.triple,
            build_time.as_secs_f64()
        );
        let artifact = meta
            .target_directory
            .join(target.triple)
            .join(PROFILE)
            .join(BIN);
        let dest = out.join(format!("{BIN}-{version}-{}", target.triple));
        std::fs::copy(&artifact, &dest)
            .with_context(|| format!("copying {} to {}", artifact.display(), dest.display()))?;
        built.push(Built {
            target,
            size: file_size(&dest)?,
            path: dest,
            build_time,
            sha256: String::new(),
            linkage: "",
            runner: runner_for(target)?,
            ran: Vec::new(),
        });
    }

    write_sha256sums(&out, &mut built)?;
    for b in &mut built {
        println!("\n==> dist: check {}", b.path.display());
        b.linkage = check_static(&b.path, b.target)?;
        report_size(&b.path, b.size);
    }
    let policy = smoke_policy(root)?;
    let scratch = meta.target_directory.join("dist-smoke");
    for b in &mut built {
        println!(
            "\n==> dist: run {} ({})",
            b.target.triple,
            b.runner.describe()
        );
        b.ran = smoke(b, &version, &policy, &scratch)?;
    }
    print_table(&out, &built);
    let too_big: Vec<String> = built
        .iter()
        .filter(|b| over_limit(b.size))
        .map(|b| {
            format!(
                "{} ({:.1} MB)",
                file_name(&b.path).unwrap_or("?"),
                mb(b.size)
            )
        })
        .collect();
    if !too_big.is_empty() {
        bail!(
            "over the {MAX_SIZE_MB} MB size limit: {}; every other check passed (see the table)",
            too_big.join(", ")
        );
    }
    Ok(())
}

/// `cargo metadata --no-deps`, for the package version and the effective target directory
/// (which honours `CARGO_TARGET_DIR`).
fn metadata(root: &Path) -> Result<Metadata> {
    let json =
        util::output(util::cargo(root).args(["metadata", "--no-deps", "--format-version", "1"]))
            .context("reading the workspace with `cargo metadata`")?;
    serde_json::from_str(&json).context("parsing `cargo metadata` output")
}

/// The `CARGO_TARGET_<TRIPLE>_...` / `CC_<triple>` spelling of a triple.
fn env_triple(triple: &str, upper: bool) -> String {
    let s = triple.replace('-', "_");
    if upper { s.to_uppercase() } else { s }
}

/// `cargo build --profile dist -p weir-host --bin weir --target <triple>` with the target's C
/// compiler, linker and rustflags. Global RUSTFLAGS are removed: they would override the
/// target-specific ones.
fn build(root: &Path, target: &DistTarget) -> Result<()> {
    if !util::on_path(target.cc) {
        bail!(
            "{} (the C compiler for {}) is not on PATH; run `cargo xtask setup`",
            target.cc,
            target.triple
        );
    }
    let upper = env_triple(target.triple, true);
    let lower = env_triple(target.triple, false);
    let mut cmd = util::cargo(root);
    cmd.env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env(format!("CC_{lower}"), target.cc)
        .env(format!("AR_{lower}"), target.ar)
        .env(format!("CARGO_TARGET_{upper}_RUSTFLAGS"), RUSTFLAGS);
    if let Some(linker) = target.linker {
        cmd.env(format!("CARGO_TARGET_{upper}_LINKER"), linker);
    }
    cmd.args([
        "build",
        "--profile",
        PROFILE,
        "-p",
        PACKAGE,
        "--bin",
        BIN,
        "--target",
    ])
    .arg(target.triple);
    util::run(&mut cmd).with_context(|| {
        format!(
            "building {BIN} for {} failed; see cargo's errors above (is the rustup target \
             installed? `cargo xtask setup` adds it)",
            target.triple
        )
    })
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len())
}

/// Writes `SHA256SUMS` (sha256sum's format) for the binaries of this run and stores each hash.
fn write_sha256sums(out: &Path, built: &mut [Built]) -> Result<()> {
    if built.is_empty() {
        return Ok(());
    }
    let mut cmd = Command::new("sha256sum");
    cmd.current_dir(out);
    for b in built.iter() {
        cmd.arg(file_name(&b.path)?);
    }
    let sums = util::output(&mut cmd).context("hashing the binaries with sha256sum")?;
    for b in built.iter_mut() {
        let name = file_name(&b.path)?;
        b.sha256 = sums
            .lines()
            .find_map(|line| {
                let (hash, file) = line.split_once("  ")?;
                (file == name).then(|| hash.to_owned())
            })
            .with_context(|| format!("sha256sum printed no line for {name}"))?;
    }
    let path = out.join("SHA256SUMS");
    std::fs::write(&path, &sums).with_context(|| format!("writing {}", path.display()))?;
    println!("\n{}:\n{}", path.display(), sums.trim_end());
    Ok(())
}

fn file_name(path: &Path) -> Result<&str> {
    path.file_name()
        .and_then(|n| n.to_str())
        .with_context(|| format!("{} has no UTF-8 file name", path.display()))
}

/// Checks with `readelf` that `path` is a static executable for the target's machine: no
/// `INTERP` program header and no `NEEDED` dynamic entry. Returns "static-pie" or "static".
fn check_static(path: &Path, target: &DistTarget) -> Result<&'static str> {
    let readelf = |flag: &str| -> Result<String> {
        let mut cmd = Command::new("readelf");
        cmd.arg(flag).arg(path);
        println!("$ {}", util::display(&cmd));
        util::output(&mut cmd)
            .with_context(|| format!("readelf {flag} {} (binutils)", path.display()))
    };
    let header = readelf("-hW")?;
    let field = |name: &str| {
        header.lines().find_map(|line| {
            line.trim()
                .strip_prefix(name)
                .map(|v| v.trim_start_matches(':').trim())
        })
    };
    let machine = field("Machine").unwrap_or("?");
    if machine != target.machine {
        bail!(
            "{} is built for machine {machine:?}, expected {:?} for {}",
            path.display(),
            target.machine,
            target.triple
        );
    }
    let elf_type = field("Type").unwrap_or("?").to_owned();

    let interp = interpreter(&readelf("-lW")?);
    let needed = needed_libraries(&readelf("-dW")?);
    println!(
        "  type: {elf_type}; INTERP: {}; NEEDED: {}",
        interp.as_deref().unwrap_or("none"),
        if needed.is_empty() {
            "none".to_owned()
        } else {
            needed.join(", ")
        }
    );
    if interp.is_some() || !needed.is_empty() {
        bail!(
            "{} is not statically linked: it asks for the program interpreter {} and needs \
             the shared libraries [{}]; it would not run on a gateway without them",
            path.display(),
            interp.as_deref().unwrap_or("(none)"),
            needed.join(", ")
        );
    }
    Ok(if elf_type.starts_with("DYN") {
        "static-pie"
    } else {
        "static"
    })
}

/// The program interpreter from `readelf -lW` output, if there is an `INTERP` header.
fn interpreter(program_headers: &str) -> Option<String> {
    let mut lines = program_headers.lines();
    lines.find(|line| line.trim_start().starts_with("INTERP"))?;
    // The next line: `[Requesting program interpreter: /lib/ld-musl-x86_64.so.1]`.
    let detail = lines.next().unwrap_or_default();
    Some(
        detail
            .split_once("interpreter:")
            .map_or("(unnamed)", |(_, p)| p.trim().trim_end_matches(']'))
            .to_owned(),
    )
}

/// The `NEEDED` libraries from `readelf -dW` output.
fn needed_libraries(dynamic: &str) -> Vec<String> {
    dynamic
        .lines()
        .filter(|line| line.contains("(NEEDED)"))
        .map(|line| {
            line.split_once('[')
                .and_then(|(_, rest)| rest.split_once(']'))
                .map_or(line.trim(), |(lib, _)| lib)
                .to_owned()
        })
        .collect()
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

fn over_limit(size: u64) -> bool {
    mb(size) > MAX_SIZE_MB
}

/// Prints the size. A binary over the limit fails the run, but only after the other checks and
/// the smoke runs, so one run shows everything.
fn report_size(path: &Path, size: u64) {
    println!("  size: {:.1} MB (limit {MAX_SIZE_MB} MB)", mb(size));
    if over_limit(size) {
        println!(
            "  !!! {} is over the {MAX_SIZE_MB} MB limit; dist will fail at the end",
            path.display()
        );
    }
}

/// How a binary is run on this machine.
#[derive(Debug, Clone)]
enum Runner {
    /// The target's architecture is the host's.
    Native,
    /// Under qemu-user, this emulator.
    Qemu(String),
}

impl Runner {
    fn command(&self, bin: &Path) -> Command {
        match self {
            Self::Native => Command::new(bin),
            Self::Qemu(qemu) => {
                let mut cmd = Command::new(qemu);
                cmd.arg(bin);
                cmd
            }
        }
    }

    fn describe(&self) -> String {
        match self {
            Self::Native => "native".to_owned(),
            Self::Qemu(qemu) => qemu.clone(),
        }
    }
}

/// Native when the target's architecture is the host's, else `qemu-<arch>-static` or
/// `qemu-<arch>` (qemu-user-static, installed by setup).
fn runner_for(target: &DistTarget) -> Result<Runner> {
    if target.arch == std::env::consts::ARCH {
        return Ok(Runner::Native);
    }
    let candidates = [
        format!("qemu-{}-static", target.arch),
        format!("qemu-{}", target.arch),
    ];
    candidates
        .iter()
        .find(|qemu| util::on_path(qemu))
        .map(|qemu| Runner::Qemu(qemu.clone()))
        .with_context(|| {
            format!(
                "neither {} is on PATH, so the {} binary cannot be run; run `cargo xtask setup` \
                 (it installs qemu-user-static)",
                candidates.join(" nor "),
                target.triple
            )
        })
}

/// `target/policies/drop-outliers.wasm`, building the policies first if it is missing.
fn smoke_policy(root: &Path) -> Result<PathBuf> {
    let policy = policies::output_dir(root).join(SMOKE_POLICY);
    if !policy.is_file() {
        println!(
            "\ndist: {} is missing; building the policies",
            policy.display()
        );
        policies::build(root).context("build-policies failed")?;
        if !policy.is_file() {
            bail!(
                "build-policies ran but {} is still missing",
                policy.display()
            );
        }
    }
    Ok(policy)
}

/// Runs the binary's smoke checks; returns what ran, for the table.
fn smoke(b: &Built, version: &str, policy: &Path, scratch: &Path) -> Result<Vec<String>> {
    let mut ran = Vec::new();
    check_version(b, version)?;
    ran.push("--version".to_owned());
    let scratch = scratch.join(b.target.triple);
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch)
            .with_context(|| format!("removing the old {}", scratch.display()))?;
    }
    std::fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let (bundle, public) = check_signing(b, policy, &scratch)?;
    ran.push("keygen, sign, verify".to_owned());
    check_eval(b, &bundle, &public)?;
    ran.push(format!("eval ({SMOKE_ROWS} rows)"));
    let parquet_files = check_file_pipeline(b, &bundle, &public, &scratch)?;
    ran.push(format!("run ({parquet_files} parquet)"));
    ran.push(check_capture(b)?);
    Ok(ran)
}

/// `weir capture --json` in a network namespace made for the check, while 5 UDP datagrams of
/// 100 bytes cross a veth pair from a second one: the embedded eBPF program must load, attach
/// and count them exactly. Only natively and as root; qemu-user has no `bpf(2)`.
fn check_capture(b: &Built) -> Result<String> {
    if !matches!(b.runner, Runner::Native) {
        return Ok("capture: not run (qemu-user has no bpf(2))".to_owned());
    }
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the capture check needs root (it attaches the eBPF program in a namespace)");
    }
    let pid = std::process::id();
    let (a, b_ns) = (format!("wdistA-{pid}"), format!("wdistB-{pid}"));
    let ip = |args: &[&str]| util::run(Command::new("ip").args(args));
    let result = (|| -> Result<String> {
        ip(&["netns", "add", &a])?;
        ip(&["netns", "add", &b_ns])?;
        ip(&[
            "-n", &a, "link", "add", "wd0", "type", "veth", "peer", "name", "wd1", "netns", &b_ns,
        ])?;
        ip(&["-n", &a, "addr", "add", "10.98.0.1/24", "dev", "wd0"])?;
        ip(&["-n", &b_ns, "addr", "add", "10.98.0.2/24", "dev", "wd1"])?;
        ip(&["-n", &a, "link", "set", "wd0", "up"])?;
        ip(&["-n", &b_ns, "link", "set", "wd1", "up"])?;
        let mut capture = Command::new("ip");
        capture
            .args(["netns", "exec", &a])
            .arg(&b.path)
            .args(["capture", "--iface", "wd0", "--json", "--duration", "3s"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        println!("$ {}", util::display(&capture));
        let child = capture.spawn().context("starting weir capture")?;
        std::thread::sleep(std::time::Duration::from_millis(1500));
        // A receiver in A (so no "port unreachable" comes back and refuses the next send)
        // and one sender socket in B, so the five datagrams are one flow.
        let receiver = in_netns(&a, || std::net::UdpSocket::bind("10.98.0.1:9999"))?;
        let sender = in_netns(&b_ns, || std::net::UdpSocket::bind("10.98.0.2:0"))?;
        for _ in 0..5 {
            sender
                .send_to(&[0u8; 100], "10.98.0.1:9999")
                .context("sending a datagram")?;
        }
        drop((sender, receiver));
        let out = child
            .wait_with_output()
            .context("waiting for weir capture")?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            bail!(
                "weir capture failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let flow = stdout
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["dst_port"] == 9999 && v["direction"] == "ingress")
            .with_context(|| format!("no flow to port 9999 in the capture output:\n{stdout}"))?;
        if flow["packets"] != 5 || flow["bytes"] != 5 * (14 + 20 + 8 + 100) {
            bail!("the flow to port 9999 counted {flow}, expected 5 packets, 710 bytes");
        }
        println!("  captured: {flow}");
        Ok("capture (5 packets, 710 bytes, exact)".to_owned())
    })();
    for ns in [&a, &b_ns] {
        let _ = Command::new("ip").args(["netns", "del", ns]).status();
    }
    result
}

/// `weir keygen`, `weir sign` of the smoke policy and `weir verify`, all by the binary under
/// test (Ed25519 through ring, on the target's architecture). Returns (bundle, public key).
fn check_signing(b: &Built, policy: &Path, scratch: &Path) -> Result<(PathBuf, PathBuf)> {
    let keys = scratch.join("keys");
    let keys_arg = keys.to_string_lossy();
    let _ = run_bin(b, &["keygen", "--name", "smoke", "--out-dir", &keys_arg])?;
    let bundle = scratch.join("drop-outliers.wpol");
    let (key, public) = (keys.join("smoke.key"), keys.join("smoke.pub"));
    let (key_arg, policy_arg, bundle_arg, public_arg) = (
        key.to_string_lossy(),
        policy.to_string_lossy(),
        bundle.to_string_lossy(),
        public.to_string_lossy(),
    );
    let _ = run_bin(
        b,
        &[
            "sign",
            "--key",
            &key_arg,
            "--name",
            "drop-outliers",
            "--version",
            "1",
            &policy_arg,
            "-o",
            &bundle_arg,
        ],
    )?;
    let out = run_bin(b, &["verify", "--trust", &public_arg, &bundle_arg]).with_context(|| {
        format!(
            "`{BIN} verify` refused its own bundle on {}",
            b.target.triple
        )
    })?;
    if !out.contains("drop-outliers") {
        bail!(
            "`{BIN} verify` on {} did not name the policy:\n{out}",
            b.target.triple
        );
    }
    Ok((bundle, public))
}

/// Runs `f` on a thread that has entered network namespace `name` (sockets it makes stay
/// there).
fn in_netns<T: Send>(name: &str, f: impl FnOnce() -> std::io::Result<T> + Send) -> Result<T> {
    let path = format!("/run/netns/{name}");
    std::thread::scope(|s| {
        s.spawn(|| -> Result<T> {
            let ns = std::fs::File::open(&path).with_context(|| format!("opening {path}"))?;
            // SAFETY: `ns` is an open namespace file; setns changes only this thread's
            // network namespace, and the thread ends when `f` returns.
            let rc =
                unsafe { libc::setns(std::os::fd::AsRawFd::as_raw_fd(&ns), libc::CLONE_NEWNET) };
            if rc != 0 {
                bail!("setns({path}): {}", std::io::Error::last_os_error());
            }
            f().with_context(|| format!("in network namespace {name}"))
        })
        .join()
        .map_err(|_| anyhow::anyhow!("the thread in {name} panicked"))?
    })
}

/// Runs the binary with `args`; returns stdout. Fails on a non-zero exit, with stderr.
fn run_bin(b: &Built, args: &[&str]) -> Result<String> {
    let mut cmd = b.runner.command(&b.path);
    cmd.args(args);
    println!("$ {}", util::display(&cmd));
    util::output(&mut cmd)
}

fn check_version(b: &Built, version: &str) -> Result<()> {
    let out = run_bin(b, &["--version"])?;
    let expected = format!("{BIN} {version}");
    println!("  {}", out.trim());
    if out.trim() != expected {
        bail!(
            "`{BIN} --version` ({}) printed {:?}, expected {expected:?}",
            b.target.triple,
            out.trim()
        );
    }
    Ok(())
}

/// `weir eval --policy drop-outliers.wpol --trust smoke.pub --generate sensors --rows 1000`:
/// the engine verifies the bundle, compiles the module for the target's architecture and runs
/// it. `eval` dead-letters a failing policy's rows instead of exiting non-zero, so the output is
/// checked too.
fn check_eval(b: &Built, policy: &Path, public: &Path) -> Result<()> {
    let policy_arg = policy.to_string_lossy();
    let public_arg = public.to_string_lossy();
    let rows = SMOKE_ROWS.to_string();
    let out = run_bin(
        b,
        &[
            "eval",
            "--policy",
            &policy_arg,
            "--trust",
            &public_arg,
            "--generate",
            "sensors",
            "--rows",
            &rows,
            "--show",
            "0",
        ],
    )
    .with_context(|| format!("`{BIN} eval` failed on {}", b.target.triple))?;
    let summary: Vec<&str> = out
        .lines()
        .filter(|line| {
            line.starts_with("before:")
                || line.starts_with("after:")
                || line.starts_with("dead-lettered")
                || line.contains(" in, ")
        })
        .collect();
    for line in &summary {
        println!("  {line}");
    }
    if !out.contains(&format!("before: {SMOKE_ROWS} rows")) || !out.contains("after: ") {
        bail!(
            "`{BIN} eval` on {} did not print the before/after row counts:\n{out}",
            b.target.triple
        );
    }
    if out.lines().any(|line| line.starts_with("dead-lettered")) {
        bail!(
            "the policy failed under `{BIN} eval` on {} (rows were dead-lettered):\n{}",
            b.target.triple,
            summary.join("\n")
        );
    }
    Ok(())
}

/// A few sensor records, one JSON object per line.
fn smoke_ndjson() -> String {
    let mut text = String::new();
    let readings = [21.5, 22.0, -300.0, 23.25, 19.75];
    for (i, celsius) in readings.iter().enumerate() {
        text.push_str(&format!(
            "{{\"ts\": {}, \"device_id\": \"dev-{}\", \"temperature_celsius\": {celsius}}}\n",
            1_767_225_600_000_u64 + i as u64 * 1000,
            i % 2 + 1
        ));
    }
    text
}

/// `weir run --input <ndjson> --policy <wpol> --trust <pub> --output <dir>` over
/// [`smoke_ndjson`], expecting a `.parquet` file in the output directory. Returns the number of
/// Parquet files.
fn check_file_pipeline(b: &Built, policy: &Path, public: &Path, scratch: &Path) -> Result<usize> {
    let output = scratch.join("out");
    std::fs::create_dir_all(&output).with_context(|| format!("creating {}", output.display()))?;
    let input = scratch.join("sensors.ndjson");
    std::fs::write(&input, smoke_ndjson())
        .with_context(|| format!("writing {}", input.display()))?;
    let (input_arg, policy_arg, output_arg, public_arg) = (
        input.to_string_lossy(),
        policy.to_string_lossy(),
        output.to_string_lossy(),
        public.to_string_lossy(),
    );
    let out = run_bin(
        b,
        &[
            "run",
            "--input",
            &input_arg,
            "--policy",
            &policy_arg,
            "--trust",
            &public_arg,
            "--output",
            &output_arg,
        ],
    )
    .with_context(|| format!("`{BIN} run` failed on {}", b.target.triple))?;
    if !out.trim().is_empty() {
        println!("  {}", out.trim_end().replace('\n', "\n  "));
    }
    let parquet_files = count_parquet(&output)?;
    if parquet_files == 0 {
        bail!(
            "`{BIN} run` on {} succeeded but wrote no .parquet file under {}",
            b.target.triple,
            output.display()
        );
    }
    println!(
        "  {parquet_files} .parquet file(s) under {}",
        output.display()
    );
    Ok(parquet_files)
}

/// `.parquet` files under `dir`, recursively.
fn count_parquet(dir: &Path) -> Result<usize> {
    let mut count = 0;
    let entries = std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))?;
    for entry in entries {
        let path = entry
            .with_context(|| format!("reading {}", dir.display()))?
            .path();
        if path.is_dir() {
            count += count_parquet(&path)?;
        } else if path.extension().is_some_and(|ext| ext == "parquet") {
            count += 1;
        }
    }
    Ok(count)
}

fn print_table(out: &Path, built: &[Built]) {
    let mut table = Table::new();
    table.load_preset(UTF8_FULL_CONDENSED).set_header([
        "target",
        "build (s)",
        "size (MB)",
        "sha256",
        "static",
        "runs on",
        "what ran",
    ]);
    for b in built {
        table.add_row([
            b.target.triple.to_owned(),
            format!("{:.0}", b.build_time.as_secs_f64()),
            if over_limit(b.size) {
                format!("{:.1} (> {MAX_SIZE_MB})", mb(b.size))
            } else {
                format!("{:.1}", mb(b.size))
            },
            b.sha256.chars().take(12).collect(),
            format!("yes ({})", b.linkage),
            b.runner.describe(),
            b.ran.join(", "),
        ]);
    }
    for i in [1, 2] {
        if let Some(col) = table.column_mut(i) {
            col.set_cell_alignment(CellAlignment::Right);
        }
    }
    println!("\n{table}");
    println!("binaries and SHA256SUMS in {}", out.display());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_interpreter() {
        let headers = "\
Program Headers:
  Type           Offset   VirtAddr           PhysAddr           FileSiz  MemSiz   Flg Align
  PHDR           0x000040 0x0000000000000040 0x0000000000000040 0x0002d8 0x0002d8 R   0x8
  INTERP         0x000318 0x0000000000000318 0x0000000000000318 0x00001c 0x00001c R   0x1
      [Requesting program interpreter: /lib64/ld-linux-x86-64.so.2]
  LOAD           0x000000 0x0000000000000000 0x0000000000000000 0x000628 0x000628 R   0x1000
";
        assert_eq!(
            interpreter(headers).as_deref(),
            Some("/lib64/ld-linux-x86-64.so.2")
        );
        let static_pie = "\
Program Headers:
  Type           Offset   VirtAddr           PhysAddr           FileSiz  MemSiz   Flg Align
  LOAD           0x000000 0x0000000000000000 0x0000000000000000 0x0a1b2c 0x0a1b2c R   0x1000
  DYNAMIC        0x0b0000 0x00000000000b0000 0x00000000000b0000 0x000150 0x000150 RW  0x8
";
        assert_eq!(interpreter(static_pie), None);
    }

    #[test]
    fn lists_needed_libraries() {
        let dynamic = "\
Dynamic section at offset 0x2dc8 contains 27 entries:
  Tag        Type                         Name/Value
 0x0000000000000001 (NEEDED)             Shared library: [libgcc_s.so.1]
 0x0000000000000001 (NEEDED)             Shared library: [libc.so.6]
 0x000000000000000c (INIT)               0x1000
";
        assert_eq!(needed_libraries(dynamic), ["libgcc_s.so.1", "libc.so.6"]);
        assert!(needed_libraries("There is no dynamic section in this file.\n").is_empty());
    }

    #[test]
    fn selection_picks_targets() {
        let triples =
            |s: Selection| -> Vec<&str> { s.targets().iter().map(|t| t.triple).collect() };
        assert_eq!(triples(Selection::All).len(), 2);
        assert_eq!(triples(Selection::Aarch64), ["aarch64-unknown-linux-musl"]);
        assert_eq!(triples(Selection::X86_64), ["x86_64-unknown-linux-musl"]);
    }

    #[test]
    fn smoke_input_is_ndjson() {
        let text = smoke_ndjson();
        for line in text.lines() {
            let value: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(value["device_id"].is_string());
        }
        assert_eq!(text.lines().count(), 5);
    }
}
