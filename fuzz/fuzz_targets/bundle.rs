//! The bundle container parser (`Bundle::parse`, `BundleHeader::parse`) and the verifier in
//! front of it. Asserts, for any bytes (docs/fuzzing.md):
//!
//! * a refusal is `malformed` or `too_large`, names the subject and says why;
//! * `Bundle::parse` and `BundleHeader::parse` agree, and what parses has the header's exact
//!   length, at least one signature and no key id twice;
//! * re-encoding what parsed gives back the same bytes, and they parse to an equal bundle;
//! * tighter caps never accept what looser caps refuse;
//! * `verify_bundle` (trusting the key the seeds were signed with) refuses whatever does not
//!   parse, and what it accepts carries exactly the parsed module and manifest.
#![no_main]

use std::path::Path;
use std::sync::LazyLock;
use std::time::{Duration, SystemTime};

use libfuzzer_sys::fuzz_target;
use weir_host::policy::RefusalCode;
use weir_host::policy::bundle::{
    Bundle, BundleCaps, BundleHeader, BundleManifest, HEADER_LEN, PublicKey, SIGNATURE_RECORD_LEN,
    TrustStore, TrustedKey, verify_bundle,
};

/// The store the verifier runs against: the seed key, allowed to sign every name.
static TRUST: LazyLock<TrustStore> = LazyLock::new(|| {
    let key = PublicKey::from_pem(
        include_bytes!("../seed-key.pub"),
        Path::new("fuzz/seed-key.pub"),
    )
    .expect("fuzz/seed-key.pub is the seed key");
    let trusted = TrustedKey::new("seed", key, &["*"]).expect("a trusted key");
    TrustStore::new(
        vec![trusted],
        &Default::default(),
        Default::default(),
        Default::default(),
    )
    .expect("a trust store")
});

/// Small caps: a module of at most 1 KiB, a 4 KiB manifest, 3 signatures.
const SMALL: BundleCaps = BundleCaps {
    max_module_bytes: 1024,
    max_manifest_bytes: 4096,
    max_signatures: 3,
};

fn check_refusal(refusal: &weir_host::policy::Refusal, subject: &str) {
    assert!(
        matches!(refusal.code, RefusalCode::Malformed | RefusalCode::TooLarge),
        "container refusal with code {:?}: {}",
        refusal.code,
        refusal.reason
    );
    assert_eq!(refusal.subject, subject);
    assert!(
        !refusal.reason.trim().is_empty(),
        "a refusal without a reason"
    );
}

fuzz_target!(|data: &[u8]| {
    let caps = BundleCaps::default();
    let header = BundleHeader::parse(data, &caps);
    match Bundle::parse(data, &caps) {
        Ok(bundle) => {
            let header = header.expect("the header of a parsed bundle parses");
            assert_eq!(header.total_len(), data.len());
            assert_eq!(header.manifest_len, bundle.manifest_bytes().len());
            assert_eq!(header.module_len, bundle.module().len());
            assert_eq!(header.signature_count, bundle.signatures().len());
            assert!(!bundle.signatures().is_empty());
            assert_eq!(
                data.len(),
                HEADER_LEN
                    + bundle.manifest_bytes().len()
                    + bundle.signatures().len() * SIGNATURE_RECORD_LEN
                    + bundle.module().len()
            );
            let mut ids: Vec<_> = bundle.signatures().iter().map(|s| s.key_id).collect();
            ids.sort_unstable();
            ids.dedup();
            assert_eq!(ids.len(), bundle.signatures().len(), "a key id twice");
            let encoded = bundle.encode(&caps).expect("a parsed bundle re-encodes");
            assert_eq!(encoded, data, "re-encoding changed the bytes");
            let again = Bundle::parse(&encoded, &caps).expect("an encoded bundle parses");
            assert_eq!(again, bundle);
            assert_eq!(bundle.clone().into_owned(), bundle);
        }
        Err(refusal) => {
            check_refusal(&refusal, "bundle");
            if data.len() <= caps.max_bundle_bytes()
                && let Err(header_refusal) = &header
            {
                assert_eq!(
                    (header_refusal.code, &header_refusal.reason),
                    (refusal.code, &refusal.reason),
                    "parse and header parse disagree"
                );
            }
            assert!(
                Bundle::parse(data, &SMALL).is_err(),
                "small caps accept what the default caps refuse"
            );
        }
    }
    if let Err(refusal) = Bundle::parse(data, &SMALL) {
        check_refusal(&refusal, "bundle");
    }

    // The verifier, a day after the seeds were signed (2026-01-01).
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600 + 86_400);
    match verify_bundle(data, "fuzz input", &TRUST, &caps, now) {
        Ok(verified) => {
            let bundle = Bundle::parse(data, &caps).expect("a verified bundle parses");
            assert_eq!(verified.module(), bundle.module());
            assert_eq!(verified.bundle_bytes(), data);
            let manifest = BundleManifest::from_json(bundle.manifest_bytes())
                .expect("a verified manifest parses");
            assert_eq!(verified.manifest(), &manifest);
            assert_eq!(verified.signers().len(), verified.signer_key_ids().len());
            assert!(!verified.signers().is_empty());
        }
        Err(refusal) => {
            assert_eq!(refusal.subject, "fuzz input");
            assert!(
                !refusal.reason.trim().is_empty(),
                "a refusal without a reason"
            );
        }
    }
});
