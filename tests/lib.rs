//! Helpers shared by Weir's integration tests: engines, built policy modules, hostile modules.

pub mod bundle_tools;
pub mod flow_rows;
pub mod hostile_wat;
pub mod netns;
pub mod weir_process;

use std::path::PathBuf;
use std::sync::Arc;

use weir_host::engine::{Engine, Limits};
use weir_host::policy::{PolicyModule, PolicyRunner};

/// Where `cargo xtask build-policies` put the modules: `$WEIR_POLICY_DIR`, else
/// `<workspace>/target/policies`.
#[must_use]
pub fn policy_dir() -> PathBuf {
    std::env::var_os("WEIR_POLICY_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"),
        PathBuf::from,
    )
}

/// The bytes of a built policy or test guest. Panics with instructions when it is missing:
/// these tests never skip.
#[must_use]
pub fn policy_bytes(name: &str) -> Vec<u8> {
    let path = policy_dir().join(format!("{name}.wasm"));
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}. Build the policies first: `cargo xtask build-policies` \
             (or run everything with `cargo xtask test`)",
            path.display()
        )
    })
}

/// An engine with default limits.
#[must_use]
pub fn engine() -> Engine {
    Engine::new(Limits::default()).expect("engine starts")
}

/// Compiles a built policy.
#[must_use]
pub fn load(engine: &Engine, name: &str) -> Arc<PolicyModule> {
    Arc::new(PolicyModule::compile(engine, name, &policy_bytes(name)).expect("policy loads"))
}

/// A runner for a built policy with JSON parameters.
#[must_use]
pub fn runner(engine: &Engine, name: &str, params: &str) -> PolicyRunner {
    PolicyRunner::new(load(engine, name), params.as_bytes().to_vec()).expect("policy starts")
}
