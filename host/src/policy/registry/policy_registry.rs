//! [`PolicyRegistry`]: loads the configured chain from signed bundles (or the newer versions
//! accepted earlier), and promotes new versions: verify, rollback and schema checks, compile
//! off the data path, canary, persist, swap.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use parking_lot::Mutex;

use super::canary::{self, CanaryError};
use super::policy_slot::{ActiveVersion, PolicySlot};
use super::registry_error::RegistryError;
use super::schema_check::check_compatible;
use crate::engine::Engine;
use crate::policy::bundle::{BundleCaps, TrustStore, VerifiedBundle, VersionStore, verify_bundle};
use crate::policy::chain::{FailMode, PolicyChain, Recycle};
use crate::policy::compile_cache::CompileCache;
use crate::policy::control::{
    Activation, Health, PolicyControl, PolicyStatus, PromotionTimings, Refusal, RefusalCode,
};
use crate::policy::load::{LoadError, LoadErrorKind, PolicyModule, compile_in_background_cached};
use crate::policy::runner::PolicyRunner;

/// One chain position as configured.
#[derive(Debug, Clone)]
pub struct ChainSpec {
    /// The signed bundle (resolved path).
    pub bundle: PathBuf,
    /// Parameters (JSON).
    pub params: Vec<u8>,
    /// What happens to a batch the policy fails on.
    pub fail_mode: FailMode,
    /// When its instance is recycled.
    pub recycle: Recycle,
}

/// How the registry checks and keeps bundles.
#[derive(Debug)]
pub struct RegistryOptions {
    /// Keys, the names they may sign, thresholds, revocations.
    pub trust: TrustStore,
    /// Size caps of bundles.
    pub caps: BundleCaps,
    /// Where accepted bundles and version high-water marks live (`<state_dir>/policies`).
    pub versions_dir: PathBuf,
    /// Recent input batches kept per chain position for canaries.
    pub canary_batches: usize,
    /// Whether loading records the configured versions as accepted (false for `weir check`,
    /// which must not move the rollback marks).
    pub record_versions: bool,
}

/// The running policies and the door to replace them.
pub struct PolicyRegistry {
    engine: Engine,
    cache: Option<Arc<CompileCache>>,
    trust: TrustStore,
    caps: BundleCaps,
    versions: VersionStore,
    slots: BTreeMap<String, Arc<PolicySlot>>,
    refusals: Mutex<BTreeMap<RefusalCode, u64>>,
    swaps: AtomicU64,
}

