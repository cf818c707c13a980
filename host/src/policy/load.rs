//! Loading a policy module: checks before compilation, compilation off the data path, and the
//! pre-linked [`PolicyModule`] the runtime instantiates from.
//!
//! Order of checks (cheapest and least trusting first): size cap, a structural parse of the
//! binary to read the manifest section, imports and exports, then wasmtime's validation and
//! compilation, then export signatures and linking.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::{ExternType, InstancePre, Module, ValType};
use weir_abi::{
    EXPORT_ABI_VERSION, EXPORT_ALLOC, EXPORT_FREE, EXPORT_INIT, EXPORT_INITIALIZE, EXPORT_MEMORY,
    EXPORT_PROCESS, IMPORT_MODULE, IMPORT_WASI, MANIFEST_SECTION, Manifest, ManifestError,
};

use super::abi::DeclaredSchema;
use super::compile_cache::CompileCache;
use crate::engine::{Engine, GuestState, Limits, PROVIDED_WASI, PROVIDED_WEIR};

/// What is wrong with a module.
#[derive(Debug, thiserror::Error)]
pub enum LoadErrorKind {
    /// The module is larger than [`Limits::max_module_bytes`](crate::engine::Limits).
    #[error("module is {size} bytes, over the cap of {cap} bytes")]
    TooLarge {
        /// Module size.
        size: usize,
        /// The cap.
        cap: usize,
    },
    /// The bytes are not a well-formed WebAssembly module.
    #[error("not a well-formed WebAssembly module: {reason}")]
    Malformed {
        /// The parser's message.
        reason: String,
    },
    /// The module has no `weir.policy` section: it was not built with weir-sdk.
    #[error("no `{MANIFEST_SECTION}` custom section: the module was not built with weir-sdk")]
    MissingManifest,
    /// The module has more than one `weir.policy` section.
    #[error("more than one `{MANIFEST_SECTION}` custom section")]
    DuplicateManifest,
    /// The manifest is refused.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// The module imports something the host does not provide.
    #[error("forbidden import `{module}.{name}`: {reason}")]
    ForbiddenImport {
        /// Import module.
        module: String,
        /// Import name.
        name: String,
        /// Why it is refused.
        reason: &'static str,
    },
    /// A required export is missing.
    #[error("missing export `{name}`")]
    MissingExport {
        /// Export name.
        name: &'static str,
    },
    /// An export has the wrong kind or signature.
    #[error("export `{name}` must be {expected}, found {found}")]
    BadExport {
        /// Export name.
        name: &'static str,
        /// What the ABI wants.
        expected: &'static str,
        /// What the module has.
        found: String,
    },
    /// wasmtime refused or failed to compile the module.
    #[error("compilation failed: {source}")]
    Compile {
        /// wasmtime's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Linking against the host functions failed.
    #[error("linking failed: {source}")]
    Link {
        /// wasmtime's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Compilation did not finish within the compile timeout.
    #[error("compilation did not finish within {timeout:?}")]
    CompileTimeout {
        /// The timeout.
        timeout: Duration,
    },
    /// The compile thread died without an answer.
    #[error("the compile thread stopped without a result")]
    CompilerGone,
}

/// A module that could not be loaded, and why.
#[derive(Debug, thiserror::Error)]
#[error("cannot load policy module `{module}`: {kind}")]
pub struct LoadError {
    /// What the module was called (file name or policy name).
    pub module: String,
    /// What is wrong.
    #[source]
    pub kind: LoadErrorKind,
}

/// A verified, compiled and pre-linked policy module, ready to instantiate.
///
/// Cheap to share: the runtime clones an `Arc<PolicyModule>` per policy slot.
pub struct PolicyModule {
    manifest: Manifest,
    declared: DeclaredSchema,
    sha256: [u8; 32],
    size: usize,
    compile_time: Duration,
    has_initialize: bool,
    pre: InstancePre<GuestState>,
    engine: Engine,
    limits: Limits,
}

impl std::fmt::Debug for PolicyModule {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyModule")
            .field("name", &self.manifest.name)
            .field("sha256", &self.sha256_hex())
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

/// Modules that reached compilation (or an authenticated cache load) in this process.
static COMPILATIONS: AtomicU64 = AtomicU64::new(0);

/// How many modules reached compilation (including authenticated cache loads) in this process.
/// Refused bundles never add to it: tests assert that.
#[must_use]
pub fn compilations() -> u64 {
    COMPILATIONS.load(Ordering::Relaxed)
}

/// What a module declares about itself, read without compiling it.
#[derive(Debug, Clone)]
pub struct Inspection {
    /// The manifest from its `weir.policy` section.
    pub manifest: Manifest,
    /// Its exports, by name.
    pub exports: Vec<String>,
    /// Its imports, as `module.name` (the capabilities it asks for).
    pub imports: Vec<String>,
}

/// Reads the manifest and checks imports and exports without compiling anything.
///
/// # Errors
/// When the bytes are not a well-formed core module, the manifest is missing or invalid, or an
/// import is not one the host provides.
pub fn inspect(bytes: &[u8]) -> Result<Inspection, LoadErrorKind> {
    use wasmparser::{Payload, TypeRef};
    let malformed = |e: wasmparser::BinaryReaderError| LoadErrorKind::Malformed {
        reason: e.to_string(),
    };
    let mut manifest = None;
    let mut exports = Vec::new();
    let mut imports = Vec::new();
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.map_err(malformed)? {
            Payload::Version {
                encoding: wasmparser::Encoding::Component,
                ..
            } => {
                return Err(LoadErrorKind::Malformed {
                    reason: "a component, not a core module".into(),
                });
            }
            Payload::CustomSection(section) if section.name() == MANIFEST_SECTION => {
                if manifest.is_some() {
                    return Err(LoadErrorKind::DuplicateManifest);
                }
                manifest = Some(Manifest::from_json(section.data())?);
            }
            Payload::ImportSection(reader) => {
                for import in reader {
                    let import = import.map_err(malformed)?;
                    check_import(import.module, import.name, &import.ty)?;
                    imports.push(format!("{}.{}", import.module, import.name));
                }
            }
            Payload::ExportSection(reader) => {
                for export in reader {
                    exports.push(export.map_err(malformed)?.name.to_owned());
                }
            }
            _ => {}
        }
    }
    // Keep the import check close to its only caller.
    fn check_import(module: &str, name: &str, ty: &TypeRef) -> Result<(), LoadErrorKind> {
        let refuse = |reason| LoadErrorKind::ForbiddenImport {
            module: module.to_owned(),
            name: name.to_owned(),
            reason,
        };
        if !matches!(ty, TypeRef::Func(_)) {
            return Err(refuse("only function imports are allowed"));
        }
        match module {
            IMPORT_MODULE if PROVIDED_WEIR.contains(&name) => Ok(()),
            IMPORT_MODULE => Err(refuse("not a function of the `weir` import module")),
            // Unprovided WASI functions link as traps (ABI.md §4).
            IMPORT_WASI => {
                if !PROVIDED_WASI.contains(&name) {
                    tracing::debug!(import = name, "WASI import links as a trap");
                }
                Ok(())
            }
            _ => Err(refuse(
                "policies may import only from `weir` and `wasi_snapshot_preview1`",
            )),
        }
    }
    let manifest = manifest.ok_or(LoadErrorKind::MissingManifest)?;
    Ok(Inspection {
        manifest,
        exports,
        imports,
    })
}

/// The signature each export must have: (name, params, results).
const FUNC_EXPORTS: &[(&str, usize, usize, &str)] = &[
    (EXPORT_ABI_VERSION, 0, 1, "func() -> i32"),
    (EXPORT_ALLOC, 2, 1, "func(i32, i32) -> i32"),
    (EXPORT_FREE, 3, 0, "func(i32, i32, i32)"),
    (EXPORT_INIT, 2, 1, "func(i32, i32) -> i32"),
    (EXPORT_PROCESS, 1, 1, "func(i32) -> i32"),
];

fn check_exports(module: &Module, names: &[String]) -> Result<bool, LoadErrorKind> {
    let find = |name: &'static str| -> Result<ExternType, LoadErrorKind> {
        if !names.iter().any(|n| n == name) {
            return Err(LoadErrorKind::MissingExport { name });
        }
        module
            .get_export(name)
            .ok_or(LoadErrorKind::MissingExport { name })
    };
    match find(EXPORT_MEMORY)? {
        ExternType::Memory(m) if !m.is_64() && !m.is_shared() => {}
        other => {
            return Err(LoadErrorKind::BadExport {
                name: EXPORT_MEMORY,
                expected: "a 32-bit, unshared memory",
                found: format!("{other:?}"),
            });
        }
    }
    for &(name, params, results, expected) in FUNC_EXPORTS {
        let ty = find(name)?;
        let ok = match &ty {
            ExternType::Func(f) => {
                f.params().len() == params
                    && f.results().len() == results
                    && f.params()
                        .chain(f.results())
                        .all(|t| matches!(t, ValType::I32))
            }
            _ => false,
        };
        if !ok {
            return Err(LoadErrorKind::BadExport {
                name,
                expected,
                found: format!("{ty:?}"),
            });
        }
    }
    Ok(match module.get_export(EXPORT_INITIALIZE) {
        None => false,
        Some(ExternType::Func(f)) if f.params().len() == 0 && f.results().len() == 0 => true,
        Some(other) => {
            return Err(LoadErrorKind::BadExport {
                name: EXPORT_INITIALIZE,
                expected: "func()",
                found: format!("{other:?}"),
            });
        }
    })
}

impl PolicyModule {
    /// Checks, compiles and links `bytes`. Blocking: call it from a background thread (see
    /// [`compile_in_background`]), never from the data path.
    ///
    /// # Errors
    /// A [`LoadError`] naming `label` and the first check that failed.
    pub fn compile(engine: &Engine, label: &str, bytes: &[u8]) -> Result<Self, LoadError> {
        Self::compile_cached(engine, label, bytes, None)
    }

