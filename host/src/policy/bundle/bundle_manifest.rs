//! The signed manifest of a bundle: what the signers vouch for. Parsed only after the
//! signatures over its bytes have verified.

use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use weir_abi::{ABI_VERSION, Manifest, ManifestError};

/// The only manifest format.
pub const BUNDLE_MANIFEST_FORMAT: u32 = 1;
/// Longest policy name in a bundle, in bytes (it is used as a file name).
pub const MAX_POLICY_NAME_BYTES: usize = 128;

/// Why a bundle manifest is refused.
#[derive(Debug, thiserror::Error)]
pub enum BundleManifestError {
    /// Not JSON, an unknown or missing field, or a wrong type.
    #[error("manifest JSON: {source}")]
    Json {
        /// The parser's error.
        #[source]
        source: serde_json::Error,
    },
    /// A field breaks a rule.
    #[error("manifest field `{field}`: {reason}")]
    Invalid {
        /// The field, dotted (`module.sha256`).
        field: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// The embedded policy manifest breaks one of its rules.
    #[error("manifest field `policy`: {source}")]
    Policy {
        /// The policy manifest's error.
        #[source]
        source: ManifestError,
    },
}

/// The module a bundle carries, as signed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModuleRef {
    /// sha256 of the module bytes: 64 lowercase hex digits.
    pub sha256: String,
    /// Module length in bytes.
    pub length: u64,
}

/// The most a signer allows the policy; the host applies the tighter of these and its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleLimits {
    /// Longest time one batch may take, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_time_limit_ms: Option<u64>,
    /// Largest linear memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_max_bytes: Option<u64>,
}

/// The manifest the signatures cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BundleManifest {
    /// Must be [`BUNDLE_MANIFEST_FORMAT`].
    pub format: u32,
    /// Policy name (`[a-z0-9._-]`, at most 128 bytes, not starting with `.`).
    pub name: String,
    /// Signed version; each accepted version must be above the last.
    pub version: u64,
    /// ABI version the module speaks.
    pub abi_version: u32,
    /// The module's hash and length.
    pub module: ModuleRef,
    /// The module's declared input and output schema, copied from its embedded manifest.
    pub policy: Manifest,
    /// The module's imports (`module.name`), in module order.
    pub capabilities: Vec<String>,
    /// The signer's limits.
    pub limits: BundleLimits,
    /// When it was signed (RFC 3339, UTC).
    pub created_at: String,
    /// When it stops being accepted (RFC 3339, UTC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
}

impl BundleManifest {
    /// Parses (strictly) and validates.
    ///
    /// # Errors
    /// See [`BundleManifestError`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, BundleManifestError> {
        let manifest: Self =
            serde_json::from_slice(bytes).map_err(|source| BundleManifestError::Json { source })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// The compact JSON that is signed.
    #[must_use]
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a BundleManifest always serializes")
    }

    /// Checks every rule except the ABI versions (the verifier checks those later, with their
    /// own refusal code).
    ///
    /// # Errors
    /// See [`BundleManifestError`].
    pub fn validate(&self) -> Result<(), BundleManifestError> {
        let invalid = |field, reason: String| Err(BundleManifestError::Invalid { field, reason });
        if self.format != BUNDLE_MANIFEST_FORMAT {
            return invalid(
                "format",
                format!(
                    "unknown format {} (expected {BUNDLE_MANIFEST_FORMAT})",
                    self.format
                ),
            );
        }
        if let Err(reason) = check_policy_name(&self.name) {
            return invalid("name", reason);
        }
        if self.version == 0 {
            return invalid("version", "must be at least 1".into());
        }
        if parse_sha256(&self.module.sha256).is_none() {
            return invalid(
                "module.sha256",
                format!("{:?} is not 64 lowercase hex digits", self.module.sha256),
            );
        }
        if self.policy.name != self.name {
            return invalid(
                "policy.name",
                format!(
                    "the module calls itself {:?}, the bundle {:?}",
                    self.policy.name, self.name
                ),
            );
        }
        // The ABI version has its own refusal code; check every other rule of the policy.
        let mut policy = self.policy.clone();
        policy.abi_version = ABI_VERSION;
        policy
            .validate()
            .map_err(|source| BundleManifestError::Policy { source })?;
        for (field, value) in [
            (
                "limits.batch_time_limit_ms",
                self.limits.batch_time_limit_ms,
            ),
            ("limits.memory_max_bytes", self.limits.memory_max_bytes),
        ] {
            if value == Some(0) {
                return invalid(field, "must be above 0 when given".into());
            }
        }
        if let Err(e) = humantime::parse_rfc3339(&self.created_at) {
            return invalid("created_at", format!("{:?}: {e}", self.created_at));
        }
        if let Some(expires) = &self.expires_at
            && let Err(e) = humantime::parse_rfc3339(expires)
        {
            return invalid("expires_at", format!("{expires:?}: {e}"));
        }
        Ok(())
    }

    /// The module's sha256 as bytes (the manifest has been validated, so it is well-formed).
    #[must_use]
    pub fn module_sha256(&self) -> Option<[u8; 32]> {
        parse_sha256(&self.module.sha256)
    }

    /// When the bundle was signed.
    #[must_use]
    pub fn created_at_time(&self) -> Option<SystemTime> {
        humantime::parse_rfc3339(&self.created_at).ok()
    }

    /// When the bundle expires, if it does.
    #[must_use]
    pub fn expires_at_time(&self) -> Option<SystemTime> {
        self.expires_at
            .as_deref()
            .and_then(|t| humantime::parse_rfc3339(t).ok())
    }
}

