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
    /// Those of them open on a file under the soak's output directory (the Parquet file and
    /// the dead-letter file being written: open between rotations, so they come and go).
    pub output_fds: u64,
    /// `Threads` of `/proc/PID/status`.
    pub threads: u64,
}

impl ProcSample {
    /// Reads process `pid` now, stamped `t_secs`; `output` is the directory its sinks write
    /// under.
    pub fn read(pid: u32, t_secs: f64, output: &Path) -> Result<Self> {
        let dir = Path::new("/proc").join(pid.to_string());
        let status_path = dir.join("status");
        let status = std::fs::read_to_string(&status_path)
            .with_context(|| format!("reading {}", status_path.display()))?;
        let (rss_kib, threads) = parse_status(&status)
            .with_context(|| format!("{} has no VmRSS or Threads line", status_path.display()))?;
        let fd_dir = dir.join("fd");
        let (mut fds, mut output_fds) = (0, 0);
        for entry in
            std::fs::read_dir(&fd_dir).with_context(|| format!("listing {}", fd_dir.display()))?
        {
            // An fd closed between the listing and the readlink still counted as open.
            let Ok(entry) = entry else { continue };
            fds += 1;
            if std::fs::read_link(entry.path()).is_ok_and(|target| target.starts_with(output)) {
                output_fds += 1;
            }
        }
        Ok(Self {
            t_secs,
            rss_kib,
            fds,
            output_fds,
            threads,
        })
    }
}

impl ProcSample {
    /// The fds that are not output files.
    #[must_use]
    pub fn other_fds(&self) -> u64 {
        self.fds - self.output_fds
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
    fn reads_this_process_and_tells_its_output_files_apart() {
        let out = std::env::temp_dir().join(format!("weir-proc-sample-{}", std::process::id()));
        std::fs::create_dir_all(&out).unwrap();
        let before = ProcSample::read(std::process::id(), 1.5, &out).unwrap();
        assert!(
            before.rss_kib > 0 && before.fds >= 3 && before.threads >= 1,
            "{before:?}"
        );
        let file = std::fs::File::create(out.join("part.parquet")).unwrap();
        let open = ProcSample::read(std::process::id(), 2.0, &out).unwrap();
        drop(file);
        std::fs::remove_dir_all(&out).unwrap();
        // Other threads of the test binary may open fds meanwhile: only this one is an output.
        assert_eq!((before.output_fds, open.output_fds), (0, 1), "{open:?}");
        assert!(ProcSample::read(u32::MAX, 0.0, &out).is_err());
    }
}
