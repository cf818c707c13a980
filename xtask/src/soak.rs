//! `cargo xtask soak --minutes N`: runs the release `weir` for N minutes under sustained input
//! while new signed policy versions are pushed and a hostile policy fails on some batches, and
//! checks that memory and file descriptors stay flat and that every row is accounted for.
//!
//! The pipeline is `examples/soak/weir.toml`: NDJSON on stdin → `sensor-normalize` →
//! `weir-guest-hostile` → `drop-outliers` → `redact` → Parquet, dead letters as Arrow IPC.
//! Keys, bundles, the config and the output are made in `target/soak/run/`; the report is
//! printed and written to `target/soak/report.json`. docs/soak.md explains the figures.

mod feeder;
mod pipeline_sample;
mod proc_sample;
mod read_back;
mod soak_report;
mod trend;
mod weir_cli;

use std::collections::BTreeMap;
use std::io::Read as _;
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use serde_json::Value;

use self::feeder::{FeedPlan, Feeder, MARKS};
use self::pipeline_sample::{PipelineSample, PipelineTrend};
use self::proc_sample::ProcSample;
use self::read_back::ReadBack;
use self::soak_report::{Hostile, Rows, SoakReport, Swap};
use self::trend::Trend;
use self::weir_cli::{WeirCli, with_custom_section};
use crate::{policies, util};

/// The chain, in config order.
const CHAIN: [&str; 4] = [
    "sensor-normalize",
    "weir-guest-hostile",
    "drop-outliers",
    "redact",
];

/// The policies that get new versions, in turn.
const SWAPPED: [&str; 3] = ["sensor-normalize", "drop-outliers", "redact"];

/// The hostile policy.
const HOSTILE: &str = "weir-guest-hostile";

/// The admin address in the example config, replaced by a free port.
const EXAMPLE_LISTEN: &str = "listen = \"127.0.0.1:7878\"";

/// Options of `cargo xtask soak`.
#[derive(Debug, Clone, clap::Args)]
pub struct SoakArgs {
    /// Minutes of sustained input (fractions allowed, e.g. 0.5).
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Target input rate, rows per second.
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// Seconds between pushes of a new policy version.
    #[arg(long, default_value_t = 25)]
    pub swap_every: u64,
    /// Seconds between samples of weir's RSS and open fds.
    #[arg(long, default_value_t = 2)]
    pub sample_every: u64,
    /// One row in this many carries a hostile mark (its batch fails in the hostile policy).
    #[arg(long, default_value_t = 60_000)]
    pub hostile_every: u64,
    /// One line in this many is garbage (not JSON; rejected by the source).
    #[arg(long, default_value_t = 10_000)]
    pub garbage_every: u64,
    /// Keep the Parquet and dead-letter files in DIR/run/out/ (default: deleted after they
    /// are read back).
    #[arg(long)]
    pub keep: bool,
    /// The pipeline to soak: a variant of `examples/soak/weir.toml` (same chain and paths;
    /// e.g. with `poison_split_depth = 0`). Its `listen` line is moved to a free port.
    #[arg(long, default_value = "examples/soak/weir.toml")]
    pub config: PathBuf,
    /// Where the run directory and `report.json` go, so two soaks can run side by side.
    #[arg(long, default_value = "target/soak")]
    pub dir: PathBuf,
}

/// Where the soak works.
struct Dirs {
    run: PathBuf,
    keys: PathBuf,
    bundles: PathBuf,
    modules: PathBuf,
    policies: PathBuf,
}

