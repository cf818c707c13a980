//! The pipeline: sources → batcher → policy chain → sinks, with bounded queues between the
//! stages so that a slow sink slows the sources and memory stays bounded.
//!
//! ```text
//! source ─chunks─▶ batcher ─┐                    ┌─▶ sink stage (thread) ─▶ files
//! source ─chunks─▶ batcher ─┼─envelopes─▶ chain ─┼─▶ sink stage (thread) ─▶ ...
//!                           ┘  (thread)          └─▶ dead-letter stage (thread)
//! ```
//!
//! Every queue holds `pipeline.queue_depth` items; a full queue makes the stage before it wait.
//! The chain numbers batches; sinks report which numbers are durable ([`Commits`]), and
//! follow-mode checkpoints advance only behind every sink.

mod batcher;
mod chain_stage;
mod commits;
mod error;
mod memory_budget;
mod record;
mod sink_stage;
mod summary;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Instant;

use parking_lot::Mutex;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

pub use batcher::{Batcher, BatcherClosed};
pub use chain_stage::{ChainCounts, stamps};
pub use commits::Commits;
pub use error::PipelineError;
pub use memory_budget::{BudgetReport, MemoryBudget, MemoryTicket};
pub use record::{Checkpoint, DeadRecords, Envelope, PolicyStamp, Rejected, SourceChunk};
pub use summary::{PolicySummary, RunSummary, SourceSummary};

use crate::admin::{AdminServer, PolicyWatcher};
use crate::config::Config;
use crate::engine::Engine;
use crate::metrics::PipelineMetrics;
use crate::policy::bundle::{BundleCaps, TrustStore};
use crate::policy::registry::{ChainSpec, PolicyRegistry, RegistryOptions};
use crate::policy::{CompileCache, PolicyChain, PolicyControl};
use crate::sinks::{DeadLetterSink, Sink};
use crate::sources::{SchemaOrigin, Source, SourceContext};

/// Sources opened and policies compiled: everything `weir check` verifies. Nothing has been
/// written yet.
pub struct Plan {
    config: Config,
    sources: Vec<(String, Box<dyn Source>)>,
    chain: PolicyChain,
    registry: Arc<PolicyRegistry>,
}

impl std::fmt::Debug for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plan")
            .field(
                "sources",
                &self.sources.iter().map(|(n, _)| n).collect::<Vec<_>>(),
            )
            .field("chain", &self.chain)
            .finish_non_exhaustive()
    }
}

impl Plan {
    /// Starts the engine, compiles and initializes every policy (in parallel, off this
    /// thread), and opens every source (declaring or inferring its schema).
    ///
    /// # Errors
    /// A [`PipelineError`] naming the config file, the key and the cause.
    pub fn prepare(config: Config) -> Result<Self, PipelineError> {
        Self::prepare_with(config, true)
    }

    /// As [`Plan::prepare`] for `weir check`: the configured bundles are verified and compiled
    /// but not recorded as accepted (the rollback marks do not move).
    ///
    /// # Errors
    /// As for [`Plan::prepare`].
    pub fn prepare_check(config: Config) -> Result<Self, PipelineError> {
        Self::prepare_with(config, false)
    }

