//! Publishing a file atomically, shared by the Parquet and dead-letter sinks: each file is written
//! under a hidden temporary name (`.{stem}{ext}.tmp`) in its final directory, then synced,
//! renamed to `{stem}{ext}` and the directory synced, so a reader globbing `*{ext}` never sees a
//! partial file. Also the file names' UTC time stamps and the removal of a crashed run's
//! temporaries.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::SinkError;

/// Maps an I/O error to [`SinkError::Io`] naming `path` and `action`.
pub(super) fn io_error(path: &Path, action: &'static str) -> impl FnOnce(io::Error) -> SinkError {
    let path = path.to_path_buf();
    move |source| SinkError::Io {
        path,
        action,
        source,
    }
}

/// Creates `dir` and its parents; a new directory's entry is synced in its parent.
pub(super) fn create_dir(dir: &Path) -> Result<(), SinkError> {
    if dir.is_dir() {
        return Ok(());
    }
    fs::create_dir_all(dir).map_err(io_error(dir, "creating the output directory"))?;
    match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => sync_dir(parent),
        None => Ok(()),
    }
}

/// Removes the temporary files (`.{prefix}-*{ext}.tmp`) a crashed run left in `dir`, logging
/// each. Returns how many were removed.
pub(super) fn remove_stale_temps(dir: &Path, prefix: &str, ext: &str) -> Result<usize, SinkError> {
    let start = format!(".{prefix}-");
    let end = format!("{ext}.tmp");
    let mut removed = 0;
    let entries = fs::read_dir(dir).map_err(io_error(dir, "listing the output directory"))?;
    for entry in entries {
        let entry = entry.map_err(io_error(dir, "listing the output directory"))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if !(name.starts_with(&start) && name.ends_with(&end)) {
            continue;
        }
        let path = entry.path();
        fs::remove_file(&path).map_err(io_error(&path, "removing a stale temporary file"))?;
        tracing::warn!(
            path = %path.display(),
            "removed a temporary file left by an interrupted run"
        );
        removed += 1;
    }
    Ok(removed)
}

/// A file's name without extension: `{prefix}-{yyyymmddThhmmssZ}-{seq:010}`. Names sort in the
/// order the files were opened.
pub(super) fn stem(prefix: &str, opened: SystemTime, seq: u64) -> String {
    format!("{prefix}-{}-{seq:010}", utc_compact(opened))
}

/// The temporary path for `stem`: hidden, and not ending in `ext`.
pub(super) fn temp_path(dir: &Path, stem: &str, ext: &str) -> PathBuf {
    dir.join(format!(".{stem}{ext}.tmp"))
}

/// Creates the temporary file, failing if it exists.
pub(super) fn create_temp(path: &Path) -> Result<File, SinkError> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .map_err(io_error(path, "creating a temporary file"))
}

/// Publishes a finished file: syncs `file` (written at `temp`), renames it to `{stem}{ext}` in
/// `dir` (or `{stem}-{k}{ext}` if an earlier run took that name: a rename must never replace a
/// finalized file) and syncs `dir`. Returns the final path.
pub(super) fn publish(
    file: &File,
    temp: &Path,
    dir: &Path,
    stem: &str,
    ext: &str,
) -> Result<PathBuf, SinkError> {
    file.sync_all()
        .map_err(io_error(temp, "syncing the finished file"))?;
    let mut target = dir.join(format!("{stem}{ext}"));
    let mut k = 0u32;
    while target
        .try_exists()
        .map_err(io_error(&target, "checking the final name is free"))?
    {
        k += 1;
        target = dir.join(format!("{stem}-{k}{ext}"));
    }
    fs::rename(temp, &target).map_err(io_error(temp, "renaming the finished file into place"))?;
    sync_dir(dir)?;
    Ok(target)
}

/// Syncs a directory, so that a rename in it survives a power cut.
pub(super) fn sync_dir(dir: &Path) -> Result<(), SinkError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir, "syncing the directory"))
}

/// `t` in UTC as `yyyymmddThhmmssZ` (times before 1970 print as 1970).
pub(super) fn utc_compact(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (y, m, d) = civil_from_days(secs / 86_400);
    let s = secs % 86_400;
    format!(
        "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
        s / 3600,
        s % 3600 / 60,
        s % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian (Howard Hinnant's
/// `civil_from_days`, for non-negative day numbers).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::time::Duration;

    use super::*;

    fn at(secs: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(secs)
    }

    #[test]
    fn utc_stamps() {
        assert_eq!(utc_compact(at(0)), "19700101T000000Z");
        assert_eq!(utc_compact(at(951_782_400)), "20000229T000000Z");
        assert_eq!(utc_compact(at(1_700_000_000)), "20231114T221320Z");
        assert_eq!(utc_compact(at(4_102_444_799)), "20991231T235959Z");
        assert_eq!(utc_compact(at(4_107_542_400)), "21000301T000000Z");
        assert_eq!(stem("part", at(0), 42), "part-19700101T000000Z-0000000042");
    }

    #[test]
    fn publish_never_replaces_a_finalized_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut names = Vec::new();
        for body in [b"one", b"two"] {
            let temp = temp_path(dir.path(), "x", ".bin");
            let mut file = create_temp(&temp).unwrap();
            file.write_all(body).unwrap();
            names.push(publish(&file, &temp, dir.path(), "x", ".bin").unwrap());
        }
        assert_eq!(names[0], dir.path().join("x.bin"));
        assert_eq!(names[1], dir.path().join("x-1.bin"));
        assert_eq!(fs::read(&names[0]).unwrap(), b"one");
        assert_eq!(fs::read(&names[1]).unwrap(), b"two");
        assert!(!temp_path(dir.path(), "x", ".bin").exists());
    }

    #[test]
    fn removes_only_own_temporaries() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            ".part-1.parquet.tmp",
            ".other-1.parquet.tmp",
            "part-1.parquet",
            "notes",
        ] {
            fs::write(dir.path().join(name), b"x").unwrap();
        }
        assert_eq!(
            remove_stale_temps(dir.path(), "part", ".parquet").unwrap(),
            1
        );
        let mut left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        left.sort();
        assert_eq!(left, [".other-1.parquet.tmp", "notes", "part-1.parquet"]);
    }
}
