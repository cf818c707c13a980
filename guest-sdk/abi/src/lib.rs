//! The Weir policy ABI, version 1.
//!
//! This crate is the single source of truth for the binary contract between the Weir host and a
//! policy module (a `wasm32-wasip1` guest). It is `no_std` so that both sides use the very same
//! `#[repr(C)]` layouts; the `std` feature adds the manifest's serde types for the host and the
//! SDK's macros.
//!
//! The prose version of the contract, with the call sequence and every rule the host enforces,
//! is `guest-sdk/ABI.md`. Everything in it is mirrored by a constant or type here.
//!
//! # Layout rules
//!
//! * Every pointer and length is a `u32`: guests are 32-bit WebAssembly and pointers are offsets
//!   into the guest's linear memory.
//! * Every struct has explicit padding fields (`_pad*`, always zero) and a `const` size assertion,
//!   so the layout is identical for the host (64-bit) and the guest (32-bit).
//! * All integers are little-endian (WebAssembly is little-endian).
#![no_std]

#[cfg(target_endian = "big")]
compile_error!("the Weir ABI is little-endian; big-endian hosts are not supported");

#[cfg(feature = "std")]
extern crate std;

mod types;
pub use types::{ParsedType, TimeUnit, TypeId, TypeParseError, parse_type};

#[cfg(feature = "std")]
mod manifest;
#[cfg(feature = "std")]
pub use manifest::{ColumnDecl, Manifest, ManifestError, Passthrough, PolicyKind};

/// The ABI version described by this crate. A guest reports it from [`EXPORT_ABI_VERSION`] and
/// in its manifest; the host refuses any other value.
pub const ABI_VERSION: u32 = 1;

/// Name of the WebAssembly custom section that holds the policy manifest (UTF-8 JSON, see
/// [`Manifest`](crate::Manifest) with the `std` feature).
pub const MANIFEST_SECTION: &str = "weir.policy";

/// Alignment, in bytes, of every buffer the host copies into guest memory.
pub const BUFFER_ALIGN: u32 = 64;

/// Export: `weir_abi_version() -> i32`. Returns [`ABI_VERSION`].
pub const EXPORT_ABI_VERSION: &str = "weir_abi_version";
/// Export: `weir_alloc(size: i32, align: i32) -> i32`. Allocates `size` bytes in guest memory for
/// the host to write into (config blob, input arena). Returns 0 when out of memory.
pub const EXPORT_ALLOC: &str = "weir_alloc";
/// Export: `weir_free(ptr: i32, size: i32, align: i32)`. Frees memory from [`EXPORT_ALLOC`].
pub const EXPORT_FREE: &str = "weir_free";
/// Export: `weir_init(config_ptr: i32, config_len: i32) -> i32`. Called once per instance with
/// the policy's parameter blob. Returns a pointer to a [`ResultDesc`] (only `status` and `message`
/// are read).
pub const EXPORT_INIT: &str = "weir_init";
/// Export: `weir_process(batch: i32) -> i32`. Runs the policy over the [`BatchDesc`] at `batch`
/// and returns a pointer to a [`ResultDesc`].
pub const EXPORT_PROCESS: &str = "weir_process";
/// Export: the guest's linear memory. Exactly one memory, named `memory`.
pub const EXPORT_MEMORY: &str = "memory";
/// Optional export: the WASI reactor initializer. Called once, before `weir_init`, when present.
pub const EXPORT_INITIALIZE: &str = "_initialize";

/// Import module for Weir's own host functions.
pub const IMPORT_MODULE: &str = "weir";
/// Import: `weir.panic(ptr: i32, len: i32)`. The guest reports a panic message (UTF-8) just before
/// it traps. The host attaches the message to the resulting error.
pub const IMPORT_PANIC: &str = "panic";
/// Import: `weir.log(level: i32, ptr: i32, len: i32)`. A log line from the guest (UTF-8). Levels are
/// [`LOG_ERROR`]..=[`LOG_TRACE`]. The host rate-limits these.
pub const IMPORT_LOG: &str = "log";
/// Import module of the WASI preview 1 functions the host provides (a locked-down subset).
pub const IMPORT_WASI: &str = "wasi_snapshot_preview1";

/// Log level: error.
pub const LOG_ERROR: i32 = 1;
/// Log level: warning.
pub const LOG_WARN: i32 = 2;
/// Log level: info.
pub const LOG_INFO: i32 = 3;
/// Log level: debug.
pub const LOG_DEBUG: i32 = 4;
/// Log level: trace.
pub const LOG_TRACE: i32 = 5;

/// Status codes a guest reports in [`ResultDesc::status`].
pub mod status {
    /// Success: the result is valid.
    pub const OK: u32 = 0;
    /// The policy author's code returned an error; `message` says why.
    pub const GUEST_ERROR: u32 = 1;
    /// The input did not match what the policy declared (a bug in the host or the SDK).
    pub const BAD_INPUT: u32 = 2;
    /// `weir_init` could not use the parameter blob; `message` says why.
    pub const BAD_CONFIG: u32 = 3;
    /// The guest could not allocate memory for its output.
    pub const OUT_OF_MEMORY: u32 = 4;
    /// `weir_process` was called before a successful `weir_init`.
    pub const NOT_INITIALIZED: u32 = 5;
}

