//! `[trust]`: the keys that may sign policy bundles, per-name signature thresholds and
//! revocations. Turned into a [`TrustStore`](crate::policy::bundle::TrustStore) by
//! `TrustStore::from_config`; see `docs/bundle.md`.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// `[trust]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// The keys that may sign bundles.
    #[serde(default)]
    pub keys: Vec<TrustKeyConfig>,
    /// Policy-name glob → how many trusted keys must sign a matching policy (default 1; a
    /// name matching several globs takes the highest).
    #[serde(default)]
    pub thresholds: BTreeMap<String, u32>,
    /// Keys no longer trusted: a key id (64 hex digits, sha256 of the raw public key) or the
    /// path of the key's `.pub` file.
    #[serde(default)]
    pub revoked_keys: Vec<String>,
    /// Module sha256s (64 hex digits) never to run again.
    #[serde(default)]
    pub revoked_modules: Vec<String>,
}

/// `[[trust.keys]]`: one trusted key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustKeyConfig {
    /// The key's name, shown as a bundle's signer.
    pub name: String,
    /// Its PEM `PUBLIC KEY` file; relative paths are relative to the config file.
    pub public_key: PathBuf,
    /// Policy-name globs the key may sign (default `["*"]`).
    #[serde(default = "every_policy")]
    pub policies: Vec<String>,
}

fn every_policy() -> Vec<String> {
    vec!["*".to_owned()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Wrapper {
        trust: TrustConfig,
    }

    #[test]
    fn parses_the_documented_example() {
        let text = r#"
            [trust]
            revoked_keys = ["keys/old.pub"]
            revoked_modules = ["00"]
            [[trust.keys]]
            name = "ops"
            public_key = "keys/ops.pub"
            policies = ["sensor-*", "redact"]
            [[trust.keys]]
            name = "release"
            public_key = "/etc/weir/release.pub"
            [trust.thresholds]
            "sensor-*" = 2
        "#;
        let trust = toml::from_str::<Wrapper>(text).unwrap().trust;
        assert_eq!(trust.keys.len(), 2);
        assert_eq!(trust.keys[0].policies, ["sensor-*", "redact"]);
        assert_eq!(trust.keys[1].policies, ["*"]);
        assert_eq!(
            trust.keys[1].public_key,
            PathBuf::from("/etc/weir/release.pub")
        );
        assert_eq!(trust.thresholds["sensor-*"], 2);
        assert_eq!(trust.revoked_keys, ["keys/old.pub"]);
        assert_eq!(trust, trust.clone());
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<Wrapper>("[trust]\nrevoke = []\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `revoke`"), "{err}");
        let err = toml::from_str::<Wrapper>(
            "[[trust.keys]]\nname = \"a\"\npublic_key = \"a.pub\"\nallow = []\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("unknown field `allow`"), "{err}");
        let err = toml::from_str::<Wrapper>("[[trust.keys]]\nname = \"a\"\n").unwrap_err();
        assert!(err.to_string().contains("public_key"), "{err}");
    }
}
