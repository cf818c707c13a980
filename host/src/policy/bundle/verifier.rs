//! Verification: from untrusted bytes to a [`VerifiedBundle`], cheapest and least trusting
//! check first. No field of the manifest is parsed before the signatures over it verify, and
//! nothing of the module is parsed before its hash matches the signed one.

use std::time::SystemTime;

use sha2::{Digest, Sha256};
use weir_abi::{ABI_VERSION, Manifest};

use super::{
    Bundle, BundleCaps, BundleManifest, HEADER_LEN, SIGNATURE_RECORD_LEN, TrustStore, short_id,
};
use crate::policy::{Refusal, RefusalCode, inspect};

/// The first 8 bytes of a WebAssembly core module: `\0asm` and version 1.
const WASM_CORE_HEADER: [u8; 8] = *b"\0asm\x01\0\0\0";

/// A bundle whose signatures, trust, expiry, revocations, ABI, hash and module manifest were
/// all checked by [`verify_bundle`]. Only the verifier constructs it: holding one is the proof
/// of verification the rest of the host asks for.
#[derive(Clone)]
pub struct VerifiedBundle {
    manifest: BundleManifest,
    bytes: Vec<u8>,
    module_start: usize,
    sha256: [u8; 32],
    signers: Vec<String>,
    signer_key_ids: Vec<[u8; 32]>,
}

impl std::fmt::Debug for VerifiedBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedBundle")
            .field("name", &self.manifest.name)
            .field("version", &self.manifest.version)
            .field("sha256", &self.sha256_hex())
            .field("signers", &self.signers)
            .finish_non_exhaustive()
    }
}

impl VerifiedBundle {
    /// The signed manifest.
    #[must_use]
    pub fn manifest(&self) -> &BundleManifest {
        &self.manifest
    }

    /// The policy name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// The signed version.
    #[must_use]
    pub fn version(&self) -> u64 {
        self.manifest.version
    }

    /// The module bytes.
    #[must_use]
    pub fn module(&self) -> &[u8] {
        &self.bytes[self.module_start..]
    }

    /// sha256 of the module.
    #[must_use]
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// sha256 of the module, lowercase hex.
    #[must_use]
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Names of the trusted keys whose valid signatures count for this policy, sorted.
    #[must_use]
    pub fn signers(&self) -> &[String] {
        &self.signers
    }

    /// Key ids of [`VerifiedBundle::signers`], in the same order.
    #[must_use]
    pub fn signer_key_ids(&self) -> &[[u8; 32]] {
        &self.signer_key_ids
    }

    /// The whole bundle as received (to persist).
    #[must_use]
    pub fn bundle_bytes(&self) -> &[u8] {
        &self.bytes
    }
}

