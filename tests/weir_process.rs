//! Running the real `weir` binary end to end: build it once, run it with a config, read its
//! summary, and read back what it wrote.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use serde_json::Value;

/// The `weir` binary of this workspace, built (once per test process) with the profile the
/// tests run under. `$WEIR_BIN` overrides it.
#[must_use]
pub fn weir_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("WEIR_BIN") {
            return PathBuf::from(bin);
        }
        let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args(["build", "--quiet", "-p", "weir-host", "--bin", "weir"])
            .current_dir(&workspace)
            .status()
            .expect("cargo runs");
        assert!(status.success(), "building the weir binary failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map_or_else(|| workspace.join("target"), PathBuf::from);
        let bin = target.join("debug/weir");
        assert!(bin.is_file(), "{} was not built", bin.display());
        bin
    })
}

/// A scratch directory for one test, removed when dropped (kept if the test panicked, for a
/// look).
#[derive(Debug)]
pub struct Scratch {
    dir: PathBuf,
}

impl Scratch {
    /// A fresh directory named after the test.
    #[must_use]
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("weir-it-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Self { dir }
    }

    /// The directory.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// A path inside it.
    #[must_use]
    pub fn join(&self, p: &str) -> PathBuf {
        self.dir.join(p)
    }

    /// Writes a file inside it and returns its path.
    #[must_use]
    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, contents).expect("write");
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// A finished `weir` run.
#[derive(Debug)]
pub struct Finished {
    /// Exit status code (`None` if killed by a signal).
    pub code: Option<i32>,
    /// stdout.
    pub stdout: Vec<u8>,
    /// stderr, as text.
    pub stderr: String,
    /// The run summary (`--summary-json`), if written.
    pub summary: Option<Value>,
}

impl Finished {
    fn from_output(out: Output, summary: &Path) -> Self {
        let summary = std::fs::read(summary)
            .ok()
            .map(|b| serde_json::from_slice(&b).expect("the summary is JSON"));
        Self {
            code: out.status.code(),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            summary,
        }
    }

    /// Asserts exit code 0 and returns the summary, after checking that every row is
    /// accounted for.
    #[must_use]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.code, Some(0), "weir failed:\n{}", self.stderr);
        let s = self.summary.as_ref().expect("weir wrote its summary");
        assert_balanced(s);
        s
    }
}

/// `rows_in == rows_out + rows_filtered + rows_dead_lettered + rows_dropped`, checked from the
/// parts (sources, policies, chain), not from the summary's own flag alone.
pub fn assert_balanced(s: &Value) {
    let n = |v: &Value| v.as_u64().expect("a count");
    let sources_in: u64 = s["sources"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| n(&v["rows"]) + n(&v["rejected"]))
        .sum();
    let rejected: u64 = s["sources"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| n(&v["rejected"]))
        .sum();
    let policies = s["policies"].as_array().unwrap();
    let filtered: u64 = policies.iter().map(|p| n(&p["filtered"])).sum();
    let dead: u64 = policies.iter().map(|p| n(&p["dead_lettered"])).sum::<u64>() + rejected;
    let dropped: u64 = policies.iter().map(|p| n(&p["dropped"])).sum();
    let out = n(&s["rows_out"]);
    assert_eq!(
        n(&s["rows_in"]),
        sources_in,
        "summary rows_in vs the sources: {s:#}"
    );
    assert_eq!(
        sources_in,
        out + filtered + dead + dropped,
        "rows in = out + filtered + dead-lettered + dropped: {s:#}"
    );
    assert_eq!(s["balanced"], Value::Bool(true), "{s:#}");
    assert_eq!(n(&s["rows_dead_lettered"]), dead);
    assert_eq!(
        n(&s["dead_letter"]["rows"]),
        dead,
        "dead-letter sink wrote every dead row"
    );
    for (name, sink) in s["sinks"].as_object().unwrap() {
        assert_eq!(n(&sink["rows"]), out, "sink {name} wrote every output row");
    }
}

/// Runs `weir` with `args` plus `--summary-json`, waits, and returns the result.
#[must_use]
pub fn run_weir(scratch: &Scratch, args: &[&str]) -> Finished {
    run_weir_with_stdin(scratch, args, None)
}

/// As [`run_weir`], feeding `stdin`.
#[must_use]
pub fn run_weir_with_stdin(scratch: &Scratch, args: &[&str], stdin: Option<&[u8]>) -> Finished {
    let summary = scratch.join(&format!("summary-{}.json", unique()));
    let mut cmd = weir_command(args, &summary);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    let mut child = cmd.spawn().expect("weir starts");
    if let Some(input) = stdin {
        use std::io::Write as _;
        let mut pipe = child.stdin.take().expect("stdin piped");
        pipe.write_all(input).expect("feeding stdin");
    }
    let out = child.wait_with_output().expect("weir runs");
    Finished::from_output(out, &summary)
}

