//! The run summary: what came in, what each policy did, what went out, and whether every row
//! is accounted for.

use std::collections::BTreeMap;
use std::fmt;

use serde::Serialize;

use super::BudgetReport;
use super::chain_stage::ChainCounts;
use crate::sinks::SinkReport;
use crate::sources::SourceReport;

/// One policy's counts.
#[derive(Debug, Clone, Serialize)]
pub struct PolicySummary {
    /// Name from the manifest.
    pub name: String,
    /// Version.
    pub version: String,
    /// Module sha256, hex.
    pub sha256: String,
    /// Rows received.
    pub rows_in: u64,
    /// Rows passed on.
    pub rows_out: u64,
    /// Rows its selection removed.
    pub filtered: u64,
    /// Rows sent to dead-letter after a failure.
    pub dead_lettered: u64,
    /// Rows dropped after a failure (`on_error = "drop"`).
    pub dropped: u64,
    /// Failed calls by kind.
    pub errors: BTreeMap<String, u64>,
    /// Times a failing batch was split to isolate the rows the policy fails on.
    pub batch_splits: u64,
    /// Rows of failing batches that went on after isolation.
    pub rows_rescued: u64,
    /// Instances replaced on schedule (`recycle_after_batches`, `recycle_memory`).
    pub instances_recycled: u64,
}

/// A source's summary.
#[derive(Debug, Clone, Serialize)]
pub struct SourceSummary {
    /// What the source reported.
    #[serde(flatten)]
    pub report: SourceReport,
    /// How its schema was obtained.
    pub schema: String,
    /// Its error, if it stopped on one.
    pub error: Option<String>,
}

/// The whole run.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    /// Sources by name.
    pub sources: BTreeMap<String, SourceSummary>,
    /// The chain's counts.
    pub chain: ChainCounts,
    /// Policies in order.
    pub policies: Vec<PolicySummary>,
    /// Sinks by name.
    pub sinks: BTreeMap<String, SinkReport>,
    /// The dead-letter sink.
    pub dead_letter: SinkReport,
    /// Rows in: decoded plus rejected.
    pub rows_in: u64,
    /// Rows out of the chain (each sink got all of them).
    pub rows_out: u64,
    /// Rows removed by filters.
    pub rows_filtered: u64,
    /// Rows dead-lettered (rejected by a source or failed in a policy).
    pub rows_dead_lettered: u64,
    /// Rows dropped after a policy failure.
    pub rows_dropped: u64,
    /// `rows_in == rows_out + rows_filtered + rows_dead_lettered + rows_dropped`. Always true
    /// unless a policy changes row counts on purpose (an aggregate).
    pub balanced: bool,
    /// Input bytes.
    pub bytes_in: u64,
    /// Milliseconds from process start to the pipeline being ready to take data.
    pub ready_ms: f64,
    /// Seconds from ready to the end.
    pub elapsed_secs: f64,
    /// Follow checkpoints stored.
    pub checkpoints_stored: u64,
    /// Errors that ended a source or sink early.
    pub errors: Vec<String>,
    /// The memory budget, when one is configured (`limits.memory_budget`).
    pub memory_budget: Option<BudgetReport>,
}

impl RunSummary {
    /// Fills in the totals.
    pub fn total(&mut self) {
        self.rows_in = self.chain.rows_in + self.chain.rejected;
        self.rows_out = self.chain.rows_out;
        self.rows_filtered = self.policies.iter().map(|p| p.filtered).sum();
        self.rows_dead_lettered =
            self.chain.rejected + self.policies.iter().map(|p| p.dead_lettered).sum::<u64>();
        self.rows_dropped = self.policies.iter().map(|p| p.dropped).sum();
        self.balanced = self.rows_in
            == self.rows_out + self.rows_filtered + self.rows_dead_lettered + self.rows_dropped;
    }

    /// Input rows per second.
    #[must_use]
    pub fn rows_per_sec(&self) -> f64 {
        self.rows_in as f64 / self.elapsed_secs.max(1e-9)
    }

    /// Input MB/s (10^6 bytes).
    #[must_use]
    pub fn mb_per_sec(&self) -> f64 {
        self.bytes_in as f64 / 1e6 / self.elapsed_secs.max(1e-9)
    }
}

impl fmt::Display for RunSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "rows in {}, out {}, filtered {}, dead-lettered {}, dropped {} ({})",
            self.rows_in,
            self.rows_out,
            self.rows_filtered,
            self.rows_dead_lettered,
            self.rows_dropped,
            if self.balanced {
                "every row accounted for"
            } else {
                "row counts changed by a policy"
            }
        )?;
        writeln!(
            f,
            "{:.2} s, {:.0} rows/s, {:.1} MB/s in; ready after {:.1} ms",
            self.elapsed_secs,
            self.rows_per_sec(),
            self.mb_per_sec(),
            self.ready_ms
        )?;
        let mut table = comfy_table::Table::new();
        table.load_preset(comfy_table::presets::UTF8_BORDERS_ONLY);
        table.set_header([
            "stage",
            "in",
            "out",
            "filtered",
            "dead-letter",
            "dropped",
            "errors",
        ]);
        for (name, s) in &self.sources {
            table.add_row([
                format!("source {name}"),
                (s.report.rows + s.report.rejected).to_string(),
                s.report.rows.to_string(),
                String::new(),
                s.report.rejected.to_string(),
                String::new(),
                s.error.clone().unwrap_or_default(),
            ]);
        }
        for p in &self.policies {
            let mut errors: Vec<String> =
                p.errors.iter().map(|(k, n)| format!("{k}: {n}")).collect();
            if p.batch_splits > 0 {
                errors.push(format!(
                    "{} splits, {} rows rescued",
                    p.batch_splits, p.rows_rescued
                ));
            }
            if p.instances_recycled > 0 {
                errors.push(format!("{} recycled", p.instances_recycled));
            }
            table.add_row([
                format!("policy {}", p.name),
                p.rows_in.to_string(),
                p.rows_out.to_string(),
                p.filtered.to_string(),
                p.dead_lettered.to_string(),
                p.dropped.to_string(),
                errors.join(", "),
            ]);
        }
        for (name, s) in &self.sinks {
            table.add_row([
                format!("sink {name}"),
                s.rows.to_string(),
                format!("{} files", s.files.len()),
                String::new(),
                String::new(),
                String::new(),
                String::new(),
            ]);
        }
        table.add_row([
            "dead-letter".to_owned(),
            self.dead_letter.rows.to_string(),
            format!("{} files", self.dead_letter.files.len()),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
        ]);
        writeln!(f, "{table}")?;
        for (name, s) in &self.sources {
            if let Some(capture) = &s.report.capture {
                writeln!(f, "capture {name}: {capture}")?;
            }
        }
        if let Some(b) = &self.memory_budget {
            writeln!(
                f,
                "memory budget {}: peak {} (guests {} at the end); sources paused {} times, {} ms",
                bytesize::ByteSize(b.limit).display().iec(),
                bytesize::ByteSize(b.peak).display().iec(),
                bytesize::ByteSize(b.guest).display().iec(),
                b.pauses,
                b.paused_ms
            )?;
        }
        for error in &self.errors {
            writeln!(f, "error: {error}")?;
        }
        Ok(())
    }
}
