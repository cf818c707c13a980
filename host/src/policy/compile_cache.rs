//! [`CompileCache`]: compiled modules on disk, so a restart does not pay Cranelift again.
//!
//! wasmtime's `Module::deserialize` trusts its input completely: bytes that were not produced
//! by this host could run arbitrary native code. Every entry therefore carries an
//! HMAC-SHA256 tag under a key that never leaves the device (`<dir>/key`, mode 0600, made on
//! first use), over the module's sha256, the engine's configuration hash and the compiled
//! bytes. An entry whose tag does not verify is deleted and the module compiled again; nothing
//! unauthenticated is ever deserialized.

use std::hash::{Hash as _, Hasher as _};
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use wasmtime::Module;

use crate::engine::Engine;

const DOMAIN: &[u8] = b"weir compiled module v1\0";
const TAG_LEN: usize = 32;

/// Why the cache could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("compile cache {path}: {action}: {source}")]
pub struct CacheError {
    /// The file or directory.
    pub path: PathBuf,
    /// What failed.
    pub action: &'static str,
    /// The cause.
    #[source]
    pub source: std::io::Error,
}

/// A directory of authenticated compiled modules.
#[derive(Clone)]
pub struct CompileCache {
    dir: PathBuf,
    key: [u8; 32],
}