/// Column flag: the column is present in this batch. An optional declared column that the batch
/// lacks is passed with this bit clear and all buffers empty.
pub const COLUMN_PRESENT: u8 = 1 << 0;
/// Column flag: `validity` holds a validity bitmap. Clear means "no nulls" and `validity` is empty.
pub const COLUMN_HAS_VALIDITY: u8 = 1 << 1;

/// A `(ptr, len)` pair: `len` bytes at offset `ptr` of guest linear memory.
///
/// The empty buffer is `{ ptr: 0, len: 0 }`.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BufferRef {
    /// Byte offset into linear memory.
    pub ptr: u32,
    /// Length in bytes.
    pub len: u32,
}
const _: () = assert!(core::mem::size_of::<BufferRef>() == 8);
const _: () = assert!(core::mem::align_of::<BufferRef>() == 4);

impl BufferRef {
    /// The empty buffer.
    pub const EMPTY: Self = Self { ptr: 0, len: 0 };
}

/// One column, in Arrow's physical layout.
///
/// | type | validity | offsets | values |
/// |---|---|---|---|
/// | Boolean | bitmap | empty | bitmap, `ceil(len/8)` bytes |
/// | fixed-width primitives, Timestamp, Date32 | bitmap | empty | `len * width` bytes |
/// | Utf8, Binary | bitmap | `(len+1)` `i32`s, first 0, non-decreasing | `offsets[len]` bytes |
/// | FixedSizeBinary(w) | bitmap | empty | `len * w` bytes |
///
/// Bitmaps are LSB-first, start at bit 0, and are exactly `ceil(len/8)` bytes.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ColumnDesc {
    /// A [`TypeId`] as `u8`.
    pub type_id: u8,
    /// A [`TimeUnit`] as `u8` for Timestamp columns, else 0.
    pub time_unit: u8,
    /// [`COLUMN_PRESENT`] | [`COLUMN_HAS_VALIDITY`].
    pub flags: u8,
    /// Always 0.
    pub _pad0: u8,
    /// Element width in bytes for FixedSizeBinary, else 0.
    pub byte_width: u32,
    /// Number of rows.
    pub len: u32,
    /// Number of nulls (0 when there is no validity bitmap).
    pub null_count: u32,
    /// Validity bitmap.
    pub validity: BufferRef,
    /// Offsets (`i32`) for Utf8 and Binary.
    pub offsets: BufferRef,
    /// Values.
    pub values: BufferRef,
}
const _: () = assert!(core::mem::size_of::<ColumnDesc>() == 40);
const _: () = assert!(core::mem::align_of::<ColumnDesc>() == 4);

/// The input of one `weir_process` call, written by the host into the input arena.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct BatchDesc {
    /// [`ABI_VERSION`].
    pub abi_version: u32,
    /// Rows in this call.
    pub num_rows: u32,
    /// Number of [`ColumnDesc`]s at `columns`: one per declared input column, in declaration
    /// order.
    pub num_columns: u32,
    /// Pointer to `[ColumnDesc; num_columns]`.
    pub columns: u32,
    /// Sequence number of the host batch this call belongs to (starts at 0 per instance).
    pub batch_seq: u64,
    /// Index of this call's first row within the host batch. A large batch may be passed to a
    /// row-wise policy in several consecutive calls ("morsels"); see ABI.md.
    pub row_offset: u64,
}
const _: () = assert!(core::mem::size_of::<BatchDesc>() == 32);
const _: () = assert!(core::mem::align_of::<BatchDesc>() == 8);

/// The output of `weir_init` and `weir_process`, written by the guest in its own memory.
///
/// It stays valid until the next call into the guest.
#[repr(C)]
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct ResultDesc {
    /// One of the [`status`] codes.
    pub status: u32,
    /// Filter: number of selected rows (the host checks it against the bitmap).
    /// Transform: number of output rows.
    pub num_rows: u32,
    /// Selection bitmap over the input rows, `ceil(input rows / 8)` bytes, LSB-first. Required for
    /// filters. Optional for transforms that keep the input rows (empty = keep every row).
    pub selection: BufferRef,
    /// Transform: number of [`ColumnDesc`]s at `columns`, one per declared output column, in
    /// declaration order. Filter: 0.
    pub num_columns: u32,
    /// Transform: pointer to `[ColumnDesc; num_columns]`. Filter: 0.
    pub columns: u32,
    /// Error message (UTF-8) when `status != OK`, else empty.
    pub message: BufferRef,
}
const _: () = assert!(core::mem::size_of::<ResultDesc>() == 32);
const _: () = assert!(core::mem::align_of::<ResultDesc>() == 4);

/// Bytes of a bitmap covering `bits` bits.
#[must_use]
pub const fn bitmap_len(bits: u32) -> u32 {
    bits.div_ceil(8)
}