    /// As [`PolicyModule::compile`], but takes the Cranelift output from `cache` when it holds
    /// an authenticated entry for these bytes, and stores it there otherwise. Every other check
    /// runs on `bytes` either way.
    ///
    /// # Errors
    /// As for [`PolicyModule::compile`].
    pub fn compile_cached(
        engine: &Engine,
        label: &str,
        bytes: &[u8],
        cache: Option<&CompileCache>,
    ) -> Result<Self, LoadError> {
        Self::compile_inner(engine, bytes, cache).map_err(|kind| LoadError {
            module: label.to_owned(),
            kind,
        })
    }

    fn compile_inner(
        engine: &Engine,
        bytes: &[u8],
        cache: Option<&CompileCache>,
    ) -> Result<Self, LoadErrorKind> {
        let cap = engine.limits().max_module_bytes;
        if bytes.len() > cap {
            return Err(LoadErrorKind::TooLarge {
                size: bytes.len(),
                cap,
            });
        }
        let inspection = inspect(bytes)?;
        COMPILATIONS.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let sha256: [u8; 32] = Sha256::digest(bytes).into();
        let module = match cache.and_then(|c| c.load(engine, &sha256)) {
            Some(module) => module,
            None => {
                let module = Module::from_binary(engine.wasmtime(), bytes).map_err(|e| {
                    LoadErrorKind::Compile {
                        source: e.into_boxed_dyn_error(),
                    }
                })?;
                if let Some(cache) = cache {
                    cache.store(engine, &sha256, &module);
                }
                module
            }
        };
        let compile_time = started.elapsed();
        let has_initialize = check_exports(&module, &inspection.exports)?;
        let mut linker = engine.linker().clone();
        linker
            .define_unknown_imports_as_traps(&module)
            .map_err(|e| LoadErrorKind::Link {
                source: e.into_boxed_dyn_error(),
            })?;
        let pre = linker
            .instantiate_pre(&module)
            .map_err(|e| LoadErrorKind::Link {
                source: e.into_boxed_dyn_error(),
            })?;
        tracing::debug!(
            policy = %inspection.manifest.name,
            bytes = bytes.len(),
            compile_ms = compile_time.as_secs_f64() * 1e3,
            "compiled policy module"
        );
        let declared = DeclaredSchema::from_manifest(&inspection.manifest)?;
        Ok(Self {
            declared,
            manifest: inspection.manifest,
            sha256,
            size: bytes.len(),
            compile_time,
            has_initialize,
            pre,
            limits: engine.limits().clone(),
            engine: engine.clone(),
        })
    }

