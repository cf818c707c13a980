//! The host functions a guest may import (ABI.md §4), defined once in the engine's base linker.
//!
//! Weir's own `weir.panic` and `weir.log`, and a locked-down WASI preview 1 subset: no files, no
//! sockets, no environment, no arguments. Any other WASI function links as a trap (see
//! [`crate::policy::load`]); any other import module is refused at load.

use std::time::{SystemTime, UNIX_EPOCH};

use wasmtime::{Caller, Extern, Linker, Memory};
use weir_abi::{IMPORT_LOG, IMPORT_MODULE, IMPORT_PANIC, IMPORT_WASI};

use super::engine::EngineError;
use super::guest_state::GuestState;

/// WASI errno: success.
const ERRNO_SUCCESS: i32 = 0;
/// WASI errno: bad file descriptor.
const ERRNO_BADF: i32 = 8;
/// WASI errno: bad address.
const ERRNO_FAULT: i32 = 21;
/// WASI errno: invalid argument.
const ERRNO_INVAL: i32 = 28;

/// The WASI functions the host provides; every other WASI import traps when called.
pub(crate) const PROVIDED_WASI: &[&str] = &[
    "fd_write",
    "environ_sizes_get",
    "environ_get",
    "args_sizes_get",
    "args_get",
    "random_get",
    "clock_time_get",
    "clock_res_get",
    "sched_yield",
    "proc_exit",
];

/// The functions of the `weir` import module.
pub(crate) const PROVIDED_WEIR: &[&str] = &[IMPORT_PANIC, IMPORT_LOG];

/// A guest called WASI `proc_exit`. Policies have no process to exit; it is a guest fault.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("guest called proc_exit({code})")]
pub struct GuestExit {
    /// The exit code the guest passed.
    pub code: i32,
}

fn memory(caller: &mut Caller<'_, GuestState>) -> Option<Memory> {
    match caller.get_export(weir_abi::EXPORT_MEMORY) {
        Some(Extern::Memory(memory)) => Some(memory),
        _ => None,
    }
}

/// Reads `len` bytes at `ptr` of the caller's memory, bounds-checked.
fn read_guest(caller: &mut Caller<'_, GuestState>, ptr: i32, len: i32) -> Option<Vec<u8>> {
    let memory = memory(caller)?;
    let start = usize::try_from(ptr.cast_unsigned()).ok()?;
    let len = usize::try_from(len.cast_unsigned()).ok()?;
    let bytes = memory.data(&*caller).get(start..start.checked_add(len)?)?;
    Some(bytes.to_vec())
}

/// Writes `bytes` at `ptr` of the caller's memory; `false` when out of bounds.
fn write_guest(caller: &mut Caller<'_, GuestState>, ptr: i32, bytes: &[u8]) -> bool {
    let Some(memory) = memory(caller) else {
        return false;
    };
    let Ok(start) = usize::try_from(ptr.cast_unsigned()) else {
        return false;
    };
    memory.write(&mut *caller, start, bytes).is_ok()
}

fn write_u32s(caller: &mut Caller<'_, GuestState>, at: &[(i32, u32)]) -> i32 {
    for &(ptr, value) in at {
        if !write_guest(caller, ptr, &value.to_le_bytes()) {
            return ERRNO_FAULT;
        }
    }
    ERRNO_SUCCESS
}

fn guest_log(caller: &mut Caller<'_, GuestState>, level: i32, bytes: &[u8]) {
    let state = caller.data_mut();
    if state.log_budget == 0 {
        return;
    }
    state.log_budget -= 1;
    let message = state.message_from(bytes);
    let message = message.trim_end();
    let policy = state.policy.as_str();
    match level {
        weir_abi::LOG_ERROR => tracing::error!(policy, guest = true, "{message}"),
        weir_abi::LOG_WARN => tracing::warn!(policy, guest = true, "{message}"),
        weir_abi::LOG_INFO => tracing::info!(policy, guest = true, "{message}"),
        weir_abi::LOG_DEBUG => tracing::debug!(policy, guest = true, "{message}"),
        _ => tracing::trace!(policy, guest = true, "{message}"),
    }
}

fn define<F>(result: wasmtime::Result<F>, name: &'static str) -> Result<(), EngineError> {
    result.map(drop).map_err(|e| EngineError::HostFunction {
        name,
        source: e.into_boxed_dyn_error(),
    })
}

/// Builds the linker every policy module is linked against.
pub(crate) fn base_linker(engine: &wasmtime::Engine) -> Result<Linker<GuestState>, EngineError> {
    let mut linker = Linker::new(engine);
    define_weir(&mut linker)?;
    define_wasi(&mut linker)?;
    Ok(linker)
}

fn define_weir(linker: &mut Linker<GuestState>) -> Result<(), EngineError> {
    define(
        linker.func_wrap(
            IMPORT_MODULE,
            IMPORT_PANIC,
            |mut caller: Caller<'_, GuestState>, ptr: i32, len: i32| {
                let message = match read_guest(&mut caller, ptr, len) {
                    Some(bytes) => caller.data().message_from(&bytes),
                    None => format!("<panic message out of bounds: ptr={ptr:#x} len={len}>"),
                };
                caller.data_mut().panic_message = Some(message);
            },
        ),
        IMPORT_PANIC,
    )?;
    define(
        linker.func_wrap(
            IMPORT_MODULE,
            IMPORT_LOG,
            |mut caller: Caller<'_, GuestState>, level: i32, ptr: i32, len: i32| {
                if caller.data().log_budget == 0 {
                    return;
                }
                if let Some(bytes) = read_guest(&mut caller, ptr, len) {
                    guest_log(&mut caller, level, &bytes);
                }
            },
        ),
        IMPORT_LOG,
    )
}

