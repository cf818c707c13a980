//! The pipeline's life: rotation, shutdown, `kill -9`, follow-mode restarts, backpressure
//! from a slow sink, and config errors.

use std::collections::BTreeSet;
use std::io::{Read as _, Write as _};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use arrow_array::RecordBatch;
use arrow_array::cast::AsArray as _;
use arrow_array::types::Int64Type;
use weir_tests::weir_process::{
    Running, Scratch, parquet_files, read_parquet, read_parquet_dir, run_weir, weir_bin,
};

fn ids(batches: &[RecordBatch]) -> Vec<i64> {
    batches
        .iter()
        .flat_map(|b| {
            b.column_by_name("id")
                .unwrap()
                .as_primitive::<Int64Type>()
                .values()
                .to_vec()
        })
        .collect()
}

fn lines(from: i64, to: i64) -> String {
    (from..to)
        .map(|i| format!("{{\"id\":{i},\"pad\":\"{}\"}}\n", "x".repeat(40)))
        .collect()
}

const SCHEMA: &str = "[sources.f.schema]\ncolumns = [\"id: int64\", \"pad: utf8\"]";

#[test]
fn rotation_by_rows_bytes_and_time() {
    // Rows: 1000 rows, 64-row batches, rotate at 300 → files of 320, 320, 320, 40.
    let s = Scratch::new("rot-rows");
    let _ = s.write("in.ndjson", lines(0, 1000));
    let c = s.write(
        "weir.toml",
        format!(
            "[pipeline]\nbatch_max_rows = 64\n[sources.f]\ntype = \"file\"\npath = \"in.ndjson\"\n{SCHEMA}\n\
             [sinks.p]\ntype = \"parquet\"\npath = \"out\"\nrotate_rows = 300\n"
        ),
    );
    let _ = run_weir(&s, &["run", "--config", c.to_str().unwrap()]).ok();
    let sizes: Vec<usize> = parquet_files(&s.join("out"))
        .iter()
        .map(|f| read_parquet(f).iter().map(RecordBatch::num_rows).sum())
        .collect();
    assert_eq!(sizes, vec![320, 320, 320, 40]);
    assert_eq!(
        ids(&read_parquet_dir(&s.join("out"))),
        (0..1000).collect::<Vec<_>>()
    );

    // Bytes: rotate at 16 KiB (the writer's count plus its estimate for the open row group,
    // so compressed files come out smaller); 20,000 padded rows make several files.
    let s = Scratch::new("rot-bytes");
    let _ = s.write("in.ndjson", lines(0, 20_000));
    let c = s.write(
        "weir.toml",
        format!(
            "[pipeline]\nbatch_max_rows = 512\n[sources.f]\ntype = \"file\"\npath = \"in.ndjson\"\n{SCHEMA}\n\
             [sinks.p]\ntype = \"parquet\"\npath = \"out\"\nrotate_bytes = \"16KiB\"\n"
        ),
    );
    let _ = run_weir(&s, &["run", "--config", c.to_str().unwrap()]).ok();
    let files = parquet_files(&s.join("out"));
    assert!(files.len() >= 3, "{files:?}");
    assert_eq!(
        ids(&read_parquet_dir(&s.join("out"))),
        (0..20_000).collect::<Vec<_>>()
    );

    // Time: a slow generator and a 300ms interval give several files while it runs.
    let s = Scratch::new("rot-time");
    let c = s.write(
        "weir.toml",
        "[pipeline]\nbatch_max_delay = \"50ms\"\n[sources.g]\ntype = \"generate\"\nkind = \"flows\"\nrows = 1500\nrate = 1000\n\
         [sinks.p]\ntype = \"parquet\"\npath = \"out\"\nrotate_interval = \"300ms\"\n",
    );
    let _ = run_weir(&s, &["run", "--config", c.to_str().unwrap()]).ok();
    let files = parquet_files(&s.join("out"));
    assert!(files.len() >= 3, "1.5 s of data in 300 ms files: {files:?}");
    let total: usize = read_parquet_dir(&s.join("out"))
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(total, 1500);
}

#[test]
fn sigterm_drains_flushes_and_finalizes() {
    let s = Scratch::new("shutdown");
    let c = s.write(
        "weir.toml",
        "[pipeline]\nbatch_max_delay = \"50ms\"\n[sources.g]\ntype = \"generate\"\nkind = \"sensors\"\nrate = 5000\n\
         [sinks.p]\ntype = \"parquet\"\npath = \"out\"\nrotate_interval = \"1h\"\n",
    );
    let mut weir = Running::start(&s, &["run", "--config", c.to_str().unwrap()]);
    weir.wait_for("pipeline ready", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(800));
    // Nothing is final yet: one open file, under its temporary name.
    assert!(parquet_files(&s.join("out")).is_empty());
    weir.signal("TERM");
    let done = weir.wait(Duration::from_secs(30));
    let summary = done.ok();
    let rows_in = summary["rows_in"].as_u64().unwrap();
    assert!(rows_in >= 1000, "{summary}");
    let out: usize = read_parquet_dir(&s.join("out"))
        .iter()
        .map(RecordBatch::num_rows)
        .sum();
    assert_eq!(
        out as u64, rows_in,
        "every row read was written and finalized"
    );
    let leftovers: Vec<_> = std::fs::read_dir(s.join("out"))
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with('.'))
        .collect();
    assert!(
        leftovers.is_empty(),
        "no temporary files after a clean stop: {leftovers:?}"
    );
}

