//! `[admin]` (placeholder until the admin API lands; replace this whole file).

use serde::{Deserialize, Serialize};

/// `[admin]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {}

/// `[admin.tls]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {}

impl AdminConfig {
    /// Checks the section.
    ///
    /// # Errors
    /// Never (placeholder).
    pub fn validate(&self, _file: &str) -> Result<(), super::ConfigError> {
        Ok(())
    }
}
