//! Signing for tests, the way operators do it (`weir keygen`, `weir sign` run as processes),
//! plus the few things no operator should be able to do with the CLI: re-signing a doctored
//! manifest, flipping bytes, and patching the `versioned` guest's version. The container layout
//! used here is the one docs/bundle.md specifies, written independently of the host's code.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use crate::weir_process::weir_bin;

/// Bundle magic (docs/bundle.md).
pub const MAGIC: &[u8; 8] = b"WEIRPOL\0";
/// Bytes before the manifest.
pub const HEADER_LEN: usize = 24;
/// Domain separation prefix of the signed payload.
pub const DOMAIN: &[u8] = b"weir-policy-bundle/v1\0";
/// Marker in the `versioned` guest's data segment; the 8 bytes after it are its version.
pub const VERSION_MARKER: &[u8; 16] = b"WEIR-SOAK-VER-->";

/// Runs `weir ARGS` and returns stdout; panics with stderr when it fails.
#[must_use]
pub fn weir_ok(args: &[&str]) -> String {
    let out = Command::new(weir_bin())
        .args(args)
        .output()
        .expect("weir starts");
    assert!(
        out.status.success(),
        "weir {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// `weir keygen --name NAME --out-dir DIR`: returns (private key, public key).
#[must_use]
pub fn keygen(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let _ = weir_ok(&["keygen", "--name", name, "--out-dir", dir.to_str().unwrap()]);
    (
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pub")),
    )
}

/// `weir sign --key K... --name N --version V module -o out`: returns the bundle bytes.
#[must_use]
pub fn sign(keys: &[&Path], name: &str, version: u64, module: &Path, out: &Path) -> Vec<u8> {
    let version = version.to_string();
    let mut args = vec!["sign"];
    for k in keys {
        args.extend(["--key", k.to_str().unwrap()]);
    }
    args.extend([
        "--name",
        name,
        "--version",
        &version,
        module.to_str().unwrap(),
        "-o",
        out.to_str().unwrap(),
    ]);
    let _ = weir_ok(&args);
    std::fs::read(out).expect("bundle written")
}

/// Signs the built policy `name` (`target/policies/NAME.wasm`) as version 1 with the key
/// `DIR/keys/ops.key` (made on first use): returns (bundle, public key).
#[must_use]
pub fn sign_policy(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let keys = dir.join("keys");
    let (key, public) = if keys.join("ops.key").is_file() {
        (keys.join("ops.key"), keys.join("ops.pub"))
    } else {
        keygen(&keys, "ops")
    };
    let bundle = dir.join("bundles").join(format!("{name}.wpol"));
    std::fs::create_dir_all(bundle.parent().unwrap()).expect("bundles dir");
    let module = crate::policy_dir().join(format!("{name}.wasm"));
    let _ = sign(&[&key], name, 1, &module, &bundle);
    (bundle, public)
}

/// The `versioned` guest with `version` patched in.
#[must_use]
pub fn versioned_module(version: u64) -> Vec<u8> {
    let mut bytes = crate::policy_bytes("weir-guest-versioned");
    let at = bytes
        .windows(VERSION_MARKER.len())
        .position(|w| w == VERSION_MARKER)
        .expect("the versioned guest carries its marker");
    let start = at + VERSION_MARKER.len();
    assert_eq!(
        bytes[start..start + 8],
        [0xee; 8],
        "the versioned guest keeps its version bytes in the module"
    );
    bytes[start..start + 8].copy_from_slice(&version.to_le_bytes());
    bytes
}

/// The parts of a bundle: (manifest JSON, signature records, module).
#[must_use]
pub fn split(bundle: &[u8]) -> (Value, Vec<[u8; 96]>, Vec<u8>) {
    assert_eq!(&bundle[..8], MAGIC);
    let u32_at = |i: usize| u32::from_le_bytes(bundle[i..i + 4].try_into().unwrap()) as usize;
    let manifest_len = u32_at(12);
    let count = u16::from_le_bytes([bundle[16], bundle[17]]) as usize;
    let module_len = u32_at(20);
    let manifest = &bundle[HEADER_LEN..HEADER_LEN + manifest_len];
    let sigs_at = HEADER_LEN + manifest_len;
    let sigs = (0..count)
        .map(|i| {
            bundle[sigs_at + 96 * i..sigs_at + 96 * (i + 1)]
                .try_into()
                .unwrap()
        })
        .collect();
    let module = bundle[sigs_at + 96 * count..].to_vec();
    assert_eq!(module.len(), module_len);
    (
        serde_json::from_slice(manifest).expect("manifest is JSON"),
        sigs,
        module,
    )
}

/// Byte offset of the manifest inside a bundle.
#[must_use]
pub fn manifest_range(bundle: &[u8]) -> std::ops::Range<usize> {
    let len = u32::from_le_bytes(bundle[12..16].try_into().unwrap()) as usize;
    HEADER_LEN..HEADER_LEN + len
}

/// Builds and signs a bundle from a manifest and module as given, with no check at all: what
/// an attacker holding a trusted key, or a broken build tool, could produce. `fix_hash` sets
/// the manifest's module hash and length to match `module` first.
#[must_use]
pub fn forge(mut manifest: Value, module: &[u8], key: &Path, fix_hash: bool) -> Vec<u8> {
    if fix_hash {
        manifest["module"]["sha256"] = hex::encode(Sha256::digest(module)).into();
        manifest["module"]["length"] = (module.len() as u64).into();
    }
    let manifest = serde_json::to_vec(&manifest).unwrap();
    let pem = pem::parse(std::fs::read(key).expect("key file")).expect("PEM key");
    let pair = ring::signature::Ed25519KeyPair::from_pkcs8_maybe_unchecked(pem.contents())
        .expect("PKCS#8 Ed25519 key");
    let mut payload = DOMAIN.to_vec();
    payload.extend_from_slice(&(manifest.len() as u64).to_le_bytes());
    payload.extend_from_slice(&manifest);
    let signature = pair.sign(&payload);
    let public = ring::signature::KeyPair::public_key(&pair).as_ref();
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(manifest.len() as u32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&(module.len() as u32).to_le_bytes());
    out.extend_from_slice(&manifest);
    out.extend_from_slice(&Sha256::digest(public));
    out.extend_from_slice(signature.as_ref());
    out.extend_from_slice(module);
    out
}

/// The admin API of a running `weir`.
#[derive(Debug, Clone)]
pub struct Admin {
    /// `http://127.0.0.1:PORT`.
    pub base: String,
    /// The bearer token.
    pub token: String,
}

impl Admin {
    fn agent() -> ureq::Agent {
        ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into()
    }

    /// Waits until `GET /healthz` answers; false after `timeout`.
    #[must_use]
    pub fn wait_ready(&self, timeout: Duration) -> bool {
        let started = std::time::Instant::now();
        while started.elapsed() < timeout {
            if let Ok(r) = Self::agent().get(format!("{}/healthz", self.base)).call()
                && r.status() == 200
            {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `GET path`: the JSON answer.
    #[must_use]
    pub fn get(&self, path: &str) -> Value {
        let mut r = Self::agent()
            .get(format!("{}{path}", self.base))
            .call()
            .expect("GET");
        assert_eq!(r.status(), 200, "GET {path}");
        r.body_mut().read_json().expect("JSON")
    }

    /// `PUT /v1/policies/NAME` with `token` (None: no Authorization header): (status, JSON).
    #[must_use]
    pub fn put_with(&self, name: &str, bundle: &[u8], token: Option<&str>) -> (u16, Value) {
        let mut req = Self::agent().put(format!("{}/v1/policies/{name}", self.base));
        if let Some(t) = token {
            req = req.header("Authorization", &format!("Bearer {t}"));
        }
        let mut r = req.send(bundle).expect("PUT");
        let status = r.status().as_u16();
        let text = r.body_mut().read_to_string().unwrap_or_default();
        (
            status,
            serde_json::from_str(&text)
                .unwrap_or_else(|e| panic!("PUT {name} answered non-JSON ({e}): {text}")),
        )
    }

    /// `PUT` with the right token.
    #[must_use]
    pub fn put(&self, name: &str, bundle: &[u8]) -> (u16, Value) {
        self.put_with(name, bundle, Some(&self.token.clone()))
    }

    /// Modules compiled so far, from `/healthz`.
    #[must_use]
    pub fn compilations(&self) -> u64 {
        self.get("/healthz")["compilations"]
            .as_u64()
            .expect("compilations")
    }
}

/// Asserts a refusal: the HTTP status and the stable code.
pub fn assert_refused(answer: &(u16, Value), code: &str, what: &str) {
    let (status, body) = answer;
    assert_eq!(
        body["error"]["code"].as_str(),
        Some(code),
        "{what}: expected refusal {code}, got {status} {body:#}"
    );
    assert!(*status >= 400, "{what}: status {status}");
}