/// Runs the soak.
pub fn run(root: &Path, args: &SoakArgs) -> Result<()> {
    if !args.minutes.is_finite()
        || args.minutes <= 0.0
        || args.rate == 0
        || args.sample_every == 0
        || args.swap_every == 0
    {
        bail!("--minutes, --rate, --sample-every and --swap-every must be above 0");
    }
    policies::build(root).context("build-policies failed")?;
    util::run(util::cargo(root).args(["build", "--release", "-p", "weir-host", "--bin", "weir"]))
        .context("building the release weir")?;
    let built = util::metadata(root)?.target_directory.join("release/weir");
    let soak_dir = root.join(&args.dir);
    let run_dir = soak_dir.join("run");
    let _ = std::fs::remove_dir_all(&run_dir);
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    // A copy, so a build from another worktree sharing the target directory cannot replace
    // the binary the soak's `weir sign`/`push` calls run while it goes on.
    let weir = WeirCli {
        bin: run_dir.join("weir"),
    };
    std::fs::copy(&built, &weir.bin)
        .with_context(|| format!("copying {} to {}", built.display(), weir.bin.display()))?;
    let dirs = Dirs {
        keys: run_dir.join("keys"),
        bundles: run_dir.join("bundles"),
        modules: run_dir.join("modules"),
        policies: policies::output_dir(root),
        run: run_dir,
    };
    for d in [&dirs.keys, &dirs.bundles, &dirs.modules] {
        std::fs::create_dir_all(d).with_context(|| format!("creating {}", d.display()))?;
    }
    make_keys(&weir, &dirs)?;
    for name in CHAIN {
        sign_version(&weir, &dirs, name, 1)?;
    }
    let port = free_port()?;
    write_config(&root.join(&args.config), &dirs.run, port)?;
    let url = format!("http://127.0.0.1:{port}");
    let admin = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let duration = Duration::from_secs_f64(args.minutes * 60.0);
    println!(
        "soak: {:.1} min, {} rows/s, a new version every {} s, samples every {} s; in {}",
        args.minutes,
        args.rate,
        args.swap_every,
        args.sample_every,
        dirs.run.display()
    );

    // Where the sinks write (`path`s in the config, relative to the run directory).
    // Canonical, as `/proc/PID/fd` links are.
    let output = dirs
        .run
        .canonicalize()
        .with_context(|| format!("resolving {}", dirs.run.display()))?
        .join("out");
    let mut child = start_weir(&weir, &dirs.run)?;
    let pid = child.id();
    wait_ready(&weir, &url, &mut child, &dirs.run)?;
    let stdin = child.stdin.take().context("weir's stdin was not piped")?;
    let feeder = Feeder::start(
        stdin,
        FeedPlan {
            rate: args.rate,
            garbage_every: args.garbage_every,
            hostile_every: args.hostile_every,
        },
    );
    let started = Instant::now();
    let started_unix = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();

    let mut samples = Vec::new();
    let mut pipeline_samples = Vec::new();
    let mut swaps = Vec::new();
    let mut versions: BTreeMap<String, u64> = CHAIN.iter().map(|n| ((*n).to_owned(), 1)).collect();
    let (mut next_sample, mut next_swap, mut next_print) = (
        Duration::ZERO,
        Duration::from_secs(args.swap_every),
        Duration::from_secs(30),
    );
    while started.elapsed() < duration {
        if let Some(status) = child.try_wait()? {
            bail!(
                "weir exited during the soak ({status}); its log:\n{}",
                log_tail(&dirs.run)
            );
        }
        if feeder.is_finished() {
            feeder.stop()?;
            bail!(
                "the feeder stopped early; weir's log:\n{}",
                log_tail(&dirs.run)
            );
        }
        let now = started.elapsed();
        if now >= next_sample {
            samples.push(ProcSample::read(pid, now.as_secs_f64(), &output)?);
            pipeline_samples.push(PipelineSample::read(admin, now.as_secs_f64()));
            next_sample += Duration::from_secs(args.sample_every);
        }
        if now >= next_swap {
            let name = SWAPPED[swaps.len() % SWAPPED.len()];
            let version = versions[name] + 1;
            let swap = push_version(&weir, &dirs, &url, name, version, now.as_secs_f64());
            if swap.ok {
                versions.insert(name.to_owned(), version);
            }
            swaps.push(swap);
            next_swap += Duration::from_secs(args.swap_every);
        }
        if now >= next_print {
            print_progress(now, &feeder, samples.last(), &swaps);
            next_print += Duration::from_secs(30);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let input_secs = started.elapsed().as_secs_f64();
    let (stdin, counts) = feeder.stop()?;
    println!("soak: input stopped after {input_secs:.0} s; waiting for weir to read the rest");
    wait_drained(&stdin)?;
    std::thread::sleep(Duration::from_secs(2));
    let final_versions = running_versions(&weir.policies(&url)?);
    samples.push(ProcSample::read(
        pid,
        started.elapsed().as_secs_f64(),
        &output,
    )?);

    let (exit, exited_ok, stop_secs) = stop(&mut child)?;
    drop(stdin);
    let summary: Value = {
        let path = dirs.run.join("summary.json");
        let bytes = std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        serde_json::from_slice(&bytes).with_context(|| format!("parsing {}", path.display()))?
    };
    let out = dirs.run.join("out");
    let read_back = ReadBack::read(&out, &out.join("dead-letter"))?;
    let sent = counts.lines.load(std::sync::atomic::Ordering::Relaxed);
    let trend = Trend::of(&samples, input_secs);
    let pipeline = trend
        .as_ref()
        .map(|t| PipelineTrend::of(&pipeline_samples, t.warmup_secs, t.window_secs));
    let mut report = SoakReport {
        started_unix,
        duration_secs: input_secs,
        target_rate: args.rate,
        achieved_rate: sent as f64 / input_secs,
        rows: rows(&summary, &counts, read_back),
        swaps,
        final_versions,
        hostile: hostile(&summary),
        trend,
        pipeline,
        exit,
        stop_secs,
        samples,
        pipeline_samples,
        failures: Vec::new(),
    };
    report.check(exited_ok, &versions);
    print!("\n{}", report.render());
    let json_path = soak_dir.join("report.json");
    std::fs::write(&json_path, serde_json::to_vec_pretty(&report)?)
        .with_context(|| format!("writing {}", json_path.display()))?;
    println!(
        "report: {} (weir's log and summary in {})",
        json_path.display(),
        dirs.run.display()
    );
    if !args.keep {
        std::fs::remove_dir_all(&out).with_context(|| format!("removing {}", out.display()))?;
    }
    if !report.failures.is_empty() {
        bail!("the soak failed: {}", report.failures.join("; "));
    }
    Ok(())
}

/// The operator key (`keys/soak.key`, `.pub`) and the admin token (`keys/admin.token`).
fn make_keys(weir: &WeirCli, dirs: &Dirs) -> Result<()> {
    weir.keygen("soak", &dirs.keys)?;
    let mut secret = [0u8; 24];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut secret))
        .context("reading /dev/urandom")?;
    let token: String = secret.iter().map(|b| format!("{b:02x}")).collect();
    let path = dirs.keys.join("admin.token");
    std::fs::write(&path, format!("{token}\n"))
        .with_context(|| format!("writing {}", path.display()))?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .with_context(|| format!("chmod 600 {}", path.display()))
}