/// Checks a policy name as bundles use it: 1..=128 bytes of `[a-z0-9._-]`, not starting with
/// `.` (it names files in the state directory).
///
/// # Errors
/// A sentence saying which rule is broken.
pub fn check_policy_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_POLICY_NAME_BYTES {
        return Err(format!(
            "policy name must be 1..={MAX_POLICY_NAME_BYTES} bytes, got {}",
            name.len()
        ));
    }
    if name.starts_with('.') {
        return Err(format!("policy name {name:?} starts with `.`"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !matches!(c, 'a'..='z' | '0'..='9' | '.' | '_' | '-'))
    {
        return Err(format!(
            "policy name {name:?} contains {c:?}; only a-z, 0-9, `.`, `_` and `-` are allowed"
        ));
    }
    Ok(())
}

/// Parses 64 lowercase hex digits.
#[must_use]
pub fn parse_sha256(text: &str) -> Option<[u8; 32]> {
    if text.len() != 64 || !text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use weir_abi::PolicyKind;

    fn sample() -> BundleManifest {
        BundleManifest {
            format: 1,
            name: "redact".into(),
            version: 3,
            abi_version: ABI_VERSION,
            module: ModuleRef {
                sha256: "ab".repeat(32),
                length: 10,
            },
            policy: Manifest {
                abi_version: ABI_VERSION,
                name: "redact".into(),
                crate_version: String::new(),
                sdk_version: String::new(),
                kind: PolicyKind::Filter,
                reads: vec![],
                writes: vec![],
                passthrough: weir_abi::Passthrough::All,
            },
            capabilities: vec!["weir.panic".into()],
            limits: BundleLimits {
                batch_time_limit_ms: Some(50),
                memory_max_bytes: None,
            },
            created_at: "2025-01-02T03:04:05Z".into(),
            expires_at: None,
        }
    }

    fn field_of(m: &BundleManifest) -> String {
        match m.validate().unwrap_err() {
            BundleManifestError::Invalid { field, .. } => field.to_owned(),
            BundleManifestError::Policy { .. } => "policy".to_owned(),
            BundleManifestError::Json { .. } => "json".to_owned(),
        }
    }

    #[test]
    fn round_trips_through_json() {
        let m = sample();
        let json = m.to_json();
        assert!(!String::from_utf8_lossy(&json).contains("memory_max_bytes"));
        assert_eq!(BundleManifest::from_json(&json).unwrap(), m);
        assert_eq!(m.module_sha256(), Some([0xab; 32]));
        assert_eq!(
            m.created_at_time().unwrap(),
            humantime::parse_rfc3339("2025-01-02T03:04:05Z").unwrap()
        );
    }

    #[test]
    fn unknown_fields_are_refused() {
        let mut value: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        value["extra"] = serde_json::json!(1);
        let err = BundleManifest::from_json(value.to_string().as_bytes()).unwrap_err();
        assert!(err.to_string().contains("unknown field `extra`"), "{err}");
        let mut value: serde_json::Value = serde_json::from_slice(&sample().to_json()).unwrap();
        value["limits"]["cpu"] = serde_json::json!(1);
        assert!(BundleManifest::from_json(value.to_string().as_bytes()).is_err());
    }

    #[test]
    fn each_rule_names_its_field() {
        type Mutation = fn(&mut BundleManifest);
        let cases: Vec<(&str, Mutation)> = vec![
            ("format", |m| m.format = 2),
            ("name", |m| m.name = String::new()),
            ("name", |m| m.name = ".hidden".into()),
            ("name", |m| m.name = "Upper".into()),
            ("name", |m| m.name = "a/b".into()),
            ("name", |m| m.name = "x".repeat(129)),
            ("version", |m| m.version = 0),
            ("module.sha256", |m| m.module.sha256 = "AB".repeat(32)),
            ("module.sha256", |m| m.module.sha256 = "ab".into()),
            ("policy.name", |m| m.policy.name = "other".into()),
            ("policy", |m| m.policy.kind = PolicyKind::Transform),
            ("limits.memory_max_bytes", |m| {
                m.limits.memory_max_bytes = Some(0)
            }),
            ("created_at", |m| m.created_at = "yesterday".into()),
            ("expires_at", |m| m.expires_at = Some("2025-01-02".into())),
        ];
        for (field, mutate) in cases {
            let mut m = sample();
            mutate(&mut m);
            assert_eq!(field_of(&m), field);
        }
    }

    #[test]
    fn abi_versions_are_left_to_the_verifier() {
        let mut m = sample();
        m.abi_version = 9;
        m.policy.abi_version = 9;
        m.validate().unwrap();
    }

    #[test]
    fn names_allow_the_file_safe_set() {
        check_policy_name("sensor-normalize_v2.x").unwrap();
        assert!(check_policy_name("a b").unwrap_err().contains("' '"));
        assert_eq!(parse_sha256(&"0".repeat(64)), Some([0; 32]));
        assert_eq!(parse_sha256(&"g".repeat(64)), None);
    }
}
