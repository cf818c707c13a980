//! Follow-mode checkpoints in `<state_dir>/checkpoints/<source>.json`, written atomically.
//!
//! The pipeline stores a checkpoint once the sinks have committed the rows before it; a
//! follow source loads it when it starts.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use super::SourceError;
use crate::pipeline::Checkpoint;

/// Where the checkpoint of source `source` lives.
#[must_use]
pub fn path(state_dir: &Path, source: &str) -> PathBuf {
    state_dir.join("checkpoints").join(format!("{source}.json"))
}

/// Loads the checkpoint of `source`, `None` when there is none yet.
///
/// # Errors
/// The file exists but cannot be read or does not hold a checkpoint.
pub fn load(state_dir: &Path, source: &str) -> Result<Option<Checkpoint>, SourceError> {
    let path = path(state_dir, source);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(SourceError::io(source, path, "read the checkpoint", e)),
    };
    serde_json::from_slice(&text).map(Some).map_err(|e| {
        SourceError::format(
            source,
            &path,
            format!("not a checkpoint ({e}); delete it to read the file from the start"),
        )
    })
}

/// Stores `checkpoint` for `source` atomically: a temporary file is written and synced,
/// renamed over the old one, and the directory synced, so a crash leaves the old or the new
/// checkpoint, never a torn one.
///
/// # Errors
/// The directory cannot be created or the file cannot be written.
pub fn store(state_dir: &Path, source: &str, checkpoint: &Checkpoint) -> std::io::Result<()> {
    let path = path(state_dir, source);
    let dir = path
        .parent()
        .expect("a checkpoint path has a parent directory");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join(format!(".{source}.json.tmp"));
    let bytes = serde_json::to_vec_pretty(checkpoint).map_err(std::io::Error::other)?;
    let mut file = File::create(&tmp)?;
    file.write_all(&bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_loads() {
        let dir = tempfile::tempdir().unwrap();
        assert!(load(dir.path(), "s").unwrap().is_none());
        let cp = Checkpoint {
            path: "/var/log/a.ndjson".into(),
            dev: 3,
            ino: 42,
            offset: 1234,
        };
        store(dir.path(), "s", &cp).unwrap();
        assert_eq!(load(dir.path(), "s").unwrap(), Some(cp.clone()));
        let newer = Checkpoint { offset: 2000, ..cp };
        store(dir.path(), "s", &newer).unwrap();
        assert_eq!(load(dir.path(), "s").unwrap(), Some(newer));
        let names: Vec<_> = std::fs::read_dir(dir.path().join("checkpoints"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["s.json"], "no temporary file is left behind");
    }

    #[test]
    fn a_corrupt_checkpoint_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("checkpoints")).unwrap();
        std::fs::write(path(dir.path(), "s"), "{not json").unwrap();
        let e = load(dir.path(), "s").unwrap_err().to_string();
        assert!(e.contains("not a checkpoint"), "{e}");
        assert!(e.contains("s.json"), "{e}");
    }
}
