//! Signed policy bundles: the format, keys, the trust store, verification and rollback protection. See docs/bundle.md.

mod bundle_file;
mod bundle_manifest;
mod key_error;
mod public_key;
mod signing_key;

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
pub use signing_key::{PRIVATE_KEY_LABEL, SigningKey};
