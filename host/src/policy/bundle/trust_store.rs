//! The trust store: which keys may sign which policy names, how many must sign, and what is
//! revoked.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use glob::Pattern;

use super::{KeyError, PublicKey, parse_sha256, short_id};
use crate::config::TrustConfig;

/// The trust configuration is unusable. Every variant names the entry at fault.
#[derive(Debug, thiserror::Error)]
pub enum TrustError {
    /// A trusted key's file could not be read.
    #[error("trusted key {name}: {source}")]
    Key {
        /// The key's name.
        name: String,
        /// Why.
        #[source]
        source: KeyError,
    },
    /// A revoked-key entry is neither a key id nor a readable `.pub` file.
    #[error(
        "revoked key {entry:?} is neither 64 hex digits nor a readable public key file: {source}"
    )]
    RevokedKey {
        /// The entry.
        entry: String,
        /// Why the file could not be used.
        #[source]
        source: KeyError,
    },
    /// A revoked-module entry is not a sha256.
    #[error("revoked module {entry:?} is not a sha256 (64 hex digits)")]
    RevokedModule {
        /// The entry.
        entry: String,
    },
    /// A policy glob does not parse.
    #[error("{owner}: bad policy-name glob {glob:?}: {source}")]
    Glob {
        /// `key NAME` or `thresholds`.
        owner: String,
        /// The glob.
        glob: String,
        /// The parser's error.
        #[source]
        source: glob::PatternError,
    },
    /// A key may sign no policy at all.
    #[error("trusted key {name} lists no policies it may sign")]
    NoPolicies {
        /// The key's name.
        name: String,
    },
    /// Two keys share a name.
    #[error("two trusted keys are named {name}")]
    DuplicateName {
        /// The name.
        name: String,
    },
    /// The same public key is listed twice.
    #[error("trusted keys {first} and {second} are the same key ({key_id})")]
    DuplicateKey {
        /// The first name.
        first: String,
        /// The second name.
        second: String,
        /// Short key id.
        key_id: String,
    },
    /// A threshold of zero.
    #[error("threshold for {glob:?} is 0; it must be at least 1")]
    ZeroThreshold {
        /// The glob.
        glob: String,
    },
    /// More signatures required than keys exist that may sign.
    #[error(
        "threshold for {glob:?} is {threshold} but only {available} unrevoked trusted key(s) may sign every policy it matches"
    )]
    ThresholdTooHigh {
        /// The glob.
        glob: String,
        /// The threshold.
        threshold: u32,
        /// Keys allowed to sign it.
        available: usize,
    },
    /// No key at all.
    #[error("the trust store has no keys")]
    Empty,
}

/// One trusted key.
#[derive(Debug, Clone)]
pub struct TrustedKey {
    name: String,
    key: PublicKey,
    policies: Vec<Pattern>,
}

