//! [`Engine`]: one wasmtime engine per process, with its epoch ticker and base linker.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use wasmtime::{
    Config, InstanceAllocationStrategy, Linker, OptLevel, PoolingAllocationConfig, Store,
};

use super::guest_state::GuestState;
use super::imports;
use super::limits::Limits;

/// Why the engine could not be built.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// wasmtime refused the configuration.
    #[error("cannot configure the WebAssembly engine: {source}")]
    Config {
        /// wasmtime's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The host functions could not be defined.
    #[error("cannot define host function `{name}`: {source}")]
    HostFunction {
        /// The import name.
        name: &'static str,
        /// wasmtime's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The epoch ticker thread could not start.
    #[error("cannot start the epoch ticker thread: {source}")]
    Ticker {
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
}

struct Ticker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Ticker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.thread().unpark();
            // A panicking ticker has nothing left to clean up.
            let _ = thread.join();
        }
    }
}

struct Inner {
    wasmtime: wasmtime::Engine,
    linker: Linker<GuestState>,
    limits: Limits,
    _ticker: Ticker,
}

/// The process-wide WebAssembly engine for policies.
///
/// It owns a wasmtime engine with the pooling allocator and epoch interruption, a thread that
/// advances the epoch every [`Limits::tick`], and the base [`Linker`] holding the host functions
/// guests may import (ABI.md §4). Cloning is cheap; the ticker stops when the last clone drops.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("limits", &self.inner.limits)
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Builds an engine enforcing `limits`.
    ///
    /// # Errors
    /// When wasmtime refuses the configuration, or the ticker thread cannot start.
    pub fn new(limits: Limits) -> Result<Self, EngineError> {
        let wasmtime =
            wasmtime::Engine::new(&Self::config(&limits)).map_err(|e| EngineError::Config {
                source: e.into_boxed_dyn_error(),
            })?;
        let linker = imports::base_linker(&wasmtime)?;
        let ticker = Self::start_ticker(&wasmtime, &limits)?;
        Ok(Self {
            inner: Arc::new(Inner {
                wasmtime,
                linker,
                limits,
                _ticker: ticker,
            }),
        })
    }

    fn config(limits: &Limits) -> Config {
        let mut pool = PoolingAllocationConfig::new();
        pool.total_core_instances(limits.max_instances)
            .total_memories(limits.max_instances)
            .total_tables(limits.max_instances)
            .max_memory_size(limits.memory_bytes)
            .max_memories_per_module(1)
            .max_tables_per_module(1);
        let mut config = Config::new();
        config
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .epoch_interruption(true)
            .cranelift_opt_level(OptLevel::Speed)
            // One thread per compilation: policies compile on their own background threads
            // (in parallel at start-up), and a hot swap's compile must not take the cores the
            // data path runs on (measured: with rayon's parallel compile the chain's p99 batch
            // latency during swaps was 3.5x that without swaps on 2 cores; 1.03-1.08x without).
            .parallel_compilation(false)
            .wasm_simd(true)
            .wasm_relaxed_simd(false)
            .wasm_multi_memory(false)
            .wasm_memory64(false)
            .wasm_tail_call(true)
            .wasm_bulk_memory(true)
            .max_wasm_stack(512 << 10);
        config
    }

    fn start_ticker(engine: &wasmtime::Engine, limits: &Limits) -> Result<Ticker, EngineError> {
        let stop = Arc::new(AtomicBool::new(false));
        let thread = std::thread::Builder::new()
            .name("weir-epoch".into())
            .spawn({
                let engine = engine.clone();
                let stop = Arc::clone(&stop);
                let tick = limits.tick;
                move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::thread::park_timeout(tick);
                        engine.increment_epoch();
                    }
                }
            })
            .map_err(|source| EngineError::Ticker { source })?;
        Ok(Ticker {
            stop,
            thread: Some(thread),
        })
    }

    /// The wasmtime engine.
    #[must_use]
    pub fn wasmtime(&self) -> &wasmtime::Engine {
        &self.inner.wasmtime
    }

    /// The limits every policy of this engine runs under.
    #[must_use]
    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    /// The linker with every host function a guest may import.
    #[must_use]
    pub fn linker(&self) -> &Linker<GuestState> {
        &self.inner.linker
    }

    /// A fresh store for one instance of `policy`, with its memory limiter installed (at most
    /// `memory_bytes`, never more than the engine's limit) and epoch deadlines set to trap.
    #[must_use]
    pub fn new_store(&self, policy: &str, memory_bytes: usize) -> Store<GuestState> {
        let limits = &self.inner.limits;
        let state = GuestState::new(
            policy,
            memory_bytes.min(limits.memory_bytes),
            limits.table_elements,
            limits.max_message_bytes,
        );
        let mut store = Store::new(&self.inner.wasmtime, state);
        store.limiter(|state| state);
        store.epoch_deadline_trap();
        store.set_epoch_deadline(limits.ticks(limits.init_deadline));
        store
    }
}
