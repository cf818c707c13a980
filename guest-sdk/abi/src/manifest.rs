//! The policy manifest: what a module declares about itself, stored as UTF-8 JSON in the
//! [`MANIFEST_SECTION`](crate::MANIFEST_SECTION) custom section.
//!
//! The SDK's macros write it at compile time, so the host knows a policy's projection and output
//! schema before it compiles or runs any of the module.

use std::collections::BTreeSet;
use std::string::{String, ToString};
use std::vec::Vec;

use serde::{Deserialize, Serialize};

use crate::{ABI_VERSION, ParsedType, TypeParseError, parse_type};

/// Largest manifest section the host accepts, in bytes.
pub const MAX_MANIFEST_BYTES: usize = 64 * 1024;
/// Most columns a policy may declare as inputs or as outputs.
pub const MAX_COLUMNS: usize = 256;
/// Longest column or policy name, in bytes.
pub const MAX_NAME_BYTES: usize = 256;

/// Whether a policy selects rows or builds new columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PolicyKind {
    /// Returns a selection bitmap; the host keeps the selected rows of its own batch.
    Filter,
    /// Returns output columns (and optionally a selection).
    Transform,
}

/// Which input columns a transform's output keeps, without copying them through the guest.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Passthrough {
    /// Output is the declared `writes` only. The row count may change.
    None,
    /// Input columns the policy does not read pass through; read columns are consumed (unless
    /// written again under the same name).
    Unread,
    /// Every input column passes through; a written column with an input column's name replaces
    /// it in place.
    #[default]
    All,
}

/// One declared column.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnDecl {
    /// Column name (any UTF-8, e.g. `sensor.temperature.celsius`).
    pub name: String,
    /// Type in its text form (see [`ParsedType`]).
    #[serde(rename = "type")]
    pub ty: String,
    /// Inputs: the policy runs even when the batch lacks this column. Outputs: the column may
    /// contain nulls.
    #[serde(default)]
    pub optional: bool,
}

impl ColumnDecl {
    /// The parsed type.
    ///
    /// # Errors
    /// When the type text is malformed.
    pub fn parsed_type(&self) -> Result<ParsedType<'_>, TypeParseError> {
        parse_type(&self.ty)
    }
}

/// The manifest a policy module carries in its `weir.policy` custom section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Must equal [`ABI_VERSION`].
    pub abi_version: u32,
    /// Policy name (the crate name unless overridden).
    pub name: String,
    /// The crate version the module was built from (informational; the signed version lives in
    /// the bundle).
    #[serde(default)]
    pub crate_version: String,
    /// The `weir-sdk` version that built the module.
    #[serde(default)]
    pub sdk_version: String,
    /// Filter or transform.
    pub kind: PolicyKind,
    /// Input projection: the only columns the host copies into guest memory, in this order.
    pub reads: Vec<ColumnDecl>,
    /// Output columns of a transform, in this order. Empty for filters.
    #[serde(default)]
    pub writes: Vec<ColumnDecl>,
    /// Which input columns a transform keeps. Ignored for filters.
    #[serde(default)]
    pub passthrough: Passthrough,
}

/// Why a manifest is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    /// The section is larger than [`MAX_MANIFEST_BYTES`].
    #[error("manifest is {len} bytes, over the {MAX_MANIFEST_BYTES}-byte cap")]
    TooLarge {
        /// Section size in bytes.
        len: usize,
    },
    /// The JSON does not parse into a [`Manifest`].
    #[error("manifest is not valid JSON: {message}")]
    Json {
        /// The parser's message.
        message: String,
    },
    /// `abi_version` is not [`ABI_VERSION`].
    #[error("manifest declares ABI version {found}, this host speaks {ABI_VERSION}")]
    AbiMismatch {
        /// The declared version.
        found: u32,
    },
    /// A rule of the manifest is broken.
    #[error("invalid manifest: {reason}")]
    Invalid {
        /// What is wrong.
        reason: String,
    },
}

impl Manifest {
    /// Parses and validates a manifest section.
    ///
    /// # Errors
    /// See [`ManifestError`].
    pub fn from_json(bytes: &[u8]) -> Result<Self, ManifestError> {
        if bytes.len() > MAX_MANIFEST_BYTES {
            return Err(ManifestError::TooLarge { len: bytes.len() });
        }
        let manifest: Self = serde_json::from_slice(bytes).map_err(|e| ManifestError::Json {
            message: e.to_string(),
        })?;
        manifest.validate()?;
        Ok(manifest)
    }