/// Verifies `bytes` as a bundle from `subject` (named in refusals) against `trust`, at time
/// `now`. The steps, in order, and the code each refuses with:
///
/// 1. size caps and the container (`too_large`, `malformed`);
/// 2. each signature: a revoked key id (`revoked`), a trusted key whose signature fails
///    (`bad_signature`), an unknown key (ignored); no valid signature (`untrusted_key`);
/// 3. the manifest JSON, strictly (`malformed`);
/// 4. valid signers allowed to sign this name, against its threshold (`untrusted_key`);
/// 5. expiry (`expired`); 6. a revoked module hash (`revoked`); 7. ABI versions
///    (`abi_mismatch`); 8. module length and sha256 (`bad_signature`); 9. the wasm header,
///    the module's own manifest and imports against the signed ones (`malformed`).
///
/// # Errors
/// The first [`Refusal`].
pub fn verify_bundle(
    bytes: &[u8],
    subject: &str,
    trust: &TrustStore,
    caps: &BundleCaps,
    now: SystemTime,
) -> Result<VerifiedBundle, Refusal> {
    let refuse = |code, reason: String| Refusal::new(code, subject, reason);
    let bundle = Bundle::parse(bytes, caps).map_err(|r| refuse(r.code, r.reason))?;

    // 2. Signatures, before anything in the manifest is read.
    let payload = bundle.signed_payload();
    let mut valid = Vec::new();
    let mut unknown = Vec::new();
    for record in bundle.signatures() {
        if trust.is_key_revoked(&record.key_id) {
            return Err(refuse(
                RefusalCode::Revoked,
                format!(
                    "signed by revoked key {}",
                    trust.describe_key(&record.key_id)
                ),
            ));
        }
        match trust.key(&record.key_id) {
            None => unknown.push(short_id(&record.key_id)),
            Some(key) if key.key().verify(&payload, &record.signature) => valid.push(key),
            Some(key) => {
                return Err(refuse(
                    RefusalCode::BadSignature,
                    format!("the signature by key {} does not verify", key.label()),
                ));
            }
        }
    }
    if valid.is_empty() {
        return Err(refuse(
            RefusalCode::UntrustedKey,
            format!(
                "no signature from a trusted key (signed by unknown key(s) {})",
                unknown.join(", ")
            ),
        ));
    }

    // 3. The manifest, now that trusted keys vouch for its bytes.
    let manifest = BundleManifest::from_json(bundle.manifest_bytes())
        .map_err(|e| refuse(RefusalCode::Malformed, e.to_string()))?;
    let name = manifest.name.as_str();

    // 4. Who may sign this name, and how many must.
    let (allowed, refused): (Vec<_>, Vec<_>) = valid.into_iter().partition(|k| k.may_sign(name));
    let threshold = trust.threshold(name);
    if allowed.len() < usize::try_from(threshold).unwrap_or(usize::MAX) {
        let names: Vec<_> = allowed.iter().map(|k| k.name()).collect();
        let mut reason = format!(
            "policy {name} needs {threshold} signature(s) from trusted keys, has {} ({})",
            allowed.len(),
            names.join(", ")
        );
        if !refused.is_empty() {
            let labels: Vec<_> = refused.iter().map(|k| k.label()).collect();
            reason.push_str(&format!(
                "; not allowed to sign {name}: {}",
                labels.join(", ")
            ));
        }
        return Err(refuse(RefusalCode::UntrustedKey, reason));
    }

    // 5. Expiry.
    if let Some(expires) = manifest.expires_at_time()
        && now >= expires
    {
        return Err(refuse(
            RefusalCode::Expired,
            format!(
                "expires_at {} has passed (now {})",
                manifest.expires_at.as_deref().unwrap_or_default(),
                humantime::format_rfc3339_seconds(now)
            ),
        ));
    }

    // 6. Revoked module.
    let signed_sha = manifest
        .module_sha256()
        .expect("a validated manifest has a well-formed sha256");
    if trust.is_module_revoked(&signed_sha) {
        return Err(refuse(
            RefusalCode::Revoked,
            format!("module.sha256 {} is revoked", manifest.module.sha256),
        ));
    }

    // 7. ABI.
    for (field, found) in [
        ("abi_version", manifest.abi_version),
        ("policy.abi_version", manifest.policy.abi_version),
    ] {
        if found != ABI_VERSION {
            return Err(refuse(
                RefusalCode::AbiMismatch,
                format!("{field} is {found}, this host speaks ABI {ABI_VERSION}"),
            ));
        }
    }

    // 8. The module is the one signed.
    let module = bundle.module();
    let sha256: [u8; 32] = Sha256::digest(module).into();
    if module.len() as u64 != manifest.module.length || sha256 != signed_sha {
        return Err(refuse(
            RefusalCode::BadSignature,
            format!(
                "the module does not match the signed hash: {} bytes with sha256 {}, signed \
                 module.length {} and module.sha256 {}",
                module.len(),
                hex::encode(sha256),
                manifest.module.length,
                manifest.module.sha256
            ),
        ));
    }

    // 9. The module says about itself what was signed.
    if module.get(..8) != Some(WASM_CORE_HEADER.as_slice()) {
        return Err(refuse(
            RefusalCode::Malformed,
            "the module is not a WebAssembly core module (bad header)".into(),
        ));
    }
    let inspection = inspect(module).map_err(|e| {
        refuse(
            RefusalCode::Malformed,
            format!("the module does not load: {e}"),
        )
    })?;
    let differing = policy_diff(&inspection.manifest, &manifest.policy);
    if !differing.is_empty() {
        return Err(refuse(
            RefusalCode::Malformed,
            format!(
                "the module's embedded manifest differs from the signed policy in: {}",
                differing.join(", ")
            ),
        ));
    }
    let mut imported = inspection.imports;
    let mut signed = manifest.capabilities.clone();
    imported.sort();
    signed.sort();
    if imported != signed {
        let extra: Vec<_> = imported.iter().filter(|i| !signed.contains(i)).collect();
        let missing: Vec<_> = signed.iter().filter(|s| !imported.contains(s)).collect();
        return Err(refuse(
            RefusalCode::Malformed,
            format!(
                "the module's imports differ from the signed capabilities (imported but not \
                 signed: {extra:?}; signed but not imported: {missing:?})"
            ),
        ));
    }

    let mut signers: Vec<_> = allowed
        .iter()
        .map(|k| (k.name().to_owned(), k.key().key_id()))
        .collect();
    signers.sort();
    let module_start = HEADER_LEN
        + bundle.manifest_bytes().len()
        + bundle.signatures().len() * SIGNATURE_RECORD_LEN;
    tracing::debug!(
        subject,
        policy = name,
        version = manifest.version,
        sha256 = %hex::encode(sha256),
        "bundle verified"
    );
    Ok(VerifiedBundle {
        manifest,
        bytes: bytes.to_vec(),
        module_start,
        sha256,
        signer_key_ids: signers.iter().map(|(_, id)| *id).collect(),
        signers: signers.into_iter().map(|(name, _)| name).collect(),
    })
}

