//! The bundle manifest decoder (`BundleManifest::from_json`, `validate`). Asserts, for any
//! bytes (docs/fuzzing.md):
//!
//! * an error names the field or the JSON position and says why;
//! * a manifest that decodes also validates, and `to_json` → `from_json` gives an equal
//!   manifest whose JSON is the same again (the signed form is a fixed point);
//! * the typed accessors agree with the text fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use weir_host::policy::bundle::{BundleManifest, BundleManifestError, parse_sha256};

fuzz_target!(|data: &[u8]| {
    match BundleManifest::from_json(data) {
        Ok(manifest) => {
            manifest.validate().expect("a decoded manifest validates");
            let json = manifest.to_json();
            let again = BundleManifest::from_json(&json).unwrap_or_else(|e| {
                panic!(
                    "the re-encoded manifest is refused: {e}\n{}",
                    String::from_utf8_lossy(&json)
                )
            });
            assert_eq!(again, manifest, "to_json → from_json changed the manifest");
            assert_eq!(again.to_json(), json, "to_json is not a fixed point");
            assert_eq!(
                manifest.module_sha256(),
                parse_sha256(&manifest.module.sha256)
            );
            assert!(manifest.module_sha256().is_some());
            assert!(manifest.created_at_time().is_some());
            assert_eq!(
                manifest.expires_at.is_some(),
                manifest.expires_at_time().is_some()
            );
        }
        Err(error) => {
            let text = error.to_string();
            assert!(text.starts_with("manifest "), "{text}");
            match &error {
                BundleManifestError::Json { .. } => {}
                BundleManifestError::Invalid { field, reason } => {
                    assert!(!field.is_empty());
                    assert!(!reason.trim().is_empty(), "no reason for `{field}`");
                }
                BundleManifestError::Policy { source } => {
                    assert!(!source.to_string().trim().is_empty());
                }
            }
        }
    }
});