    /// The manifest the module declares.
    #[must_use]
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// The declared inputs and outputs as Arrow types.
    #[must_use]
    pub fn declared(&self) -> &DeclaredSchema {
        &self.declared
    }

    /// The policy name from the manifest.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.manifest.name
    }

    /// SHA-256 of the module bytes.
    #[must_use]
    pub fn sha256(&self) -> [u8; 32] {
        self.sha256
    }

    /// SHA-256 of the module bytes, as lowercase hex.
    #[must_use]
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.sha256)
    }

    /// Module size in bytes.
    #[must_use]
    pub fn size(&self) -> usize {
        self.size
    }

    /// How long wasmtime took to validate and compile the module.
    #[must_use]
    pub fn compile_time(&self) -> Duration {
        self.compile_time
    }

    /// Whether the module exports the WASI reactor's `_initialize`.
    #[must_use]
    pub(crate) fn has_initialize(&self) -> bool {
        self.has_initialize
    }

    /// The pre-linked module.
    #[must_use]
    pub(crate) fn instance_pre(&self) -> &InstancePre<GuestState> {
        &self.pre
    }

    /// The limits its instances run under: the engine's, or tighter ones from its bundle.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Tightens the limits its instances run under (a signed bundle's `limits`): the batch time
    /// limit and the memory cap become the smaller of the engine's and these. Never loosens.
    #[must_use]
    pub fn with_tighter_limits(
        mut self,
        batch_deadline: Option<Duration>,
        memory_bytes: Option<usize>,
    ) -> Self {
        if let Some(d) = batch_deadline {
            self.limits.batch_deadline = self.limits.batch_deadline.min(d);
        }
        if let Some(m) = memory_bytes {
            self.limits.memory_bytes = self.limits.memory_bytes.min(m);
        }
        self
    }

    /// The engine the module was compiled for.
    #[must_use]
    pub fn engine(&self) -> &Engine {
        &self.engine
    }
}

