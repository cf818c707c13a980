//! [`SoakReport`]: everything a soak measured, the checks it applies and how it prints.

use std::collections::BTreeMap;

use serde::Serialize;

use super::pipeline_sample::{PipelineSample, PipelineTrend};
use super::proc_sample::ProcSample;
use super::read_back::ReadBack;
use super::trend::Trend;

/// RSS may grow at most this much (percent) from the end of warm-up to the end of the run.
pub const MAX_RSS_GROWTH_PCT: f64 = 5.0;

/// The rows of a soak, as sent and as weir accounted for them.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Rows {
    /// Lines written to weir's stdin.
    pub sent: u64,
    /// Garbage lines among them (the source rejects them).
    pub garbage_sent: u64,
    /// Rows carrying a hostile mark, per mark.
    pub hostile_marks_sent: BTreeMap<String, u64>,
    /// Summary: rows in (decoded + rejected).
    pub summary_in: u64,
    /// Summary: records the source rejected.
    pub summary_rejected: u64,
    /// Summary: rows out of the chain.
    pub summary_out: u64,
    /// Summary: rows policies filtered out.
    pub summary_filtered: u64,
    /// Summary: rows dead-lettered (rejected records and failed batches).
    pub summary_dead_lettered: u64,
    /// Summary: rows dropped.
    pub summary_dropped: u64,
    /// Summary: rows the Parquet sink wrote.
    pub summary_sink_rows: u64,
    /// Summary: rows the dead-letter sink wrote.
    pub summary_dead_letter_sink_rows: u64,
    /// Summary: `balanced`.
    pub summary_balanced: bool,
    /// What was read back from the files.
    pub read_back: ReadBack,
}

/// The hostile policy's failures, from the summary.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Hostile {
    /// Failed calls by error kind (with poison-batch isolation, the retries on the pieces of
    /// a failing batch count too).
    pub errors: BTreeMap<String, u64>,
    /// Rows it dead-lettered.
    pub dead_lettered: u64,
}

impl Hostile {
    /// Failed calls in all.
    pub fn failures(&self) -> u64 {
        self.errors.values().sum()
    }
}

/// One push of a new version.
#[derive(Debug, Clone, Serialize)]
pub struct Swap {
    /// Seconds since input started.
    pub t_secs: f64,
    /// The policy.
    pub policy: String,
    /// The version pushed.
    pub version: u64,
    /// Whether the host accepted and activated it.
    pub ok: bool,
    /// `weir push`'s output, or its error.
    pub detail: String,
}

/// A soak's results.
#[derive(Debug, Clone, Serialize)]
pub struct SoakReport {
    /// Unix time the input started.
    pub started_unix: u64,
    /// Seconds of input.
    pub duration_secs: f64,
    /// Target rows per second.
    pub target_rate: u64,
    /// Achieved rows per second (lines sent over the input's duration).
    pub achieved_rate: f64,
    /// The rows.
    pub rows: Rows,
    /// The pushes.
    pub swaps: Vec<Swap>,
    /// Policy versions running at the end (`weir policies`).
    pub final_versions: BTreeMap<String, u64>,
    /// The hostile policy.
    pub hostile: Hostile,
    /// Memory and fds after warm-up.
    pub trend: Option<Trend>,
    /// The backlog and the machine's load over the same windows (explains the RSS levels).
    pub pipeline: Option<PipelineTrend>,
    /// weir's exit status after SIGINT.
    pub exit: String,
    /// Seconds from SIGINT to exit.
    pub stop_secs: f64,
    /// Every sample.
    pub samples: Vec<ProcSample>,
    /// Every pipeline sample (taken with each of `samples`).
    pub pipeline_samples: Vec<PipelineSample>,
    /// What failed (empty: the soak passed).
    pub failures: Vec<String>,
}