/// Signs version `version` of `name` into `bundles/<name>-<version>.wpol` (version 1 also as
/// `bundles/<name>.wpol`, which the config names) and returns the bundle's path. The module gets
/// a custom section naming the version, so every version is a different module.
fn sign_version(weir: &WeirCli, dirs: &Dirs, name: &str, version: u64) -> Result<PathBuf> {
    let built = dirs.policies.join(format!("{name}.wasm"));
    let bytes = std::fs::read(&built).with_context(|| format!("reading {}", built.display()))?;
    let module = dirs.modules.join(format!("{name}-{version}.wasm"));
    std::fs::write(
        &module,
        with_custom_section(&bytes, &format!("version {version}")),
    )
    .with_context(|| format!("writing {}", module.display()))?;
    let bundle = if version == 1 {
        dirs.bundles.join(format!("{name}.wpol"))
    } else {
        dirs.bundles.join(format!("{name}-{version}.wpol"))
    };
    weir.sign(&dirs.keys.join("soak.key"), name, version, &module, &bundle)
        .with_context(|| format!("signing {name} version {version}"))?;
    Ok(bundle)
}

/// Signs and pushes version `version` of `name`; the result says whether the host took it.
fn push_version(
    weir: &WeirCli,
    dirs: &Dirs,
    url: &str,
    name: &str,
    version: u64,
    t_secs: f64,
) -> Swap {
    let result = sign_version(weir, dirs, name, version)
        .and_then(|bundle| weir.push(url, &dirs.keys.join("admin.token"), &bundle));
    let (ok, detail) = match result {
        Ok(out) => (true, out.trim().to_owned()),
        Err(e) => (false, format!("{e:#}")),
    };
    Swap {
        t_secs,
        policy: name.to_owned(),
        version,
        ok,
        detail,
    }
}

/// A loopback port nothing listens on right now.
fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a loopback port")?;
    Ok(listener.local_addr()?.port())
}