/// A compilation running on a background thread.
#[derive(Debug)]
pub struct CompileTask {
    label: String,
    timeout: Duration,
    rx: mpsc::Receiver<Result<PolicyModule, LoadError>>,
}

impl CompileTask {
    /// Waits for the result, up to the engine's compile timeout.
    ///
    /// # Errors
    /// The compile error, or [`LoadErrorKind::CompileTimeout`]. A timed-out compilation keeps
    /// running on its thread (wasmtime cannot cancel it) and its result is discarded.
    pub fn wait(self) -> Result<Arc<PolicyModule>, LoadError> {
        match self.rx.recv_timeout(self.timeout) {
            Ok(result) => result.map(Arc::new),
            Err(mpsc::RecvTimeoutError::Timeout) => Err(LoadError {
                module: self.label,
                kind: LoadErrorKind::CompileTimeout {
                    timeout: self.timeout,
                },
            }),
            Err(mpsc::RecvTimeoutError::Disconnected) => Err(LoadError {
                module: self.label,
                kind: LoadErrorKind::CompilerGone,
            }),
        }
    }

    /// The result if compilation has finished, without waiting.
    #[must_use]
    pub fn try_get(&self) -> Option<Result<Arc<PolicyModule>, LoadError>> {
        match self.rx.try_recv() {
            Ok(result) => Some(result.map(Arc::new)),
            Err(mpsc::TryRecvError::Empty) => None,
            Err(mpsc::TryRecvError::Disconnected) => Some(Err(LoadError {
                module: self.label.clone(),
                kind: LoadErrorKind::CompilerGone,
            })),
        }
    }
}

/// Compiles `bytes` on a new background thread, so no caller's data path ever waits on
/// Cranelift.
#[must_use]
pub fn compile_in_background(engine: &Engine, label: &str, bytes: Vec<u8>) -> CompileTask {
    compile_in_background_cached(engine, label, bytes, None)
}

/// As [`compile_in_background`], with a [`CompileCache`].
#[must_use]
pub fn compile_in_background_cached(
    engine: &Engine,
    label: &str,
    bytes: Vec<u8>,
    cache: Option<Arc<CompileCache>>,
) -> CompileTask {
    let (tx, rx) = mpsc::sync_channel(1);
    let timeout = engine.limits().compile_timeout;
    let spawned = std::thread::Builder::new()
        .name(format!("weir-compile-{label}"))
        .spawn({
            let engine = engine.clone();
            let label = label.to_owned();
            move || {
                // The receiver may have given up (timeout); nothing to do then.
                let result =
                    PolicyModule::compile_cached(&engine, &label, &bytes, cache.as_deref());
                let _ = tx.send(result);
            }
        });
    if let Err(e) = spawned {
        tracing::error!(module = label, error = %e, "cannot spawn a compile thread");
    }
    CompileTask {
        label: label.to_owned(),
        timeout,
        rx,
    }
}