impl std::fmt::Debug for CompileCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CompileCache")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl CompileCache {
    /// Opens (or creates) the cache in `dir`, with its device-local key.
    ///
    /// # Errors
    /// When the directory or key cannot be created or read.
    pub fn open(dir: &Path) -> Result<Self, CacheError> {
        let err = |path: &Path, action| {
            let path = path.to_path_buf();
            move |source| CacheError {
                path,
                action,
                source,
            }
        };
        std::fs::create_dir_all(dir).map_err(err(dir, "creating the directory"))?;
        let key_path = dir.join("key");
        let key = match std::fs::read(&key_path) {
            Ok(bytes) if bytes.len() == 32 => {
                let mut key = [0; 32];
                key.copy_from_slice(&bytes);
                key
            }
            Ok(_) | Err(_) => {
                let mut key = [0u8; 32];
                getrandom::fill(&mut key).map_err(|e| CacheError {
                    path: key_path.clone(),
                    action: "drawing a random key",
                    source: std::io::Error::other(e.to_string()),
                })?;
                let tmp = dir.join(".key.tmp");
                let mut file = std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(true)
                    .mode(0o600)
                    .open(&tmp)
                    .map_err(err(&tmp, "creating the key"))?;
                file.write_all(&key).map_err(err(&tmp, "writing the key"))?;
                file.sync_all().map_err(err(&tmp, "syncing the key"))?;
                std::fs::rename(&tmp, &key_path).map_err(err(&key_path, "installing the key"))?;
                key
            }
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            key,
        })
    }

    fn engine_hash(engine: &Engine) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        engine
            .wasmtime()
            .precompile_compatibility_hash()
            .hash(&mut h);
        h.finish()
    }

    fn entry(&self, sha256: &[u8; 32], engine_hash: u64) -> PathBuf {
        self.dir
            .join(format!("{}-{engine_hash:016x}.cwasm", hex::encode(sha256)))
    }

    fn tag(&self, sha256: &[u8; 32], engine_hash: u64, payload: &[u8]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes any key");
        mac.update(DOMAIN);
        mac.update(sha256);
        mac.update(&engine_hash.to_le_bytes());
        mac.update(payload);
        mac
    }

    /// The compiled module for the wasm bytes with this `sha256`, if a verified entry exists.
    #[must_use]
    pub fn load(&self, engine: &Engine, sha256: &[u8; 32]) -> Option<Module> {
        let engine_hash = Self::engine_hash(engine);
        let path = self.entry(sha256, engine_hash);
        let bytes = std::fs::read(&path).ok()?;
        let refuse = |why: &str| {
            tracing::warn!(path = %path.display(), why, "discarding a compile-cache entry");
            let _ = std::fs::remove_file(&path);
            None
        };
        if bytes.len() < TAG_LEN {
            return refuse("too short");
        }
        let (tag, payload) = bytes.split_at(TAG_LEN);
        if self
            .tag(sha256, engine_hash, payload)
            .verify_slice(tag)
            .is_err()
        {
            return refuse("the HMAC does not verify");
        }
        // SAFETY: `payload` is authenticated: its HMAC under this device's secret key verified,
        // so it is bytes this host's `store` wrote from `Module::serialize` for this module and
        // this engine configuration. wasmtime also checks version and configuration.
        match unsafe { Module::deserialize(engine.wasmtime(), payload) } {
            Ok(module) => Some(module),
            Err(e) => refuse(&format!("wasmtime refused it: {e}")),
        }
    }

    /// Stores a compiled module. Failures are logged, not returned: the cache is an
    /// optimization.
    pub fn store(&self, engine: &Engine, sha256: &[u8; 32], module: &Module) {
        let engine_hash = Self::engine_hash(engine);
        let path = self.entry(sha256, engine_hash);
        let result = (|| -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
            let payload = module
                .serialize()
                .map_err(wasmtime::Error::into_boxed_dyn_error)?;
            let tag = self
                .tag(sha256, engine_hash, &payload)
                .finalize()
                .into_bytes();
            let tmp = path.with_extension("tmp");
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            file.write_all(&tag)?;
            file.write_all(&payload)?;
            file.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            Ok(())
        })();
        if let Err(error) = result {
            tracing::warn!(path = %path.display(), %error, "cannot store a compiled module");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::Limits;

    const WAT: &str = r#"(module (func (export "f") (result i32) i32.const 7))"#;

    fn call(engine: &Engine, module: &Module) -> i32 {
        let mut store = wasmtime::Store::new(engine.wasmtime(), ());
        // The engine interrupts on epochs; give the call plenty of them.
        store.set_epoch_deadline(1_000_000);
        let instance = wasmtime::Instance::new(&mut store, module, &[]).unwrap();
        instance
            .get_typed_func::<(), i32>(&mut store, "f")
            .unwrap()
            .call(&mut store, ())
            .unwrap()
    }

    #[test]
    fn round_trips_and_refuses_tampered_entries() {
        let dir = tempfile::tempdir().unwrap();
        let engine = Engine::new(Limits::default()).unwrap();
        let wasm = wat::parse_str(WAT).unwrap();
        let sha: [u8; 32] = <Sha256 as sha2::Digest>::digest(&wasm).into();
        let cache = CompileCache::open(dir.path()).unwrap();
        let mode = std::os::unix::fs::PermissionsExt::mode(
            &std::fs::metadata(dir.path().join("key"))
                .unwrap()
                .permissions(),
        );
        assert_eq!(mode & 0o777, 0o600, "the key is private");
        assert!(cache.load(&engine, &sha).is_none());
        let module = Module::new(engine.wasmtime(), &wasm).unwrap();
        cache.store(&engine, &sha, &module);
        let loaded = cache.load(&engine, &sha).expect("stored entry loads");
        assert_eq!(call(&engine, &loaded), 7);

        // The key persists: a second open reads the same entry.
        let again = CompileCache::open(dir.path()).unwrap();
        assert!(again.load(&engine, &sha).is_some());

        // Flip one byte of the compiled code: refused and removed, never deserialized.
        let entry = cache.entry(&sha, CompileCache::engine_hash(&engine));
        let mut bytes = std::fs::read(&entry).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&entry, &bytes).unwrap();
        assert!(cache.load(&engine, &sha).is_none());
        assert!(!entry.exists());

        // Another device's key cannot vouch for an entry.
        cache.store(&engine, &sha, &module);
        std::fs::write(dir.path().join("key"), [9u8; 32]).unwrap();
        let other = CompileCache::open(dir.path()).unwrap();
        assert!(other.load(&engine, &sha).is_none());
    }
}
