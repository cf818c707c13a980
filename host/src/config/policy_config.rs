//! `[[policies]]`: the chain, in order.

use std::num::NonZeroU64;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::ByteSize;
use crate::policy::{FailMode, Recycle};

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
    /// Replace the policy's instance with a fresh one after this many batches (default:
    /// never). The policy's own state (aggregates) starts over at each recycle.
    #[serde(default)]
    pub recycle_after_batches: Option<NonZeroU64>,
    /// Replace the policy's instance as soon as its linear memory has reached this size after
    /// a batch (default: never); below `limits.memory`. Bounds a guest that leaks.
    #[serde(default)]
    pub recycle_memory: Option<ByteSize>,
}

impl PolicyConfig {
    /// When the policy's instance is recycled.
    #[must_use]
    pub fn recycle(&self) -> Recycle {
        Recycle {
            after_batches: self.recycle_after_batches,
            memory_bytes: self.recycle_memory.map(|m| m.0),
        }
    }
}
