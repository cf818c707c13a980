//! `[[policies]]`: the chain, in order.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::policy::FailMode;

/// One policy of the chain.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// The signed bundle (`.wpol`, made by `weir sign`). Relative paths are relative to the
    /// config file.
    #[serde(default)]
    pub bundle: Option<PathBuf>,
    /// Refused with a helpful message: unsigned modules are never run.
    #[serde(default)]
    pub module: Option<PathBuf>,
    /// Parameters handed to the policy's init, as a TOML table (passed on as JSON).
    #[serde(default)]
    pub params: Option<toml::Table>,
    /// What happens to a batch the policy fails on (default `dead_letter`).
    #[serde(default)]
    pub on_error: FailMode,
}