/// The fields in which two policy manifests differ.
fn policy_diff(embedded: &Manifest, signed: &Manifest) -> Vec<&'static str> {
    let mut fields = Vec::new();
    let mut check = |differs: bool, field| {
        if differs {
            fields.push(field);
        }
    };
    check(embedded.abi_version != signed.abi_version, "abi_version");
    check(embedded.name != signed.name, "name");
    check(
        embedded.crate_version != signed.crate_version,
        "crate_version",
    );
    check(embedded.sdk_version != signed.sdk_version, "sdk_version");
    check(embedded.kind != signed.kind, "kind");
    check(embedded.reads != signed.reads, "reads");
    check(embedded.writes != signed.writes, "writes");
    check(embedded.passthrough != signed.passthrough, "passthrough");
    fields
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::time::Duration;

    use super::*;
    use crate::policy::bundle::test_support::{
        bundle, created, manifest_json, module, module_with, options,
    };
    use crate::policy::bundle::{
        BundleManifest, SignatureRecord, SigningKey, TrustedKey, sign_module, signed_payload,
    };

    struct Keys {
        ops: SigningKey,
        release: SigningKey,
        dev: SigningKey,
    }

    fn keys() -> Keys {
        Keys {
            ops: SigningKey::generate().unwrap(),
            release: SigningKey::generate().unwrap(),
            dev: SigningKey::generate().unwrap(),
        }
    }

    /// ops and release may sign anything; dev only `sensor-*`; `sensor-*` needs 2.
    fn trust_with(k: &Keys, revoked_keys: &[[u8; 32]], revoked_modules: &[[u8; 32]]) -> TrustStore {
        TrustStore::new(
            vec![
                TrustedKey::new("ops", k.ops.public_key(), &["*"]).unwrap(),
                TrustedKey::new("release", k.release.public_key(), &["*"]).unwrap(),
                TrustedKey::new("dev", k.dev.public_key(), &["sensor-*"]).unwrap(),
            ],
            &BTreeMap::from([("sensor-*".to_owned(), 2)]),
            revoked_keys.iter().copied().collect(),
            revoked_modules.iter().copied().collect::<BTreeSet<_>>(),
        )
        .unwrap()
    }

    fn verify(bytes: &[u8], trust: &TrustStore) -> Result<VerifiedBundle, Refusal> {
        verify_bundle(bytes, "test.wpol", trust, &BundleCaps::default(), created())
    }

    fn refusal(bytes: &[u8], trust: &TrustStore) -> Refusal {
        let refusal = verify(bytes, trust).unwrap_err();
        assert_eq!(refusal.subject, "test.wpol");
        refusal
    }

    /// Re-signs `manifest` (edited JSON) around `module` with `keys`.
    fn resign(manifest: &BundleManifest, module: &[u8], keys: &[&SigningKey]) -> Vec<u8> {
        let json = manifest.to_json();
        let payload = signed_payload(&json);
        let signatures = keys
            .iter()
            .map(|k| SignatureRecord {
                key_id: k.key_id(),
                signature: k.sign(&payload),
            })
            .collect();
        Bundle::new(json, signatures, module)
            .encode(&BundleCaps::default())
            .unwrap()
    }

    fn manifest_of(bytes: &[u8]) -> BundleManifest {
        let bundle = Bundle::parse(bytes, &BundleCaps::default()).unwrap();
        BundleManifest::from_json(bundle.manifest_bytes()).unwrap()
    }

    #[test]
    fn a_good_bundle_verifies_and_carries_its_proof() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let bytes = bundle("redact", 3, &[&k.release, &k.ops]);
        let verified = verify(&bytes, &trust).unwrap();
        assert_eq!(verified.name(), "redact");
        assert_eq!(verified.version(), 3);
        assert_eq!(verified.module(), module("redact").as_slice());
        assert_eq!(verified.bundle_bytes(), bytes.as_slice());
        assert_eq!(verified.signers(), ["ops", "release"]);
        assert_eq!(
            verified.signer_key_ids(),
            [k.ops.key_id(), k.release.key_id()]
        );
        let sha: [u8; 32] = Sha256::digest(module("redact")).into();
        assert_eq!(verified.sha256(), sha);
        assert_eq!(verified.sha256_hex(), hex::encode(sha));
        assert_eq!(verified.manifest().capabilities, ["weir.panic"]);
    }

    #[test]
    fn flipping_any_signed_byte_breaks_the_signature() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let bytes = bundle("redact", 3, &[&k.ops]);
        let bundle = Bundle::parse(&bytes, &BundleCaps::default()).unwrap();
        let manifest_at = HEADER_LEN + 10;
        let module_at = bytes.len() - bundle.module().len() + 20;
        for at in [manifest_at, module_at, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            let r = refusal(&bad, &trust);
            assert_eq!(r.code, RefusalCode::BadSignature, "byte {at}: {r}");
        }
        let mut bad = bytes.clone();
        bad[manifest_at] ^= 0x01;
        let reason = refusal(&bad, &trust).reason;
        assert!(
            reason.contains(&format!("ops ({})", k.ops.public_key().short_id())),
            "{reason}"
        );
        let mut bad = bytes.clone();
        bad[module_at] ^= 0x01;
        let reason = refusal(&bad, &trust).reason;
        assert!(
            reason.contains("does not match the signed hash"),
            "{reason}"
        );
        // A flipped signature byte.
        let mut bad = bytes.clone();
        bad[HEADER_LEN + bundle.manifest_bytes().len() + 40] ^= 0x80;
        assert_eq!(refusal(&bad, &trust).code, RefusalCode::BadSignature);
    }

    #[test]
    fn unknown_and_unauthorized_signers_are_untrusted() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let stranger = SigningKey::generate().unwrap();
        let r = refusal(&bundle("redact", 1, &[&stranger]), &trust);
        assert_eq!(r.code, RefusalCode::UntrustedKey);
        assert!(
            r.reason.contains(&stranger.public_key().short_id()),
            "{}",
            r.reason
        );
        // An unknown key next to a trusted one is ignored.
        let v = verify(&bundle("redact", 1, &[&stranger, &k.ops]), &trust).unwrap();
        assert_eq!(v.signers(), ["ops"]);
        // dev may sign only sensor-*.
        let r = refusal(&bundle("redact", 1, &[&k.dev]), &trust);
        assert_eq!(r.code, RefusalCode::UntrustedKey);
        assert!(
            r.reason.contains("not allowed to sign redact: dev ("),
            "{}",
            r.reason
        );
    }

    #[test]
    fn thresholds_count_allowed_signers() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let r = refusal(&bundle("sensor-normalize", 1, &[&k.ops]), &trust);
        assert_eq!(r.code, RefusalCode::UntrustedKey);
        assert_eq!(
            r.reason,
            "policy sensor-normalize needs 2 signature(s) from trusted keys, has 1 (ops)"
        );
        let v = verify(&bundle("sensor-normalize", 1, &[&k.dev, &k.ops]), &trust).unwrap();
        assert_eq!(v.signers(), ["dev", "ops"]);
    }

    #[test]
    fn revocations_refuse() {
        let k = keys();
        let bytes = bundle("redact", 1, &[&k.release, &k.ops]);
        let trust = trust_with(&k, &[k.ops.key_id()], &[]);
        let r = refusal(&bytes, &trust);
        assert_eq!(r.code, RefusalCode::Revoked);
        assert!(r.reason.contains("revoked key ops ("), "{}", r.reason);
        let sha: [u8; 32] = Sha256::digest(module("redact")).into();
        let trust = trust_with(&k, &[], &[sha]);
        let r = refusal(&bytes, &trust);
        assert_eq!(r.code, RefusalCode::Revoked);
        assert!(r.reason.contains(&hex::encode(sha)), "{}", r.reason);
    }

    #[test]
    fn container_damage_is_malformed_or_too_large() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let bytes = bundle("redact", 1, &[&k.ops]);
        for cut in [
            0,
            5,
            HEADER_LEN,
            HEADER_LEN + 3,
            bytes.len() - 100,
            bytes.len() - 1,
        ] {
            assert_eq!(
                refusal(&bytes[..cut], &trust).code,
                RefusalCode::Malformed,
                "cut {cut}"
            );
        }
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(refusal(&long, &trust).code, RefusalCode::Malformed);
        let mut huge = bytes[..HEADER_LEN].to_vec();
        huge[20..24].copy_from_slice(&(1u32 << 30).to_le_bytes());
        assert_eq!(refusal(&huge, &trust).code, RefusalCode::TooLarge);
        let small = BundleCaps {
            max_module_bytes: 64,
            ..BundleCaps::default()
        };
        let r = verify_bundle(&bytes, "s", &trust, &small, created()).unwrap_err();
        assert_eq!(r.code, RefusalCode::TooLarge);
        assert_eq!(r.subject, "s");
    }

    #[test]
    fn a_signed_but_broken_manifest_is_malformed() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let module = module("redact");
        let payload_of = |json: &[u8]| {
            let payload = signed_payload(json);
            Bundle::new(
                json.to_vec(),
                vec![SignatureRecord {
                    key_id: k.ops.key_id(),
                    signature: k.ops.sign(&payload),
                }],
                module.as_slice(),
            )
            .encode(&BundleCaps::default())
            .unwrap()
        };
        let good = manifest_of(&bundle("redact", 1, &[&k.ops]));
        let mut value: serde_json::Value = serde_json::from_slice(&good.to_json()).unwrap();
        value["surprise"] = serde_json::json!(true);
        let r = refusal(&payload_of(value.to_string().as_bytes()), &trust);
        assert_eq!(r.code, RefusalCode::Malformed);
        assert!(r.reason.contains("surprise"), "{}", r.reason);
        assert_eq!(
            refusal(&payload_of(b"{not json"), &trust).code,
            RefusalCode::Malformed
        );
        let mut bad = good.clone();
        bad.version = 0;
        let r = refusal(&resign(&bad, &module, &[&k.ops]), &trust);
        assert_eq!(r.code, RefusalCode::Malformed);
        assert!(r.reason.contains("`version`"), "{}", r.reason);
    }

    #[test]
    fn expiry_and_abi_are_checked() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let mut opts = options("redact", 1);
        opts.expires_at = Some(created() + Duration::from_secs(60));
        let bytes = sign_module(&module("redact"), &[&k.ops], &opts).unwrap();
        let at = |now| verify_bundle(&bytes, "t", &trust, &BundleCaps::default(), now);
        assert!(at(created() + Duration::from_secs(59)).is_ok());
        let r = at(created() + Duration::from_secs(61)).unwrap_err();
        assert_eq!(r.code, RefusalCode::Expired);
        assert!(
            r.reason.contains("expires_at 2025-06-15T15:07:40Z"),
            "{}",
            r.reason
        );

        let good = manifest_of(&bundle("redact", 1, &[&k.ops]));
        let mut bad = good.clone();
        bad.abi_version = ABI_VERSION + 1;
        let r = refusal(&resign(&bad, &module("redact"), &[&k.ops]), &trust);
        assert_eq!(r.code, RefusalCode::AbiMismatch);
        assert!(r.reason.starts_with("abi_version is 2"), "{}", r.reason);
        let mut bad = good;
        bad.policy.abi_version = ABI_VERSION + 1;
        let r = refusal(&resign(&bad, &module("redact"), &[&k.ops]), &trust);
        assert_eq!(r.code, RefusalCode::AbiMismatch);
        assert!(r.reason.starts_with("policy.abi_version"), "{}", r.reason);
    }

    #[test]
    fn the_module_must_be_wasm_and_match_what_was_signed() {
        let k = keys();
        let trust = trust_with(&k, &[], &[]);
        let good = manifest_of(&bundle("redact", 1, &[&k.ops]));
        let with_module = |module: &[u8], edit: &dyn Fn(&mut BundleManifest)| {
            let mut m = good.clone();
            m.module.sha256 = hex::encode(Sha256::digest(module));
            m.module.length = module.len() as u64;
            edit(&mut m);
            resign(&m, module, &[&k.ops])
        };
        // Not wasm at all, correctly signed.
        let r = refusal(&with_module(b"#!/bin/sh\necho pwned\n", &|_| {}), &trust);
        assert_eq!(r.code, RefusalCode::Malformed);
        assert!(r.reason.contains("bad header"), "{}", r.reason);
        // A wasm header then garbage.
        let r = refusal(&with_module(b"\0asm\x01\0\0\0\xff\xff", &|_| {}), &trust);
        assert_eq!(r.code, RefusalCode::Malformed);
        assert!(r.reason.contains("does not load"), "{}", r.reason);
        // The embedded manifest says something else than the signed one.
        let other = module_with(&manifest_json("redact").replace("float64", "int64"));
        let r = refusal(&with_module(&other, &|_| {}), &trust);
        assert_eq!(r.code, RefusalCode::Malformed);
        assert!(r.reason.ends_with("in: reads"), "{}", r.reason);
        // Capabilities that do not match the imports.
        let r = refusal(
            &with_module(&module("redact"), &|m| {
                m.capabilities = vec!["weir.log".into()]
            }),
            &trust,
        );
        assert_eq!(r.code, RefusalCode::Malformed);
        assert!(r.reason.contains("[\"weir.panic\"]"), "{}", r.reason);
        assert!(r.reason.contains("[\"weir.log\"]"), "{}", r.reason);
        // A length that does not match.
        let r = refusal(
            &with_module(&module("redact"), &|m| m.module.length += 1),
            &trust,
        );
        assert_eq!(r.code, RefusalCode::BadSignature);
    }
}
