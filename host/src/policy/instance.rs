//! [`PolicyInstance`]: one live instance of a policy module and the calls into it.

use std::time::Duration;

use wasmtime::{Memory, Store, Trap, TypedFunc};
use weir_abi::{
    ABI_VERSION, BUFFER_ALIGN, EXPORT_ABI_VERSION, EXPORT_ALLOC, EXPORT_FREE, EXPORT_INIT,
    EXPORT_INITIALIZE, EXPORT_MEMORY, EXPORT_PROCESS, ResultDesc, status,
};

use super::abi::{Assembled, InputPlan, OutputAssembler, OutputCheck, read_message, read_result};
use super::error::{Phase, PolicyError};
use super::load::PolicyModule;
use crate::engine::{GuestExit, GuestState, Limits, MemoryCapExceeded};

/// A live instance: its store, memory, exports and input arena.
///
/// Any error leaves the instance in an unknown state; the owner must drop it.
pub(crate) struct PolicyInstance {
    store: Store<GuestState>,
    memory: Memory,
    alloc: TypedFunc<(i32, i32), i32>,
    free: TypedFunc<(i32, i32, i32), ()>,
    process: TypedFunc<i32, i32>,
    arena: Option<(u32, usize)>,
    batch_seq: u64,
    limits: Limits,
}

/// Turns a failed call into a typed error, using what the guest reported before it stopped.
fn classify(
    err: wasmtime::Error,
    state: &GuestState,
    phase: Phase,
    deadline: Duration,
) -> PolicyError {
    if let Some(hit) = err
        .downcast_ref::<MemoryCapExceeded>()
        .or(state.memory_cap_hit.as_ref())
    {
        return PolicyError::MemoryLimit {
            phase,
            desired: hit.desired,
            cap: hit.cap,
        };
    }
    if let Some(exit) = err.downcast_ref::<GuestExit>() {
        return PolicyError::Fault {
            phase,
            reason: exit.to_string(),
        };
    }
    match err.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => PolicyError::TimeLimit { phase, deadline },
        Some(trap) => match &state.panic_message {
            Some(message) => PolicyError::Panic {
                phase,
                message: message.clone(),
            },
            None => PolicyError::Fault {
                phase,
                reason: trap.to_string(),
            },
        },
        None => PolicyError::Fault {
            phase,
            reason: format!("{err:#}"),
        },
    }
}