    fn prepare_with(config: Config, record_versions: bool) -> Result<Self, PipelineError> {
        let origin = config.origin.clone();
        let engine = Engine::new(config.limits.to_limits())
            .map_err(|source| PipelineError::Engine { source })?;
        // A cache that cannot open only costs compile time; say so and go on.
        let cache = match CompileCache::open(&config.state_dir().join("compiled")) {
            Ok(cache) => Some(Arc::new(cache)),
            Err(error) => {
                tracing::warn!(%error, "compiling without the compile cache");
                None
            }
        };
        let trust = match &config.trust {
            Some(trust) => {
                TrustStore::from_config(trust, |p| config.resolve(p)).map_err(|source| {
                    PipelineError::Trust {
                        origin: origin.clone(),
                        source: Box::new(source),
                    }
                })?
            }
            None => TrustStore::empty(),
        };
        let specs: Vec<ChainSpec> = config
            .policies
            .iter()
            .map(|policy| ChainSpec {
                bundle: config.resolve(policy.bundle.as_deref().unwrap_or(Path::new(""))),
                params: match &policy.params {
                    Some(table) => serde_json::to_vec(table).expect("a TOML table is valid JSON"),
                    None => b"{}".to_vec(),
                },
                fail_mode: policy.on_error,
                recycle: policy.recycle(),
            })
            .collect();
        let options = RegistryOptions {
            trust,
            caps: BundleCaps {
                max_module_bytes: engine.limits().max_module_bytes,
                ..BundleCaps::default()
            },
            versions_dir: config.state_dir().join("policies"),
            canary_batches: config.pipeline.canary_batches,
            record_versions,
        };
        let (registry, mut chain) =
            PolicyRegistry::load(&engine, cache, options, &specs).map_err(|source| {
                PipelineError::Registry {
                    origin: origin.clone(),
                    source: Box::new(source),
                }
            })?;
        chain.set_isolation(config.pipeline.isolation());
        let mut sources = Vec::with_capacity(config.sources.len());
        for (name, source) in &config.sources {
            let opened = crate::sources::open(&config, name, source).map_err(|source| {
                PipelineError::Source {
                    origin: origin.clone(),
                    name: name.clone(),
                    source: Box::new(source),
                }
            })?;
            sources.push((name.clone(), opened));
        }
        Ok(Self {
            config,
            sources,
            chain,
            registry,
        })
    }

    /// Lines describing the plan: each source's schema and where it came from, each policy,
    /// each sink.
    #[must_use]
    pub fn describe(&self) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, source) in &self.sources {
            // The capitals make an inferred schema stand out (and `weir run` prints it).
            let origin = match source.schema_origin() {
                SchemaOrigin::Inferred(from) => format!("INFERRED from {from}"),
                origin => origin.to_string(),
            };
            lines.push(format!("source {name}: schema {origin}:"));
            for field in source.schema().fields() {
                let null = if field.is_nullable() { "?" } else { "" };
                lines.push(format!("    {}: {}{null}", field.name(), field.data_type()));
            }
        }
        for (i, p) in self.chain.policies().iter().enumerate() {
            let m = p.runner.module();
            let (version, signers) = p.active_version().map_or_else(
                || (m.manifest().crate_version.clone(), String::new()),
                |v| (v.version.to_string(), v.signers.join(", ")),
            );
            lines.push(format!(
                "policy {i}: {} version {version} signed by {signers} ({:?}, sha256 {}, \
                 compiled in {:.1} ms), on error: {:?}",
                m.name(),
                m.manifest().kind,
                &m.sha256_hex()[..16],
                m.compile_time().as_secs_f64() * 1e3,
                p.fail_mode
            ));
        }
        for (name, sink) in &self.config.sinks {
            lines.push(format!(
                "sink {name}: {}",
                serde_json::to_string(sink).unwrap_or_default()
            ));
        }
        lines.push(format!(
            "dead letters: {}",
            self.config.dead_letter_dir().display()
        ));
        lines
    }

    /// Total input bytes when every source is finite and sized (files).
    #[must_use]
    pub fn total_bytes(&self) -> Option<u64> {
        self.sources.iter().map(|(_, s)| s.total_bytes()).sum()
    }

    /// Opens the sinks (creating directories, clearing a crashed run's temporary files).
    ///
    /// # Errors
    /// A [`PipelineError::Sink`] naming the sink.
    pub fn open(self) -> Result<Pipeline, PipelineError> {
        let mut sinks = Vec::with_capacity(self.config.sinks.len());
        for (name, sink) in &self.config.sinks {
            let opened =
                crate::sinks::open(name, sink, |p| self.config.resolve(p)).map_err(|source| {
                    PipelineError::Sink {
                        origin: self.config.origin.clone(),
                        name: name.clone(),
                        source: Box::new(source),
                    }
                })?;
            sinks.push((name.clone(), opened));
        }
        let dead_letter = DeadLetterSink::new(
            self.config.dead_letter.as_ref(),
            self.config.dead_letter_dir(),
        )
        .map_err(|source| PipelineError::Sink {
            origin: self.config.origin.clone(),
            name: "dead_letter".to_owned(),
            source: Box::new(source),
        })?;
        let control: Arc<dyn PolicyControl> = self.registry.clone();
        Ok(Pipeline {
            metrics: Arc::new(PipelineMetrics::new(control)),
            plan: self,
            sinks,
            dead_letter,
            admin: None,
            watcher: None,
            admin_stop: CancellationToken::new(),
        })
    }
}

