//! The input batch: declared columns, resolved to zero-copy views.

use std::borrow::Cow;

use weir_abi::{ParsedType, TimeUnit, TypeId};

use crate::bitmap::Bitmap;
use crate::builder::Column;
use crate::error::{Error, Result};
use crate::types::{self, ColumnType, NativeType};
use crate::view::{
    BinaryView, BooleanView, FixedSizeBinaryView, Nulls, PrimitiveView, TimestampView, Utf8View,
};

/// A raw `(pointer, byte length)` checked when the batch was built.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawBuf {
    pub(crate) ptr: *const u8,
    pub(crate) len: usize,
}

impl RawBuf {
    pub(crate) const EMPTY: Self = Self {
        ptr: std::ptr::null(),
        len: 0,
    };

    fn of<T>(s: &[T]) -> Self {
        Self {
            ptr: s.as_ptr().cast(),
            len: size_of_val(s),
        }
    }

    /// # Safety
    /// `ptr` must point to `len` initialized bytes, aligned for `T`, that stay valid and
    /// unwritten for `'a`; `len` must be a multiple of `size_of::<T>()`.
    pub(crate) unsafe fn slice<'a, T>(&self) -> &'a [T] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: upheld by the caller; the count is the byte length over the element size.
        unsafe { std::slice::from_raw_parts(self.ptr.cast::<T>(), self.len / size_of::<T>()) }
    }
}

/// One declared input column, as the batch found it. Internal to the SDK.
#[derive(Debug)]
pub struct RawColumn {
    pub(crate) name: Cow<'static, str>,
    pub(crate) id: TypeId,
    pub(crate) unit: Option<TimeUnit>,
    pub(crate) tz: Option<Cow<'static, str>>,
    pub(crate) width: usize,
    pub(crate) present: bool,
    pub(crate) len: usize,
    pub(crate) null_count: usize,
    pub(crate) validity: Option<RawBuf>,
    pub(crate) offsets: RawBuf,
    pub(crate) values: RawBuf,
}

// Every method below relies on the invariant of `RawColumn`: its buffers were checked, when the
// batch was built, to be in bounds, aligned and of the exact ABI lengths for `id` and `len`, and
// they stay valid and unwritten while the `Batch` that owns the `RawColumn` is borrowed.
impl RawColumn {
    fn nulls(&self) -> Nulls<'_> {
        Nulls {
            validity: self.validity.map(|v| {
                // SAFETY: see the invariant above; the validity bitmap is `ceil(len/8)` bytes.
                Bitmap::new(unsafe { v.slice::<u8>() }, self.len)
            }),
            null_count: self.null_count,
        }
    }

    pub(crate) fn primitive_view<T: NativeType>(&self) -> PrimitiveView<'_, T> {
        PrimitiveView {
            // SAFETY: see the invariant above; values are `len * size_of::<T>()` bytes aligned
            // for `T` (checked against the type id, whose width is `size_of::<T>()`).
            values: unsafe { self.values.slice::<T>() },
            nulls: self.nulls(),
        }
    }

    pub(crate) fn boolean_view(&self) -> BooleanView<'_> {
        BooleanView {
            // SAFETY: see the invariant above; values are a `ceil(len/8)`-byte bitmap.
            values: Bitmap::new(unsafe { self.values.slice::<u8>() }, self.len),
            nulls: self.nulls(),
        }
    }

    fn var_parts(&self) -> (&[i32], &[u8]) {
        // SAFETY: see the invariant above; offsets are `len + 1` aligned `i32`s (first 0,
        // non-decreasing, last = values length) and values are bytes.
        unsafe { (self.offsets.slice::<i32>(), self.values.slice::<u8>()) }
    }

    pub(crate) fn utf8_view(&self) -> Utf8View<'_> {
        let (offsets, data) = self.var_parts();
        Utf8View {
            offsets,
            data,
            nulls: self.nulls(),
        }
    }

    pub(crate) fn binary_view(&self) -> BinaryView<'_> {
        let (offsets, data) = self.var_parts();
        BinaryView {
            offsets,
            data,
            nulls: self.nulls(),
        }
    }

    pub(crate) fn fixed_size_binary_view(&self) -> FixedSizeBinaryView<'_> {
        FixedSizeBinaryView {
            width: self.width,
            len: self.len,
            // SAFETY: see the invariant above; values are `len * width` bytes.
            data: unsafe { self.values.slice::<u8>() },
            nulls: self.nulls(),
        }
    }

    pub(crate) fn timestamp_view(&self) -> TimestampView<'_> {
        TimestampView {
            inner: self.primitive_view::<i64>(),
            unit: self.unit.unwrap_or(TimeUnit::Microsecond),
            tz: self.tz.as_deref(),
        }
    }

    fn type_text(&self) -> String {
        ParsedType {
            id: self.id,
            byte_width: u32::try_from(self.width).unwrap_or(u32::MAX),
            unit: self.unit,
            tz: self.tz.as_deref(),
        }
        .to_string()
    }
}