fn define_wasi(linker: &mut Linker<GuestState>) -> Result<(), EngineError> {
    define(
        linker.func_wrap(
            IMPORT_WASI,
            "fd_write",
            |mut caller: Caller<'_, GuestState>,
             fd: i32,
             iovs: i32,
             iovs_len: i32,
             nwritten: i32| {
                if fd != 1 && fd != 2 {
                    return ERRNO_BADF;
                }
                let Ok(count) = u32::try_from(iovs_len) else {
                    return ERRNO_INVAL;
                };
                let Some(table) = count
                    .checked_mul(8)
                    .and_then(|n| read_guest(&mut caller, iovs, n.cast_signed()))
                else {
                    return ERRNO_FAULT;
                };
                let mut total: u32 = 0;
                let mut text = Vec::new();
                for iov in table.chunks_exact(8) {
                    let ptr = i32::from_le_bytes([iov[0], iov[1], iov[2], iov[3]]);
                    let len = i32::from_le_bytes([iov[4], iov[5], iov[6], iov[7]]);
                    let Some(bytes) = read_guest(&mut caller, ptr, len) else {
                        return ERRNO_FAULT;
                    };
                    total = total.saturating_add(len.cast_unsigned());
                    let room = caller.data().max_message_bytes.saturating_sub(text.len());
                    text.extend_from_slice(&bytes[..bytes.len().min(room)]);
                }
                let level = if fd == 2 {
                    weir_abi::LOG_WARN
                } else {
                    weir_abi::LOG_INFO
                };
                guest_log(&mut caller, level, &text);
                write_u32s(&mut caller, &[(nwritten, total)])
            },
        ),
        "fd_write",
    )?;
    for name in ["environ_sizes_get", "args_sizes_get"] {
        define(
            linker.func_wrap(
                IMPORT_WASI,
                name,
                |mut caller: Caller<'_, GuestState>, count: i32, size: i32| {
                    write_u32s(&mut caller, &[(count, 0), (size, 0)])
                },
            ),
            name,
        )?;
    }
    for name in ["environ_get", "args_get"] {
        define(
            linker.func_wrap(
                IMPORT_WASI,
                name,
                |_: Caller<'_, GuestState>, _: i32, _: i32| ERRNO_SUCCESS,
            ),
            name,
        )?;
    }
    define(
        linker.func_wrap(
            IMPORT_WASI,
            "random_get",
            |mut caller: Caller<'_, GuestState>, buf: i32, len: i32| {
                let Some(memory) = memory(&mut caller) else {
                    return ERRNO_FAULT;
                };
                let Ok(start) = usize::try_from(buf.cast_unsigned()) else {
                    return ERRNO_FAULT;
                };
                let Ok(len) = usize::try_from(len.cast_unsigned()) else {
                    return ERRNO_FAULT;
                };
                let Some(end) = start.checked_add(len) else {
                    return ERRNO_FAULT;
                };
                let Some(dest) = memory.data_mut(&mut caller).get_mut(start..end) else {
                    return ERRNO_FAULT;
                };
                match getrandom::fill(dest) {
                    Ok(()) => ERRNO_SUCCESS,
                    Err(_) => ERRNO_INVAL,
                }
            },
        ),
        "random_get",
    )?;
    define(
        linker.func_wrap(
            IMPORT_WASI,
            "clock_time_get",
            |mut caller: Caller<'_, GuestState>, id: i32, _precision: i64, out: i32| {
                let nanos = match id {
                    // realtime
                    0 => SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap_or_default(),
                    // monotonic
                    1 => monotonic_origin().elapsed(),
                    _ => return ERRNO_INVAL,
                };
                let nanos = u64::try_from(nanos.as_nanos()).unwrap_or(u64::MAX);
                if write_guest(&mut caller, out, &nanos.to_le_bytes()) {
                    ERRNO_SUCCESS
                } else {
                    ERRNO_FAULT
                }
            },
        ),
        "clock_time_get",
    )?;
    define(
        linker.func_wrap(
            IMPORT_WASI,
            "clock_res_get",
            |mut caller: Caller<'_, GuestState>, id: i32, out: i32| {
                if !(0..=1).contains(&id) {
                    return ERRNO_INVAL;
                }
                if write_guest(&mut caller, out, &1_000u64.to_le_bytes()) {
                    ERRNO_SUCCESS
                } else {
                    ERRNO_FAULT
                }
            },
        ),
        "clock_res_get",
    )?;
    define(
        linker.func_wrap(IMPORT_WASI, "sched_yield", |_: Caller<'_, GuestState>| {
            ERRNO_SUCCESS
        }),
        "sched_yield",
    )?;
    define(
        linker.func_wrap(
            IMPORT_WASI,
            "proc_exit",
            |_: Caller<'_, GuestState>, code: i32| -> wasmtime::Result<()> {
                Err(wasmtime::Error::new(GuestExit { code }))
            },
        ),
        "proc_exit",
    )
}

fn monotonic_origin() -> std::time::Instant {
    static ORIGIN: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    *ORIGIN.get_or_init(std::time::Instant::now)
}