/// The soak's config (`examples/soak/weir.toml` or a variant) with the admin API on `port`, as
/// `run/weir.toml`.
fn write_config(example: &Path, run: &Path, port: u16) -> Result<()> {
    let text = std::fs::read_to_string(example)
        .with_context(|| format!("reading {}", example.display()))?;
    if !text.contains(EXAMPLE_LISTEN) {
        bail!("{} no longer holds `{EXAMPLE_LISTEN}`", example.display());
    }
    let text = text.replace(EXAMPLE_LISTEN, &format!("listen = \"127.0.0.1:{port}\""));
    let path = run.join("weir.toml");
    std::fs::write(&path, text).with_context(|| format!("writing {}", path.display()))
}

/// `weir run --config run/weir.toml --summary-json run/summary.json`, stdin piped, its log in
/// `run/weir.log`.
fn start_weir(weir: &WeirCli, run: &Path) -> Result<Child> {
    let log_path = run.join("weir.log");
    let log = std::fs::File::create(&log_path)
        .with_context(|| format!("creating {}", log_path.display()))?;
    let mut cmd = Command::new(&weir.bin);
    cmd.current_dir(run)
        .args([
            "run",
            "--config",
            "weir.toml",
            "--summary-json",
            "summary.json",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(log);
    println!("$ (cd {} && {})", run.display(), util::display(&cmd));
    cmd.spawn()
        .with_context(|| format!("starting {}", weir.bin.display()))
}

/// Waits until the admin API answers (the chain is compiled and running).
fn wait_ready(weir: &WeirCli, url: &str, child: &mut Child, run: &Path) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(status) = child.try_wait()? {
            bail!(
                "weir exited at start ({status}); its log:\n{}",
                log_tail(run)
            );
        }
        match weir.policies(url) {
            Ok(v)
                if v["policies"]
                    .as_array()
                    .is_some_and(|p| p.len() == CHAIN.len()) =>
            {
                return Ok(());
            }
            Ok(_) | Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(250));
            }
            Ok(v) => bail!("the admin API lists {v}, not the {} policies", CHAIN.len()),
            Err(e) => {
                return Err(e.context(format!(
                    "the admin API did not answer within 120 s; weir's log:\n{}",
                    log_tail(run)
                )));
            }
        }
    }
}

