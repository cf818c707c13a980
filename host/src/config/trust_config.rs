//! `[trust]` (placeholder until the bundle code lands; replace this whole file).

use serde::{Deserialize, Serialize};

/// `[trust]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {}

/// `[[trust.keys]]`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TrustKeyConfig {}
