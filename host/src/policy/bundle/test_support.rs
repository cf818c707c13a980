//! Self-contained policy modules and keys for the bundle tests.

use std::time::{Duration, SystemTime};

use super::{BundleLimits, SignOptions, SigningKey, sign_module};

/// The embedded manifest of a filter called `name` that reads one column.
pub(crate) fn manifest_json(name: &str) -> String {
    format!(
        r#"{{"abi_version":1,"name":"{name}","kind":"filter","reads":[{{"name":"t","type":"float64"}}]}}"#
    )
}

/// A minimal filter module with a `weir.policy` section holding `manifest` and the import
/// `weir.panic`, plus the exports a policy needs.
pub(crate) fn module_with(manifest: &str) -> Vec<u8> {
    let wat = format!(
        r#"(module
  (import "weir" "panic" (func (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "weir_abi_version") (result i32) (i32.const 1))
  (func (export "weir_alloc") (param i32 i32) (result i32) (i32.const 1024))
  (func (export "weir_free") (param i32 i32 i32))
  (func (export "weir_init") (param i32 i32) (result i32) (i32.const 0))
  (func (export "weir_process") (param i32) (result i32) (i32.const 0))
  (@custom "weir.policy" "{}")
)"#,
        manifest.replace('"', "\\\"")
    );
    wat::parse_str(wat).expect("test WAT parses")
}

/// [`module_with`] the manifest of `name`.
pub(crate) fn module(name: &str) -> Vec<u8> {
    module_with(&manifest_json(name))
}

/// A fixed signing time.
pub(crate) fn created() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_750_000_000)
}

/// Options for `name` at `version`, created at [`created`], no expiry, a 50 ms limit.
pub(crate) fn options(name: &str, version: u64) -> SignOptions {
    SignOptions {
        name: name.to_owned(),
        version,
        created_at: created(),
        expires_at: None,
        limits: BundleLimits {
            batch_time_limit_ms: Some(50),
            memory_max_bytes: None,
        },
    }
}

/// A bundle of [`module`]`(name)` signed by `keys`.
pub(crate) fn bundle(name: &str, version: u64, keys: &[&SigningKey]) -> Vec<u8> {
    sign_module(&module(name), keys, &options(name, version)).expect("test bundle signs")
}