/// Waits until weir has read everything written to its stdin (the pipe holds no bytes).
fn wait_drained(stdin: &std::process::ChildStdin) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut pending: libc::c_int = 0;
        // SAFETY: FIONREAD on a valid pipe descriptor (owned by `stdin`, open for the whole
        // call) writes one c_int through the pointer, which points at a live local.
        let rc = unsafe { libc::ioctl(stdin.as_raw_fd(), libc::FIONREAD, &raw mut pending) };
        if rc != 0 {
            return Err(std::io::Error::last_os_error()).context("FIONREAD on weir's stdin");
        }
        if pending == 0 {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("weir left {pending} bytes of its input unread for 300 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Sends SIGINT and waits for weir to finish; returns its status, whether it exited 0, and
/// how long it took.
fn stop(child: &mut Child) -> Result<(String, bool, f64)> {
    let pid = libc::pid_t::try_from(child.id()).context("weir's pid")?;
    // SAFETY: kill(2) with a pid of our own child, which has not been waited for (so the pid
    // is not reused), and a valid signal number.
    if unsafe { libc::kill(pid, libc::SIGINT) } != 0 {
        return Err(std::io::Error::last_os_error()).context("sending SIGINT to weir");
    }
    let sent = Instant::now();
    let deadline = sent + Duration::from_secs(180);
    loop {
        if let Some(status) = child.try_wait()? {
            return Ok((
                status.to_string(),
                status.success(),
                sent.elapsed().as_secs_f64(),
            ));
        }
        if Instant::now() > deadline {
            child.kill().context("killing weir")?;
            let status = child.wait()?;
            return Ok((
                format!("no exit within 180 s of SIGINT; killed ({status})"),
                false,
                sent.elapsed().as_secs_f64(),
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The last lines of weir's log, for errors.
fn log_tail(run: &Path) -> String {
    let text = std::fs::read_to_string(run.join("weir.log")).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn print_progress(now: Duration, feeder: &Feeder, sample: Option<&ProcSample>, swaps: &[Swap]) {
    let sent = feeder
        .counts()
        .lines
        .load(std::sync::atomic::Ordering::Relaxed);
    let (rss, fds) = sample.map_or((0.0, 0), |s| (s.rss_kib as f64 / 1024.0, s.fds));
    println!(
        "  [{:>5.0} s] sent {sent} ({:.0} rows/s), hostile marks {}, RSS {rss:.1} MiB, fds {fds}, \
         swaps {}/{}",
        now.as_secs_f64(),
        sent as f64 / now.as_secs_f64(),
        feeder.counts().marks_total(),
        swaps.iter().filter(|s| s.ok).count(),
        swaps.len()
    );
}

/// Versions by policy name from `weir policies --json`.
fn running_versions(policies: &Value) -> BTreeMap<String, u64> {
    policies["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let name = p["name"].as_str()?.to_owned();
            let version = p["version"]
                .as_u64()
                .or_else(|| p["version"].as_str()?.parse().ok())?;
            Some((name, version))
        })
        .collect()
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// The row counts: sent, from the summary, read back.
fn rows(summary: &Value, counts: &feeder::FeedCounts, read_back: ReadBack) -> Rows {
    use std::sync::atomic::Ordering::Relaxed;
    Rows {
        sent: counts.lines.load(Relaxed),
        garbage_sent: counts.garbage.load(Relaxed),
        hostile_marks_sent: MARKS
            .iter()
            .zip(&counts.marks)
            .map(|(m, c)| ((*m).to_owned(), c.load(Relaxed)))
            .collect(),
        summary_in: n(&summary["rows_in"]),
        summary_rejected: n(&summary["chain"]["rejected"]),
        summary_out: n(&summary["rows_out"]),
        summary_filtered: n(&summary["rows_filtered"]),
        summary_dead_lettered: n(&summary["rows_dead_lettered"]),
        summary_dropped: n(&summary["rows_dropped"]),
        summary_sink_rows: n(&summary["sinks"]["lake"]["rows"]),
        summary_dead_letter_sink_rows: n(&summary["dead_letter"]["rows"]),
        summary_balanced: summary["balanced"] == Value::Bool(true),
        read_back,
    }
}

/// The hostile policy's failures from the summary.
fn hostile(summary: &Value) -> Hostile {
    let Some(p) = summary["policies"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == HOSTILE)
    else {
        return Hostile::default();
    };
    Hostile {
        errors: p["errors"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), n(v)))
            .collect(),
        dead_lettered: n(&p["dead_lettered"]),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_example_config_has_the_listen_line_and_the_chain() {
        let root = util::workspace_root();
        let text = std::fs::read_to_string(root.join("examples/soak/weir.toml")).unwrap();
        assert!(text.contains(EXAMPLE_LISTEN));
        let table: toml::Table = text.parse().unwrap();
        let bundles: Vec<&str> = table["policies"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["bundle"].as_str().unwrap())
            .collect();
        let want: Vec<String> = CHAIN.iter().map(|n| format!("bundles/{n}.wpol")).collect();
        assert_eq!(bundles, want);
    }

    #[test]
    fn summary_fields_are_read() {
        let summary: Value = serde_json::from_str(
            r#"{"rows_in": 10, "rows_out": 6, "rows_filtered": 1, "rows_dead_lettered": 3,
                "rows_dropped": 0, "balanced": true, "chain": {"rejected": 1},
                "sinks": {"lake": {"rows": 6}}, "dead_letter": {"rows": 3},
                "policies": [{"name": "redact", "errors": {}},
                             {"name": "weir-guest-hostile", "dead_lettered": 2,
                              "errors": {"time_limit": 1, "trap": 2}}]}"#,
        )
        .unwrap();
        let counts = feeder::FeedCounts::default();
        let r = rows(&summary, &counts, ReadBack::default());
        assert_eq!(
            (
                r.summary_in,
                r.summary_rejected,
                r.summary_out,
                r.summary_dead_lettered
            ),
            (10, 1, 6, 3)
        );
        assert_eq!(
            (r.summary_sink_rows, r.summary_dead_letter_sink_rows),
            (6, 3)
        );
        assert!(r.summary_balanced);
        let h = hostile(&summary);
        assert_eq!((h.failures(), h.dead_lettered), (3, 2));
        let v: Value = serde_json::from_str(
            r#"{"policies": [{"name": "a", "version": 3}, {"name": "b", "version": "4"}]}"#,
        )
        .unwrap();
        assert_eq!(
            running_versions(&v),
            BTreeMap::from([("a".to_owned(), 3), ("b".to_owned(), 4)])
        );
    }
}