#[test]
fn kill_9_leaves_only_complete_files_and_a_restart_cleans_up() {
    let s = Scratch::new("kill9");
    let c = s.write(
        "weir.toml",
        "[pipeline]\nbatch_max_rows = 2048\n[sources.g]\ntype = \"generate\"\nkind = \"flows\"\n\
         [sinks.p]\ntype = \"parquet\"\npath = \"out\"\nrotate_rows = 20480\nrow_group_rows = 4096\n",
    );
    let mut weir = Running::start(&s, &["run", "--config", c.to_str().unwrap()]);
    weir.wait_for("pipeline ready", Duration::from_secs(60));
    let start = Instant::now();
    let temp_exists = || {
        std::fs::read_dir(s.join("out"))
            .map(|rd| {
                rd.filter_map(Result::ok)
                    .any(|e| e.file_name().to_string_lossy().starts_with('.'))
            })
            .unwrap_or(false)
    };
    while parquet_files(&s.join("out")).len() < 3 || !temp_exists() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "no files: {}",
            weir.stderr()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    weir.signal("KILL");
    let _ = weir.wait(Duration::from_secs(10));
    let names: Vec<String> = std::fs::read_dir(s.join("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with('.')),
        "killed mid-file: a temporary file remains: {names:?}"
    );
    for f in parquet_files(&s.join("out")) {
        let rows: usize = read_parquet(&f).iter().map(RecordBatch::num_rows).sum();
        assert_eq!(rows, 20_480, "{} is complete", f.display());
    }
    // The next start removes the partial file.
    let c2 = s.write(
        "weir2.toml",
        "[sources.g]\ntype = \"generate\"\nkind = \"flows\"\nrows = 10\n[sinks.p]\ntype = \"parquet\"\npath = \"out\"\n",
    );
    let _ = run_weir(&s, &["run", "--config", c2.to_str().unwrap()]).ok();
    let hidden = std::fs::read_dir(s.join("out"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with('.')
        })
        .count();
    assert_eq!(hidden, 0);
}

fn follow_config(s: &Scratch) -> std::path::PathBuf {
    s.write(
        "weir.toml",
        format!(
            "[pipeline]\nbatch_max_rows = 100\nbatch_max_delay = \"20ms\"\nstate_dir = \"state\"\n\
             [sources.f]\ntype = \"file\"\npath = \"log.ndjson\"\nfollow = true\npoll_interval = \"20ms\"\n{SCHEMA}\n\
             [sinks.p]\ntype = \"parquet\"\npath = \"out\"\nrotate_interval = \"150ms\"\n"
        ),
    )
}

fn append(path: &std::path::Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
    f.sync_all().unwrap();
}

#[test]
fn follow_mode_restarts_lose_and_duplicate_nothing() {
    let s = Scratch::new("follow");
    let log = s.join("log.ndjson");
    append(&log, &lines(0, 500));
    let c = follow_config(&s);
    let mut next = 500;
    // Three lives: a clean stop, a kill -9 in the middle of appending, a clean stop.
    for life in 0..3 {
        let mut weir = Running::start(&s, &["run", "--config", c.to_str().unwrap()]);
        weir.wait_for("pipeline ready", Duration::from_secs(60));
        for _ in 0..10 {
            append(&log, &lines(next, next + 137));
            next += 137;
            std::thread::sleep(Duration::from_millis(40));
        }
        // A partial line at the end is not read until it is complete.
        append(&log, &format!("{{\"id\":{next},\"pad\":\"half"));
        std::thread::sleep(Duration::from_millis(400));
        if life == 1 {
            weir.signal("KILL");
            let _ = weir.wait(Duration::from_secs(10));
        } else {
            weir.signal("TERM");
            let _ = weir.wait(Duration::from_secs(30)).ok();
        }
        append(&log, &format!("{}\"}}\n", "x".repeat(36)));
        next += 1;
    }
    // A last clean life reads what the kill left behind and the final appends.
    let mut weir = Running::start(&s, &["run", "--config", c.to_str().unwrap()]);
    weir.wait_for("pipeline ready", Duration::from_secs(60));
    std::thread::sleep(Duration::from_millis(600));
    weir.signal("TERM");
    let _ = weir.wait(Duration::from_secs(30)).ok();

    let got = ids(&read_parquet_dir(&s.join("out")));
    let unique: BTreeSet<i64> = got.iter().copied().collect();
    assert_eq!(unique.len(), got.len(), "no line twice");
    assert_eq!(
        unique,
        (0..next).collect::<BTreeSet<_>>(),
        "every line once"
    );
}

#[test]
fn a_slow_sink_slows_the_source_and_memory_stays_bounded() {
    let s = Scratch::new("slow");
    // 3 million generated rows (~0.5 GB as Arrow) into a pipe the test reads slowly.
    let c = s.write(
        "weir.toml",
        "[pipeline]\nbatch_max_rows = 4096\nqueue_depth = 2\n[sources.g]\ntype = \"generate\"\nkind = \"sensors\"\nrows = 3000000\n\
         [sinks.s]\ntype = \"arrow_ipc\"\npath = \"-\"\nformat = \"stream\"\n",
    );
    let mut child = Command::new(weir_bin())
        .args(["run", "--config", c.to_str().unwrap(), "--no-progress"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let pid = child.id();
    let rss = || -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or(0)
    };
    let mut read = 0usize;
    let mut peak = 0u64;
    let mut buf = vec![0u8; 64 * 1024];
    // Read ~40 MB at ~20 MB/s, far slower than the generator.
    let start = Instant::now();
    while read < 40 << 20 {
        let n = stdout.read(&mut buf).unwrap();
        assert!(n > 0, "weir ended early");
        read += n;
        std::thread::sleep(Duration::from_millis(3));
        peak = peak.max(rss());
    }
    let elapsed = start.elapsed();
    child.kill().unwrap();
    let _ = child.wait();
    // Unbounded buffering would hold hundreds of MB by now.
    assert!(
        peak < 150 * 1024,
        "peak RSS {peak} KiB while the sink was slow ({elapsed:?})"
    );
    assert!(peak > 0);
}

#[test]
fn config_errors_name_the_file_the_key_and_the_problem() {
    let s = Scratch::new("check");
    let cases = [
        (
            "[sources.a]\ntype = \"file\"\npath = \"nothing-*.ndjson\"\n[sinks.o]\ntype = \"stdout\"\n",
            "sources.a.path",
            "no file matches",
        ),
        (
            "[pipeline]\nbatch_rows = 5\n",
            "pipeline",
            "unknown field `batch_rows`",
        ),
        (
            "[sources.a]\ntype = \"generate\"\nkind = \"flows\"\n[sinks.o]\ntype = \"parquet\"\npath = \"o\"\nzstd_level = 99\n",
            "sinks.o.zstd_level",
            "between 1 and 22",
        ),
        (
            "[sources.a]\ntype = \"udp\"\nlisten = \"127.0.0.1:9\"\n[sinks.o]\ntype = \"stdout\"\n",
            "sources.a.schema.columns",
            "needs a declared schema",
        ),
        (
            "[sources.a]\ntype = \"generate\"\nkind = \"flows\"\n[sinks.o]\ntype = \"stdout\"\n[[policies]]\nbundle = \"missing.wpol\"\n",
            "policies[0].bundle",
            "no such file",
        ),
        (
            "[sources.a]\ntype = \"generate\"\nkind = \"flows\"\n[sinks.o]\ntype = \"stdout\"\n[[policies]]\nmodule = \"p.wasm\"\n",
            "policies[0].module",
            "unsigned modules are not run",
        ),
        (
            "[sources.a]\ntype = \"generate\"\nkind = \"flows\"\n[sinks.o]\ntype = \"stdout\"\n[pipeline]\nbatch_max_delay = \"soon\"\n",
            "pipeline.batch_max_delay",
            "invalid duration",
        ),
        (
            "[sources.a]\ntype = \"stdin\"\n[sources.a.schema]\ncolumns = [\"x: float65\"]\n[sinks.o]\ntype = \"stdout\"\n",
            "sources.a.schema.columns[0]",
            "unknown type",
        ),
    ];
    for (i, (text, key, problem)) in cases.iter().enumerate() {
        let path = s.write(&format!("bad{i}.toml"), text);
        for cmd in ["check", "run"] {
            let out = Command::new(weir_bin())
                .args([cmd, "--config", path.to_str().unwrap()])
                .output()
                .unwrap();
            assert!(!out.status.success(), "{cmd} {text}");
            let err = String::from_utf8_lossy(&out.stderr);
            let file = path.display().to_string();
            assert!(
                err.contains(&file) && err.contains(key) && err.contains(problem),
                "{cmd} case {i}: want {file}, {key}, {problem} in:\n{err}"
            );
        }
    }
    // And a good one passes `check`, printing the schema.
    let good = s.write(
        "good.toml",
        "[sources.a]\ntype = \"generate\"\nkind = \"flows\"\n[sinks.o]\ntype = \"stdout\"\n",
    );
    let out = Command::new(weir_bin())
        .args(["check", "--config", good.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("dst_port"));
}