impl TrustedKey {
    /// A key named `name` that may sign the policy names matching any of `policies` (globs).
    ///
    /// # Errors
    /// [`TrustError::Glob`] or [`TrustError::NoPolicies`].
    pub fn new(
        name: &str,
        key: PublicKey,
        policies: &[impl AsRef<str>],
    ) -> Result<Self, TrustError> {
        if policies.is_empty() {
            return Err(TrustError::NoPolicies {
                name: name.to_owned(),
            });
        }
        let policies = policies
            .iter()
            .map(|glob| {
                Pattern::new(glob.as_ref()).map_err(|source| TrustError::Glob {
                    owner: format!("key {name}"),
                    glob: glob.as_ref().to_owned(),
                    source,
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            name: name.to_owned(),
            key,
            policies,
        })
    }

    /// The key's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The public key.
    #[must_use]
    pub fn key(&self) -> &PublicKey {
        &self.key
    }

    /// The policy-name globs it may sign.
    #[must_use]
    pub fn policies(&self) -> Vec<&str> {
        self.policies.iter().map(Pattern::as_str).collect()
    }

    /// Whether it may sign the policy `name`.
    #[must_use]
    pub fn may_sign(&self, name: &str) -> bool {
        self.policies.iter().any(|p| p.matches(name))
    }

    /// `name (abcd1234)`, for messages.
    #[must_use]
    pub fn label(&self) -> String {
        format!("{} ({})", self.name, self.key.short_id())
    }
}

/// Trusted keys, thresholds and revocations.
#[derive(Debug, Clone)]
pub struct TrustStore {
    keys: Vec<TrustedKey>,
    thresholds: Vec<(Pattern, u32)>,
    revoked_keys: BTreeSet<[u8; 32]>,
    revoked_modules: BTreeSet<[u8; 32]>,
}

impl TrustStore {
    /// A store that trusts no key: every bundle is refused `untrusted_key`. For hosts that run
    /// no policy (no `[trust]` in the config).
    #[must_use]
    pub fn empty() -> Self {
        Self {
            keys: Vec::new(),
            thresholds: Vec::new(),
            revoked_keys: BTreeSet::new(),
            revoked_modules: BTreeSet::new(),
        }
    }

    /// A store of `keys` with `thresholds` (glob → signatures) and revocations.
    ///
    /// # Errors
    /// Duplicate names or keys, a bad or zero threshold, a threshold above the number of
    /// unrevoked keys that may sign everything its glob matches (a key counts when one of its
    /// globs matches the threshold glob's text, e.g. `*` or the same glob), or no keys.
    pub fn new(
        keys: Vec<TrustedKey>,
        thresholds: &BTreeMap<String, u32>,
        revoked_keys: BTreeSet<[u8; 32]>,
        revoked_modules: BTreeSet<[u8; 32]>,
    ) -> Result<Self, TrustError> {
        if keys.is_empty() {
            return Err(TrustError::Empty);
        }
        let mut names = BTreeSet::new();
        let mut ids: BTreeMap<[u8; 32], &str> = BTreeMap::new();
        for key in &keys {
            if !names.insert(key.name.as_str()) {
                return Err(TrustError::DuplicateName {
                    name: key.name.clone(),
                });
            }
            if let Some(first) = ids.insert(key.key.key_id(), &key.name) {
                return Err(TrustError::DuplicateKey {
                    first: first.to_owned(),
                    second: key.name.clone(),
                    key_id: key.key.short_id(),
                });
            }
        }
        let mut parsed = Vec::with_capacity(thresholds.len());
        for (glob, &threshold) in thresholds {
            if threshold == 0 {
                return Err(TrustError::ZeroThreshold { glob: glob.clone() });
            }
            let pattern = Pattern::new(glob).map_err(|source| TrustError::Glob {
                owner: "thresholds".into(),
                glob: glob.clone(),
                source,
            })?;
            let available = keys
                .iter()
                .filter(|k| !revoked_keys.contains(&k.key.key_id()) && k.may_sign(glob))
                .count();
            if usize::try_from(threshold).unwrap_or(usize::MAX) > available {
                return Err(TrustError::ThresholdTooHigh {
                    glob: glob.clone(),
                    threshold,
                    available,
                });
            }
            parsed.push((pattern, threshold));
        }
        Ok(Self {
            keys,
            thresholds: parsed,
            revoked_keys,
            revoked_modules,
        })
    }

    /// The store `[trust]` describes. `resolve` turns a configured path into a real one (relative
    /// paths are relative to the config file).
    ///
    /// # Errors
    /// A [`TrustError`] naming the entry at fault.
    pub fn from_config(
        config: &TrustConfig,
        resolve: impl Fn(&Path) -> PathBuf,
    ) -> Result<Self, TrustError> {
        let keys = config
            .keys
            .iter()
            .map(|k| {
                let key =
                    PublicKey::load(&resolve(&k.public_key)).map_err(|source| TrustError::Key {
                        name: k.name.clone(),
                        source,
                    })?;
                TrustedKey::new(&k.name, key, &k.policies)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut revoked_keys = BTreeSet::new();
        for entry in &config.revoked_keys {
            let id = match parse_hex_id(entry) {
                Some(id) => id,
                None => PublicKey::load(&resolve(Path::new(entry)))
                    .map_err(|source| TrustError::RevokedKey {
                        entry: entry.clone(),
                        source,
                    })?
                    .key_id(),
            };
            revoked_keys.insert(id);
        }
        let revoked_modules = config
            .revoked_modules
            .iter()
            .map(|entry| {
                parse_hex_id(entry).ok_or_else(|| TrustError::RevokedModule {
                    entry: entry.clone(),
                })
            })
            .collect::<Result<_, _>>()?;
        Self::new(keys, &config.thresholds, revoked_keys, revoked_modules)
    }

    /// A store of these `.pub` files, each allowed to sign any policy, named after the file
    /// stem, threshold 1, nothing revoked.
    ///
    /// # Errors
    /// A key file that cannot be read, or two files with the same stem or key.
    pub fn from_public_key_files(paths: &[PathBuf]) -> Result<Self, TrustError> {
        let keys = paths
            .iter()
            .map(|path| {
                let name = path.file_stem().map_or_else(
                    || path.display().to_string(),
                    |s| s.to_string_lossy().into(),
                );
                let key = PublicKey::load(path).map_err(|source| TrustError::Key {
                    name: name.clone(),
                    source,
                })?;
                TrustedKey::new(&name, key, &["*"])
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::new(keys, &BTreeMap::new(), BTreeSet::new(), BTreeSet::new())
    }

    /// The trusted key with this key id.
    #[must_use]
    pub fn key(&self, key_id: &[u8; 32]) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| &k.key.key_id() == key_id)
    }

    /// The trusted key with this name.
    #[must_use]
    pub fn key_named(&self, name: &str) -> Option<&TrustedKey> {
        self.keys.iter().find(|k| k.name == name)
    }

    /// Every trusted key.
    #[must_use]
    pub fn keys(&self) -> &[TrustedKey] {
        &self.keys
    }

    /// How many trusted keys must sign the policy `name`: the highest threshold whose glob
    /// matches it, else 1.
    #[must_use]
    pub fn threshold(&self, name: &str) -> u32 {
        self.thresholds
            .iter()
            .filter(|(p, _)| p.matches(name))
            .map(|&(_, n)| n)
            .max()
            .unwrap_or(1)
    }

    /// Whether the key with this id is revoked.
    #[must_use]
    pub fn is_key_revoked(&self, key_id: &[u8; 32]) -> bool {
        self.revoked_keys.contains(key_id)
    }

    /// Whether the module with this sha256 is revoked.
    #[must_use]
    pub fn is_module_revoked(&self, sha256: &[u8; 32]) -> bool {
        self.revoked_modules.contains(sha256)
    }

    /// `name (abcd1234)` for a trusted key id, or `unknown key abcd1234`.
    #[must_use]
    pub fn describe_key(&self, key_id: &[u8; 32]) -> String {
        self.key(key_id).map_or_else(
            || format!("unknown key {}", short_id(key_id)),
            TrustedKey::label,
        )
    }
}

/// 64 hex digits (either case) as 32 bytes.
fn parse_hex_id(text: &str) -> Option<[u8; 32]> {
    parse_sha256(&text.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TrustKeyConfig;
    use crate::policy::bundle::SigningKey;

    fn key() -> PublicKey {
        SigningKey::generate().unwrap().public_key()
    }

    fn store(keys: Vec<TrustedKey>, thresholds: &[(&str, u32)]) -> Result<TrustStore, TrustError> {
        let thresholds = thresholds.iter().map(|&(g, n)| (g.to_owned(), n)).collect();
        TrustStore::new(keys, &thresholds, BTreeSet::new(), BTreeSet::new())
    }

    #[test]
    fn keys_sign_only_their_globs_and_thresholds_take_the_highest() {
        let ops = TrustedKey::new("ops", key(), &["sensor-*", "redact"]).unwrap();
        let release = TrustedKey::new("release", key(), &["*"]).unwrap();
        let dev = TrustedKey::new("dev", key(), &["sensor-*"]).unwrap();
        assert!(ops.may_sign("sensor-normalize"));
        assert!(ops.may_sign("redact"));
        assert!(!ops.may_sign("redact-v2"));
        let id = ops.key().key_id();
        let store = store(
            vec![ops, release, dev],
            &[("sensor-*", 2), ("sensor-critical", 3), ("*", 1)],
        )
        .unwrap();
        assert_eq!(store.threshold("redact"), 1);
        assert_eq!(store.threshold("sensor-normalize"), 2);
        assert_eq!(store.threshold("sensor-critical"), 3);
        assert_eq!(store.key(&id).unwrap().name(), "ops");
        assert_eq!(store.key_named("dev").unwrap().policies(), ["sensor-*"]);
        assert!(
            store
                .describe_key(&[0; 32])
                .starts_with("unknown key 00000000")
        );
        assert!(store.describe_key(&id).starts_with("ops ("));
    }

    #[test]
    fn a_threshold_needs_enough_keys() {
        let ops = TrustedKey::new("ops", key(), &["sensor-*"]).unwrap();
        let narrow = TrustedKey::new("narrow", key(), &["sensor-a"]).unwrap();
        let err = store(vec![ops.clone(), narrow], &[("sensor-*", 2)]).unwrap_err();
        assert!(
            matches!(err, TrustError::ThresholdTooHigh { available: 1, .. }),
            "{err}"
        );
        assert!(matches!(
            store(vec![ops.clone()], &[("x", 0)]).unwrap_err(),
            TrustError::ZeroThreshold { .. }
        ));
        assert!(matches!(
            store(vec![ops.clone()], &[("[", 1)]).unwrap_err(),
            TrustError::Glob { .. }
        ));
        // A revoked key does not count.
        let other = TrustedKey::new("other", key(), &["*"]).unwrap();
        let revoked = BTreeSet::from([other.key().key_id()]);
        let thresholds = BTreeMap::from([("sensor-*".to_owned(), 2)]);
        assert!(matches!(
            TrustStore::new(vec![ops, other], &thresholds, revoked, BTreeSet::new()),
            Err(TrustError::ThresholdTooHigh { .. })
        ));
    }

    #[test]
    fn duplicates_and_empty_stores_are_refused() {
        let k = key();
        let a = TrustedKey::new("a", k, &["*"]).unwrap();
        let b = TrustedKey::new("b", k, &["*"]).unwrap();
        assert!(matches!(
            store(vec![a.clone(), b], &[]).unwrap_err(),
            TrustError::DuplicateKey { .. }
        ));
        let a2 = TrustedKey::new("a", key(), &["*"]).unwrap();
        assert!(matches!(
            store(vec![a, a2], &[]).unwrap_err(),
            TrustError::DuplicateName { .. }
        ));
        assert!(matches!(store(vec![], &[]).unwrap_err(), TrustError::Empty));
        assert!(matches!(
            TrustedKey::new("x", key(), &[] as &[&str]).unwrap_err(),
            TrustError::NoPolicies { .. }
        ));
    }

    #[test]
    fn from_config_resolves_paths_and_revocations() {
        let dir = tempfile::tempdir().unwrap();
        let ops = SigningKey::generate().unwrap();
        let old = SigningKey::generate().unwrap();
        let gone = SigningKey::generate().unwrap();
        ops.write_pair(&dir.path().join("keys"), "ops").unwrap();
        old.write_pair(&dir.path().join("keys"), "old").unwrap();
        let config = TrustConfig {
            keys: vec![TrustKeyConfig {
                name: "ops".into(),
                public_key: "keys/ops.pub".into(),
                policies: vec!["*".into()],
            }],
            thresholds: BTreeMap::new(),
            revoked_keys: vec![
                "keys/old.pub".into(),
                gone.public_key().key_id_hex().to_ascii_uppercase(),
            ],
            revoked_modules: vec!["ab".repeat(32)],
        };
        let base = dir.path().to_owned();
        let store = TrustStore::from_config(&config, |p| base.join(p)).unwrap();
        assert_eq!(store.key(&ops.key_id()).unwrap().name(), "ops");
        assert!(store.is_key_revoked(&old.key_id()));
        assert!(store.is_key_revoked(&gone.key_id()));
        assert!(!store.is_key_revoked(&ops.key_id()));
        assert!(store.is_module_revoked(&[0xab; 32]));

        let mut bad = config.clone();
        bad.revoked_modules = vec!["nope".into()];
        let err = TrustStore::from_config(&bad, |p| base.join(p)).unwrap_err();
        assert!(err.to_string().contains("\"nope\""), "{err}");
        let mut bad = config.clone();
        bad.revoked_keys = vec!["keys/missing.pub".into()];
        let err = TrustStore::from_config(&bad, |p| base.join(p)).unwrap_err();
        assert!(matches!(err, TrustError::RevokedKey { .. }), "{err}");
        let mut bad = config;
        bad.keys[0].public_key = "keys/absent.pub".into();
        let err = TrustStore::from_config(&bad, |p| base.join(p)).unwrap_err();
        assert!(err.to_string().contains("trusted key ops"), "{err}");
        assert!(err.to_string().contains("absent.pub"), "{err}");
    }

    #[test]
    fn public_key_files_are_named_by_stem() {
        let dir = tempfile::tempdir().unwrap();
        let a = SigningKey::generate().unwrap();
        let (_, path) = a.write_pair(dir.path(), "alice").unwrap();
        let store = TrustStore::from_public_key_files(&[path]).unwrap();
        let key = store.key(&a.key_id()).unwrap();
        assert_eq!(key.name(), "alice");
        assert!(key.may_sign("anything"));
        assert_eq!(store.threshold("anything"), 1);
    }
}
