//! Real guest memory for the `guest_output` target, and the layout of its inputs.
//!
//! Each policy below is compiled from its real `.wasm` (built by `cargo xtask build-policies`,
//! found in `WEIR_POLICY_DIR` or `<repo>/target/policies`) and instantiated once with the
//! host's engine, linker and store (its memory limiter included); its `_initialize` runs. A
//! fuzz input is then written into that instance's linear memory with `Memory::data_mut` at
//! [`ARENA_BASE`] and the host's output validation reads the whole memory, as it does after
//! `weir_process` returns. The bytes written are put back afterwards, so every run sees the
//! same memory. No guest code runs after the write: the arena lies in the guest's stack
//! region, which is not in use between calls.
//!
//! # Input layout
//!
//! | bytes | meaning |
//! |---|---|
//! | 0 | policy: index into [`POLICIES`] (modulo its length) |
//! | 1 | morsels: `1 + b % MAX_MORSELS` |
//! | 6 per morsel | input rows (u16 LE, modulo `MAX_ROWS + 1`), result pointer (u32 LE, absolute) |
//! | rest | the memory image, written at [`ARENA_BASE`] (at most [`ARENA_LEN`] bytes) |
//!
//! Every pointer inside the image is absolute, so descriptors may point into the image, at
//! the guest's own data and heap, or outside memory.

use std::path::PathBuf;

use bytemuck::Zeroable;
use wasmtime::{Memory, Store};
use weir_abi::{
    BufferRef, COLUMN_HAS_VALIDITY, COLUMN_PRESENT, ColumnDesc, EXPORT_INITIALIZE, EXPORT_MEMORY,
    ResultDesc, TypeId, bitmap_len, status,
};
use weir_host::engine::{Engine, GuestState};
use weir_host::policy::PolicyModule;
use weir_host::policy::abi::DeclaredColumn;

/// The policies whose instances the target writes into: a transform with every ABI type and
/// `passthrough: none`, a row-preserving transform (`passthrough: all`), a filter, and a
/// transform whose output row count is its own.
pub const POLICIES: [&str; 4] = [
    "weir-guest-roundtrip",
    "redact",
    "drop-outliers",
    "top-talkers",
];
/// Where the image is written in guest memory.
pub const ARENA_BASE: u32 = 0x1_0000;
/// The most image bytes written.
pub const ARENA_LEN: usize = 64 * 1024;
/// The most input rows one morsel claims.
pub const MAX_ROWS: u16 = 4096;
/// The most morsels one input holds.
pub const MAX_MORSELS: u8 = 3;
/// Bytes per morsel in the header.
const MORSEL_HEADER: usize = 6;

/// Where the built policy modules are.
#[must_use]
pub fn policy_dir() -> PathBuf {
    std::env::var_os("WEIR_POLICY_DIR").map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("..")
                .join("target")
                .join("policies")
        },
        PathBuf::from,
    )
}

/// What the host knows of a policy's output.
#[derive(Debug, Clone)]
pub struct Shape {
    /// The policy's name.
    pub name: &'static str,
    /// Its declared outputs.
    pub outputs: Vec<DeclaredColumn>,
    /// Whether it is a filter.
    pub filter: bool,
    /// Whether it keeps the input's rows (filters and `passthrough` other than `none`).
    pub row_preserving: bool,
}

/// One live instance of a real policy module.
pub struct Guest {
    /// The policy's output shape.
    pub shape: Shape,
    store: Store<GuestState>,
    memory: Memory,
    pristine: Vec<u8>,
}