impl std::fmt::Debug for PolicyRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PolicyRegistry")
            .field("slots", &self.slots.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// A bundle chosen for a policy name at start-up.
struct Chosen {
    verified: VerifiedBundle,
    /// Whether the version store must record it (it is newer than the stored mark).
    record: bool,
    positions: Vec<usize>,
}

impl PolicyRegistry {
    /// Verifies every configured bundle, picks for each policy the newer of the configured
    /// bundle and the one accepted earlier (state directory), compiles them in parallel, and
    /// returns the registry and the chain that follows it.
    ///
    /// # Errors
    /// A [`RegistryError`] naming the chain position and the cause: nothing runs unless every
    /// policy verified, compiled and started.
    pub fn load(
        engine: &Engine,
        cache: Option<Arc<CompileCache>>,
        options: RegistryOptions,
        chain: &[ChainSpec],
    ) -> Result<(Arc<Self>, PolicyChain), RegistryError> {
        let versions = VersionStore::open(&options.versions_dir)
            .map_err(|source| RegistryError::State { source })?;
        let now = SystemTime::now();
        let mut chosen: BTreeMap<String, Chosen> = BTreeMap::new();
        let mut by_index = Vec::with_capacity(chain.len());
        for (index, spec) in chain.iter().enumerate() {
            let bytes = std::fs::read(&spec.bundle).map_err(|source| RegistryError::Read {
                index,
                path: spec.bundle.clone(),
                source,
            })?;
            let label = spec.bundle.display().to_string();
            let verified = verify_bundle(&bytes, &label, &options.trust, &options.caps, now)
                .map_err(|refusal| RegistryError::Refused {
                    index,
                    path: spec.bundle.clone(),
                    refusal,
                })?;
            let name = verified.manifest().name.clone();
            by_index.push(name.clone());
            if let Some(existing) = chosen.get_mut(&name) {
                if existing.verified.sha256() != verified.sha256()
                    || existing.verified.manifest().version != verified.manifest().version
                {
                    return Err(RegistryError::Conflict {
                        index,
                        reason: format!(
                            "policy {name} is already in the chain at position {} from another \
                             bundle; every position of a policy must name the same bundle",
                            existing.positions[0]
                        ),
                    });
                }
                existing.positions.push(index);
                continue;
            }
            let chosen_one = Self::choose(&versions, &options, verified, &spec.bundle, index, now)?;
            chosen.insert(name, chosen_one);
        }

        // Compile every chosen module in parallel, off this thread.
        let tasks: Vec<_> = chosen
            .iter()
            .map(|(name, c)| {
                compile_in_background_cached(
                    engine,
                    name,
                    c.verified.module().to_vec(),
                    cache.clone(),
                )
            })
            .collect();
        let mut modules = HashMap::with_capacity(chosen.len());
        for ((name, c), task) in chosen.iter().zip(tasks) {
            let module = task.wait().map_err(|source| RegistryError::Load {
                index: c.positions[0],
                source: Box::new(source),
            })?;
            modules.insert(name.clone(), with_signed_limits(module, &c.verified));
        }
        for c in chosen
            .values()
            .filter(|c| c.record && options.record_versions)
        {
            versions
                .accept(&c.verified)
                .map_err(|source| RegistryError::State { source })?;
        }

        let mut slots = BTreeMap::new();
        for (name, c) in &chosen {
            let positions = c
                .positions
                .iter()
                .map(|&i| (i, chain[i].params.clone()))
                .collect();
            let active = ActiveVersion::new(
                Arc::clone(&modules[name]),
                c.verified.manifest().version,
                c.verified.signers().to_vec(),
                Vec::new(),
            );
            slots.insert(
                name.clone(),
                Arc::new(PolicySlot::new(
                    name.clone(),
                    active,
                    positions,
                    options.canary_batches,
                )),
            );
        }
        let mut policy_chain = PolicyChain::new();
        for (index, (spec, name)) in chain.iter().zip(&by_index).enumerate() {
            let runner = PolicyRunner::new(Arc::clone(&modules[name]), spec.params.clone())
                .map_err(|source| RegistryError::Init {
                    index,
                    source: Box::new(source),
                })?;
            policy_chain.push_slot(runner, spec.fail_mode, Arc::clone(&slots[name]));
            policy_chain.set_recycle(index, spec.recycle);
        }
        let registry = Self {
            engine: engine.clone(),
            cache,
            trust: options.trust,
            caps: options.caps,
            versions,
            slots,
            refusals: Mutex::new(BTreeMap::new()),
            swaps: AtomicU64::new(0),
        };
        Ok((Arc::new(registry), policy_chain))
    }

    /// The configured bundle, or the newer one accepted earlier (state directory).
    fn choose(
        versions: &VersionStore,
        options: &RegistryOptions,
        configured: VerifiedBundle,
        path: &Path,
        index: usize,
        now: SystemTime,
    ) -> Result<Chosen, RegistryError> {
        let name = configured.manifest().name.clone();
        let version = configured.manifest().version;
        let highest = match versions.highest(&name) {
            Some(highest) if highest >= version => highest,
            // Nothing accepted yet, or an older version: the configured bundle runs.
            _ => {
                return Ok(Chosen {
                    verified: configured,
                    record: true,
                    positions: vec![index],
                });
            }
        };
        let stored = versions
            .accepted_bundle(&name)
            .map_err(|source| RegistryError::State { source })?
            .ok_or_else(|| RegistryError::Conflict {
                index,
                reason: format!(
                    "the state directory records version {highest} of {name} but holds no \
                     bundle for it; restore {}/{name}.wpol or remove {name}.version to reset",
                    options.versions_dir.display()
                ),
            })?;
        let stored_label = options.versions_dir.join(format!("{name}.wpol"));
        let stored = verify_bundle(
            &stored,
            &stored_label.display().to_string(),
            &options.trust,
            &options.caps,
            now,
        )
        .map_err(|refusal| RegistryError::Refused {
            index,
            path: stored_label.clone(),
            refusal,
        })?;
        if stored.manifest().version != highest {
            return Err(RegistryError::Conflict {
                index,
                reason: format!(
                    "{} holds version {} of {name}, but the recorded high-water mark is \
                     {highest}",
                    stored_label.display(),
                    stored.manifest().version
                ),
            });
        }
        if highest == version && stored.sha256() != configured.sha256() {
            return Err(RegistryError::Conflict {
                index,
                reason: format!(
                    "{} is version {version} of {name}, but version {version} was accepted \
                     earlier with another module (sha256 {}); sign the new module with a \
                     higher version",
                    path.display(),
                    stored.sha256_hex()
                ),
            });
        }
        if highest > version {
            tracing::warn!(
                policy = %name,
                configured = version,
                running = highest,
                "the state directory holds a newer accepted version than the config; running it"
            );
        }
        Ok(Chosen {
            verified: stored,
            record: false,
            positions: vec![index],
        })
    }

    /// The slot of a policy name.
    #[must_use]
    pub fn slot(&self, name: &str) -> Option<&Arc<PolicySlot>> {
        self.slots.get(name)
    }

    fn promote(
        &self,
        bytes: &[u8],
        expected_name: Option<&str>,
        via: &str,
        started: Instant,
    ) -> Result<Activation, Refusal> {
        let subject = match expected_name {
            Some(name) => format!("upload of {name} ({via})"),
            None => via.to_owned(),
        };
        let verified = verify_bundle(bytes, &subject, &self.trust, &self.caps, SystemTime::now())?;
        let manifest = verified.manifest();
        let (name, version) = (manifest.name.clone(), manifest.version);
        if let Some(expected) = expected_name
            && expected != name
        {
            return Err(Refusal::new(
                RefusalCode::Malformed,
                subject,
                format!("the bundle is signed for policy {name}, but was uploaded as {expected}"),
            ));
        }
        let slot = self.slots.get(&name).ok_or_else(|| {
            Refusal::new(
                RefusalCode::NotFound,
                &subject,
                format!(
                    "no policy {name} runs here (running: {})",
                    self.slots.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })?;
        let _one_at_a_time = slot.promotion.lock();
        let running = slot.active();
        self.versions.check(&name, version, &subject)?;
        if version <= running.version {
            return Err(Refusal::new(
                RefusalCode::Downgrade,
                subject,
                format!(
                    "version {version} is not above the running version {} of {name}",
                    running.version
                ),
            ));
        }
        let recent: Vec<_> = slot
            .positions()
            .iter()
            .flat_map(|p| p.recent().0.into_iter().map(|b| b.schema()))
            .collect();
        let recent_refs: Vec<&arrow_schema::Schema> = recent.iter().map(AsRef::as_ref).collect();
        check_compatible(
            running.module.manifest(),
            running.version,
            &manifest.policy,
            version,
            &recent_refs,
        )
        .map_err(|reason| Refusal::new(RefusalCode::SchemaIncompatible, &subject, reason))?;
        let verified_at = Instant::now();

        let task = compile_in_background_cached(
            &self.engine,
            &name,
            verified.module().to_vec(),
            self.cache.clone(),
        );
        let module = task.wait().map_err(|e| load_refusal(&subject, e))?;
        let module = with_signed_limits(module, &verified);
        let compiled_at = Instant::now();

        let pass = canary::run(slot, &module).map_err(|e| match e {
            CanaryError::Failed(reason) => {
                Refusal::new(RefusalCode::CanaryFailed, &subject, reason)
            }
            CanaryError::SchemaChanged(reason) => {
                Refusal::new(RefusalCode::SchemaIncompatible, &subject, reason)
            }
        })?;
        let canaried_at = Instant::now();

        self.versions.accept(&verified).map_err(|e| {
            Refusal::new(
                RefusalCode::Internal,
                &subject,
                format!("could not persist the new version: {e}"),
            )
        })?;
        slot.activate(ActiveVersion::new(
            Arc::clone(&module),
            version,
            verified.signers().to_vec(),
            pass.warm,
        ));
        self.swaps.fetch_add(1, Ordering::Relaxed);
        let done = Instant::now();
        let ms = |a: Instant, b: Instant| b.duration_since(a).as_secs_f64() * 1e3;
        Ok(Activation {
            name,
            version,
            previous_version: Some(running.version),
            sha256: verified.sha256_hex(),
            signers: verified.signers().to_vec(),
            canary_batches: pass.batches,
            timings: PromotionTimings {
                verify_ms: ms(started, verified_at),
                compile_ms: ms(verified_at, compiled_at),
                canary_ms: ms(compiled_at, canaried_at),
                activate_ms: ms(canaried_at, done),
                total_ms: ms(started, done),
            },
        })
    }
}

/// The module under the tighter of the engine's limits and the ones its bundle was signed with.
fn with_signed_limits(module: Arc<PolicyModule>, verified: &VerifiedBundle) -> Arc<PolicyModule> {
    let limits = &verified.manifest().limits;
    let deadline = limits.batch_time_limit_ms.map(Duration::from_millis);
    let memory = limits
        .memory_max_bytes
        .map(|m| usize::try_from(m).unwrap_or(usize::MAX));
    if deadline.is_none() && memory.is_none() {
        return module;
    }
    match Arc::try_unwrap(module) {
        Ok(module) => Arc::new(module.with_tighter_limits(deadline, memory)),
        // Freshly compiled modules have no other owner; keep the engine's limits otherwise.
        Err(module) => module,
    }
}

/// A verified module wasmtime or the load checks refused.
fn load_refusal(subject: &str, error: LoadError) -> Refusal {
    let code = match &error.kind {
        LoadErrorKind::Manifest(weir_abi::ManifestError::AbiMismatch { .. }) => {
            RefusalCode::AbiMismatch
        }
        LoadErrorKind::TooLarge { .. } => RefusalCode::TooLarge,
        LoadErrorKind::CompileTimeout { .. } | LoadErrorKind::CompilerGone => RefusalCode::Internal,
        _ => RefusalCode::Malformed,
    };
    Refusal::new(code, subject, error.kind.to_string())
}

impl PolicyControl for PolicyRegistry {
    fn submit(
        &self,
        bundle: Vec<u8>,
        expected_name: Option<&str>,
        via: &str,
    ) -> Result<Activation, Refusal> {
        let started = Instant::now();
        let result = self.promote(&bundle, expected_name, via, started);
        match &result {
            Ok(a) => tracing::info!(
                policy = %a.name,
                version = a.version,
                previous = ?a.previous_version,
                sha256 = %&a.sha256[..16],
                signers = ?a.signers,
                canary_batches = a.canary_batches,
                total_ms = a.timings.total_ms,
                via,
                "new policy version active"
            ),
            Err(r) => {
                self.count_refusal(r.code);
                tracing::warn!(
                    code = r.code.as_str(),
                    subject = %r.subject,
                    reason = %r.reason,
                    "policy bundle refused"
                );
            }
        }
        result
    }

    fn list(&self) -> Vec<PolicyStatus> {
        self.slots
            .values()
            .map(|slot| {
                let active = slot.active();
                let c = &slot.counters;
                PolicyStatus {
                    name: slot.name().to_owned(),
                    version: active.version,
                    sha256: active.sha256_hex.clone(),
                    signers: active.signers.clone(),
                    activated_at: humantime::format_rfc3339_millis(active.activated_at).to_string(),
                    positions: slot.positions().iter().map(|p| p.index).collect(),
                    rows_in: c.rows_in.load(Ordering::Relaxed),
                    rows_out: c.rows_out.load(Ordering::Relaxed),
                    errors: c.errors.load(Ordering::Relaxed),
                    swaps: c.swaps.load(Ordering::Relaxed),
                }
            })
            .collect()
    }

    fn health(&self) -> Health {
        Health {
            status: "ok".to_owned(),
            compilations: crate::policy::load::compilations(),
            refusals: self
                .refusals
                .lock()
                .iter()
                .map(|(k, v)| (k.as_str().to_owned(), *v))
                .collect(),
            swaps: self.swaps.load(Ordering::Relaxed),
        }
    }

    fn count_refusal(&self, code: RefusalCode) {
        *self.refusals.lock().entry(code).or_default() += 1;
    }

    fn submit_timeout(&self) -> Duration {
        self.engine.limits().compile_timeout + Duration::from_secs(30)
    }
}