impl SoakReport {
    /// Fills `failures` from the figures. `expected_versions` is the version each policy should
    /// run at the end.
    pub fn check(&mut self, exited_ok: bool, expected_versions: &BTreeMap<String, u64>) {
        let mut f = Vec::new();
        let r = &self.rows;
        if !exited_ok {
            f.push(format!(
                "weir did not exit cleanly after SIGINT: {}",
                self.exit
            ));
        }
        if r.summary_in != r.sent {
            f.push(format!(
                "rows lost: {} lines sent, the summary counts {} in",
                r.sent, r.summary_in
            ));
        }
        if r.summary_rejected != r.garbage_sent {
            f.push(format!(
                "{} garbage lines sent, the source rejected {}",
                r.garbage_sent, r.summary_rejected
            ));
        }
        let accounted =
            r.summary_out + r.summary_filtered + r.summary_dead_lettered + r.summary_dropped;
        if !r.summary_balanced || accounted != r.summary_in {
            f.push(format!(
                "rows not accounted for: in {} != out {} + filtered {} + dead-lettered {} + \
                 dropped {}",
                r.summary_in,
                r.summary_out,
                r.summary_filtered,
                r.summary_dead_lettered,
                r.summary_dropped
            ));
        }
        if r.read_back.parquet_rows != r.summary_out || r.summary_sink_rows != r.summary_out {
            f.push(format!(
                "Parquet: {} rows read back, the sink wrote {}, the chain passed on {}",
                r.read_back.parquet_rows, r.summary_sink_rows, r.summary_out
            ));
        }
        if r.read_back.dead_letter_rows != r.summary_dead_lettered
            || r.summary_dead_letter_sink_rows != r.summary_dead_lettered
        {
            f.push(format!(
                "dead letters: {} rows read back, the sink wrote {}, the summary counts {}",
                r.read_back.dead_letter_rows,
                r.summary_dead_letter_sink_rows,
                r.summary_dead_lettered
            ));
        }
        if !r.read_back.temporary_files.is_empty() {
            f.push(format!(
                "files left under temporary names after a clean stop: {:?}",
                r.read_back.temporary_files
            ));
        }
        let marks: u64 = r.hostile_marks_sent.values().sum();
        if marks > 0 && self.hostile.failures() == 0 {
            f.push(format!(
                "{marks} hostile rows sent but the hostile policy never failed"
            ));
        }
        // Poison-batch isolation splits a failing batch until only the marked rows fail: the
        // hostile policy dead-letters exactly those.
        if self.hostile.dead_lettered != marks {
            f.push(format!(
                "the hostile policy dead-lettered {} rows, but {marks} rows were marked \
                 (isolation dead-letters exactly the rows a policy fails on)",
                self.hostile.dead_lettered
            ));
        }
        for s in self.swaps.iter().filter(|s| !s.ok) {
            f.push(format!(
                "push of {} version {} at {:.0} s failed: {}",
                s.policy, s.version, s.t_secs, s.detail
            ));
        }
        for (name, want) in expected_versions {
            let got = self.final_versions.get(name).copied();
            if got != Some(*want) {
                f.push(format!(
                    "{name} runs version {got:?} at the end, expected {want}"
                ));
            }
        }
        match &self.trend {
            None => f.push("too few samples to tell memory and fd trends".to_owned()),
            Some(t) => {
                if t.rss_growth_pct > MAX_RSS_GROWTH_PCT {
                    f.push(format!(
                        "RSS grew {:.1} % after warm-up ({} → {} KiB; over {MAX_RSS_GROWTH_PCT} %)",
                        t.rss_growth_pct, t.rss_warmup_kib, t.rss_end_kib
                    ));
                }
                if t.fds_end > t.fds_warmup {
                    f.push(format!(
                        "open fds (output files not counted) grew after warm-up ({} → {})",
                        t.fds_warmup, t.fds_end
                    ));
                }
                if t.output_fds_end > t.output_fds_warmup {
                    f.push(format!(
                        "more output files open at once at the end than during warm-up ({} → {})",
                        t.output_fds_warmup, t.output_fds_end
                    ));
                }
            }
        }
        self.failures = f;
    }

