//! The guest side of the ABI, called by the code `#[filter]` and `#[transform]` generate.
//! Not part of the public API.

pub use crate::batch::RawColumn;
pub use weir_abi::{ParsedType, TimeUnit, TypeId as WireTypeId};

use crate::error::{Error, Result};

/// One declared column, as the macro emits it.
#[derive(Debug)]
pub struct ColumnSpec {
    /// Column name.
    pub name: &'static str,
    /// Declared type.
    pub ty: ParsedType<'static>,
    /// Declared optional (`?`).
    pub optional: bool,
}

/// What a policy declared, as the macro emits it.
#[derive(Debug)]
pub struct PolicySpec {
    /// Inputs, in order.
    pub reads: &'static [ColumnSpec],
    /// Outputs, in order (transforms).
    pub writes: &'static [ColumnSpec],
    /// `passthrough = "none"`: the output row count is free.
    pub passthrough_none: bool,
}

/// Parses a JSON parameter blob (empty or whitespace-only counts as `{}`).
///
/// # Errors
/// With [`crate::json::Error`]'s message when the blob does not fit `C`.
pub fn parse_json<C: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<C> {
    let bytes = if bytes.iter().all(u8::is_ascii_whitespace) {
        b"{}"
    } else {
        bytes
    };
    crate::json::from_slice(bytes).map_err(|e| Error::new(format!("bad parameters: {e}")))
}

/// Policy state kept in the instance: the parameters (or what the init hook made of them).
#[derive(Debug)]
pub struct State<P>(core::cell::UnsafeCell<Option<P>>);

impl<P> State<P> {
    /// No state yet (before `weir_init`).
    #[must_use]
    pub const fn new() -> Self {
        Self(core::cell::UnsafeCell::new(None))
    }
}

impl<P> Default for State<P> {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(target_arch = "wasm32")]
pub use wasm::*;

#[cfg(target_arch = "wasm32")]
pub(crate) mod imports {
    #[link(wasm_import_module = "weir")]
    unsafe extern "C" {
        /// `weir.panic(ptr, len)`.
        #[link_name = "panic"]
        pub(crate) fn panic(ptr: *const u8, len: usize);
        /// `weir.log(level, ptr, len)`.
        #[link_name = "log"]
        pub(crate) fn log(level: i32, ptr: *const u8, len: usize);
    }
}

#[cfg(target_arch = "wasm32")]
mod wasm {
    use std::alloc::Layout;
    use std::cell::UnsafeCell;

    use weir_abi::status;

    use super::{PolicySpec, State};
    use crate::batch::Batch;
    use crate::error::Result;
    use crate::output::Output;
    use crate::selection::Selection;
    use crate::wire::{Memory, Retained, decode_batch};

    // SAFETY: wasm32-wasip1 guests are single-threaded and the host never re-enters the module
    // while one of its exports runs, so the cell is never accessed concurrently.
    unsafe impl<P> Sync for State<P> {}

    struct Global<T>(UnsafeCell<T>);
    // SAFETY: as for `State`: one thread, no re-entry.
    unsafe impl<T> Sync for Global<T> {}

    /// The previous call's result, freed at the start of the next call.
    static LAST: Global<Option<Box<Retained>>> = Global(UnsafeCell::new(None));
    static HOOKED: Global<bool> = Global(UnsafeCell::new(false));

    fn start_call() {
        // SAFETY: single-threaded, not re-entered (see `Global`); no reference into `LAST` or
        // `HOOKED` outlives these statements.
        let first = unsafe {
            *LAST.0.get() = None;
            !std::mem::replace(&mut *HOOKED.0.get(), true)
        };
        if first {
            std::panic::set_hook(Box::new(|info| {
                let msg = info.to_string();
                // SAFETY: the host reads `len` bytes at `ptr` during the call.
                unsafe { super::imports::panic(msg.as_ptr(), msg.len()) };
            }));
        }
    }

    fn finish(mut r: Retained) -> i32 {
        let mut boxed = Box::new(std::mem::take(&mut r));
        boxed.encode(&|p| p.expose_provenance() as u32);
        let ptr = (&raw const boxed.result).expose_provenance() as i32;
        // SAFETY: single-threaded, not re-entered (see `Global`).
        unsafe { *LAST.0.get() = Some(boxed) };
        ptr
    }