/// The rows of one `weir_process` call: the columns the policy declared in `reads`, in that
/// order, as zero-copy views.
///
/// Ask for a column by name and type: `batch.f64("temp")?` for a required column,
/// `batch.opt_f64("temp")?` for one declared optional (`"temp: float64?"`), which gives `None`
/// when this batch lacks it; or generically `batch.column::<Float64>("temp")?`. Asking with the
/// wrong type or an undeclared name is an [`Error`], not a panic.
#[derive(Debug)]
pub struct Batch {
    pub(crate) columns: Vec<RawColumn>,
    pub(crate) num_rows: usize,
    pub(crate) batch_seq: u64,
    pub(crate) row_offset: u64,
    /// Whether an unknown name is an error (descriptor batches) or just absent (test batches).
    pub(crate) strict: bool,
    pub(crate) _owned: Vec<Column>,
}

macro_rules! typed_accessors {
    ($($(#[$doc:meta])* $req:ident, $opt:ident, $marker:ident;)*) => {$(
        $(#[$doc])*
        ///
        /// # Errors
        /// When the column is not declared, has another type, or is absent from this batch.
        pub fn $req(&self, name: &str) -> Result<<types::$marker as ColumnType>::View<'_>> {
            self.column::<types::$marker>(name)
        }

        #[doc = concat!("Like [`", stringify!($req), "`](Self::", stringify!($req), ") for an optional column: `None` when this batch lacks it.")]
        ///
        /// # Errors
        /// When the column is not declared or has another type.
        pub fn $opt(&self, name: &str) -> Result<Option<<types::$marker as ColumnType>::View<'_>>> {
            self.opt_column::<types::$marker>(name)
        }
    )*};
}

impl Batch {
    /// A batch made of finished columns, for native unit tests of a policy's logic. Names not
    /// given here are absent (so `opt_*` accessors give `None`).
    ///
    /// ```
    /// use weir_sdk::prelude::*;
    /// let mut temp = Float64Builder::new();
    /// temp.append_value(21.5);
    /// temp.append_null();
    /// let batch = Batch::from_columns(vec![("temp", temp.finish())]);
    /// let view = batch.f64("temp").unwrap();
    /// assert_eq!((view.get(0), view.get(1)), (Some(21.5), None));
    /// assert!(batch.opt_f64("humidity").unwrap().is_none());
    /// ```
    ///
    /// # Panics
    /// When the columns have different lengths.
    #[must_use]
    pub fn from_columns<S: Into<String>>(columns: Vec<(S, Column)>) -> Self {
        let num_rows = columns.first().map_or(0, |(_, c)| c.len());
        let mut raws = Vec::with_capacity(columns.len());
        let mut owned = Vec::with_capacity(columns.len());
        for (name, col) in columns {
            assert_eq!(col.len(), num_rows, "columns of different lengths");
            raws.push(RawColumn {
                name: Cow::Owned(name.into()),
                id: col.id,
                unit: col.unit,
                tz: None,
                width: col.width as usize,
                present: true,
                len: col.len,
                null_count: col.null_count,
                validity: col.validity.as_deref().map(RawBuf::of),
                offsets: col.offsets.as_deref().map_or(RawBuf::EMPTY, RawBuf::of),
                values: RawBuf::of(col.values_bytes()),
            });
            // The buffers are heap allocations owned by `col`: moving `col` does not move them.
            owned.push(col);
        }
        Self {
            columns: raws,
            num_rows,
            batch_seq: 0,
            row_offset: 0,
            strict: false,
            _owned: owned,
        }
    }

    /// Number of rows.
    #[must_use]
    pub fn num_rows(&self) -> usize {
        self.num_rows
    }