/// A pipeline ready to run.
pub struct Pipeline {
    plan: Plan,
    sinks: Vec<(String, Box<dyn Sink>)>,
    dead_letter: DeadLetterSink,
    admin: Option<AdminServer>,
    watcher: Option<PolicyWatcher>,
    admin_stop: CancellationToken,
    metrics: Arc<PipelineMetrics>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("plan", &self.plan)
            .finish_non_exhaustive()
    }
}

/// Live numbers while a pipeline runs (for a progress bar).
#[derive(Debug, Default)]
pub struct Progress {
    /// Input bytes read so far.
    pub bytes_read: Arc<AtomicU64>,
}

impl Pipeline {
    /// Starts the admin API and the watched policy directory when `[admin]` asks for them
    /// (call it on the runtime that will run the pipeline). They serve until the pipeline has
    /// finished. Returns the admin API's URL.
    ///
    /// # Errors
    /// A [`PipelineError::Admin`] naming the cause (address in use, unreadable token file...).
    pub async fn start_admin(&mut self) -> Result<Option<String>, PipelineError> {
        let Some(admin) = self.plan.config.admin.clone() else {
            return Ok(None);
        };
        let origin = self.plan.config.origin.clone();
        let control: Arc<dyn PolicyControl> = self.plan.registry.clone();
        let err = |source| PipelineError::Admin {
            origin: origin.clone(),
            source: Box::new(source),
        };
        if let Some(dir) = &admin.watch_dir {
            let dir = self.plan.config.resolve(dir);
            self.watcher = Some(
                crate::admin::watch(
                    &dir,
                    admin.max_upload.0,
                    Arc::clone(&control),
                    self.admin_stop.clone(),
                )
                .map_err(err)?,
            );
        }
        if admin.listen_addr().ok().flatten().is_none() {
            return Ok(None);
        }
        let config = &self.plan.config;
        let server = crate::admin::serve_with_metrics(
            &admin,
            |p| config.resolve(p),
            control,
            Arc::clone(&self.metrics),
            self.admin_stop.clone(),
        )
        .await
        .map_err(err)?;
        let url = server.url();
        self.admin = Some(server);
        Ok(Some(url))
    }

    /// The registry of the running policies.
    #[must_use]
    pub fn registry(&self) -> &Arc<PolicyRegistry> {
        &self.plan.registry
    }

    /// The metrics (served at `GET /metrics` by the admin API).
    #[must_use]
    pub fn metrics(&self) -> &Arc<PipelineMetrics> {
        &self.metrics
    }

    /// Total input bytes when known (see [`Plan::total_bytes`]).
    #[must_use]
    pub fn total_bytes(&self) -> Option<u64> {
        self.plan.total_bytes()
    }

