//! [`ProcessStats`]: this process's resident memory and open file descriptors, from /proc.

use std::path::Path;

/// What /proc says about this process (read at scrape time; each is `None` where /proc is
/// not there or not readable).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ProcessStats {
    /// Resident set size in bytes (`/proc/self/statm`, second field, times the page size).
    pub resident_bytes: Option<u64>,
    /// Open file descriptors (entries of `/proc/self/fd`).
    pub open_fds: Option<u64>,
}

impl ProcessStats {
    /// Reads them now (two small reads of /proc).
    #[must_use]
    pub fn read() -> Self {
        let resident_bytes = std::fs::read_to_string("/proc/self/statm")
            .ok()
            .and_then(|statm| resident_pages(&statm))
            .zip(page_size())
            .map(|(pages, size)| pages * size);
        Self {
            resident_bytes,
            // Less the descriptor the listing itself holds open.
            open_fds: count_entries(Path::new("/proc/self/fd")).map(|n| n.saturating_sub(1)),
        }
    }
}

/// The resident page count: the second field of `statm`.
fn resident_pages(statm: &str) -> Option<u64> {
    statm.split_ascii_whitespace().nth(1)?.parse().ok()
}

fn page_size() -> Option<u64> {
    // SAFETY: sysconf only reads a configuration value; _SC_PAGESIZE is a valid name.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u64::try_from(size).ok().filter(|&s| s > 0)
}

/// Entries of a directory.
fn count_entries(dir: &Path) -> Option<u64> {
    Some(std::fs::read_dir(dir).ok()?.count() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_process_stats_parses_statm_and_counts_fds() {
        assert_eq!(resident_pages("1000 250 30 5 0 700 0\n"), Some(250));
        assert_eq!(resident_pages("1000"), None);
        let stats = ProcessStats::read();
        let rss = stats.resident_bytes.expect("/proc/self/statm is readable");
        // A test binary with wasmtime linked is resident for more than 1 MiB and less than 64 GiB.
        assert!((1 << 20..64 << 30).contains(&rss), "{rss}");
        assert!(stats.open_fds.is_some());
        let files: Vec<_> = (0..5)
            .map(|_| std::fs::File::open("/proc/self/statm").unwrap())
            .collect();
        // stdin, stdout, stderr and ours at least.
        let open = ProcessStats::read().open_fds.unwrap();
        assert!(open >= 8, "{open}");
        drop(files);
        let dir = tempfile::tempdir().unwrap();
        for name in ["a", "b", "c"] {
            std::fs::write(dir.path().join(name), b"").unwrap();
        }
        assert_eq!(count_entries(dir.path()), Some(3));
        assert_eq!(count_entries(&dir.path().join("missing")), None);
    }
}
