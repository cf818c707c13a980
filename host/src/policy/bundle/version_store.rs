//! Rollback protection: the highest accepted version of each policy, and its bundle, kept on
//! disk with fsync + rename so that a crash never lowers the mark.
//!
//! Files in the directory: `NAME.wpol` (the accepted bundle, as received) and `NAME.version`
//! (the version, decimal text). The bundle is written first, then the version.

use std::collections::BTreeMap;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};

use parking_lot::Mutex;

use super::{VerifiedBundle, check_policy_name};
use crate::policy::{Refusal, RefusalCode};

/// The state directory could not be read or written, or holds something unexpected.
#[derive(Debug, thiserror::Error)]
pub enum VersionStoreError {
    /// An I/O operation failed.
    #[error("{action} {}: {source}", path.display())]
    Io {
        /// What was being done (`creating`, `reading`, `writing`, `syncing`, `renaming to`).
        action: &'static str,
        /// The file or directory.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// A `.version` file does not hold a decimal version.
    #[error("{}: corrupt version file (expected a decimal version, found {content:?})", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What it holds (at most 64 bytes of it).
        content: String,
    },
    /// Accepting would not raise the mark.
    #[error(
        "refusing to store version {version} of {name}: the highest accepted version is {highest}"
    )]
    WouldLower {
        /// Policy name.
        name: String,
        /// The version offered.
        version: u64,
        /// The mark.
        highest: u64,
    },
}

/// The highest accepted version of each policy, persisted in one directory.
#[derive(Debug)]
pub struct VersionStore {
    dir: PathBuf,
    versions: Mutex<BTreeMap<String, u64>>,
}