    /// Runs until every source has ended, or until `shutdown` is cancelled (then sources stop,
    /// and everything already read is drained, written and finalized). `started` is when the
    /// process started, for the ready time. Never fails as a whole: errors of single stages are
    /// in [`RunSummary::errors`].
    pub async fn run(
        self,
        shutdown: CancellationToken,
        progress: &Progress,
        started: Instant,
    ) -> RunSummary {
        let Self {
            plan,
            sinks,
            dead_letter,
            admin,
            watcher,
            admin_stop,
            metrics,
        } = self;
        let Plan {
            config,
            sources,
            chain,
            registry: _,
        } = plan;
        let depth = config.pipeline.queue_depth;
        let runtime = tokio::runtime::Handle::current();
        let commits = Arc::new(Commits::new(sinks.len() + 1, config.state_dir()));
        let counts = Arc::new(Mutex::new(ChainCounts::default()));
        let policy_stamps = stamps(&chain);
        let budget = config.limits.memory_budget.map(|limit| {
            let budget = MemoryBudget::new(limit.0);
            budget.set_guest_memory(chain.guest_memory_bytes());
            metrics.watch_budget(&budget);
            budget
        });

        // Sinks first, so that they are ready when data arrives.
        let mut sink_txs = Vec::with_capacity(sinks.len());
        let mut sink_tasks = Vec::with_capacity(sinks.len());
        for (index, (name, sink)) in sinks.into_iter().enumerate() {
            let (tx, rx) = mpsc::channel(depth);
            metrics.watch_queue(format!("sink/{name}"), &tx);
            sink_txs.push(tx);
            let (commits, runtime, stop) =
                (Arc::clone(&commits), runtime.clone(), shutdown.clone());
            sink_tasks.push((
                name.clone(),
                tokio::task::spawn_blocking(move || {
                    let result = sink_stage::run(sink, index, rx, &commits, &runtime);
                    if let Err(error) = &result {
                        tracing::error!(sink = %name, %error, "sink failed; stopping the sources");
                        stop.cancel();
                    }
                    result
                }),
            ));
        }
        let (dead_tx, dead_rx) = mpsc::channel(depth);
        metrics.watch_queue("dead_letter", &dead_tx);
        let dead_index = sink_txs.len();
        let dead_task = {
            let (commits, runtime, stop) =
                (Arc::clone(&commits), runtime.clone(), shutdown.clone());
            tokio::task::spawn_blocking(move || {
                let result = sink_stage::run(dead_letter, dead_index, dead_rx, &commits, &runtime);
                if let Err(error) = &result {
                    tracing::error!(%error, "dead-letter sink failed; stopping the sources");
                    stop.cancel();
                }
                result
            })
        };

        let (chain_tx, chain_rx) = mpsc::channel(depth);
        metrics.watch_queue("chain", &chain_tx);
        let chain_task = {
            let outputs = chain_stage::ChainOutputs {
                sinks: sink_txs,
                dead_letter: dead_tx,
                budget: budget.clone(),
            };
            let (commits, counts, stop) =
                (Arc::clone(&commits), Arc::clone(&counts), shutdown.clone());
            let mut meter = metrics.chain_meter();
            tokio::task::spawn_blocking(move || {
                let result =
                    chain_stage::run(chain, chain_rx, &outputs, &commits, &counts, &mut meter);
                if result.is_err() {
                    stop.cancel();
                }
                result
            })
        };

        let mut source_tasks = Vec::with_capacity(sources.len());
        let mut batcher_tasks = Vec::with_capacity(sources.len());
        let mut schema_origins = Vec::with_capacity(sources.len());
        for (name, source) in sources {
            let name: Arc<str> = name.into();
            let (tx, rx) = mpsc::channel(depth);
            metrics.watch_queue(format!("source/{name}"), &tx);
            let batcher = Batcher::new(
                Arc::clone(&name),
                source.schema(),
                config.pipeline.batch_max_rows,
                config.pipeline.batch_max_delay.0,
            );
            batcher_tasks.push(tokio::spawn(batcher.run(rx, chain_tx.clone())));
            schema_origins.push(source.schema_origin().to_string());
            let ctx = SourceContext {
                name: Arc::clone(&name),
                tx,
                shutdown: shutdown.clone(),
                bytes_read: Arc::clone(&progress.bytes_read),
                batch_rows: config.pipeline.batch_max_rows,
                state_dir: config.state_dir(),
                meter: metrics.source_meter(&name),
                budget: budget.clone(),
            };
            source_tasks.push((name, source.start(ctx)));
        }
        drop(chain_tx);
        let ready = Instant::now();
        let ready_ms = ready.duration_since(started).as_secs_f64() * 1e3;
        tracing::info!(ready_ms, "pipeline ready");

        let mut errors = Vec::new();
        let mut source_summaries = std::collections::BTreeMap::new();
        for ((name, task), schema) in source_tasks.into_iter().zip(schema_origins) {
            let (report, error) = match task.await {
                Ok(Ok(report)) => (report, None),
                Ok(Err(error)) => {
                    tracing::error!(source = %name, %error, "source failed");
                    (Default::default(), Some(error.to_string()))
                }
                Err(join) => (
                    Default::default(),
                    Some(format!("source task failed: {join}")),
                ),
            };
            if let Some(e) = &error {
                errors.push(format!("source {name}: {e}"));
            }
            source_summaries.insert(
                name.to_string(),
                SourceSummary {
                    report,
                    schema,
                    error,
                },
            );
        }
        for task in batcher_tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => errors.push(e.to_string()),
                Err(join) => errors.push(format!("batcher failed: {join}")),
            }
        }
        let chain = match chain_task.await {
            Ok(Ok(chain)) => Some(chain),
            Ok(Err(e)) => {
                errors.push(format!("policy chain stopped: {e}"));
                None
            }
            Err(join) => {
                errors.push(format!("policy chain failed: {join}"));
                None
            }
        };
        let mut sink_reports = std::collections::BTreeMap::new();
        for (name, task) in sink_tasks {
            match task.await {
                Ok(Ok(report)) => {
                    sink_reports.insert(name, report);
                }
                Ok(Err(e)) => errors.push(format!("sink {name}: {e}")),
                Err(join) => errors.push(format!("sink {name} failed: {join}")),
            }
        }
        let dead_letter = match dead_task.await {
            Ok(Ok(report)) => report,
            Ok(Err(e)) => {
                errors.push(format!("dead-letter sink: {e}"));
                Default::default()
            }
            Err(join) => {
                errors.push(format!("dead-letter sink failed: {join}"));
                Default::default()
            }
        };
        let policies = chain
            .as_ref()
            .map(|chain| {
                chain
                    .policies()
                    .iter()
                    .zip(&policy_stamps)
                    .map(|(p, stamp)| PolicySummary {
                        name: stamp.name.clone(),
                        version: stamp.version.clone(),
                        sha256: stamp.sha256.clone(),
                        rows_in: p.stats.rows_in,
                        rows_out: p.stats.rows_out,
                        filtered: p.stats.rows_filtered,
                        dead_lettered: p.stats.rows_dead_lettered,
                        dropped: p.stats.rows_dropped,
                        errors: p
                            .stats
                            .errors
                            .iter()
                            .map(|(k, n)| (k.as_str().to_owned(), *n))
                            .collect(),
                        batch_splits: p.stats.batch_splits,
                        rows_rescued: p.stats.rows_rescued,
                        instances_recycled: p.stats.instances_recycled,
                    })
                    .collect()
            })
            .unwrap_or_default();
        // The admin API and the watcher serve until the data has been written.
        admin_stop.cancel();
        if let Some(server) = admin
            && let Err(e) = server.join().await
        {
            errors.push(format!("admin API: {e}"));
        }
        if let Some(watcher) = watcher {
            let _ = tokio::task::spawn_blocking(move || watcher.join()).await;
        }
        let mut summary = RunSummary {
            bytes_in: source_summaries.values().map(|s| s.report.bytes).sum(),
            sources: source_summaries,
            chain: counts.lock().clone(),
            policies,
            sinks: sink_reports,
            dead_letter,
            rows_in: 0,
            rows_out: 0,
            rows_filtered: 0,
            rows_dead_lettered: 0,
            rows_dropped: 0,
            balanced: false,
            ready_ms,
            elapsed_secs: ready.elapsed().as_secs_f64(),
            checkpoints_stored: commits.stored(),
            errors,
            memory_budget: budget.as_ref().map(|b| b.report()),
        };
        summary.total();
        summary
    }
}