    /// The host's batch number for this instance (starts at 0).
    #[must_use]
    pub fn batch_seq(&self) -> u64 {
        self.batch_seq
    }

    /// Index of this call's first row within the host batch (non-zero when the host split a large
    /// batch into morsels).
    #[must_use]
    pub fn row_offset(&self) -> u64 {
        self.row_offset
    }

    /// Number of declared input columns.
    #[must_use]
    pub fn num_columns(&self) -> usize {
        self.columns.len()
    }

    /// Name of the declared input column `index`.
    #[must_use]
    pub fn column_name(&self, index: usize) -> Option<&str> {
        self.columns.get(index).map(|c| &*c.name)
    }

    /// Whether the batch has the column `name` (an optional column may be absent).
    #[must_use]
    pub fn has_column(&self, name: &str) -> bool {
        self.columns.iter().any(|c| c.name == name && c.present)
    }

    fn find(&self, name: &str) -> Result<Option<&RawColumn>> {
        match self.columns.iter().find(|c| c.name == name) {
            Some(c) => Ok(Some(c)),
            None if self.strict => Err(Error::new(format!(
                "column `{name}` is not declared in the policy's `reads`"
            ))),
            None => Ok(None),
        }
    }

    fn typed<T: ColumnType>(raw: &RawColumn) -> Result<Option<T::View<'_>>> {
        if raw.id != T::ID {
            let asked = ParsedType::simple(T::ID).to_string();
            let asked = asked.split('(').next().unwrap_or_default();
            return Err(Error::new(format!(
                "column `{}` is {}, not {asked}",
                raw.name,
                raw.type_text()
            )));
        }
        Ok(raw.present.then(|| T::view(raw)))
    }

    /// The required column `name` as type `T`, e.g. `batch.column::<Float64>("temp")?`.
    ///
    /// # Errors
    /// When the column is not declared, has another type, or is absent from this batch.
    pub fn column<T: ColumnType>(&self, name: &str) -> Result<T::View<'_>> {
        self.opt_column::<T>(name)?.ok_or_else(|| {
            Error::new(format!(
                "column `{name}` is absent from this batch (declare it optional and use opt_*)"
            ))
        })
    }

    /// The optional column `name` as type `T`; `None` when this batch lacks it.
    ///
    /// # Errors
    /// When the column is not declared or has another type.
    pub fn opt_column<T: ColumnType>(&self, name: &str) -> Result<Option<T::View<'_>>> {
        match self.find(name)? {
            Some(raw) => Self::typed::<T>(raw),
            None => Ok(None),
        }
    }

    /// The declared input column `index` (in `reads` order) as type `T`; `None` when absent.
    ///
    /// # Errors
    /// When there is no such column or it has another type.
    pub fn column_at<T: ColumnType>(&self, index: usize) -> Result<Option<T::View<'_>>> {
        let raw = self.columns.get(index).ok_or_else(|| {
            Error::new(format!(
                "column index {index} out of range ({} columns)",
                self.columns.len()
            ))
        })?;
        Self::typed::<T>(raw)
    }

    typed_accessors! {
        /// The `boolean` column `name`.
        bool, opt_bool, Boolean;
        /// The `int8` column `name`.
        i8, opt_i8, Int8;
        /// The `int16` column `name`.
        i16, opt_i16, Int16;
        /// The `int32` column `name`.
        i32, opt_i32, Int32;
        /// The `int64` column `name`.
        i64, opt_i64, Int64;
        /// The `uint8` column `name`.
        u8, opt_u8, UInt8;
        /// The `uint16` column `name`.
        u16, opt_u16, UInt16;
        /// The `uint32` column `name`.
        u32, opt_u32, UInt32;
        /// The `uint64` column `name`.
        u64, opt_u64, UInt64;
        /// The `float32` column `name`.
        f32, opt_f32, Float32;
        /// The `float64` column `name`.
        f64, opt_f64, Float64;
        /// The `utf8` column `name`.
        utf8, opt_utf8, Utf8;
        /// The `binary` column `name`.
        binary, opt_binary, Binary;
        /// The `fixed_size_binary(W)` column `name`.
        fixed_size_binary, opt_fixed_size_binary, FixedSizeBinary;
        /// The `timestamp(UNIT[, TZ])` column `name`.
        timestamp, opt_timestamp, Timestamp;
        /// The `date32` column `name`.
        date32, opt_date32, Date32;
    }
}