impl Guest {
    /// Compiles and instantiates `name` from [`policy_dir`].
    ///
    /// # Panics
    /// When the module is missing or does not load: the target cannot run without it.
    #[must_use]
    pub fn load(engine: &Engine, name: &'static str) -> Self {
        let path = policy_dir().join(format!("{name}.wasm"));
        let bytes = std::fs::read(&path).unwrap_or_else(|e| {
            panic!(
                "reading {}: {e}; run `cargo xtask build-policies` or set WEIR_POLICY_DIR",
                path.display()
            )
        });
        let module = PolicyModule::compile(engine, name, &bytes)
            .unwrap_or_else(|e| panic!("{} does not load: {e}", path.display()));
        let wasm = wasmtime::Module::new(engine.wasmtime(), &bytes)
            .unwrap_or_else(|e| panic!("{} does not compile: {e:#}", path.display()));
        let mut store = engine.new_store(name, module.limits().memory_bytes);
        let instance = engine
            .linker()
            .instantiate(&mut store, &wasm)
            .unwrap_or_else(|e| panic!("{name} does not instantiate: {e:#}"));
        if let Ok(initialize) = instance.get_typed_func::<(), ()>(&mut store, EXPORT_INITIALIZE) {
            initialize
                .call(&mut store, ())
                .unwrap_or_else(|e| panic!("{name}: `{EXPORT_INITIALIZE}` failed: {e:#}"));
        }
        let memory = instance
            .get_memory(&mut store, EXPORT_MEMORY)
            .unwrap_or_else(|| panic!("{name} exports no memory"));
        let end = ARENA_BASE as usize + ARENA_LEN;
        let size = memory.data_size(&store);
        if size < end {
            let pages = (end - size).div_ceil(64 * 1024) as u64;
            memory
                .grow(&mut store, pages)
                .unwrap_or_else(|e| panic!("{name}: growing memory: {e:#}"));
        }
        let pristine = memory.data(&store)[ARENA_BASE as usize..end].to_vec();
        let manifest = module.manifest();
        Self {
            shape: Shape {
                name,
                outputs: module.declared().outputs.clone(),
                filter: manifest.kind == weir_abi::PolicyKind::Filter,
                row_preserving: manifest.is_row_preserving(),
            },
            store,
            memory,
            pristine,
        }
    }

    /// Writes `image` at [`ARENA_BASE`], runs `f` on the shape and the whole linear memory,
    /// and puts the original bytes back.
    pub fn with_image<R>(&mut self, image: &[u8], f: impl FnOnce(&Shape, &[u8]) -> R) -> R {
        let n = image.len().min(ARENA_LEN);
        let base = ARENA_BASE as usize;
        self.memory.data_mut(&mut self.store)[base..base + n].copy_from_slice(&image[..n]);
        let out = f(&self.shape, self.memory.data(&self.store));
        self.memory.data_mut(&mut self.store)[base..base + n].copy_from_slice(&self.pristine[..n]);
        out
    }
}

/// One morsel of a case: the input rows the host says it gave, and where the guest's result
/// descriptor is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Morsel {
    /// Input rows of the morsel.
    pub input_rows: usize,
    /// Absolute address of the [`ResultDesc`].
    pub result_ptr: u32,
}

/// A decoded fuzz input.
#[derive(Debug)]
pub struct Case<'a> {
    /// Index into [`POLICIES`].
    pub policy: usize,
    /// The morsels, in order.
    pub morsels: Vec<Morsel>,
    /// The memory image.
    pub image: &'a [u8],
}

impl<'a> Case<'a> {
    /// Decodes `data` (see the module docs), or `None` when the header is short.
    #[must_use]
    pub fn parse(data: &'a [u8]) -> Option<Self> {
        let (&[policy, count], rest) = data.split_first_chunk::<2>()?;
        let count = usize::from(1 + count % MAX_MORSELS);
        if rest.len() < count * MORSEL_HEADER {
            return None;
        }
        let (headers, image) = rest.split_at(count * MORSEL_HEADER);
        let morsels = headers
            .chunks_exact(MORSEL_HEADER)
            .map(|h| Morsel {
                input_rows: usize::from(u16::from_le_bytes([h[0], h[1]]) % (MAX_ROWS + 1)),
                result_ptr: u32::from_le_bytes([h[2], h[3], h[4], h[5]]),
            })
            .collect();
        Some(Self {
            policy: usize::from(policy) % POLICIES.len(),
            morsels,
            image,
        })
    }

    /// Encodes a case (the inverse of [`Case::parse`] for in-range values).
    #[must_use]
    pub fn encode(policy: usize, morsels: &[Morsel], image: &[u8]) -> Vec<u8> {
        let mut out = vec![
            u8::try_from(policy).expect("a policy index"),
            u8::try_from(morsels.len() - 1).expect("a morsel count"),
        ];
        for m in morsels {
            out.extend_from_slice(&u16::try_from(m.input_rows).expect("rows").to_le_bytes());
            out.extend_from_slice(&m.result_ptr.to_le_bytes());
        }
        out.extend_from_slice(image);
        out
    }
}