fn unique() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

fn weir_command(args: &[&str], summary: &Path) -> Command {
    let mut cmd = Command::new(weir_bin());
    cmd.args(args)
        .arg("--summary-json")
        .arg(summary)
        .arg("--no-progress")
        .env("RUST_LOG", "weir_host=info,warn")
        .env("RUST_BACKTRACE", "0")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

/// A `weir run` in the background.
#[derive(Debug)]
pub struct Running {
    /// The process.
    pub child: Child,
    summary: PathBuf,
    stderr_path: PathBuf,
}

impl Running {
    /// Starts `weir` with `args` (stdout goes to a file, stderr too).
    #[must_use]
    pub fn start(scratch: &Scratch, args: &[&str]) -> Self {
        Self::start_with(scratch, args, Stdio::null())
    }

    /// As [`Running::start`], with stdin a pipe (take it from `child.stdin`).
    #[must_use]
    pub fn start_piped(scratch: &Scratch, args: &[&str]) -> Self {
        Self::start_with(scratch, args, Stdio::piped())
    }

    fn start_with(scratch: &Scratch, args: &[&str], stdin: Stdio) -> Self {
        let id = unique();
        let summary = scratch.join(&format!("summary-{id}.json"));
        let stderr_path = scratch.join(&format!("stderr-{id}.txt"));
        let mut cmd = weir_command(args, &summary);
        cmd.stdin(stdin)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).expect("stderr file"));
        Self {
            child: cmd.spawn().expect("weir starts"),
            summary,
            stderr_path,
        }
    }

    /// stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Waits until stderr contains `needle`, or panics after `timeout`.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        while !self.stderr().contains(needle) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "weir exited ({status}) before {needle:?}:\n{}",
                    self.stderr()
                );
            }
            assert!(
                start.elapsed() < timeout,
                "no {needle:?} after {timeout:?}:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends a signal (`"TERM"`, `"INT"`, `"KILL"`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{name} failed");
    }

    /// Resident set size in KiB, from /proc.
    #[must_use]
    pub fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }

    /// Waits for the exit (panics after `timeout`, killing it).
    #[must_use]
    pub fn wait(mut self, timeout: Duration) -> Finished {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                let summary = std::fs::read(&self.summary)
                    .ok()
                    .map(|b| serde_json::from_slice(&b).expect("summary is JSON"));
                return Finished {
                    code: status.code(),
                    stdout: Vec::new(),
                    stderr: self.stderr(),
                    summary,
                };
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                panic!("weir did not exit within {timeout:?}:\n{}", self.stderr());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Final Parquet files in `dir` (not the hidden temporary ones), sorted by name.
#[must_use]
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.extension().is_some_and(|e| e == "parquet")
                        && !p.file_name().unwrap().to_string_lossy().starts_with('.')
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
#[must_use]
pub fn free_tcp_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// Reads every row of a Parquet file with the parquet crate; panics if any part is unreadable.
#[must_use]
pub fn read_parquet(path: &Path) -> Vec<RecordBatch> {
    let file = std::fs::File::open(path).expect("open parquet");
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .unwrap_or_else(|e| panic!("{}: not a complete Parquet file: {e}", path.display()))
        .build()
        .expect("reader");
    reader
        .map(|b| b.unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

/// The key-value metadata of a Parquet file.
#[must_use]
pub fn parquet_metadata(path: &Path) -> Vec<(String, String)> {
    let file = std::fs::File::open(path).expect("open parquet");
    let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)
        .expect("footer");
    builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|k| (k.key.clone(), k.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default()
}

/// Every row of every final Parquet file in `dir`.
#[must_use]
pub fn read_parquet_dir(dir: &Path) -> Vec<RecordBatch> {
    parquet_files(dir)
        .iter()
        .flat_map(|p| read_parquet(p))
        .collect()
}

/// Every batch of every Arrow IPC file (`.arrow`) in `dir`, with the file name.
#[must_use]
pub fn read_ipc_dir(dir: &Path) -> Vec<(PathBuf, RecordBatch)> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<PathBuf> = rd
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "arrow")
                && !p.file_name().unwrap().to_string_lossy().starts_with('.')
        })
        .collect();
    paths.sort();
    for p in paths {
        let reader =
            arrow_ipc::reader::FileReader::try_new(std::fs::File::open(&p).expect("open"), None)
                .unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        for b in reader {
            out.push((p.clone(), b.expect("batch")));
        }
    }
    out
}

/// A free UDP port on 127.0.0.1 (bound and released; loopback only).
#[must_use]
pub fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}