    /// The report as text.
    pub fn render(&self) -> String {
        use std::fmt::Write as _;
        let mut s = String::new();
        let r = &self.rows;
        let _ = writeln!(
            s,
            "soak: {:.0} s of input, target {} rows/s, achieved {:.0} rows/s",
            self.duration_secs, self.target_rate, self.achieved_rate
        );
        let _ = writeln!(
            s,
            "  rows sent {} ({} garbage, hostile marks {:?})",
            r.sent, r.garbage_sent, r.hostile_marks_sent
        );
        let _ = writeln!(
            s,
            "  summary: in {}  out {}  filtered {}  dead-lettered {}  dropped {}  balanced {}",
            r.summary_in,
            r.summary_out,
            r.summary_filtered,
            r.summary_dead_lettered,
            r.summary_dropped,
            r.summary_balanced
        );
        let _ = writeln!(
            s,
            "  read back: {} Parquet rows in {} files, {} dead-letter rows in {} files",
            r.read_back.parquet_rows,
            r.read_back.parquet_files,
            r.read_back.dead_letter_rows,
            r.read_back.dead_letter_files
        );
        let ok = self.swaps.iter().filter(|s| s.ok).count();
        let _ = writeln!(
            s,
            "  swaps: {ok} of {} pushes activated; final versions {:?}",
            self.swaps.len(),
            self.final_versions
        );
        let _ = writeln!(
            s,
            "  hostile policy: {} failed calls {:?}, {} rows dead-lettered",
            self.hostile.failures(),
            self.hostile.errors,
            self.hostile.dead_lettered
        );
        if let Some(t) = &self.trend {
            let mib = |k: u64| k as f64 / 1024.0;
            let _ = writeln!(
                s,
                "  warm-up {:.0} s (levels over {:.0} s windows, {} and {} samples)",
                t.warmup_secs, t.window_secs, t.samples_warmup_window, t.samples_end_window
            );
            let _ = writeln!(
                s,
                "  RSS: warm-up {:.1} MiB, end {:.1} MiB ({:+.2} %), max after warm-up {:.1} MiB \
                 ({:+.2} %), last {:.1} MiB",
                mib(t.rss_warmup_kib),
                mib(t.rss_end_kib),
                t.rss_growth_pct,
                mib(t.rss_max_kib),
                t.rss_max_growth_pct,
                mib(t.rss_last_kib)
            );
            let _ = writeln!(
                s,
                "  fds (output files apart): warm-up {}, end {}; all fds max after warm-up {}, \
                 last {}; output files open at once: warm-up {}, end {}; threads {} → {}",
                t.fds_warmup,
                t.fds_end,
                t.fds_max,
                t.fds_last,
                t.output_fds_warmup,
                t.output_fds_end,
                t.threads_warmup,
                t.threads_last
            );
        }
        if let Some(p) = &self.pipeline {
            let mib = |b: Option<u64>| {
                b.map_or("?".to_owned(), |b| format!("{:.1}", b as f64 / 1_048_576.0))
            };
            let num = |v: Option<u64>| v.map_or("?".to_owned(), |v| v.to_string());
            let load = |v: Option<f64>| v.map_or("?".to_owned(), |v| format!("{v:.2}"));
            let _ = writeln!(
                s,
                "  backlog: batches held warm-up {} MiB, end {} MiB, max after warm-up {} MiB; \
                 items queued {} → {}; machine load (1 min) {} → {}",
                mib(p.held_batch_bytes_warmup),
                mib(p.held_batch_bytes_end),
                mib(p.held_batch_bytes_max),
                num(p.queued_warmup),
                num(p.queued_end),
                load(p.load1_warmup),
                load(p.load1_end)
            );
        }
        let _ = writeln!(
            s,
            "  weir stopped {:.1} s after SIGINT: {}",
            self.stop_secs, self.exit
        );
        if self.failures.is_empty() {
            let _ = writeln!(s, "PASSED");
        } else {
            let _ = writeln!(s, "FAILED:");
            for f in &self.failures {
                let _ = writeln!(s, "  - {f}");
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn passing() -> SoakReport {
        let rows = Rows {
            sent: 100,
            garbage_sent: 2,
            hostile_marks_sent: BTreeMap::from([("trap".to_owned(), 1)]),
            summary_in: 100,
            summary_rejected: 2,
            summary_out: 80,
            summary_filtered: 8,
            summary_dead_lettered: 12,
            summary_dropped: 0,
            summary_sink_rows: 80,
            summary_dead_letter_sink_rows: 12,
            summary_balanced: true,
            read_back: ReadBack {
                parquet_files: 1,
                parquet_rows: 80,
                dead_letter_files: 2,
                dead_letter_rows: 12,
                temporary_files: Vec::new(),
            },
        };
        let samples: Vec<ProcSample> = (0..61)
            .map(|i| ProcSample {
                t_secs: f64::from(i),
                rss_kib: 1000,
                fds: 10,
                output_fds: 0,
                threads: 5,
            })
            .collect();
        SoakReport {
            started_unix: 0,
            duration_secs: 60.0,
            target_rate: 2,
            achieved_rate: 1.7,
            rows,
            swaps: vec![Swap {
                t_secs: 20.0,
                policy: "redact".to_owned(),
                version: 2,
                ok: true,
                detail: String::new(),
            }],
            final_versions: BTreeMap::from([("redact".to_owned(), 2)]),
            hostile: Hostile {
                errors: BTreeMap::from([("trap".to_owned(), 1)]),
                dead_lettered: 1,
            },
            trend: Trend::of(&samples, 60.0),
            pipeline: None,
            exit: "exit status: 0".to_owned(),
            stop_secs: 0.5,
            samples,
            pipeline_samples: Vec::new(),
            failures: Vec::new(),
        }
    }

    fn expected() -> BTreeMap<String, u64> {
        BTreeMap::from([("redact".to_owned(), 2)])
    }

    #[test]
    fn a_clean_run_passes() {
        let mut r = passing();
        r.check(true, &expected());
        assert!(r.failures.is_empty(), "{:?}", r.failures);
        assert!(r.render().ends_with("PASSED\n"));
    }

    #[test]
    fn each_problem_is_named() {
        let mut r = passing();
        r.rows.summary_in = 99;
        r.rows.read_back.parquet_rows = 79;
        r.hostile.errors.clear();
        r.final_versions.insert("redact".to_owned(), 1);
        if let Some(t) = r.trend.as_mut() {
            t.rss_growth_pct = 6.0;
            t.fds_end = 11;
            t.output_fds_end = 4;
        }
        r.check(false, &expected());
        let all = r.failures.join("\n");
        for needle in [
            "did not exit cleanly",
            "rows lost: 100 lines sent, the summary counts 99 in",
            "rows not accounted for",
            "Parquet: 79 rows read back",
            "never failed",
            "redact runs version Some(1) at the end, expected 2",
            "RSS grew 6.0 %",
            "open fds (output files not counted) grew after warm-up (10 → 11)",
            "more output files open at once at the end than during warm-up (0 → 4)",
        ] {
            assert!(all.contains(needle), "{needle:?} missing from:\n{all}");
        }
        assert!(r.render().contains("FAILED:"));
    }
}
