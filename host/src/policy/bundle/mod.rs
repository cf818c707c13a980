//! Signed policy bundles: the format, keys, the trust store, verification and rollback
//! protection. See docs/bundle.md.
//!
//! * [`Bundle`]: the container (header, manifest JSON, signature records, module bytes).
//! * [`BundleManifest`]: what the signatures cover.
//! * [`SigningKey`], [`PublicKey`]: Ed25519 key files, interchangeable with OpenSSL's.
//! * [`sign_module`]: module and keys in, bundle out.
//! * [`TrustStore`]: trusted keys, what they may sign, thresholds and revocations.
//! * [`verify_bundle`]: untrusted bytes in, [`VerifiedBundle`] (the proof) or a refusal out.
//! * [`VersionStore`]: the highest accepted version of each policy, on disk.

mod bundle_file;
mod bundle_manifest;
mod key_error;
mod public_key;
mod sign;
mod signing_key;
#[cfg(test)]
mod test_support;
mod trust_store;
mod verifier;
mod version_store;

pub use bundle_file::{
    BUNDLE_FORMAT_VERSION, BUNDLE_MAGIC, BUNDLE_OVERHEAD_CAP, Bundle, BundleCaps, BundleHeader,
    HEADER_LEN, SIGNATURE_RECORD_LEN, SIGNING_DOMAIN, SignatureRecord, short_id, signed_payload,
};
pub use bundle_manifest::{
    BUNDLE_MANIFEST_FORMAT, BundleLimits, BundleManifest, BundleManifestError,
    MAX_POLICY_NAME_BYTES, ModuleRef, check_policy_name, parse_sha256,
};
pub use key_error::KeyError;
pub use public_key::{ED25519_SPKI_PREFIX, PUBLIC_KEY_LABEL, PublicKey};
pub use sign::{SignError, SignOptions, sign_module};
pub use signing_key::{PRIVATE_KEY_LABEL, SigningKey};
pub use trust_store::{TrustError, TrustStore, TrustedKey};
pub use verifier::{VerifiedBundle, verify_bundle};
pub use version_store::{VersionStore, VersionStoreError};
