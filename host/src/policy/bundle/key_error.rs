//! Errors reading, writing and generating key files.

use std::path::PathBuf;

/// A key file could not be read, written or understood. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The file could not be read.
    #[error("reading key file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file could not be written.
    #[error("writing key file {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists; keys are never overwritten.
    #[error("key file {} already exists; refusing to overwrite it", path.display())]
    Exists {
        /// The file.
        path: PathBuf,
    },
    /// The file is not PEM.
    #[error("key file {} is not PEM: {source}", path.display())]
    Pem {
        /// The file.
        path: PathBuf,
        /// The PEM parser's error.
        #[source]
        source: pem::PemError,
    },
    /// The PEM block has another label.
    #[error("key file {} holds a \"{found}\" PEM block, expected \"{expected}\"", path.display())]
    WrongLabel {
        /// The file.
        path: PathBuf,
        /// The label found.
        found: String,
        /// The label expected.
        expected: &'static str,
    },
    /// The private key is not an Ed25519 PKCS#8 key.
    #[error("key file {} is not an Ed25519 PKCS#8 private key: {reason}", path.display())]
    BadPrivateKey {
        /// The file.
        path: PathBuf,
        /// ring's reason (its error type does not implement `std::error::Error` here).
        reason: String,
    },
    /// The public key is not an Ed25519 SubjectPublicKeyInfo.
    #[error("key file {} is not an Ed25519 public key: {reason}", path.display())]
    BadPublicKey {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The system random generator failed.
    #[error("generating an Ed25519 key failed (no system randomness)")]
    Generate,
    /// A key name that cannot be a file name.
    #[error(
        "key name {name:?} must be 1..=64 characters of A-Z, a-z, 0-9, `.`, `_`, `-`, not starting with `.`"
    )]
    BadName {
        /// The name.
        name: String,
    },
}
