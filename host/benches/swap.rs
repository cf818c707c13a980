//! Hot-swap benchmarks, in process with the real registry and real signed bundles:
//!
//! * upload → active for each example policy: `PolicyRegistry::submit` (verify, rollback and
//!   schema checks, compile on a background thread, canary on recent live batches, persist,
//!   swap), p50 and p99 over 50 pushes of new code (each version carries a different nonce
//!   section, so every push really compiles; no compile cache);
//! * batch latency p99 of the chain while those swaps happen, against the same chain without
//!   swaps, measured in the same run.
//!
//! Writes rows and figures as JSON to `$WEIR_SWAP_SUMMARY` (read by `cargo xtask bench`).
//! Needs the built policies in `$WEIR_POLICY_DIR`.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use arrow_array::RecordBatch;
use serde_json::{Value, json};
use weir_host::engine::{Engine, Limits};
use weir_host::policy::bundle::{
    BundleCaps, BundleLimits, SignOptions, SigningKey, TrustStore, sign_module,
};
use weir_host::policy::registry::{ChainSpec, PolicyRegistry, RegistryOptions};
use weir_host::policy::{FailMode, PolicyControl, Recycle};
use weir_host::sources::generate::{flow_batch, sensor_batch};

const PUSHES: u64 = 50;
const ROWS: usize = 8192;

fn policy_dir() -> PathBuf {
    std::env::var_os("WEIR_POLICY_DIR").map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/policies"),
        PathBuf::from,
    )
}

/// `module` plus a custom section holding `nonce`: same code and declarations, another hash.
fn with_nonce(module: &[u8], nonce: u64) -> Vec<u8> {
    let name = b"weir.bench.nonce";
    let mut payload = vec![u8::try_from(name.len()).expect("short name")];
    payload.extend_from_slice(name);
    payload.extend_from_slice(&nonce.to_le_bytes());
    let mut out = module.to_vec();
    out.push(0);
    let mut len = payload.len();
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            break;
        }
        out.push(byte | 0x80);
    }
    out.extend_from_slice(&payload);
    out
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at.min(sorted.len() - 1)]
}

struct Case {
    policy: &'static str,
    params: &'static str,
    /// A policy before it in the chain (not swapped), to give it the columns it reads.
    before: Option<(&'static str, &'static str)>,
    input: fn() -> RecordBatch,
}

struct Measured {
    upload_ms: Vec<f64>,
    quiet_batch_ms: Vec<f64>,
    swap_batch_ms: Vec<f64>,
}

