//! [`RegistryError`]: why the registry could not load the configured chain at start-up.

use std::path::PathBuf;

use crate::policy::bundle::VersionStoreError;
use crate::policy::{LoadError, PolicyError, Refusal};

/// Why the configured policies could not be loaded. Messages start with the config key.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A bundle file could not be read.
    #[error("policies[{index}].bundle: cannot read {path}: {source}")]
    Read {
        /// Chain position.
        index: usize,
        /// The bundle.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A configured bundle (or the accepted one in the state directory) was refused.
    #[error("policies[{index}].bundle: {path}: {refusal}")]
    Refused {
        /// Chain position.
        index: usize,
        /// The bundle.
        path: PathBuf,
        /// The refusal.
        #[source]
        refusal: Refusal,
    },
    /// Two positions name the same policy with different bundles, or the state directory
    /// disagrees with the config.
    #[error("policies[{index}].bundle: {reason}")]
    Conflict {
        /// Chain position.
        index: usize,
        /// What disagrees.
        reason: String,
    },
    /// A verified module failed to compile.
    #[error("policies[{index}].bundle: {source}")]
    Load {
        /// Chain position.
        index: usize,
        /// The cause.
        #[source]
        source: Box<LoadError>,
    },
    /// A policy refused its parameters or failed to start.
    #[error("policies[{index}].params: {source}")]
    Init {
        /// Chain position.
        index: usize,
        /// The cause.
        #[source]
        source: Box<PolicyError>,
    },
    /// The version store (rollback protection) failed.
    #[error("state directory: {source}")]
    State {
        /// The cause.
        #[source]
        source: VersionStoreError,
    },
}
