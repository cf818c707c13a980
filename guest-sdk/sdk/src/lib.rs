//! Write Weir policies in Rust.
//!
//! A **policy** is a small WebAssembly module the Weir host runs over every Arrow record batch
//! that passes through it. A **filter** decides which rows to keep; a **transform** computes new
//! columns. You write one plain function, put `#[weir_sdk::filter]` or `#[weir_sdk::transform]`
//! on it, and the SDK does the rest: it declares the columns you read and write in the module's
//! manifest, exports the ABI functions the host calls, parses your parameters, hands you
//! zero-copy views over the columns in the module's memory, and packs your result.
//!
//! # A complete filter
//!
//! ```no_run
//! use weir_sdk::prelude::*;
//!
//! #[derive(serde::Deserialize)]
//! struct Params { min: f64, max: f64 }
//!
//! /// Keeps rows whose `value` is within `[min, max]`; drops nulls.
//! #[weir_sdk::filter(reads = ["value: float64"])]
//! fn in_range(batch: &Batch, p: &Params) -> Result<Selection> {
//!     let v = batch.f64("value")?;
//!     let mut keep = Selection::from_fn(v.len(), |i| (p.min..=p.max).contains(&v.values()[i]));
//!     keep.and_validity(v.validity());
//!     Ok(keep)
//! }
//! # fn main() {}
//! ```
//!
//! # A complete transform
//!
//! ```no_run
//! use weir_sdk::prelude::*;
//!
//! /// Converts `temp_f` (°F) to `temp_c` (°C).
//! #[weir_sdk::transform(
//!     reads = ["temp_f: float64?"],
//!     writes = ["temp_c: float64?"],
//!     passthrough = "unread",
//! )]
//! fn to_celsius(batch: &Batch) -> Result<Output> {
//!     let mut c = Float64Builder::with_capacity(batch.num_rows());
//!     match batch.opt_f64("temp_f")? {
//!         Some(f) => f.iter().for_each(|v| c.append_option(v.map(|f| (f - 32.0) / 1.8))),
//!         None => (0..batch.num_rows()).for_each(|_| c.append_null()),
//!     }
//!     Ok(Output::new().with("temp_c", c))
//! }
//! # fn main() {}
//! ```
//!
//! # The crate
//!
//! A policy is a library crate built as a `cdylib` (the `rlib` lets its unit tests and other
//! crates use it natively):
//!
//! ```toml
//! [package]
//! name = "in-range"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib", "rlib"]
//!
//! [dependencies]
//! weir-sdk = "0.1"
//! serde = { version = "1", features = ["derive"] }   # only for parameters
//! ```
//!
//! Build it with
//!
//! ```text
//! RUSTFLAGS="-C target-feature=+simd128" \
//!   cargo build --profile wasm --target wasm32-wasip1 -p in-range
//! ```
//!
//! (or `cargo xtask build-policies` inside the Weir workspace, which does the same for every
//! policy). The module is `target/wasm32-wasip1/wasm/in_range.wasm`. The `wasm` profile is
//! `release` with `lto = true`, `codegen-units = 1`, `panic = "abort"` and `strip = true`; copy
//! it into your own workspace if you build outside Weir's. Hand the `.wasm` and its parameters
//! (a JSON object, e.g. `{"min": 0, "max": 100}`) to the Weir host; it reads the manifest the
//! macro embedded, checks it, and runs the policy on every batch.
//!
//! # Running it
//!
//! Try the module on a few records with the `weir` binary (`cargo run -p weir-host --` inside
//! the workspace):
//!
//! ```text
//! $ printf '{"value": 12.5}\n{"value": 250}\n{"value": null}\n' > readings.ndjson
//! $ weir eval --policy target/wasm32-wasip1/wasm/in_range.wasm \
//!       --params '{"min": 0, "max": 100}' --input readings.ndjson
//! ```
//!
//! It prints the rows before and after and how many the policy kept (here one: `12.5`).
//! `weir inspect in_range.wasm` shows what the module declares. Repeat `--policy` (and
//! `--params`, in the same order) to try a chain.
//!
//! # The attribute macros
//!
//! `#[weir_sdk::filter(...)]` and `#[weir_sdk::transform(...)]` take:
//!
//! | argument | meaning |
//! |---|---|
//! | `reads = ["name: type", ...]` | the input columns, in order. Only these are copied into the module. A trailing `?` (`"temp_f: float64?"`) makes a column optional: the policy still runs when a batch lacks it, and `batch.opt_f64("temp_f")?` gives `None`. A name containing `:` is written in backticks: ``"`a:b`: int64"``. |
//! | `writes = [...]` | transforms only: the output columns, in order. `?` means the column may hold nulls; without it, a null in the output is an error. |
//! | `passthrough = "none" \| "unread" \| "all"` | transforms only (default `all`): which input columns the host keeps without copying them through the module: `all` keeps every input column (a written column replaces the input column of the same name), `unread` keeps the ones not in `reads`, `none` keeps nothing and lets the row count change. |
//! | `name = "..."` | the policy name (default: the crate name). |
//! | `init = path` | a function `fn(Config) -> Result<State>` run once by `weir_init`: it receives the parsed parameters (`Config: Deserialize`) and returns the state the policy function gets. An `Err` refuses the parameters (status `BAD_CONFIG`). |
//!
//! Types are `boolean`, `int8` … `int64`, `uint8` … `uint64`, `float32`, `float64`, `utf8`,
//! `binary`, `fixed_size_binary(W)`, `timestamp(s|ms|us|ns)`, `timestamp(UNIT, TZ)` and `date32`,
//! checked at compile time: a typo is a compile error pointing at the string.
//!
//! The function takes `&Batch` and, optionally, the parameters: `&P` or, for state kept across
//! batches, `&mut P` (with `init = f`, `P` is what `f` returns). `P` is deserialized from the
//! JSON parameter blob with [`json::from_slice`], the SDK's small serde JSON deserializer (an
//! empty blob counts as `{}`), so `#[derive(serde::Deserialize)]` is all `P` needs. A blob that
//! does not fit is refused (status `BAD_CONFIG`) with a message naming the field, the problem
//! and the position, e.g. ``bad parameters: temperature.min: invalid type: string "x", expected
//! f64 at line 1 column 28``. A filter returns
//! `Result<`[`Selection`]`>`, a transform `Result<`[`Output`]`>`. Returning `Err(e)` fails the
//! batch with `e`'s message (status `GUEST_ERROR`); a panic is reported to the host with its
//! message and location, then the module traps. Either way the host's fail mode decides what
//! happens to the batch.
//!
//! The host may pass a large batch in several consecutive calls ("morsels"), so treat rows
//! independently, or keep state in `&mut P`. [`Batch::row_offset`] and [`Batch::batch_seq`] say
//! where a call's rows come from.
//!
//! An **aggregate** is a transform with `passthrough = "none"`: it always gets whole batches,
//! its `writes` need not resemble its `reads`, and it may return any number of rows (zero
//! included) per batch. With `&mut P` it keeps totals across batches; that state lives in the
//! module instance and is lost whenever the host replaces the instance (after a failed batch, on
//! a hot swap, on restart). `policies/top-talkers` in the Weir repository is a complete example.
//!
//! # Reading columns
//!
//! [`Batch`] hands out views that borrow the module's memory, no copies: [`PrimitiveView`] for
//! `int*`, `uint*`, `float*` and `date32` (`values()` is the raw `&[T]`), [`TimestampView`]
//! (adds `unit()` and `tz()`), [`BooleanView`], [`Utf8View`] (`get(i) -> Option<&str>`),
//! [`BinaryView`] and [`FixedSizeBinaryView`] (`Option<&[u8]>`). Each has `len()`, `get(i)`,
//! `is_valid(i)`, `null_count()` and `validity()` (the bitmap, `None` without nulls).
//! The per-type accessors on [`Batch`] are `bool`, `i8`, `i16`, `i32`, `i64`, `u8`, `u16`,
//! `u32`, `u64`, `f32`, `f64`, `utf8`, `binary`, `fixed_size_binary`, `timestamp`, `date32`,
//! each with an `opt_` twin; [`Batch::column`] and [`Batch::column_at`] are the generic forms.
//!
//! # Selections
//!
//! [`Selection::from_fn`] packs 64 rows at a time into a `u64`, so a predicate over
//! `values()` slices compiles to SIMD code with `+simd128`. Combine selections word-wise with
//! [`Selection::and`], [`Selection::or`], [`Selection::and_not`], [`Selection::invert`], and
//! drop null rows with [`Selection::and_validity`] — no branch per row.
//!
//! # Writing columns
//!
//! Builders produce exactly the layout the host expects: [`PrimitiveBuilder`] (aliases
//! [`Int8Builder`] … [`Float64Builder`]), [`TimestampBuilder`], [`Date32Builder`],
//! [`BooleanBuilder`], [`Utf8Builder`], [`BinaryBuilder`] and [`FixedSizeBinaryBuilder`], each
//! with `append_value`, `append_null`, `append_option` and `finish`. Put the columns in an
//! [`Output`] by name with [`Output::with`].
//!
//! # Testing
//!
//! The policy function is an ordinary function: call it from a native `#[test]` with a batch
//! made by [`Batch::from_columns`]. The ABI exports exist only when compiling for `wasm32`.
//!
//! # Logging
//!
//! [`log::info`] and friends send a line to the host's log (rate-limited there).
//!
//! # Features
//!
//! * `arrow` (off): [`arrow`](crate::arrow) converts a [`Batch`] into an arrow-rs `RecordBatch`
//!   and a `RecordBatch` into an [`Output`], for authors who want arrow-rs's kernels. It makes the
//!   module about 1–2 MB instead of tens of KB, and the host compiles it proportionally slower.