    /// Serializes to the compact JSON stored in the custom section.
    #[must_use]
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("a Manifest always serializes")
    }

    /// Checks every rule a manifest must follow.
    ///
    /// # Errors
    /// See [`ManifestError`].
    pub fn validate(&self) -> Result<(), ManifestError> {
        let invalid = |reason: String| Err(ManifestError::Invalid { reason });
        if self.abi_version != ABI_VERSION {
            return Err(ManifestError::AbiMismatch {
                found: self.abi_version,
            });
        }
        if self.name.is_empty() || self.name.len() > MAX_NAME_BYTES {
            return invalid(std::format!(
                "policy name must be 1..={MAX_NAME_BYTES} bytes, got {}",
                self.name.len()
            ));
        }
        if self.kind == PolicyKind::Filter && !self.writes.is_empty() {
            return invalid("a filter cannot declare output columns".to_string());
        }
        if self.kind == PolicyKind::Transform && self.writes.is_empty() {
            return invalid("a transform must declare at least one output column".to_string());
        }
        for (what, cols) in [("reads", &self.reads), ("writes", &self.writes)] {
            if cols.len() > MAX_COLUMNS {
                return invalid(std::format!(
                    "{what} declares {} columns, over the cap of {MAX_COLUMNS}",
                    cols.len()
                ));
            }
            let mut seen = BTreeSet::new();
            for col in cols {
                if col.name.is_empty() || col.name.len() > MAX_NAME_BYTES {
                    return invalid(std::format!(
                        "{what}: column name must be 1..={MAX_NAME_BYTES} bytes"
                    ));
                }
                if !seen.insert(col.name.as_str()) {
                    return invalid(std::format!("{what}: column `{}` declared twice", col.name));
                }
                if let Err(e) = col.parsed_type() {
                    return invalid(std::format!(
                        "{what}: column `{}` has type `{}`: {e}",
                        col.name,
                        col.ty
                    ));
                }
            }
        }
        Ok(())
    }

    /// Whether the policy keeps the input's rows one for one, so the host may pass a large batch
    /// in several morsels and pass columns through without copying them.
    #[must_use]
    pub fn is_row_preserving(&self) -> bool {
        self.kind == PolicyKind::Filter || self.passthrough != Passthrough::None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Manifest {
        Manifest {
            abi_version: ABI_VERSION,
            name: "p".into(),
            crate_version: "0.1.0".into(),
            sdk_version: "0.1.0".into(),
            kind: PolicyKind::Transform,
            reads: std::vec![ColumnDecl {
                name: "a".into(),
                ty: "float64".into(),
                optional: true
            }],
            writes: std::vec![ColumnDecl {
                name: "b".into(),
                ty: "timestamp(ms, UTC)".into(),
                optional: false
            }],
            passthrough: Passthrough::Unread,
        }
    }

    #[test]
    fn manifest_round_trips_through_json() {
        let m = sample();
        assert_eq!(Manifest::from_json(m.to_json().as_bytes()).unwrap(), m);
    }

    #[test]
    fn broken_manifests_are_refused_with_the_rule() {
        let mut m = sample();
        m.abi_version = 7;
        assert_eq!(
            Manifest::from_json(m.to_json().as_bytes()),
            Err(ManifestError::AbiMismatch { found: 7 })
        );
        let mut m = sample();
        m.writes[0].ty = "int128".into();
        let err = Manifest::from_json(m.to_json().as_bytes())
            .unwrap_err()
            .to_string();
        assert!(err.contains("`b` has type `int128`"), "{err}");
        let mut m = sample();
        m.reads.push(m.reads[0].clone());
        let err = m.validate().unwrap_err().to_string();
        assert!(err.contains("declared twice"), "{err}");
        let mut m = sample();
        m.kind = PolicyKind::Filter;
        assert!(m.validate().is_err());
        assert!(matches!(
            Manifest::from_json(b"{\"abi_version\":1"),
            Err(ManifestError::Json { .. })
        ));
        assert!(matches!(
            Manifest::from_json(&std::vec![b' '; MAX_MANIFEST_BYTES + 1]),
            Err(ManifestError::TooLarge { .. })
        ));
    }
}