impl VersionStore {
    /// Opens `dir` (created with mode 0700 if missing) and reads every `NAME.version` in it.
    ///
    /// # Errors
    /// I/O errors, or a corrupt `.version` file (named; never read as 0).
    pub fn open(dir: &Path) -> Result<Self, VersionStoreError> {
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| VersionStoreError::Io {
                action,
                path,
                source,
            }
        };
        DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)
            .map_err(io("creating", dir))?;
        let mut versions = BTreeMap::new();
        for entry in std::fs::read_dir(dir).map_err(io("reading", dir))? {
            let path = entry.map_err(io("reading", dir))?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".version"))
            else {
                continue;
            };
            if check_policy_name(name).is_err() {
                // Temporary files (`.NAME.version.tmp`) and strangers.
                continue;
            }
            let text = std::fs::read(&path).map_err(io("reading", &path))?;
            versions.insert(name.to_owned(), parse_version(&text, &path)?);
        }
        Ok(Self {
            dir: dir.to_owned(),
            versions: Mutex::new(versions),
        })
    }

    /// The directory.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The highest accepted version of `name`, if any.
    #[must_use]
    pub fn highest(&self, name: &str) -> Option<u64> {
        self.versions.lock().get(name).copied()
    }

    /// Policies with an accepted version, sorted.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.versions.lock().keys().cloned().collect()
    }

    /// Refuses `version` of `name` when it is not above the highest accepted one.
    ///
    /// # Errors
    /// A `downgrade` [`Refusal`] of `subject`.
    pub fn check(&self, name: &str, version: u64, subject: &str) -> Result<(), Refusal> {
        match self.highest(name) {
            Some(highest) if version <= highest => Err(Refusal::new(
                RefusalCode::Downgrade,
                subject,
                format!(
                    "version {version} is not above the highest accepted version {highest} of \
                     {name}"
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Records `bundle` as accepted: writes `NAME.wpol`, then `NAME.version`, each durably.
    /// Storing the same bytes again is a no-op.
    ///
    /// # Errors
    /// [`VersionStoreError::WouldLower`] when the version is not above the mark (unless the
    /// bytes are the stored ones), or an I/O error.
    pub fn accept(&self, bundle: &VerifiedBundle) -> Result<(), VersionStoreError> {
        let name = bundle.name();
        let version = bundle.version();
        let mut versions = self.versions.lock();
        if let Some(&highest) = versions.get(name)
            && version <= highest
        {
            if version == highest
                && self.read_bundle(name)?.as_deref() == Some(bundle.bundle_bytes())
            {
                return Ok(());
            }
            return Err(VersionStoreError::WouldLower {
                name: name.to_owned(),
                version,
                highest,
            });
        }
        self.replace(&format!("{name}.wpol"), bundle.bundle_bytes())?;
        self.replace(
            &format!("{name}.version"),
            format!("{version}\n").as_bytes(),
        )?;
        versions.insert(name.to_owned(), version);
        tracing::info!(policy = name, version, "recorded accepted policy version");
        Ok(())
    }

    /// The stored bundle of `name` (unverified bytes: verify them again before use).
    ///
    /// # Errors
    /// I/O errors other than the file not existing.
    pub fn accepted_bundle(&self, name: &str) -> Result<Option<Vec<u8>>, VersionStoreError> {
        self.read_bundle(name)
    }

    fn read_bundle(&self, name: &str) -> Result<Option<Vec<u8>>, VersionStoreError> {
        if check_policy_name(name).is_err() {
            return Ok(None);
        }
        let path = self.dir.join(format!("{name}.wpol"));
        match std::fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(source) => Err(VersionStoreError::Io {
                action: "reading",
                path,
                source,
            }),
        }
    }

    /// Replaces `dir/file` with `data`: temp file, write, fsync, rename, fsync the directory.
    fn replace(&self, file: &str, data: &[u8]) -> Result<(), VersionStoreError> {
        let target = self.dir.join(file);
        let temp = self.dir.join(format!(".{file}.tmp"));
        let io = |action, path: &Path| {
            let path = path.to_owned();
            move |source| VersionStoreError::Io {
                action,
                path,
                source,
            }
        };
        let mut out = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&temp)
            .map_err(io("creating", &temp))?;
        out.write_all(data).map_err(io("writing", &temp))?;
        out.sync_all().map_err(io("syncing", &temp))?;
        drop(out);
        std::fs::rename(&temp, &target).map_err(io("renaming to", &target))?;
        File::open(&self.dir)
            .and_then(|d| d.sync_all())
            .map_err(io("syncing", &self.dir))
    }
}

fn parse_version(text: &[u8], path: &Path) -> Result<u64, VersionStoreError> {
    let corrupt = || VersionStoreError::Corrupt {
        path: path.to_owned(),
        content: String::from_utf8_lossy(&text[..text.len().min(64)]).into_owned(),
    };
    let digits = text.strip_suffix(b"\n").unwrap_or(text);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(corrupt());
    }
    std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(corrupt)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;
    use crate::policy::bundle::test_support::{bundle, created};
    use crate::policy::bundle::{BundleCaps, SigningKey, TrustStore, TrustedKey, verify_bundle};

    fn verified(key: &SigningKey, name: &str, version: u64) -> VerifiedBundle {
        let trust = TrustStore::new(
            vec![TrustedKey::new("ops", key.public_key(), &["*"]).unwrap()],
            &BTreeMap::new(),
            Default::default(),
            Default::default(),
        )
        .unwrap();
        verify_bundle(
            &bundle(name, version, &[key]),
            "t",
            &trust,
            &BundleCaps::default(),
            created(),
        )
        .unwrap()
    }

    #[test]
    fn the_mark_only_rises_and_survives_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("state/policies");
        let key = SigningKey::generate().unwrap();
        let store = VersionStore::open(&state).unwrap();
        let mode = std::fs::metadata(&state).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        assert_eq!(store.highest("redact"), None);
        store.check("redact", 1, "s").unwrap();
        let v9 = verified(&key, "redact", 9);
        store.accept(&v9).unwrap();
        store.accept(&v9).unwrap(); // The same bytes again: a no-op.
        assert_eq!(store.highest("redact"), Some(9));
        let r = store.check("redact", 7, "upload of redact").unwrap_err();
        assert_eq!(r.code, RefusalCode::Downgrade);
        assert_eq!(r.subject, "upload of redact");
        assert_eq!(
            r.reason,
            "version 7 is not above the highest accepted version 9 of redact"
        );
        assert_eq!(
            store.check("redact", 9, "s").unwrap_err().code,
            RefusalCode::Downgrade
        );
        store.check("redact", 10, "s").unwrap();
        let err = store.accept(&verified(&key, "redact", 7)).unwrap_err();
        assert!(
            matches!(err, VersionStoreError::WouldLower { highest: 9, .. }),
            "{err}"
        );
        // Another bundle under the same version is refused too.
        let other = SigningKey::generate().unwrap();
        assert!(store.accept(&verified(&other, "redact", 9)).is_err());
        store.accept(&verified(&key, "sensor", 2)).unwrap();
        drop(store);

        let store = VersionStore::open(&state).unwrap();
        assert_eq!(store.highest("redact"), Some(9));
        assert_eq!(store.names(), ["redact", "sensor"]);
        assert_eq!(
            store.accepted_bundle("redact").unwrap().unwrap(),
            v9.bundle_bytes()
        );
        assert_eq!(store.accepted_bundle("nothing").unwrap(), None);
        assert_eq!(store.accepted_bundle("../etc").unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(state.join("redact.version")).unwrap(),
            "9\n"
        );
        let mode = std::fs::metadata(state.join("redact.wpol"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let leftovers: Vec<_> = std::fs::read_dir(&state)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
        assert_eq!(
            store
                .accept(&verified(&key, "redact", 8))
                .unwrap_err()
                .to_string(),
            "refusing to store version 8 of redact: the highest accepted version is 9"
        );
        store.accept(&verified(&key, "redact", 12)).unwrap();
        assert_eq!(
            VersionStore::open(&state).unwrap().highest("redact"),
            Some(12)
        );
    }

    #[test]
    fn a_corrupt_version_file_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        for content in ["", "nine\n", "9 \n", "-1\n", "99999999999999999999999\n"] {
            std::fs::write(dir.path().join("redact.version"), content).unwrap();
            let err = VersionStore::open(dir.path()).unwrap_err();
            assert!(
                matches!(err, VersionStoreError::Corrupt { .. }),
                "{content:?}: {err}"
            );
            assert!(err.to_string().contains("redact.version"), "{err}");
        }
        std::fs::write(dir.path().join("redact.version"), "42").unwrap();
        std::fs::write(dir.path().join(".redact.version.tmp"), "garbage").unwrap();
        let store = VersionStore::open(dir.path()).unwrap();
        assert_eq!(store.highest("redact"), Some(42));
        assert_eq!(store.names(), ["redact"]);
    }
}
