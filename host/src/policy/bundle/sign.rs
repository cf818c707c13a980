//! Signing: a module and one or more keys in, a bundle out.

use std::collections::BTreeSet;
use std::time::SystemTime;

use sha2::{Digest, Sha256};
use weir_abi::ABI_VERSION;

use super::{
    BUNDLE_MANIFEST_FORMAT, Bundle, BundleCaps, BundleLimits, BundleManifest, BundleManifestError,
    ModuleRef, SignatureRecord, SigningKey, short_id, signed_payload,
};
use crate::policy::{LoadErrorKind, Refusal, inspect};

/// What the signer states about the module.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignOptions {
    /// Policy name; must equal the module's embedded name.
    pub name: String,
    /// Version (at least 1; each release must be above the last one a host accepted).
    pub version: u64,
    /// Signing time.
    pub created_at: SystemTime,
    /// When hosts stop accepting the bundle.
    pub expires_at: Option<SystemTime>,
    /// The most the signer allows the policy.
    pub limits: BundleLimits,
}

/// Why a module could not be signed.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    /// The module does not inspect cleanly.
    #[error("the module is not a loadable policy: {source}")]
    Module {
        /// Why.
        #[source]
        source: LoadErrorKind,
    },
    /// The module calls itself something else.
    #[error(
        "the module's embedded name is {embedded:?}, but the bundle is to be named {requested:?}"
    )]
    NameMismatch {
        /// `--name`.
        requested: String,
        /// The module's own name.
        embedded: String,
    },
    /// No keys.
    #[error("no signing key given")]
    NoKeys,
    /// A key is given twice.
    #[error("key {key_id} is given twice")]
    DuplicateKey {
        /// Short key id.
        key_id: String,
    },
    /// The expiry is not after the signing time.
    #[error("the expiry time is not after the signing time")]
    ExpiresBeforeCreated,
    /// The manifest breaks a rule (bad name, version 0, ...).
    #[error(transparent)]
    Manifest {
        /// Why.
        #[from]
        source: BundleManifestError,
    },
    /// The bundle would be refused by the container rules (too large).
    #[error("cannot write the bundle: {source}")]
    Encode {
        /// Why.
        #[source]
        source: Refusal,
    },
}

/// Signs `module` with every key in `keys`: reads its embedded manifest and imports, writes the
/// bundle manifest (schema, capabilities, hash, length, `opts`) and a signature per key over
/// [`signed_payload`].
///
/// # Errors
/// See [`SignError`].
pub fn sign_module(
    module: &[u8],
    keys: &[&SigningKey],
    opts: &SignOptions,
) -> Result<Vec<u8>, SignError> {
    if keys.is_empty() {
        return Err(SignError::NoKeys);
    }
    let inspection = inspect(module).map_err(|source| SignError::Module { source })?;
    if inspection.manifest.name != opts.name {
        return Err(SignError::NameMismatch {
            requested: opts.name.clone(),
            embedded: inspection.manifest.name,
        });
    }
    if opts.expires_at.is_some_and(|e| e <= opts.created_at) {
        return Err(SignError::ExpiresBeforeCreated);
    }
    let rfc3339 = |t: SystemTime| humantime::format_rfc3339_seconds(t).to_string();
    let manifest = BundleManifest {
        format: BUNDLE_MANIFEST_FORMAT,
        name: opts.name.clone(),
        version: opts.version,
        abi_version: ABI_VERSION,
        module: ModuleRef {
            sha256: hex::encode(Sha256::digest(module)),
            length: module.len() as u64,
        },
        policy: inspection.manifest,
        capabilities: inspection.imports,
        limits: opts.limits.clone(),
        created_at: rfc3339(opts.created_at),
        expires_at: opts.expires_at.map(rfc3339),
    };
    manifest.validate()?;
    let json = manifest.to_json();
    let payload = signed_payload(&json);
    let mut seen = BTreeSet::new();
    let mut signatures = Vec::with_capacity(keys.len());
    for key in keys {
        let key_id = key.key_id();
        if !seen.insert(key_id) {
            return Err(SignError::DuplicateKey {
                key_id: short_id(&key_id),
            });
        }
        signatures.push(SignatureRecord {
            key_id,
            signature: key.sign(&payload),
        });
    }
    Bundle::new(json, signatures, module)
        .encode(&BundleCaps::default())
        .map_err(|source| SignError::Encode { source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::bundle::test_support::{module, options};

    #[test]
    fn the_bundle_holds_the_module_and_a_manifest_copied_from_it() {
        let key = SigningKey::generate().unwrap();
        let other = SigningKey::generate().unwrap();
        let module = module("redact");
        let mut opts = options("redact", 4);
        opts.expires_at = Some(opts.created_at + std::time::Duration::from_secs(86_400));
        let bytes = sign_module(&module, &[&key, &other], &opts).unwrap();
        let bundle = Bundle::parse(&bytes, &BundleCaps::default()).unwrap();
        assert_eq!(bundle.module(), module.as_slice());
        let manifest = BundleManifest::from_json(bundle.manifest_bytes()).unwrap();
        assert_eq!(manifest.name, "redact");
        assert_eq!(manifest.version, 4);
        assert_eq!(manifest.module.length, module.len() as u64);
        assert_eq!(manifest.module.sha256, hex::encode(Sha256::digest(&module)));
        assert_eq!(manifest.capabilities, ["weir.panic"]);
        assert_eq!(manifest.policy, inspect(&module).unwrap().manifest);
        assert_eq!(manifest.limits.batch_time_limit_ms, Some(50));
        assert_eq!(manifest.created_at, "2025-06-15T15:06:40Z");
        assert_eq!(manifest.expires_at.as_deref(), Some("2025-06-16T15:06:40Z"));
        let payload = bundle.signed_payload();
        assert_eq!(bundle.signatures().len(), 2);
        assert_eq!(bundle.signatures()[0].key_id, key.key_id());
        assert!(
            key.public_key()
                .verify(&payload, &bundle.signatures()[0].signature)
        );
        assert!(
            other
                .public_key()
                .verify(&payload, &bundle.signatures()[1].signature)
        );
    }

    #[test]
    fn refuses_what_it_cannot_vouch_for() {
        let key = SigningKey::generate().unwrap();
        let err = sign_module(&module("redact"), &[&key], &options("other", 1)).unwrap_err();
        assert!(
            err.to_string().contains("\"redact\"") && err.to_string().contains("\"other\""),
            "{err}"
        );
        let err = sign_module(b"\0asm\x01\0\0\0", &[&key], &options("x", 1)).unwrap_err();
        assert!(matches!(err, SignError::Module { .. }), "{err}");
        let err = sign_module(&module("redact"), &[], &options("redact", 1)).unwrap_err();
        assert!(matches!(err, SignError::NoKeys));
        let err = sign_module(&module("redact"), &[&key, &key], &options("redact", 1)).unwrap_err();
        assert!(matches!(err, SignError::DuplicateKey { .. }));
        let err = sign_module(&module("redact"), &[&key], &options("redact", 0)).unwrap_err();
        assert!(err.to_string().contains("`version`"), "{err}");
        let err = sign_module(&module("Bad"), &[&key], &options("Bad", 1)).unwrap_err();
        assert!(err.to_string().contains("`name`"), "{err}");
        let mut opts = options("redact", 1);
        opts.expires_at = Some(opts.created_at);
        let err = sign_module(&module("redact"), &[&key], &opts).unwrap_err();
        assert!(matches!(err, SignError::ExpiresBeforeCreated));
    }
}