mod batch;
mod bitmap;
mod builder;
mod error;
pub mod json;
pub mod log;
mod output;
mod selection;
pub mod types;
mod view;
mod wire;

#[cfg(feature = "arrow")]
pub mod arrow;

#[doc(hidden)]
pub mod rt;

/// Implementation details used by the code the macros generate.
#[doc(hidden)]
pub use rt as __rt;

pub use batch::Batch;
pub use bitmap::Bitmap;
pub use builder::{
    BinaryBuilder, BooleanBuilder, Column, Date32Builder, FixedSizeBinaryBuilder, Float32Builder,
    Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, PrimitiveBuilder,
    StringBuilder, TimestampBuilder, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
    Utf8Builder,
};
pub use error::{Error, Result};
pub use output::Output;
pub use selection::Selection;
pub use types::{ColumnType, NativeType};
pub use view::{
    BinaryView, BooleanView, FixedSizeBinaryView, PrimitiveView, TimestampView, Utf8View,
};
pub use weir_abi::{TimeUnit, TypeId};

/// Marks a function as a filter policy. See the [crate docs](crate#the-attribute-macros).
pub use weir_sdk_macros::filter;
/// Marks a function as a transform policy. See the [crate docs](crate#the-attribute-macros).
pub use weir_sdk_macros::transform;

/// Everything a policy usually needs: `use weir_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::types::{
        Binary, Boolean, Date32, FixedSizeBinary, Float32, Float64, Int8, Int16, Int32, Int64,
        Timestamp, UInt8, UInt16, UInt32, UInt64, Utf8,
    };
    pub use crate::{
        Batch, BinaryBuilder, BinaryView, Bitmap, BooleanBuilder, BooleanView, Column,
        Date32Builder, Error, FixedSizeBinaryBuilder, FixedSizeBinaryView, Float32Builder,
        Float64Builder, Int8Builder, Int16Builder, Int32Builder, Int64Builder, Output,
        PrimitiveBuilder, PrimitiveView, Result, Selection, StringBuilder, TimeUnit,
        TimestampBuilder, TimestampView, UInt8Builder, UInt16Builder, UInt32Builder, UInt64Builder,
        Utf8Builder, Utf8View,
    };
}

#[cfg(test)]
mod tests;