impl PolicyInstance {
    /// The size of the instance's linear memory now, in bytes.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.memory.data_size(&self.store)
    }

    /// Instantiates `module` and initializes it with `params`, all under the init deadline.
    pub(crate) fn new(module: &PolicyModule, params: &[u8]) -> Result<Self, PolicyError> {
        let engine = module.engine();
        let deadline = engine.limits().init_deadline;
        let mut store = engine.new_store(module.name(), module.limits().memory_bytes);
        let fail = |e: wasmtime::Error, store: &Store<GuestState>| {
            classify(e, store.data(), Phase::Init, deadline)
        };
        let instance = match module.instance_pre().instantiate(&mut store) {
            Ok(instance) => instance,
            Err(e) => return Err(fail(e, &store)),
        };
        let missing = |name: &str, e: wasmtime::Error| PolicyError::Instantiate {
            reason: format!("export `{name}`: {e:#}"),
        };
        let memory = instance
            .get_memory(&mut store, EXPORT_MEMORY)
            .ok_or_else(|| PolicyError::Instantiate {
                reason: format!("no `{EXPORT_MEMORY}` export"),
            })?;
        let abi_version = instance
            .get_typed_func::<(), i32>(&mut store, EXPORT_ABI_VERSION)
            .map_err(|e| missing(EXPORT_ABI_VERSION, e))?;
        let alloc = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, EXPORT_ALLOC)
            .map_err(|e| missing(EXPORT_ALLOC, e))?;
        let free = instance
            .get_typed_func::<(i32, i32, i32), ()>(&mut store, EXPORT_FREE)
            .map_err(|e| missing(EXPORT_FREE, e))?;
        let init = instance
            .get_typed_func::<(i32, i32), i32>(&mut store, EXPORT_INIT)
            .map_err(|e| missing(EXPORT_INIT, e))?;
        let process = instance
            .get_typed_func::<i32, i32>(&mut store, EXPORT_PROCESS)
            .map_err(|e| missing(EXPORT_PROCESS, e))?;
        if module.has_initialize() {
            let initialize = instance
                .get_typed_func::<(), ()>(&mut store, EXPORT_INITIALIZE)
                .map_err(|e| missing(EXPORT_INITIALIZE, e))?;
            initialize
                .call(&mut store, ())
                .map_err(|e| fail(e, &store))?;
        }
        let version = abi_version
            .call(&mut store, ())
            .map_err(|e| fail(e, &store))?;
        if version.cast_unsigned() != ABI_VERSION {
            return Err(PolicyError::Instantiate {
                reason: format!("guest speaks ABI version {version}, the host {ABI_VERSION}"),
            });
        }
        let limits = module.limits().clone();
        let mut this = Self {
            store,
            memory,
            alloc,
            free,
            process,
            arena: None,
            batch_seq: 0,
            limits,
        };
        let len = i32::try_from(params.len()).map_err(|_| PolicyError::Config {
            message: format!("parameter blob of {} bytes is too large", params.len()),
        })?;
        let ptr = this.guest_alloc(params.len(), 1, Phase::Init)?;
        this.memory
            .write(&mut this.store, ptr as usize, params)
            .map_err(|e| PolicyError::Fault {
                phase: Phase::Init,
                reason: e.to_string(),
            })?;
        let result_ptr = init
            .call(&mut this.store, (ptr.cast_signed(), len))
            .map_err(|e| fail(e, &this.store))?;
        let result = this.read_result(result_ptr, Phase::Init)?;
        if result.status != status::OK {
            let message = this.message(&result);
            return Err(match result.status {
                status::BAD_CONFIG => PolicyError::Config { message },
                code => PolicyError::Guest {
                    phase: Phase::Init,
                    status: code,
                    message,
                },
            });
        }
        Ok(this)
    }

    fn read_result(&self, ptr: i32, phase: Phase) -> Result<ResultDesc, PolicyError> {
        read_result(self.memory.data(&self.store), ptr.cast_unsigned())
            .map_err(|e| PolicyError::BadOutput { phase, error: e })
    }

    fn message(&self, result: &ResultDesc) -> String {
        let cap = self.store.data().max_message_bytes;
        read_message(self.memory.data(&self.store), result.message, cap)
    }

    /// Calls `weir_alloc` and checks the region it returns.
    fn guest_alloc(&mut self, size: usize, align: u32, phase: Phase) -> Result<u32, PolicyError> {
        let size32 = i32::try_from(size).map_err(|_| PolicyError::MemoryLimit {
            phase,
            desired: size,
            cap: self.limits.memory_bytes,
        })?;
        let deadline = self.deadline(phase);
        let ptr = self
            .alloc
            .call(&mut self.store, (size32, align.cast_signed()))
            .map_err(|e| classify(e, self.store.data(), phase, deadline))?
            .cast_unsigned();
        if ptr == 0 {
            return Err(PolicyError::MemoryLimit {
                phase,
                desired: size,
                cap: self.limits.memory_bytes,
            });
        }
        let in_bounds = (ptr as usize)
            .checked_add(size)
            .is_some_and(|end| end <= self.memory.data_size(&self.store));
        if !in_bounds || ptr % align != 0 {
            return Err(PolicyError::bad_output(
                phase,
                OutputCheck::Bounds,
                format!(
                    "weir_alloc({size}, {align}) returned {ptr:#x}, outside memory or misaligned"
                ),
            ));
        }
        Ok(ptr)
    }

    fn deadline(&self, phase: Phase) -> Duration {
        match phase {
            Phase::Init => self.limits.init_deadline,
            Phase::Batch => self.limits.batch_deadline,
        }
    }

    /// Makes sure the input arena holds at least `size` bytes.
    fn ensure_arena(&mut self, size: usize) -> Result<(u32, usize), PolicyError> {
        if let Some((ptr, cap)) = self.arena
            && cap >= size
        {
            return Ok((ptr, cap));
        }
        if let Some((ptr, cap)) = self.arena.take() {
            let deadline = self.deadline(Phase::Batch);
            // `cap` came from a successful allocation, so it fits in an i32.
            let cap = i32::try_from(cap).unwrap_or(i32::MAX);
            self.free
                .call(
                    &mut self.store,
                    (ptr.cast_signed(), cap, BUFFER_ALIGN.cast_signed()),
                )
                .map_err(|e| classify(e, self.store.data(), Phase::Batch, deadline))?;
        }
        // Grow geometrically so that slowly growing batches do not reallocate every time.
        let cap = size.max(64 << 10).next_power_of_two();
        let cap = if cap > self.limits.memory_bytes {
            size
        } else {
            cap
        };
        let ptr = self.guest_alloc(cap, BUFFER_ALIGN, Phase::Batch)?;
        self.arena = Some((ptr, cap));
        Ok((ptr, cap))
    }

    /// Runs one batch through the instance, morsel by morsel, under the batch deadline.
    pub(crate) fn run_batch(
        &mut self,
        module: &PolicyModule,
        plan: &InputPlan,
    ) -> Result<Assembled, PolicyError> {
        let limits = module.limits();
        let manifest = module.manifest();
        let row_preserving = manifest.is_row_preserving();
        let filter = manifest.kind == weir_abi::PolicyKind::Filter;
        let rows = plan.num_rows();
        let morsel = if row_preserving {
            plan.morsel_rows(limits.morsel_bytes)
        } else {
            rows.max(1)
        };
        let mut assembler =
            OutputAssembler::new(&module.declared().outputs, filter, row_preserving, rows);
        self.store
            .set_epoch_deadline(limits.ticks(limits.batch_deadline));
        self.store.data_mut().begin_call();
        let deadline = limits.batch_deadline;
        let mut off = 0;
        while off < rows {
            let len = morsel.min(rows - off);
            let size = plan.arena_size(off, len);
            // In bounds: `guest_alloc` checked the arena against memory, which never shrinks.
            let (base, _) = self.ensure_arena(size)?;
            let arena =
                &mut self.memory.data_mut(&mut self.store)[base as usize..base as usize + size];
            let desc = plan
                .write(arena, base, off, len, self.batch_seq)
                .map_err(PolicyError::Input)?;
            let result_ptr = self
                .process
                .call(&mut self.store, desc.cast_signed())
                .map_err(|e| classify(e, self.store.data(), Phase::Batch, deadline))?;
            let result = self.read_result(result_ptr, Phase::Batch)?;
            if result.status != status::OK {
                let message = self.message(&result);
                return Err(PolicyError::Guest {
                    phase: Phase::Batch,
                    status: result.status,
                    message,
                });
            }
            assembler
                .add(
                    self.memory.data(&self.store),
                    result_ptr.cast_unsigned(),
                    &result,
                    len,
                )
                .map_err(|error| PolicyError::BadOutput {
                    phase: Phase::Batch,
                    error,
                })?;
            off += len;
        }
        self.batch_seq += 1;
        assembler.finish().map_err(|error| PolicyError::BadOutput {
            phase: Phase::Batch,
            error,
        })
    }
}
