//! [`ProcSample`]: a process's resident memory, open file descriptors and threads, read from
//! `/proc/PID`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::Serialize;

/// One reading of a process.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ProcSample {
    /// Seconds since the soak's input started.
    pub t_secs: f64,
    /// Resident set size (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Entries of `/proc/PID/fd`.
    pub fds: u64,
    /// `Threads` of `/proc/PID/status`.
    pub threads: u64,
}

impl ProcSample {
    /// Reads process `pid` now, stamped `t_secs`.
    pub fn read(pid: u32, t_secs: f64) -> Result<Self> {
        let dir = Path::new("/proc").join(pid.to_string());
        let status_path = dir.join("status");
        let status = std::fs::read_to_string(&status_path)
            .with_context(|| format!("reading {}", status_path.display()))?;
        let (rss_kib, threads) = parse_status(&status)
            .with_context(|| format!("{} has no VmRSS or Threads line", status_path.display()))?;
        let fd_dir = dir.join("fd");
        let fds = std::fs::read_dir(&fd_dir)
            .with_context(|| format!("listing {}", fd_dir.display()))?
            .count() as u64;
        Ok(Self {
            t_secs,
            rss_kib,
            fds,
            threads,
        })
    }
}

/// `VmRSS` (KiB) and `Threads` from the text of `/proc/PID/status`.
fn parse_status(status: &str) -> Option<(u64, u64)> {
    let field = |key: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<u64>().ok())
    };
    Some((field("VmRSS:")?, field("Threads:")?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status() {
        let text = "Name:\tweir\nVmPeak:\t  900 kB\nVmRSS:\t   51234 kB\nThreads:\t17\n";
        assert_eq!(parse_status(text), Some((51234, 17)));
        assert_eq!(parse_status("Name:\tweir\n"), None);
    }

    #[test]
    fn reads_this_process() {
        let s = ProcSample::read(std::process::id(), 1.5).unwrap();
        assert!(s.rss_kib > 0 && s.fds >= 3 && s.threads >= 1, "{s:?}");
        assert!(ProcSample::read(u32::MAX, 0.0).is_err());
    }
}