fn measure(case: &Case, dir: &std::path::Path) -> Measured {
    let key = SigningKey::generate().expect("key");
    let keys = dir.join(case.policy);
    let _ = std::fs::remove_dir_all(&keys);
    let (_, public) = key.write_pair(&keys, "bench").expect("key files");
    let module = std::fs::read(policy_dir().join(format!("{}.wasm", case.policy)))
        .expect("built policy (cargo xtask build-policies)");
    let sign = |version: u64| {
        let opts = SignOptions {
            name: case.policy.to_owned(),
            version,
            created_at: SystemTime::now(),
            expires_at: None,
            limits: BundleLimits::default(),
        };
        sign_module(&with_nonce(&module, version), &[&key], &opts).expect("sign")
    };
    let first = keys.join("v1.wpol");
    std::fs::write(&first, sign(1)).expect("write bundle");
    let mut specs = Vec::new();
    if let Some((policy, params)) = case.before {
        let module = std::fs::read(policy_dir().join(format!("{policy}.wasm"))).expect("built");
        let opts = SignOptions {
            name: policy.to_owned(),
            version: 1,
            created_at: SystemTime::now(),
            expires_at: None,
            limits: BundleLimits::default(),
        };
        let path = keys.join("before.wpol");
        std::fs::write(&path, sign_module(&module, &[&key], &opts).expect("sign")).expect("write");
        specs.push(ChainSpec {
            bundle: path,
            params: params.as_bytes().to_vec(),
            fail_mode: FailMode::DeadLetter,
            recycle: Recycle::default(),
        });
    }
    let bundles: Vec<Vec<u8>> = (2..=PUSHES + 1).map(sign).collect();

    let engine = Engine::new(Limits::default()).expect("engine");
    let options = RegistryOptions {
        trust: TrustStore::from_public_key_files(&[public]).expect("trust"),
        caps: BundleCaps::default(),
        versions_dir: keys.join("state"),
        canary_batches: 4,
        record_versions: true,
    };
    specs.push(ChainSpec {
        bundle: first,
        params: case.params.as_bytes().to_vec(),
        fail_mode: FailMode::DeadLetter,
        recycle: Recycle::default(),
    });
    let (registry, mut chain) =
        PolicyRegistry::load(&engine, None, options, &specs).expect("registry loads");

    let input = (case.input)();
    let swapping = Arc::new(AtomicBool::new(false));
    let stop = Arc::new(AtomicBool::new(false));
    let data = std::thread::spawn({
        let (swapping, stop) = (Arc::clone(&swapping), Arc::clone(&stop));
        move || {
            let (mut quiet, mut during) = (Vec::new(), Vec::new());
            while !stop.load(Ordering::Acquire) {
                let in_swap = swapping.load(Ordering::Acquire);
                let started = Instant::now();
                let out = chain.run(input.clone());
                let ms = started.elapsed().as_secs_f64() * 1e3;
                assert!(out.dead_letters.is_empty(), "the policy failed a batch");
                if in_swap && swapping.load(Ordering::Acquire) {
                    during.push(ms);
                } else if !in_swap {
                    quiet.push(ms);
                }
            }
            (quiet, during)
        }
    });
    // Warm up, then measure without swaps.
    std::thread::sleep(Duration::from_millis(1500));
    swapping.store(true, Ordering::Release);
    let mut upload_ms = Vec::new();
    for bundle in bundles {
        let started = Instant::now();
        let activation = registry
            .submit(bundle, Some(case.policy), "bench")
            .unwrap_or_else(|r| panic!("{r}"));
        upload_ms.push(started.elapsed().as_secs_f64() * 1e3);
        assert!(
            activation.canary_batches > 0,
            "the canary ran on live batches"
        );
        // Pushes are spaced like an operator's, not back to back.
        std::thread::sleep(Duration::from_millis(50));
    }
    swapping.store(false, Ordering::Release);
    std::thread::sleep(Duration::from_millis(1500));
    stop.store(true, Ordering::Release);
    let (quiet, during) = data.join().expect("data thread");
    Measured {
        upload_ms,
        quiet_batch_ms: quiet,
        swap_batch_ms: during,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; any other argument is ignored.
    let cases = [
        Case {
            policy: "sensor-normalize",
            params: "{}",
            before: None,
            input: || sensor_batch(ROWS, 7),
        },
        Case {
            policy: "drop-outliers",
            params: r#"{"temperature":{"min":-40,"max":60}}"#,
            before: Some(("sensor-normalize", "{}")),
            input: || sensor_batch(ROWS, 7),
        },
        Case {
            policy: "redact",
            params: r#"{"key":"bench-key","columns":["device_id"]}"#,
            before: None,
            input: || sensor_batch(ROWS, 7),
        },
        Case {
            policy: "flow-filter",
            params: r#"{"mode":"drop","cidrs":["10.0.0.0/8"],"ports":[22]}"#,
            before: None,
            input: || flow_batch(ROWS, 7),
        },
        Case {
            policy: "bench-filter",
            params: "{}",
            before: None,
            input: || flow_batch(ROWS, 7),
        },
    ];
    let dir = std::env::temp_dir().join(format!("weir-swap-bench-{}", std::process::id()));
    let (mut rows, mut figures) = (Vec::<Value>::new(), Vec::<Value>::new());
    for case in &cases {
        let mut m = measure(case, &dir);
        m.upload_ms.sort_by(f64::total_cmp);
        m.quiet_batch_ms.sort_by(f64::total_cmp);
        m.swap_batch_ms.sort_by(f64::total_cmp);
        let p50 = percentile(&m.upload_ms, 0.5);
        let p99 = percentile(&m.upload_ms, 0.99);
        let quiet99 = percentile(&m.quiet_batch_ms, 0.99);
        let swap99 = percentile(&m.swap_batch_ms, 0.99);
        println!(
            "{}: upload→active p50 {p50:.1} ms p99 {p99:.1} ms; batch p99 {swap99:.3} ms during \
             swaps ({} batches) vs {quiet99:.3} ms without ({} batches)",
            case.policy,
            m.swap_batch_ms.len(),
            m.quiet_batch_ms.len()
        );
        rows.push(json!({
            "name": format!("upload→active p50, {} (50 pushes of new code)", case.policy),
            "weir_ns": p50 * 1e6,
            "target": "≤ 200 ms",
            "pass": p50 <= 200.0,
            "note": format!("p99 {p99:.1} ms"),
        }));
        rows.push(json!({
            "name": format!("batch p99 during swaps vs without, {} ({ROWS} rows)", case.policy),
            "weir_ns": swap99 * 1e6,
            "baseline_ns": quiet99 * 1e6,
            "ratio": swap99 / quiet99,
            "target": 1.2,
            "pass": swap99 / quiet99 <= 1.2,
            "note": format!(
                "{} batches during swaps, {} without",
                m.swap_batch_ms.len(),
                m.quiet_batch_ms.len()
            ),
        }));
        figures.push(json!({
            "name": format!("upload→active p99, {}", case.policy),
            "value": p99,
            "unit": "ms",
        }));
    }
    let _ = std::fs::remove_dir_all(&dir);
    if let Some(path) = std::env::var_os("WEIR_SWAP_SUMMARY") {
        let text =
            serde_json::to_vec_pretty(&json!({"rows": rows, "figures": figures})).expect("JSON");
        std::fs::write(&path, text).expect("writing the swap summary");
    }
}