/// Builds a memory image as a guest would lay out its output, at [`ARENA_BASE`].
#[derive(Debug, Default)]
pub struct ImageBuilder {
    bytes: Vec<u8>,
}

impl ImageBuilder {
    /// Appends `data` aligned to 8 and returns its region (`0, 0` when empty, as the SDK does).
    pub fn put(&mut self, data: &[u8]) -> BufferRef {
        if data.is_empty() {
            return BufferRef { ptr: 0, len: 0 };
        }
        while !self.bytes.len().is_multiple_of(8) {
            self.bytes.push(0);
        }
        let ptr = ARENA_BASE + u32::try_from(self.bytes.len()).expect("a small image");
        self.bytes.extend_from_slice(data);
        BufferRef {
            ptr,
            len: u32::try_from(data.len()).expect("a small buffer"),
        }
    }

    /// The image.
    #[must_use]
    pub fn finish(self) -> Vec<u8> {
        self.bytes
    }
}

/// One valid output column of `rows` rows for `decl`: row 1 is null when the column is
/// optional and has two rows or more.
pub fn valid_column(image: &mut ImageBuilder, decl: &DeclaredColumn, rows: u32) -> ColumnDesc {
    let n = rows as usize;
    let with_null = decl.optional && rows > 1;
    let mut desc = decl.desc_template();
    desc.flags = COLUMN_PRESENT;
    desc.len = rows;
    if with_null {
        let mut validity = vec![0xffu8; bitmap_len(rows) as usize];
        validity[0] &= !0b10;
        desc.validity = image.put(&validity);
        desc.flags |= COLUMN_HAS_VALIDITY;
        desc.null_count = 1;
    }
    match decl.type_id {
        TypeId::Boolean => {
            desc.values = image.put(&vec![0b0101_0101; bitmap_len(rows) as usize]);
        }
        TypeId::Utf8 | TypeId::Binary => {
            let offsets: Vec<i32> = (0..=rows as i32).map(|i| i * 2).collect();
            desc.offsets = image.put(bytemuck::cast_slice(&offsets));
            desc.values = image.put(&b"ab".repeat(n));
        }
        id => {
            let width = id.fixed_width().unwrap_or(decl.byte_width) as usize;
            let values: Vec<u8> = (0..n * width).map(|i| (i % 7) as u8).collect();
            desc.values = image.put(&values);
        }
    }
    desc
}

/// A valid result of `guest` for a morsel of `input_rows` rows, as an encoded case. A filter
/// keeps every other row; a transform that keeps rows returns `input_rows` rows, one with
/// `passthrough: none` returns `out_rows`.
#[must_use]
pub fn valid_case(
    policy: usize,
    guest: &Shape,
    input_rows: u32,
    out_rows: u32,
    with_selection: bool,
) -> Vec<u8> {
    let mut image = ImageBuilder::default();
    // The result descriptor first, so that it sits at ARENA_BASE; filled in below.
    let result_ref = image.put(bytemuck::bytes_of(&ResultDesc::zeroed()));
    let mut result = ResultDesc {
        status: status::OK,
        ..ResultDesc::zeroed()
    };
    if guest.filter || (guest.row_preserving && with_selection) {
        let bits: Vec<u8> = vec![0b0101_0101; bitmap_len(input_rows) as usize];
        let selected = (0..input_rows).filter(|i| i % 2 == 0).count() as u32;
        result.selection = image.put(&bits);
        if guest.filter {
            result.num_rows = selected;
        }
    }
    if !guest.filter {
        let rows = if guest.row_preserving {
            input_rows
        } else {
            out_rows
        };
        result.num_rows = rows;
        let descs: Vec<ColumnDesc> = guest
            .outputs
            .iter()
            .map(|d| valid_column(&mut image, d, rows))
            .collect();
        result.num_columns = u32::try_from(descs.len()).expect("few columns");
        result.columns = image.put(bytemuck::cast_slice(&descs)).ptr;
    }
    let mut bytes = image.finish();
    let at = (result_ref.ptr - ARENA_BASE) as usize;
    bytes[at..at + size_of::<ResultDesc>()].copy_from_slice(bytemuck::bytes_of(&result));
    Case::encode(
        policy,
        &[Morsel {
            input_rows: input_rows as usize,
            result_ptr: result_ref.ptr,
        }],
        &bytes,
    )
}