    /// `weir_alloc`.
    #[must_use]
    pub fn alloc(size: i32, align: i32) -> i32 {
        let Ok(layout) =
            Layout::from_size_align((size as u32).max(1) as usize, align as u32 as usize)
        else {
            return 0;
        };
        // SAFETY: the layout has a non-zero size.
        let p = unsafe { std::alloc::alloc(layout) };
        p.expose_provenance() as i32
    }

    /// `weir_free`.
    pub fn free(ptr: i32, size: i32, align: i32) {
        if ptr == 0 {
            return;
        }
        let Ok(layout) =
            Layout::from_size_align((size as u32).max(1) as usize, align as u32 as usize)
        else {
            return;
        };
        // SAFETY: the ABI says the host frees only what `weir_alloc` gave it, with the same size
        // and alignment, which is the layout `alloc` used.
        unsafe {
            std::alloc::dealloc(
                std::ptr::with_exposed_provenance_mut(ptr as u32 as usize),
                layout,
            )
        };
    }

    /// `weir_init`: parses the blob with `parse` and stores the state.
    pub fn init<P>(
        state: &State<P>,
        ptr: i32,
        len: i32,
        parse: impl FnOnce(&[u8]) -> Result<P>,
    ) -> i32 {
        start_call();
        let len = len as u32 as usize;
        let blob: &[u8] = if len == 0 {
            &[]
        } else {
            // SAFETY: the host wrote `len` bytes at `ptr` (from `weir_alloc`) and does not touch
            // them during the call.
            unsafe {
                std::slice::from_raw_parts(
                    std::ptr::with_exposed_provenance(ptr as u32 as usize),
                    len,
                )
            }
        };
        let parsed = parse(blob);
        if len != 0 {
            // The blob came from `weir_alloc(len, 1)` and is ours to free (ABI §3).
            free(ptr, len as i32, 1);
        }
        match parsed {
            Ok(p) => {
                // SAFETY: single-threaded, not re-entered; no other reference to the state lives.
                unsafe { *state.0.get() = Some(p) };
                finish(Retained::ok())
            }
            Err(e) => finish(Retained::error(status::BAD_CONFIG, e.message())),
        }
    }

    fn run<P>(
        spec: &'static PolicySpec,
        state: &State<P>,
        batch_ptr: i32,
        f: impl FnOnce(&Batch, &mut P, usize) -> Retained,
    ) -> i32 {
        start_call();
        // SAFETY: single-threaded, not re-entered: this is the only live reference to the state.
        let Some(p) = (unsafe { &mut *state.0.get() }) else {
            return finish(Retained::error(
                status::NOT_INITIALIZED,
                "weir_process called before a successful weir_init",
            ));
        };
        // SAFETY: the host wrote the batch into the input arena and leaves it untouched until the
        // call returns; the batch is dropped before that.
        let batch = match unsafe { decode_batch(Memory::linear(), batch_ptr as u32, spec.reads) } {
            Ok(b) => b,
            Err(e) => return finish(Retained::error(status::BAD_INPUT, e)),
        };
        let rows = batch.num_rows();
        let r = f(&batch, p, rows);
        drop(batch);
        finish(r)
    }

    /// `weir_process` of a filter.
    pub fn process_filter<P>(
        spec: &'static PolicySpec,
        state: &State<P>,
        batch_ptr: i32,
        f: impl FnOnce(&Batch, &mut P) -> Result<Selection>,
    ) -> i32 {
        run(spec, state, batch_ptr, |b, p, rows| match f(b, p) {
            Ok(sel) => Retained::filter(sel, rows),
            Err(e) => Retained::error(status::GUEST_ERROR, e.message()),
        })
    }

    /// `weir_process` of a transform.
    pub fn process_transform<P>(
        spec: &'static PolicySpec,
        state: &State<P>,
        batch_ptr: i32,
        f: impl FnOnce(&Batch, &mut P) -> Result<Output>,
    ) -> i32 {
        run(spec, state, batch_ptr, |b, p, rows| match f(b, p) {
            Ok(out) => Retained::transform(spec, rows, out),
            Err(e) => Retained::error(status::GUEST_ERROR, e.message()),
        })
    }
}
